"""Sweeps through submitit's SLURM executor on a real (one-node, local) cluster.

Start one with ``slurm/local-cluster.sh install && slurm/local-cluster.sh start``. These tests skip
when SLURM is absent or down, unless ``HPLANDSCAPE_REQUIRE_SLURM=1`` (CI), where they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import tiny_study_dict

from hplandscape.run.executors import squeue_states
from hplandscape.run.sweep import run_sweep
from hplandscape.store.study_store import RunState, StudyStore
from hplandscape.study.validation import study_from_dict

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
VOLATILE = ("wall_time_s", "provenance")


def _cluster_problem() -> str | None:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "SLURM is not installed (no sinfo/sbatch)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        return f"sinfo failed: {e}"
    if out.returncode != 0 or not any(s.strip().rstrip("*") in ("idle", "mix", "alloc", "comp")
                                      for s in out.stdout.split()):
        return f"the SLURM cluster is down or has no usable node: {out.stdout.strip() or out.stderr.strip()}"
    return None


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    problem = _cluster_problem()
    if problem:
        if os.environ.get("HPLANDSCAPE_REQUIRE_SLURM") == "1":
            pytest.fail(f"HPLANDSCAPE_REQUIRE_SLURM=1 but {problem}; start one with "
                        "slurm/local-cluster.sh install && slurm/local-cluster.sh start")
        pytest.skip(problem)


def _config(**kw):
    launcher = {"executor": "slurm", "runs_per_job": 1, "cpus_per_task": 1, "mem_gb": 1.0,
                "timeout_min": 10, "array_parallelism": 2}
    return study_from_dict(tiny_study_dict(launcher=launcher, **kw), "<slurm-test>")


def _strip(record):
    return {k: v for k, v in record.items() if k not in VOLATILE}


def test_tiny_study_completes_on_slurm_and_a_second_sweep_submits_nothing(tmp_path):
    config = _config(grid={"prior_lr": 0.1, "prior_wd": 1e-4, "log10_lr": [-1.5, -1.0], "log10_wd": [-4.0]},
                     train={"preset": "digits", "epochs": 1, "milestones": [], "batch_size": 64})
    started = time.time()
    summary = run_sweep(config, tmp_path, executor="slurm", wait=True, progress=False)
    took = time.time() - started
    assert summary.finished, summary.describe() + "\n" + _logs(tmp_path)
    assert (summary.planned, summary.submitted, summary.done) == (4, 4, 4)
    # Phases as jobs: basemodel source, pruning (afterok), base array, pruned array (afterok).
    assert len(summary.job_ids) == 4
    store = StudyStore(tmp_path)
    assert json.loads(store.spec_path("uniform-0.5").read_text())["source"].startswith("checkpoint:")
    again = run_sweep(config, tmp_path, executor="slurm", wait=True, progress=False)
    assert (again.submitted, again.job_ids, again.skipped) == (0, (), 4)
    print(f"SLURM tiny study: 4 runs in {took:.0f} s over {len(summary.job_ids)} jobs; second sweep: 0 submitted")


def _wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_preempted_job_resumes_from_its_checkpoint_with_the_same_record(tmp_path):
    grid = {"prior_lr": 0.1, "prior_wd": 1e-4, "log10_lr": [-1.0], "log10_wd": [-4.0]}
    train = {"preset": "digits", "epochs": 6, "batch_size": 64}
    config = _config(conditions=[{"method": "none"}], grid=grid, train=train)
    study = tmp_path / "preempted"
    summary = run_sweep(config, study, executor="slurm", progress=False)
    (job_id,) = summary.job_ids
    store = StudyStore(study)
    run_id = "base/lr-1.0000_wd-4.0000/seed0"
    ckpt = store.checkpoint_path(run_id)
    _wait_for(lambda: ckpt.exists(), 240, "the first epoch checkpoint" + _logs(study))
    assert not store.record_path(run_id).exists(), "preemption must land mid-run"
    # What SLURM does on preemption/timeout: signal the job; submitit checkpoints and requeues.
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    _wait_for(lambda: (squeue_states([job_id]) or {}).get(job_id) == "PENDING", 60, "the requeued job pending")
    # Skip SLURM's ~140 s requeue delay, but not within the requeue's own second: a job restarted
    # that fast is killed with "Job credential revoked".
    time.sleep(3)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)
    def finished_or_dead():
        if store.run_state(run_id).finished:
            return True
        states = squeue_states([job_id])
        return states is not None and states.get(job_id, "GONE") in ("FAILED", "CANCELLED", "GONE")

    _wait_for(finished_or_dead, 300, "the resumed run's record" + _logs(study))
    assert store.run_state(run_id).finished, f"the requeued job ended without a record{_logs(study)}"
    log = _logs(study)
    assert "Requeued job" in log and f"{run_id}: resuming from {ckpt}" in log, log
    resumed = store.read_record(run_id)[1]
    # The same run without interruption (in this process).
    reference = run_sweep(config, tmp_path / "uninterrupted", executor="debug", progress=False)
    assert reference.finished
    uninterrupted = StudyStore(tmp_path / "uninterrupted").read_record(run_id)[1]
    assert _strip(resumed) == _strip(uninterrupted)
    assert store.run_state(run_id) is RunState.DONE and not store.claim_path(run_id).exists()
    print(f"SLURM preemption: 1 run, 1 USR2 preemption, resumed; record equals the uninterrupted one")


def _logs(study) -> str:
    out = []
    for p in sorted((study / "logs").glob("*_log.*")) if (study / "logs").exists() else []:
        out.append(f"--- {p.name}\n{p.read_text()[-3000:]}")
    return "\n" + "\n".join(out)


def test_a_request_no_node_can_hold_is_refused_before_anything_is_written(tmp_path):
    # issue 29 (19): sbatch's "Requested node configuration is not available" came back raw, exit 1,
    # after the study directory was written; the sweep now reads the nodes from sinfo first
    from hplandscape.errors import ConfigError
    from hplandscape.run.executors import slurm_nodes

    nodes = slurm_nodes()
    largest = max(n.mem_mb for n in nodes if n.default or not any(m.default for m in nodes))
    launcher = {"executor": "slurm", "cpus_per_task": 1, "mem_gb": (largest + 1024) / 1024, "timeout_min": 10}
    config = study_from_dict(tiny_study_dict(launcher=launcher), "<slurm-test>")
    with pytest.raises(ConfigError, match=f"launcher.mem_gb is .*offers {largest} MB; set launcher.mem_gb to") as e:
        run_sweep(config, tmp_path / "s", executor="slurm", progress=False)
    assert not (tmp_path / "s").exists()
    # the value the message advises passes
    fit = float(str(e.value).rsplit("set launcher.mem_gb to ", 1)[1].split()[0])
    fitting = study_from_dict(tiny_study_dict(launcher={**launcher, "mem_gb": fit}), "<slurm-test>")
    assert run_sweep(fitting, tmp_path / "s", executor="slurm", dry_run=True, progress=False).dry_run


def test_a_user_model_beside_its_study_file_sweeps_on_slurm_from_the_cli(tmp_path):
    """The array jobs import the user's module as the CLI did: from the import root recorded in the
    study (the study file's folder), with no PYTHONPATH pointing there."""
    import sys
    import uuid

    import yaml
    from conftest import write_user_model

    code = tmp_path / "code"
    model = write_user_model(code, f"slurmnets_{uuid.uuid4().hex[:8]}")
    study = tiny_study_dict(model=model, launcher={"executor": "slurm", "runs_per_job": 1, "cpus_per_task": 1,
                                                   "mem_gb": 1.0, "timeout_min": 10, "array_parallelism": 2},
                            conditions=[{"method": "none"}, {"method": "global", "ratio": 0.5}],
                            grid={"prior_lr": 0.1, "prior_wd": 1e-4, "log10_lr": [-1.5, -1.0], "log10_wd": [-4.0]},
                            train={"preset": "digits", "epochs": 1, "milestones": [], "batch_size": 64})
    config = code / "study.yaml"
    config.write_text(yaml.safe_dump(study, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # this checkout, not the code
    out = tmp_path / "study"
    run = subprocess.run([sys.executable, "-m", "hplandscape", "sweep", str(config), "--study-dir", str(out), "--wait",
                          "--no-report"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr + _logs(out)
    records = [json.loads(p.read_text()) for p in (out / "runs").rglob("record.json")]
    assert len(records) == 4 and all(r["model_source"]["import_root"] == str(code) for r in records)
    spec = json.loads((out / "specs" / "global-0.5.json").read_text())
    assert spec["model"] == model and abs(spec["achieved_ratio"] - 0.5) <= 0.01


def test_an_adaptive_study_advances_one_round_per_call_without_wait(tmp_path):
    """``design.replicates: adaptive`` on SLURM without ``--wait``: each call submits the current
    round, or decides and submits the next once the current one has finished, until settled."""
    grid = {"prior_lr": 0.1, "prior_wd": 1e-4, "log10_lr": [-1.5, -1.0, -0.5], "log10_wd": [-4.5, -4.0, -3.5]}
    train = {"preset": "digits", "epochs": 1, "milestones": [], "batch_size": 64, "randomness": "independent"}
    config = _config(conditions=[{"method": "none"}], grid=grid, seeds=[0, 1, 2], train=train,
                     design={"replicates": "adaptive"})
    store = StudyStore(tmp_path)
    notes = []
    for call in range(1, 9):
        summary = run_sweep(config, tmp_path, executor="slurm", progress=False)
        notes.append(summary.replication)
        if "settled" in summary.replication:
            break
        assert [r["round"] for r in store.read_rounds()] == list(range(2, call + 1)), notes
        assert "run the same command again" in summary.replication and summary.job_ids
        ids = store.run_ids(config)
        _wait_for(lambda: all(store.read_record(r)[0].finished for r in ids)
                  or squeue_states(list(summary.job_ids)) == {}, 600,  # done, or its jobs have ended
                  f"round {call}'s runs" + _logs(tmp_path))
        assert all(store.read_record(r)[0].finished for r in ids), _logs(tmp_path)
    assert notes[0].startswith("Adaptive replication: round 1 submitted") and "settled after round" in notes[-1]
    rounds = {rec["run_id"]: rec["round"] for rec in store.iter_records(config)}
    added = store.added_runs()
    assert len(rounds) == 9 + 5 * 2 + len(added) and all(rounds[r] == k for r, k in added.items())
    print(f"SLURM adaptive study: {len(notes)} calls, {len(rounds)} of 27 runs; {notes[-1]}")
