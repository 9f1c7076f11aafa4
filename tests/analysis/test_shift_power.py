"""benchmarks/shift_power.py in its quick mode: it runs and the test it measures behaves."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_shift_power_quick_mode_reports_false_positives_power_and_the_family(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "shift_power.py"), "--quick", "--workers", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    rows = {r["setting"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"ridge-fpr", "ridge-power", "4-null"}
    assert all(r["studies"] == 40 and r["n_boot"] == 199 for r in rows.values())
    # 40 studies: loose bounds around the calibrated figures (docs/method.md §12)
    assert rows["ridge-fpr"]["rate"] <= 0.15
    assert rows["ridge-power"]["shift"] == 0.1 and rows["ridge-power"]["rate"] >= 0.6
    assert rows["4-null"]["pruned"] == 4 and rows["4-null"]["rate"] <= 0.2
    assert all(r["best_top1_coverage"] >= 0.8 for r in rows.values())
    assert "false-positive rate" in json.dumps(list(rows.values())) and "4-null" in proc.stdout
