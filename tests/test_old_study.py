"""A study directory written before the modules moved into packages still resumes and reports.

``tests/data/study_0_1_0`` was written by the flat layout (its README says how): its checkpoint,
specs, masks, weights and records hold no module path, so the packaged code reads every one.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch
from conftest import run_cli

from hplandscape.store.study_store import StudyStore

OLD = Path(__file__).parent / "data" / "study_0_1_0"
KILLED = "uniform-0.5/lr-1.7500_wd-1.7500/seed1"


def test_a_study_of_the_flat_layout_resumes_its_checkpoint_and_reports(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    study = tmp_path / "old"
    shutil.copytree(OLD, study, ignore=shutil.ignore_patterns("README.md"))
    store = StudyStore(study)
    saved = torch.load(store.files(KILLED).checkpoint, weights_only=True)["state"]
    assert saved["next_epoch"] == 1 and not store.files(KILLED).record.exists()

    code, out, err = run_cli(capsys, "sweep", study / "study.yaml", "--study-dir", study, "--executor", "debug",
                             "--no-progress", "--no-report")
    assert code == 0, err
    assert f"{KILLED}: resuming at epoch 1" in caplog.text  # the killed run, from its checkpoint
    assert caplog.text.count(": starting") <= 1, "only the killed run trains"
    state, record = store.read_record(KILLED)
    assert state.finished and len(record["history"]) == 3 and record["history"][0] == saved["history"][0]
    assert not list(study.rglob("checkpoint.pt*")), "the checkpoint was resumed and removed, never set aside"
    assert len(list(study.rglob("record.json"))) == 54

    code, out, err = run_cli(capsys, "report", study, "--out", tmp_path / "report")
    assert code == 0, err
    html = (tmp_path / "report" / "index.html").read_text()
    for condition in ("base", "uniform-0.5", "magnitude-0.2"):
        assert condition in html
