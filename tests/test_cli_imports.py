"""Commands that only read YAML, JSON or CSV stay light: they never import torch (nor tensorboard).

Each command runs in a fresh interpreter (this test process has torch loaded already) on a small
study directory of fake records, and the interpreter checks ``sys.modules`` on its way out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import fake_prune, study_record, tiny_config

import hplandscape
from hplandscape.analysis.example import write_example_results
from hplandscape.store.study_store import StudyStore
from hplandscape.study.grid import make_grid
from hplandscape.study.loading import preset_path

REPO = Path(hplandscape.__file__).resolve().parent.parent
RESNET56 = str(preset_path("resnet56_cifar10.yaml"))

# Runs CLI commands one after the other in one interpreter (argv lists as JSON) and stops with
# exit 3, naming the command and the modules, as soon as one has imported torch.
PROBE = """
import json, sys
from hplandscape.cli import main
for argv in json.loads(sys.argv[1]):
    try:
        code = main(argv)
    except SystemExit as e:  # --help
        code = e.code
    if code != 0:
        print(f"{argv}: exit {code}", file=sys.stderr)
        sys.exit(1)
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "torch_pruning", "tensorboard"))
    if heavy:
        print(f"{argv} imported: {', '.join(heavy[:5])}", file=sys.stderr)
        sys.exit(3)
"""


def _probe(commands, prelude: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", prelude + PROBE, json.dumps(commands)],
                          capture_output=True, text=True, env=_env())


def _env() -> dict:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A finished 3 × 3 study (base and uniform-0.5) with records peaking at the prior."""
    root = tmp_path_factory.mktemp("light") / "study"
    config = tiny_config(grid={"prior_lr": 0.1, "prior_wd": 1e-4, "size": [3, 3], "step": 0.5})
    store = StudyStore(root)
    store.init_study(config)
    points = {p.key: p for p in make_grid(config.grid)}
    for run_id in store.run_ids():
        p = points[run_id.split("/")[1]]  # the study layout: <condition>/<point key>/seed<k>
        top1 = 90.0 - 8 * ((p.log10_lr + 1) ** 2 + (p.log10_wd + 4) ** 2)
        store.write_record(run_id, study_record(config, run_id, top1))
    # the report reads the stored architecture for its "Pruned widths" section, still without torch
    store.write_arch("uniform-0.5", fake_prune(config.model, "uniform", 0.5, num_classes=10, in_channels=1,
                                               input_shape=(1, 8, 8)))
    return root


def _light_commands(study: Path, tmp: Path) -> list[list[str]]:
    csv = write_example_results(tmp / "example" / "results.csv")
    return [
        ["--help"],
        ["--version"],
        ["export", "--help"],
        ["grid", RESNET56, "--json"],
        ["grid", RESNET56, "grid.size=[3,3]", "train.epochs=3"],
        ["grid", str(preset_path("quickstart.yaml"))],
        ["status", str(study)],
        ["status", str(study), "--json"],
        ["collect", str(study)],
        ["analyze", str(study), "--json"],
        ["analyze", str(csv), "--out", str(tmp / "tables")],
        ["report", str(study)],
    ]


def test_light_commands_do_not_import_torch(study, tmp_path):
    done = _probe(_light_commands(study, tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (study / "results.csv").exists() and (study / "report" / "index.html").exists()
    assert "<h2>Pruned widths</h2>" in (study / "report" / "index.html").read_text(encoding="utf-8")


def test_the_probe_sees_torch():
    # The probe must be able to fail: with a (stand-in) torch module loaded, even --help is caught.
    done = _probe([["--help"]], prelude="import sys, types; sys.modules['torch'] = types.ModuleType('torch')\n")
    assert done.returncode == 3 and "['--help'] imported: torch" in done.stderr


def test_grid_json_is_fast():
    # Goal 0.5 s (measured ≈ 0.1 s); the bound is generous for a busy CI machine.
    cmd = [sys.executable, "-m", "hplandscape", "grid", RESNET56, "--json"]
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=_env())
        best = min(best, time.perf_counter() - start)
        assert done.returncode == 0, done.stderr
    assert best < 1.5, f"grid --json took {best:.2f} s"
