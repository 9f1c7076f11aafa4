"""Planning, phases and the fault tests: SIGKILL midway, concurrent sweeps, corrupt records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import TESTS_DIR, fake_prune, fake_train_run, minimal_record, tiny_config, tiny_study_dict

from hplandscape.errors import UserError
from hplandscape.run.plan import plan_study
from hplandscape.run.status import study_status
from hplandscape.run.sweep import RunOptions, run_sweep
from hplandscape.store.study_store import RunState, StudyStore
from hplandscape.study.runs import source_run

FAKES = dict(options=RunOptions(train_fn=fake_train_run, prune_fn=fake_prune), progress=False)


def _trained_counts(store):
    """run id -> how many times its training ran to completion."""
    out = {}
    for log in store.runs_dir.glob("*/*/*/trained.log"):
        out["/".join(log.parent.relative_to(store.runs_dir).parts)] = len(log.read_text().split())
    return out


def _assert_complete_exactly_once(store, config):
    ids = store.run_ids(config)
    assert all(store.run_state(r).finished for r in ids)
    counts = _trained_counts(store)
    assert counts == {r: 1 for r in ids}, "every run trained to completion exactly once"
    assert not list(store.runs_dir.glob("*/*/*/.*.tmp")), "no half-written files"
    assert not list(store.runs_dir.glob("*/*/*/claim.json")), "no claims left behind"
    assert study_status(store, config).corrupt == ()


def test_plan_puts_the_pruning_source_first_and_skips_recorded_runs(tmp_path):
    config = tiny_config()
    store = StudyStore(tmp_path)
    store.init_study(config)
    plan = plan_study(config, store).runs
    assert len(plan) == 8 and plan[0].run_id == source_run(config).run_id == "base/lr-1.0000_wd-4.0000/seed0"
    assert plan[0].keep_weights and not any(s.keep_weights for s in plan[1:])
    assert {s.run_dir for s in plan} == {str(store.run_dir(s.run_id)) for s in plan}
    store.write_record(plan[3].run_id, minimal_record(plan[3].run_id, top1=1.0, diverged=True))
    assert plan[3].run_id not in {s.run_id for s in plan_study(config, store).runs}


def test_jobs_split_each_condition_evenly_and_local_jobs_fill_every_slot():
    from hplandscape.run.local_runner import local_job_size
    from hplandscape.run.plan import Step

    class Run:
        def __init__(self, condition):
            self.condition = condition

    runs = tuple(Run("base") for _ in range(24)) + tuple(Run("uniform") for _ in range(25))
    sizes = [len(b) for b in Step("x", runs=runs).blocks(13)]
    assert sizes == [12, 12, 13, 12], "never 13 + 11: sizes differ by at most one, conditions never mix"
    assert [len(b) for b in Step("x", runs=runs).blocks(25)] == [24, 25]
    # The quickstart: 75 runs, 2 slots, 25 runs per job made 3 jobs, the third trained alone.
    assert local_job_size(25, 75, 2) == 19 and local_job_size(25, 75, 2, "debug") == 25
    assert local_job_size(5, 75, 2) == 5 and local_job_size(25, 3, 4) == 1


def test_debug_sweep_runs_phases_in_order_then_skips_everything(tmp_path, fake_env):
    config = tiny_config()
    summary = run_sweep(config, tmp_path, executor="debug", **FAKES)
    store = StudyStore(tmp_path)
    assert (summary.planned, summary.skipped, summary.submitted, summary.done) == (8, 0, 8, 8)
    assert summary.finished and summary.failed == 0
    spec = json.loads(store.spec_path("uniform-0.5").read_text())
    assert spec["source"].startswith("checkpoint:"), "pruning ranked filters of the trained basemodel"
    _assert_complete_exactly_once(store, config)
    again = run_sweep(config, tmp_path, executor="debug", **FAKES)
    assert (again.submitted, again.skipped, again.done) == (0, 8, 8)
    assert "0 submitted" in again.describe()


def test_random_pruning_source_needs_no_trained_basemodel(tmp_path, fake_env):
    config = tiny_config(pruning={"source": "random"})
    run_sweep(config, tmp_path, executor="debug", **FAKES)
    assert json.loads(StudyStore(tmp_path).spec_path("uniform-0.5").read_text())["source"] == "random-init"


def test_dry_run_lists_phases_and_places_without_running(tmp_path):
    config = tiny_config()
    summary = run_sweep(config, tmp_path / "s", dry_run=True, max_parallel=2, **FAKES)
    assert not (tmp_path / "s").exists()
    phases = [p.phase for p in summary.plan]
    assert phases[:2] == [1, 2] and phases.count(3) == 7
    text = summary.describe()
    assert "local, 2 worker(s) at once, each taking the next free run" in text and "prune uniform-0.5" in text
    # the executor and the study folder once, in the header; each line the file it makes, under it
    assert text.count("2 worker(s) at once") == 1 and text.count(str(tmp_path / "s")) == 2
    assert f"relative to {tmp_path / 's'}" in text and "-> runs/base/lr-1.5000_wd-4.5000/seed0/" in text


def test_sweep_refuses_a_directory_of_another_config(tmp_path, fake_env):
    run_sweep(tiny_config(), tmp_path, executor="debug", **FAKES)
    other = tiny_config(seeds=[0, 1])
    for dry in (False, True):
        with pytest.raises(UserError, match="different config.*seeds"):
            run_sweep(other, tmp_path, executor="debug", dry_run=dry, **FAKES)
    summary = run_sweep(other, tmp_path, executor="debug", force=True, **FAKES)
    assert (summary.skipped, summary.submitted, summary.finished) == (8, 8, True)


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="available: local, slurm, debug"):
        run_sweep(tiny_config(), tmp_path, executor="cloud", **FAKES)
    with pytest.raises(UserError, match="max_parallel"):
        run_sweep(tiny_config(), tmp_path, max_parallel=0, **FAKES)


def test_failed_and_diverged_runs_are_recorded_not_fatal(tmp_path, fake_env):
    config = tiny_config()
    fake_env.setenv("HPL_FAKE_FAIL", "base/lr-1.5000_wd-4.5000")
    fake_env.setenv("HPL_FAKE_DIVERGE", "lr-1.5000_wd-4.0000")
    summary = run_sweep(config, tmp_path, executor="debug", **FAKES)
    assert (summary.failed, summary.diverged, summary.done) == (1, 2, 5)
    assert not summary.finished and "error.log" in summary.describe()
    fake_env.delenv("HPL_FAKE_FAIL")
    again = run_sweep(config, tmp_path, executor="debug", **FAKES)
    assert (again.submitted, again.failed, again.finished) == (1, 0, True)


def test_diverged_pruning_source_stops_pruned_runs_but_not_the_basemodel(tmp_path, fake_env):
    from hplandscape.errors import RunFailure

    fake_env.setenv("HPL_FAKE_DIVERGE", "base/lr-1.0000_wd-4.0000")
    with pytest.raises(RunFailure, match="diverged.*pruning.source: random"):
        run_sweep(tiny_config(), tmp_path, executor="debug", **FAKES)
    counts = study_status(StudyStore(tmp_path)).to_json()["conditions"]
    assert counts["base"]["done"] + counts["base"]["diverged"] == 4
    assert counts["uniform-0.5"]["missing"] == 4


def test_corrupt_record_is_rerun(tmp_path, fake_env):
    config = tiny_config()
    run_sweep(config, tmp_path, executor="debug", **FAKES)
    store = StudyStore(tmp_path)
    victim = "uniform-0.5/lr-1.5000_wd-4.0000/seed0"
    store.record_path(victim).write_text('{"run_id": "uniform-0.5/lr-1.5000_wd-4.0000/seed0", "top')
    assert study_status(store, config).to_json()["conditions"]["uniform-0.5"]["done"] == 3
    again = run_sweep(config, tmp_path, executor="debug", **FAKES)
    assert again.submitted == 1 and again.finished
    assert store.run_state(victim) is RunState.DONE
    kept = list(store.run_dir(victim).glob("record.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text().endswith('"top'), "the damaged record is kept, not overwritten"


def test_local_executor_sweep_completes(tmp_path, fake_env):
    config = tiny_config()
    summary = run_sweep(config, tmp_path, executor="local", max_parallel=2, **FAKES)
    assert summary.finished and summary.done == 8
    _assert_complete_exactly_once(StudyStore(tmp_path), config)
    assert list((tmp_path / "logs").glob("*_log.out")), "submitit logs live in STUDY/logs"


def test_a_worker_that_dies_loses_only_its_run_and_the_next_sweep_retrains_it(tmp_path, fake_env):
    """Workers share one list: when one is killed mid-run the others train the rest; its run is
    not retried in the same sweep (it might kill every worker), the sweep names the dead job, and
    the next sweep trains it."""
    config = tiny_config()
    store = StudyStore(tmp_path)
    victim = "base/lr-1.5000_wd-4.5000/seed0"
    fake_env.setenv("HPL_FAKE_KILL", victim)
    summary = run_sweep(config, tmp_path, executor="local", max_parallel=2, **FAKES)
    assert summary.done == 7 and not summary.finished and len(summary.job_failures) == 1
    assert store.run_state(victim) is RunState.MISSING
    assert len((store.run_dir(victim) / "starts.log").read_text().splitlines()) == 1, "tried once"
    fake_env.delenv("HPL_FAKE_KILL")
    again = run_sweep(config, tmp_path, executor="local", max_parallel=2, **FAKES)
    assert again.finished and again.submitted == 1
    assert store.run_state(victim) is RunState.DONE


def test_workers_that_die_before_claiming_anything_are_not_started_again_and_again(tmp_path, fake_env):
    """Every worker dies at once: the sweep gives up on their runs for this round and returns,
    naming the dead jobs, instead of starting new workers for the same runs forever."""
    from conftest import DyingJob

    from hplandscape.run import local_runner as run_local

    config = tiny_config(pruning={"source": "random"})  # no pruning source to wait for
    store = StudyStore(tmp_path)
    store.init_study(config)

    def too_long(*_):
        raise TimeoutError("the local runner kept starting workers that die")

    old = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(90)
    try:
        outcome = run_local.run_local(lambda: plan_study(config, store), config, store, kind="local",
                                      max_parallel=2, make_job=DyingJob, prune_fn=fake_prune,
                                      progress=False, poll_s=0.1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert 1 <= len(outcome.job_failures) <= 2 * run_local.MAX_ROUNDS and outcome.submitted == 0
    assert not any(store.run_state(r).finished for r in store.run_ids(config))


_DRIVER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    from conftest import fake_prune, fake_train_run, tiny_config
    from hplandscape.run.sweep import RunOptions, run_sweep
    s = run_sweep(tiny_config(), sys.argv[1], executor="local", max_parallel=2, progress=False,
                  options=RunOptions(train_fn=fake_train_run, prune_fn=fake_prune, poll_s=0.2))
    print(json.dumps({{"submitted": s.submitted, "done": s.done, "finished": s.finished}}))
""")


