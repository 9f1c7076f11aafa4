"""The study directory: atomic records, states from files, claims, config guard, status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import minimal_record, tiny_config

from hplandscape.errors import UserError
from hplandscape.run.status import follow, study_status
from hplandscape.store import claims
from hplandscape.store.study_store import RunState, StudyStore

RUN = "base/lr-1.0000_wd-4.0000/seed0"


def build_record(run_id=RUN, **kw):
    return minimal_record(run_id, **kw)


def claim(store, run_id, job_id):
    return claims.take(store.files(run_id), job_id, stale_after=store.stale_after,
                       finished=lambda: store.read_record(run_id)[0].finished)


@pytest.fixture
def store(tmp_path):
    s = StudyStore(tmp_path / "study")
    s.init_study(tiny_config())
    return s


def test_layout_paths_follow_the_documented_tree(store):
    assert store.record_path(RUN) == store.root / "runs/base/lr-1.0000_wd-4.0000/seed0/record.json"
    assert store.claim_path(RUN).name == "claim.json"
    assert store.spec_path("uniform-0.5") == store.root / "specs/uniform-0.5.json"
    assert (store.root / "study.yaml").is_file() and store.logs_dir.is_dir()
    with pytest.raises(ValueError):
        store.run_dir("../escape")


def test_record_round_trip_and_states(store):
    assert store.run_state(RUN) is RunState.MISSING
    store.write_record(RUN, build_record())
    assert store.read_record(RUN) == (RunState.DONE, build_record())
    other = "base/lr-1.5000_wd-4.0000/seed0"
    store.write_record(other, build_record(other, diverged=True, top1=10.0))
    assert store.run_state(other) is RunState.DIVERGED
    assert not list(store.run_dir(RUN).glob(".*tmp")), "temp files must not remain"


@pytest.mark.parametrize("text", ['{"run_id": "base/lr-1.0000_wd-4.0000/seed0", "top1": 9',
                                  "", "[1, 2]", '{"run_id": "other/x/seed0", "top1": 1, "diverged": false}',
                                  '{"run_id": "base/lr-1.0000_wd-4.0000/seed0"}',
                                  # the shallow record older versions accepted: analysis needs more
                                  '{"run_id": "base/lr-1.0000_wd-4.0000/seed0", "top1": 91.5, "diverged": false}',
                                  json.dumps(minimal_record(RUN, diverged="false")),
                                  json.dumps(minimal_record(RUN, top1=None)),
                                  json.dumps(minimal_record(RUN, top1=500.0)),
                                  json.dumps(minimal_record(RUN, top1=float("nan"))),
                                  json.dumps(minimal_record(RUN, seed=3)),
                                  json.dumps(minimal_record(RUN, lr=-0.1)),
                                  json.dumps(minimal_record(RUN, condition="uniform-0.5"))])
def test_truncated_or_foreign_record_is_corrupt_never_done(store, text):
    path = store.record_path(RUN)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    assert store.read_record(RUN) == (RunState.CORRUPT, None)
    status = study_status(store)
    counts = status.to_json()["conditions"]["base"]
    assert counts["done"] == 0 and counts["corrupt"] == 1 and counts["missing"] == 4
    assert str(path) in status.render()
    assert list(store.iter_records()) == []
    assert store.record_problem(RUN) in status.render()


def test_claims_exclude_other_jobs_and_stale_ones_are_taken_over(tmp_path):
    store = StudyStore(tmp_path, stale_after=0.5)
    assert claim(store, RUN, "job-a")
    assert store.run_state(RUN) is RunState.RUNNING
    assert not claim(store, RUN, "job-b"), "a live claim of another job must be respected"
    assert claim(store, RUN, "job-a"), "a job may take back its own claim (requeue)"
    time.sleep(0.7)
    assert store.run_state(RUN) is RunState.MISSING
    assert claim(store, RUN, "job-b"), "a claim without heartbeat is stale"
    assert json.loads(store.claim_path(RUN).read_text())["job_id"] == "job-b"
    claims.release(store.files(RUN), "job-a")  # not the holder: nothing happens
    assert store.claim_path(RUN).exists()
    claims.release(store.files(RUN), "job-b")
    assert not store.claim_path(RUN).exists()


def test_heartbeat_keeps_a_claim_alive(tmp_path):
    store = StudyStore(tmp_path, stale_after=0.6)
    assert claim(store, RUN, "job-a")
    with claims.heartbeat([store.files(RUN)], interval=0.1):
        time.sleep(1.0)
        assert store.run_state(RUN) is RunState.RUNNING
        assert not claim(store, RUN, "job-b")


def test_claim_of_a_dead_local_process_is_stale(tmp_path):
    store = StudyStore(tmp_path)
    code = ("import sys; from hplandscape.store import claims; from hplandscape.store.study_store import StudyStore; "
            f"print(claims.take(StudyStore(sys.argv[1]).files({RUN!r}), 'job-dead', finished=lambda: False))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr
    assert claims.read_claim(store.files(RUN))["job_id"] == "job-dead"
    assert store.run_state(RUN) is RunState.MISSING
    assert claim(store, RUN, "job-new")


def test_finished_run_cannot_be_claimed(store):
    store.write_record(RUN, build_record())
    assert not claim(store, RUN, "job-a")


def test_failed_run_names_its_traceback(store):
    try:
        raise RuntimeError("boom")
    except RuntimeError as e:
        log = store.write_error(RUN, "job-a", e, "Traceback: boom\n")
    assert store.run_state(RUN) is RunState.FAILED
    status = study_status(store)
    assert status.to_json()["conditions"]["base"]["failed"] == 1
    assert str(log) in status.render()
    store.write_record(RUN, build_record())
    assert store.run_state(RUN) is RunState.DONE and not log.exists()


def test_different_config_is_refused_with_guidance(store):
    other = tiny_config(train={"preset": "digits", "epochs": 5, "batch_size": 64})
    with pytest.raises(UserError) as e:
        store.init_study(other)
    msg = str(e.value)
    assert "study.yaml" in msg and "train.epochs: 3 → 5" in msg and "--force" in msg and "--study-dir" in msg
    store.init_study(other, force=True)
    assert store.config().recipe.epochs == 5


def test_launcher_settings_and_grid_extensions_do_not_invalidate(store):
    launcher = dict(executor="slurm", runs_per_job=7, cpus_per_task=1, mem_gb=1.0, timeout_min=10)
    store.init_study(tiny_config(launcher=launcher))
    grid = {"prior_lr": 0.1, "prior_wd": 1e-4, "log10_lr": [-1.5, -1.0], "log10_wd": [-4.5, -4.0],
            "extra_log10_lr": [-0.5]}
    store.init_study(tiny_config(grid=grid, launcher=launcher))
    assert study_status(store).total == 2 * 6


def test_status_json_shape_and_grid_map(store):
    store.write_record(RUN, build_record())
    claim(store, "uniform-0.5/lr-1.5000_wd-4.0000/seed0", "job-a")
    st = study_status(store)
    js = st.to_json()
    assert set(js["conditions"]) == {"base", "uniform-0.5"}
    assert js["conditions"]["base"] == {"total": 4, "done": 1, "running": 0, "failed": 0, "missing": 3,
                                        "diverged": 0, "corrupt": 0}
    assert js["conditions"]["uniform-0.5"]["running"] == 1
    text = st.render()
    assert "1/8 runs finished" in text and "#" in text and "R" in text


def test_open_refuses_a_non_study(tmp_path):
    with pytest.raises(UserError, match="not a study directory"):
        StudyStore.open(tmp_path / "nope")


def test_follow_returns_when_complete(store, capsys):
    cfg = store.config()
    for run_id in store.run_ids(cfg):
        store.write_record(run_id, build_record(run_id))
    assert follow(store, interval=0.05, timeout=5).complete
