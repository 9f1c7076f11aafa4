"""RunJob (claim → train → record → cleanup, failures isolated, resume) and executor settings."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest
import submitit
from conftest import fake_prune, fake_train_run, tiny_config

from hplandscape.errors import RunFailure, UserError
from hplandscape.run.executors import default_max_parallel, make_executor, max_array_size, submit_slurm_arrays
from hplandscape.run.plan import plan_study
from hplandscape.run.worker import RunJob
from hplandscape.store import claims
from hplandscape.store.study_store import RunState, StudyStore
from hplandscape.study.runs import study_runs


@pytest.fixture
def setup(tmp_path, fake_env):
    config = tiny_config()
    store = StudyStore(tmp_path / "study")
    store.init_study(config)
    specs = {s.run_id: s for s in plan_study(config, store).runs}
    return config, store, specs


def _base(specs):
    return [s for s in specs.values() if not s.condition.pruned]


def test_runjob_records_runs_and_isolates_a_failure(setup, fake_env):
    config, store, specs = setup
    a, b, c = _base(specs)[1:4]
    fake_env.setenv("HPL_FAKE_FAIL", b.run_id)
    out = RunJob([a, b, c], str(store.root), train_fn=fake_train_run)()
    assert [r["state"] for r in out] == ["done", "failed", "done"]
    assert store.run_state(a.run_id) is RunState.DONE and store.run_state(c.run_id) is RunState.DONE
    assert store.run_state(b.run_id) is RunState.FAILED
    err = json.loads(store.error_path(b.run_id).read_text())
    assert "fake failure" in err["error"] and "RuntimeError" in open(err["traceback"]).read()
    for s in (a, c):
        assert not store.checkpoint_path(s.run_id).exists(), "checkpoint must go once the record is written"
        assert not store.claim_path(s.run_id).exists(), "claim must be released"
    assert store.read_record(a.run_id)[1]["history"][-1]["epoch"] == 2


def test_runjob_raise_on_failure_names_the_traceback(setup, fake_env):
    config, store, specs = setup
    s = _base(specs)[1]
    fake_env.setenv("HPL_FAKE_FAIL", s.run_id)
    with pytest.raises(RunFailure, match="error.log"):
        RunJob([s], str(store.root), train_fn=fake_train_run, raise_on_failure=True)()


def test_source_run_keeps_weights_and_checkpoint(setup):
    config, store, specs = setup
    source = next(iter(specs.values()))
    assert source.keep_weights and source.point.log10_lr == -1.0
    RunJob([source], str(store.root), train_fn=fake_train_run)()
    assert store.model_path(source.run_id).exists()


def test_run_claimed_by_a_live_job_is_skipped(setup):
    config, store, specs = setup
    s = _base(specs)[1]
    assert claims.take(store.files(s.run_id), "someone-else", finished=lambda: False)
    out = RunJob([s], str(store.root), train_fn=fake_train_run)()
    assert out == [{"run_id": s.run_id, "state": "skipped"}]
    assert not (store.run_dir(s.run_id) / "trained.log").exists()


def test_pruned_run_reads_its_architecture_from_the_store(setup):
    config, store, specs = setup
    pruned = [s for s in specs.values() if s.condition.pruned][0]
    assert pruned.arch is None
    out = RunJob([pruned], str(store.root), train_fn=fake_train_run)()
    assert out[0]["state"] == "failed"
    assert "missing" in json.loads(store.error_path(pruned.run_id).read_text())["error"]
    arch = fake_prune(config.model, "uniform", 0.5, num_classes=10, in_channels=1, input_shape=(1, 8, 8))
    store.write_arch(pruned.condition.name, arch)
    assert RunJob([pruned], str(store.root), train_fn=fake_train_run)()[0]["state"] == "done"
    assert store.read_record(pruned.run_id)[1]["arch_hash"] == arch.content_hash


def test_checkpoint_resubmits_and_the_run_resumes(setup):
    config, store, specs = setup
    s = _base(specs)[1]
    job = RunJob([s], str(store.root), train_fn=fake_train_run)
    delayed = job.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission) and delayed.function is job
    # An interrupted earlier attempt left a claim of this job and an epoch checkpoint.
    run_dir = store.run_dir(s.run_id)
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_text(json.dumps({"next_epoch": 2, "history": [{"epoch": 0}, {"epoch": 1}]}))
    delayed.result()
    starts = (run_dir / "starts.log").read_text().split()
    assert starts[1] == "2", "the resumed run must start from the checkpointed epoch"
    assert store.read_record(s.run_id)[1]["epochs_completed"] == 3


def test_local_executor_does_not_time_out_real_runs(tmp_path):
    ex = make_executor("local", tmp_path, tiny_config().launcher)
    assert ex.parameters["timeout_min"] >= 24 * 60


def test_unknown_executor_and_missing_slurm_are_user_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="available: local, slurm, debug"):
        make_executor("kubernetes", tmp_path, tiny_config().launcher)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="sbatch"):
        make_executor("slurm", tmp_path, tiny_config().launcher)


@pytest.mark.skipif(shutil.which("srun") is None, reason="needs SLURM's client commands (srun)")
def test_slurm_parameters_come_from_the_study_config(tmp_path):
    launcher = {"executor": "slurm", "partition": "gpu", "gpus_per_task": 1, "cpus_per_task": 4,
                "mem_gb": 1.5, "timeout_min": 30, "array_parallelism": 3,
                "slurm_additional_parameters": {"account": "lab"}}
    ex = make_executor("slurm", tmp_path, tiny_config(launcher=launcher).launcher,
                       dependency="afterok:42")
    text = ex._make_submission_file_text("cmd", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-task=1", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --mem=1536MB", "#SBATCH --time=30", "#SBATCH --dependency=afterok:42",
                 "#SBATCH --account=lab", "#SBATCH --kill-on-invalid-dep=yes"):
        assert line in text


def test_max_array_size_is_read_from_scontrol(tmp_path, monkeypatch):
    fake = tmp_path / "scontrol"
    fake.write_text("#!/bin/sh\necho 'MailProg                = /bin/mail'\necho 'MaxArraySize            = 7'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert max_array_size() == 7
    fake.write_text("#!/bin/sh\nexit 1\n")
    assert max_array_size() == 1001


class _FakeJob:
    """Done after three polls; it runs its function then, in this process (records included)."""

    def __init__(self, log, fn):
        self.log, self.fn, self.ticks, self.out = log, fn, 0, None

    def result(self):
        return self.out

    def done(self):
        self.ticks += 1
        if self.ticks >= 3:
            if self in self.log["running"]:
                self.log["running"].remove(self)
                self.out = self.fn()
            return True
        return False


class _FakeExecutor:
    def __init__(self):
        self.log = {"running": [], "peak": 0, "arrays": [], "jobs": []}

    def submit(self, fn):
        job = _FakeJob(self.log, fn)
        self.log["running"].append(job)
        self.log["jobs"].append(fn)
        self.log["peak"] = max(self.log["peak"], len(self.log["running"]))
        return job

    def submit_array(self, fns):
        self.log["arrays"].append(len(fns))
        return [object() for _ in fns]


def _fake_local_runner(tmp_path, monkeypatch, **launcher):
    from hplandscape.run import local_runner as run_local

    config = tiny_config(pruning={"source": "random"},
                         launcher={"executor": "local", "runs_per_job": 1, "cpus_per_task": 1, **launcher})
    store = StudyStore(tmp_path / "study")
    store.init_study(config)
    ex = _FakeExecutor()
    monkeypatch.setattr(run_local, "make_executor", lambda *a, **k: ex)
    make_job = lambda specs, **kw: RunJob(specs, str(store.root), train_fn=fake_train_run, **kw)  # noqa: E731
    outcome = run_local.run_local(lambda: plan_study(config, store), config, store, kind="local",
                                  max_parallel=2, make_job=make_job, prune_fn=fake_prune, progress=False, poll_s=0)
    return config, store, ex, outcome


def test_local_runner_keeps_at_most_max_parallel_in_flight(tmp_path, monkeypatch, fake_env):
    config, store, ex, outcome = _fake_local_runner(tmp_path, monkeypatch)
    assert ex.log["peak"] == 2 and outcome.submitted == 8
    assert [store.run_state(r.run_id) for r in study_runs(config)] == [RunState.DONE] * 8
    assert store.read_arch("uniform-0.5") is not None, "the prune step ran once its needs were met"


def test_local_workers_share_work_lists_and_start_once_per_slot_and_wave(tmp_path, monkeypatch, fake_env):
    """Sequential runs go to workers that pull from one list: 2 slots, 8 runs in two waves (the
    basemodel with the pruning source; the pruned runs) start 4 processes, not one per block of
    ``runs_per_job`` (here 1: 8 jobs), and every run is trained exactly once."""
    config, store, ex, outcome = _fake_local_runner(tmp_path, monkeypatch)
    jobs = ex.log["jobs"]
    assert len(jobs) == 4 and all(j.pull_since is not None for j in jobs)
    assert [len(j.specs) for j in jobs] == [4, 4, 4, 4]  # each worker gets all open runs of its wave
    trained = [len((store.run_dir(s.run_id) / "trained.log").read_text().splitlines())
               for s in study_runs(config)]
    assert trained == [1] * 8 and outcome.submitted == 8


def test_fused_runs_keep_blocks_of_their_own(tmp_path, monkeypatch, fake_env):
    config, store, ex, outcome = _fake_local_runner(tmp_path, monkeypatch, engine="fused", runs_per_job=2)
    blocks = [j for j in ex.log["jobs"] if j.pull_since is None]
    assert [len(j.specs) for j in blocks] == [2, 1, 2, 2] and outcome.submitted == 8  # 3 base, 4 pruned
    # the pruning source alone is one run: nothing to fuse it with
    assert [[s.run_id for s in j.specs] for j in ex.log["jobs"] if j.pull_since is not None] == [
        [study_runs(config)[0].run_id]]


def test_a_pulled_run_that_failed_in_this_sweep_is_not_tried_again(setup, fake_env):
    """Two workers share a list: the second does not retrain what the first saw fail."""
    import time as _time

    config, store, specs = setup
    a, b = _base(specs)[1:3]
    fake_env.setenv("HPL_FAKE_FAIL", a.run_id)
    since = _time.time()
    first = RunJob([a, b], str(store.root), train_fn=fake_train_run, pull_since=since)()
    second = RunJob([a, b], str(store.root), train_fn=fake_train_run, pull_since=since)()
    assert [r["state"] for r in first] == ["failed", "done"]
    assert [r["state"] for r in second] == ["skipped", "skipped"]
    # A later sweep (started after the failure) tries it again.
    later = RunJob([a, b], str(store.root), train_fn=fake_train_run, pull_since=_time.time())()
    assert [r["state"] for r in later] == ["failed", "skipped"]


def test_a_pulling_worker_claims_each_run_only_when_it_gets_to_it(setup, fake_env):
    """While a worker trains its first run, the rest of its list is free for the other workers."""
    config, store, specs = setup
    a, b, c = _base(specs)[1:4]
    seen = []

    def train(spec):
        seen.append({s.run_id: store.run_state(s.run_id) for s in (a, b, c)})
        return fake_train_run(spec)

    RunJob([a, b, c], str(store.root), train_fn=train, pull_since=0.0)()
    assert seen[0] == {a.run_id: RunState.RUNNING, b.run_id: RunState.MISSING, c.run_id: RunState.MISSING}


def test_arrays_are_split_below_max_array_size():
    ex = _FakeExecutor()
    jobs = submit_slurm_arrays(ex, list(range(23)), 10)
    assert ex.log["arrays"] == [10, 10, 3] and len(jobs) == 23


def test_default_parallelism_is_cores_over_threads():
    cfg = tiny_config()
    assert default_max_parallel(cfg.launcher) == max(1, len(os.sched_getaffinity(0)) // 1)


def test_launcher_max_parallel_bounds_the_local_runs_unless_the_command_line_says_otherwise(tmp_path):
    """``launcher.max_parallel`` is a documented config key: a sweep of this machine runs that many
    at once; ``--max-parallel`` overrides it; without either, cores ÷ threads."""
    from hplandscape.run.executors import runs_at_once
    from hplandscape.run.sweep import run_sweep

    launcher = {"executor": "local", "runs_per_job": 2, "cpus_per_task": 1, "max_parallel": 1}
    cfg = tiny_config(launcher=launcher)
    assert runs_at_once(cfg) == 1
    assert runs_at_once(cfg, max_parallel=3) == 3
    assert runs_at_once(tiny_config()) == default_max_parallel(tiny_config().launcher)
    text = run_sweep(cfg, tmp_path, dry_run=True, progress=False).describe()
    assert "local, 1 worker(s) at once" in text, text


def test_fused_engine_trains_the_block_together(setup, monkeypatch):
    import dataclasses

    import hplandscape.training.fused_engine as fused

    config, store, specs = setup
    block = [dataclasses.replace(s, engine="fused") for s in _base(specs)[1:3]]
    calls = []

    def fake_fused(ss):
        calls.append([s.run_id for s in ss])
        return [dict(fake_train_run(s), engine="fused") for s in ss]

    monkeypatch.setattr(fused, "train_fused", fake_fused)
    job = RunJob(block, str(store.root))
    out = job()
    assert calls == [[s.run_id for s in block]] and [r["state"] for r in out] == ["done", "done"]
    assert store.read_record(block[0].run_id)[1]["engine"] == "fused"


def test_squeue_states_without_sacct(tmp_path, monkeypatch):
    from hplandscape.run.executors import slurm_jobs_active, squeue_states

    fake = tmp_path / "squeue"
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    fake.write_text("#!/bin/sh\necho '12_0 RUNNING'\necho '12_1 PENDING'\necho '13 COMPLETED'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    assert squeue_states(["12_0", "13"]) == {"12_0": "RUNNING", "12_1": "PENDING", "13": "COMPLETED"}
    assert slurm_jobs_active(["12"]) is True
    fake.write_text("#!/bin/sh\necho 'slurm_load_jobs error: Invalid job id specified' >&2\nexit 1\n")
    assert squeue_states(["99"]) == {} and slurm_jobs_active(["99"]) is False
    fake.write_text("#!/bin/sh\necho 'slurm_load_jobs error: Socket timed out' >&2\nexit 1\n")
    assert squeue_states(["12"]) is None and slurm_jobs_active(["12"]) is None, "unknown, not finished"


def test_processes_started_by_the_local_runner_write_to_the_study_log(tmp_path, capfd):
    """submitit's local job supervisors print a traceback on Ctrl-C; it must not reach the terminal."""
    import subprocess
    import sys

    from hplandscape.run.local_runner import _children_write_to

    log = tmp_path / "logs" / "local-controllers.log"
    with _children_write_to(log):
        subprocess.run([sys.executable, "-c", "import sys; print('child out'); print('child err', file=sys.stderr)"])
    print("parent again")
    out, err = capfd.readouterr()
    assert "child" not in out + err and "parent again" in out
    assert "child out" in log.read_text() and "child err" in log.read_text()


def test_slurm_nodes_are_read_from_sinfo(tmp_path, monkeypatch):
    from hplandscape.run.executors import SlurmNode, slurm_nodes

    fake = tmp_path / "sinfo"
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    fake.write_text("#!/bin/sh\nprintf 'debug*|8000|2|(null)|infinite\\ngpu|64000+|32|gpu:a100:4(S:0-1),gpu:v100:2|"
                    "1-12:00:00\\nshort|1000|1|gpu:1|30:00\\n'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    assert slurm_nodes() == [SlurmNode("debug", True, 8000, 2, 0, None), SlurmNode("gpu", False, 64000, 32, 6, 2160),
                             SlurmNode("short", False, 1000, 1, 1, 30)]
    fake.write_text("#!/bin/sh\necho 'slurm_load_partitions: Unable to contact slurm controller' >&2\nexit 1\n")
    from hplandscape.errors import UserError

    with pytest.raises(UserError, match="sinfo cannot reach the SLURM controller.*Unable to contact"):
        slurm_nodes()