def _start_sweep(tmp_path, study):
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER.format(tests=str(TESTS_DIR)))
    return subprocess.Popen([sys.executable, str(driver), str(study)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.slow
def test_sigkilled_local_sweep_resumes_to_exactly_once(tmp_path, fake_env):
    fake_env.setenv("HPL_FAKE_EPOCH_S", "0.4")
    study = tmp_path / "study"
    proc = _start_sweep(tmp_path, study)
    store = StudyStore(study)
    deadline = time.time() + 60
    # Kill once a few runs are recorded and others are mid-training (a checkpoint exists).
    while time.time() < deadline:
        recorded = len(list(study.glob("runs/*/*/*/record.json")))
        if recorded >= 3 and any(not (p.parent / "record.json").exists()
                                 for p in study.glob("runs/*/*/*/checkpoint.pt")):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and every job it started
    proc.wait()
    recorded_at_kill = len(list(study.glob("runs/*/*/*/record.json")))
    interrupted = [p.parent for p in study.glob("runs/*/*/*/checkpoint.pt")
                   if not (p.parent / "record.json").exists()]
    assert 3 <= recorded_at_kill < 8 and interrupted, "the kill must land midway"
    again = _start_sweep(tmp_path, study)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["finished"] and result["submitted"] == 8 - recorded_at_kill
    _assert_complete_exactly_once(store, tiny_config())
    # Interrupted runs resumed from their epoch checkpoints instead of starting over.
    resumed = [d for d in interrupted if any(line.split()[1] != "0" for line in
                                             (d / "starts.log").read_text().splitlines()[1:])]
    assert resumed, "an interrupted run resumes from its checkpoint"
    print(f"SIGKILL test: 8 runs, 1 kill with {recorded_at_kill} recorded and "
          f"{len(interrupted)} mid-run; after re-run 8 records, each trained once")


@pytest.mark.slow
def test_two_concurrent_sweeps_never_train_a_run_twice(tmp_path, fake_env):
    fake_env.setenv("HPL_FAKE_EPOCH_S", "0.2")
    study = tmp_path / "study"
    StudyStore(study).init_study(tiny_config())
    procs = [_start_sweep(tmp_path, study) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["finished"] and r["done"] == 8 for r in results)
    _assert_complete_exactly_once(StudyStore(study), tiny_config())
    assert sum(r["submitted"] for r in results) == 8, "each sweep reports only the runs it trained"
    print(f"concurrent test: 8 runs, 2 sweeps, launched {[r['submitted'] for r in results]}, "
          f"each run trained once")


@pytest.mark.slow
def test_real_tiny_study_trains_prunes_and_records(tmp_path):
    """resnet20 on digits, one epoch on a subset: real training, real pruning, real records."""
    d = tiny_study_dict(grid={"prior_lr": 0.1, "prior_wd": 1e-4, "log10_lr": [-1.0], "log10_wd": [-4.0]},
                        train={"preset": "digits", "epochs": 1, "milestones": [], "batch_size": 64})
    from hplandscape.study.validation import study_from_dict
    config = study_from_dict(d, "<real>")
    # In process: the SLURM tests cover real runs in separate job processes.
    summary = run_sweep(config, tmp_path, executor="debug", progress=False)
    assert summary.finished and summary.done == 2, summary.describe()
    store = StudyStore(tmp_path)
    base = store.read_record("base/lr-1.0000_wd-4.0000/seed0")[1]
    pruned = store.read_record("uniform-0.5/lr-1.0000_wd-4.0000/seed0")[1]
    assert store.model_path(base["run_id"]).exists()
    assert pruned["flops"] < base["flops"] and pruned["arch_hash"]
    assert json.loads(store.spec_path("uniform-0.5").read_text())["source"].startswith("checkpoint:")
    assert 0 <= pruned["top1"] <= 100 and base["epochs_completed"] == 1
    assert not store.checkpoint_path(pruned["run_id"]).exists()


def test_extend_runs_only_the_new_rows_and_columns(tmp_path, fake_env):
    config = tiny_config()  # the best point (the prior) sits on the grid's high-lr, high-wd corner
    run_sweep(config, tmp_path, executor="debug", **FAKES)
    dry = run_sweep(config, tmp_path, executor="debug", extend=True, dry_run=True, **FAKES)
    assert dry.dry_run and len(dry.plan) == 2 * 5 and all(p.phase == 3 for p in dry.plan)
    summary = run_sweep(config, tmp_path, executor="debug", extend=True, **FAKES)
    store = StudyStore(tmp_path)
    assert summary.finished and summary.skipped == 8 and summary.submitted == 10
    stored = store.config().grid
    assert stored.extra_log10_lr == (-0.5,) and stored.extra_log10_wd == (-3.5,)
    assert _trained_counts(store) == {r: 1 for r in store.run_ids()}
    assert "enclosed by the grid after 1 round(s)" in summary.describe()
    # The extension stays part of the study when the original YAML is swept again.
    again = run_sweep(config, tmp_path, executor="debug", **FAKES)
    assert (again.planned, again.submitted) == (18, 0)


def test_extend_continues_until_enclosed_or_the_configured_limit(tmp_path, fake_env):
    fake_env.setenv("HPL_FAKE_PEAK", "0,-3")  # two grid steps beyond the tiny grid's corner
    grid = {"prior_lr": 0.1, "prior_wd": 1e-4, "log10_lr": [-1.5, -1.0], "log10_wd": [-4.5, -4.0]}
    limited = tiny_config(grid={**grid, "max_extend_rounds": 2})
    summary = run_sweep(limited, tmp_path / "a", executor="debug", extend=True, **FAKES)
    assert StudyStore(tmp_path / "a").config().grid.extra_log10_lr == (-0.5, 0.0)
    assert "stopped after 2 round(s) (grid.max_extend_rounds = 2)" in summary.describe()
    assert "lr_high" in summary.describe()
    summary = run_sweep(tiny_config(grid=grid), tmp_path / "b", executor="debug", extend=True, **FAKES)
    assert StudyStore(tmp_path / "b").config().grid.extra_log10_lr == (-0.5, 0.0, 0.5)
    assert "enclosed by the grid after 3 round(s)" in summary.describe() and summary.finished
