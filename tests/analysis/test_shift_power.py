"""benchmarks/shift_power.py in its quick mode: it runs and the test it measures behaves."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_shift_power_quick_mode_reports_false_positives_and_power(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "shift_power.py"), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    rows = {r["measure"]: r for r in json.loads(out.read_text())}
    assert rows["false-positive rate"]["studies"] == 40 and rows["power"]["shift"] == 0.1
    # 40 studies: loose bounds around the calibrated figures (0.033 and 0.941 over 1000 studies)
    assert rows["false-positive rate"]["rate"] <= 0.15
    assert rows["power"]["rate"] >= 0.6
    assert "false-positive rate at shift 0" in proc.stdout
