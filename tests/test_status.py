"""Status from files: follow mode ends when the study is complete or nothing is left to wait for."""

from __future__ import annotations

import time

from conftest import minimal_record, tiny_config

from hplandscape.cli import main
from hplandscape.run.status import follow, study_status
from hplandscape.store import claims
from hplandscape.store.study_store import StudyStore


def _study(tmp_path):
    store = StudyStore(tmp_path / "study")
    store.init_study(tiny_config())
    ids = store.run_ids()
    for run_id in ids[1:]:
        store.write_record(run_id, minimal_record(run_id))
    return store, ids[0]


def test_follow_ends_when_nothing_runs_or_waits_even_if_incomplete(tmp_path):
    store, left = _study(tmp_path)
    store.write_error(left, "job-1", RuntimeError("boom"), "Traceback: boom\n")
    t0 = time.monotonic()
    status = follow(store, interval=0.05, timeout=30, queued=lambda: False)
    assert time.monotonic() - t0 < 5 and not status.complete and len(status.failed) == 1


def test_follow_waits_while_a_run_is_claimed_or_jobs_are_queued(tmp_path):
    store, left = _study(tmp_path)
    assert claims.take(store.files(left), "job-1", finished=lambda: False)
    status = follow(store, interval=0.05, timeout=0.6, queued=lambda: False)
    assert not status.complete  # ended by the timeout, not by idleness: the run is claimed
    claims.release(store.files(left), "job-1")
    calls = []
    follow(store, interval=0.05, timeout=0.6, queued=lambda: calls.append(1) or True)
    assert len(calls) >= 5, "queued jobs keep follow waiting until the timeout"


def test_status_follow_cli_exit_codes(tmp_path, capsys, monkeypatch):
    store, left = _study(tmp_path)
    monkeypatch.setattr("hplandscape.run.status.slurm_jobs_waiting", lambda store: False)
    assert main(["status", str(store.root), "--follow", "--interval", "0.05"]) == 1
    assert "not finished" in capsys.readouterr().err
    store.write_record(left, minimal_record(left))
    assert main(["status", str(store.root), "--follow", "--interval", "0.05"]) == 0
    assert study_status(store).complete


def test_submitted_job_ids_come_from_the_logs(tmp_path):
    store, _ = _study(tmp_path)
    for name in ("123_0_submitted.pkl", "124_submitted.pkl", "124_0_log.out"):
        (store.logs_dir / name).write_text("")
    assert store.submitted_job_ids() == ["123_0", "124"]


def test_counts_stay_in_their_columns_for_long_condition_names(tmp_path):
    store = StudyStore(tmp_path / "study")
    config = tiny_config(conditions=[{"method": "none"}, {"method": "uniform", "ratio": 0.5,
                                                          "name": "uniform-0.5-a-long-condition-name"}])
    store.init_study(config)
    lines = study_status(store, config).render().splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("condition"))
    table = lines[header:header + 3]
    assert len({len(line) for line in table}) == 1, "\n".join(table)
    assert all(line.split()[1].isdigit() for line in table[1:]), "\n".join(table)
