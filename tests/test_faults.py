"""Fault injection: nothing stale, nothing silent. Each case is one thing a user could do wrong or
one thing that goes wrong under them; each must end in a clear message and the right exit code,
with nothing computed lost. (Kills mid-sweep and concurrent sweeps: tests/test_sweep.py.)"""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import minimal_record, run_cli, tiny_config, tiny_study_dict
from hplandscape.store import StudyStore


@pytest.fixture
def study(tmp_path):
    """The tiny study with every run recorded except one basemodel run."""
    store = StudyStore(tmp_path / "study")
    config = tiny_config()
    store.init_study(config)
    ids = store.run_ids(config)
    for i, run_id in enumerate(ids[:-1]):
        store.write_record(run_id, minimal_record(run_id, top1=80.0 + i))
    return store, ids[-1]


def test_analyze_and_report_never_read_a_stale_results_table(study, capsys, tmp_path):
    store, last = study
    assert run_cli(capsys, "collect", store.root)[0] == 0
    rows_then = len(store.results_csv.read_text().splitlines()) - 1
    store.write_record(last, minimal_record(last, top1=99.0))  # finished after `collect`
    code, out, err = run_cli(capsys, "analyze", store.root, "--json")
    assert code == 0, err
    assert json.loads(out)["conditions"]["uniform-0.5"]["best"]["top1"] == 99.0
    assert len(store.results_csv.read_text().splitlines()) - 1 == rows_then + 1, "re-collected"
    code, out, err = run_cli(capsys, "report", store.root, "--out", tmp_path / "r")
    assert code == 0 and "99" in (tmp_path / "r" / "summary.md").read_text()


def test_slurm_without_slurm_is_exit_2_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_study_dict()))
    code, _, err = run_cli(capsys, "sweep", config, "--executor", "slurm", "--study-dir", tmp_path / "s")
    assert code == 2 and "sbatch" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_paths_that_are_files_where_folders_are_needed_are_exit_2(study, capsys, tmp_path):
    store, _ = study
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_study_dict()))
    for study_dir in (a_file, a_file / "sub"):
        code, _, err = run_cli(capsys, "sweep", config, "--executor", "debug", "--study-dir", study_dir)
        assert code == 2 and "is a file" in err and str(a_file) in err, err
    code, _, err = run_cli(capsys, "collect", store.root, "--out", tmp_path)
    assert code == 2 and "is a directory" in err
    code, _, err = run_cli(capsys, "report", store.root, "--out", a_file)
    assert code == 2 and "is a file" in err
    code, _, err = run_cli(capsys, "analyze", store.root, "--out", a_file / "x")
    assert code == 2 and "is a file" in err
    assert a_file.read_text() == "not a folder", "nothing overwritten"


def test_one_invalid_record_does_not_stop_the_analysis_of_the_others(study, capsys):
    store, last = study
    store.record_path(last).parent.mkdir(parents=True)
    store.record_path(last).write_text(json.dumps({"run_id": last, "top1": 91.5, "diverged": False}))
    code, out, err = run_cli(capsys, "analyze", store.root, "--json")
    assert code == 0, err
    code, out, _ = run_cli(capsys, "status", store.root)
    assert "condition is missing" in out and "1 corrupt record" in out


def test_a_prior_off_the_grid_is_its_own_point_never_missing_cells(tmp_path, fake_env):
    from conftest import fake_prune, fake_train_run
    from hplandscape import analysis
    from hplandscape.status import study_status
    from hplandscape.sweep import run_sweep

    # explicit axes that leave the prior (lr 0.1, wd 1e-4) out, as an even grid size does
    config = tiny_config(grid={"prior_lr": 0.1, "prior_wd": 1e-4, "log10_lr": [-1.5, -0.5],
                               "log10_wd": [-4.5, -3.5]})
    summary = run_sweep(config, tmp_path, executor="debug", train_fn=fake_train_run, prune_fn=fake_prune,
                        progress=False)
    assert summary.finished and summary.planned == 9  # 2 × 2 × 2 conditions + the pruning source
    status = study_status(StudyStore(tmp_path))
    assert status.complete and status.total == 9
    result = analysis.analyze(analysis.load_results(tmp_path))
    assert [(m.condition, m.log10_lr, m.log10_wd) for m in result.off_grid] == [("base", -1.0, -4.0)]
    assert result.missing == () and result.grid.log10_lr == (-1.5, -0.5)
    assert any("off the grid" in line for line in analysis.warning_lines(result))


def test_names_with_html_are_refused_before_any_report_is_written(tmp_path):
    # a condition name is held to the config's rule (it names a directory), so markup, a newline
    # or a spreadsheet formula never reaches the summary, the figures or the CSV files
    from hplandscape.analysis.example import synthetic_results
    from hplandscape.errors import UserError
    from hplandscape.report import write_report

    table = synthetic_results()
    table["condition"] = table["condition"].replace({"uniform-0.6": "<script>x</script>|u"})
    with pytest.raises(UserError, match="column condition must hold names of letters, digits"):
        write_report(table, out_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_one_epoch_with_an_epoch_milestone_says_what_to_do(tmp_path):
    from hplandscape.config import study_from_dict
    from hplandscape.errors import ConfigError

    d = tiny_study_dict(train={"preset": "digits", "epochs": 1, "milestones": [1], "milestones_unit": "epoch"})
    with pytest.raises(ConfigError, match="1-epoch recipe has no epoch to decay at"):
        study_from_dict(d, "t.yaml")


def test_outputs_refuse_paths_among_the_study_s_own_files(study, capsys, tmp_path):
    # issue 29 (1): `collect S --out S/study.yaml` exited 0 and every later command failed
    store, _ = study
    study_yaml = store.study_yaml.read_text()
    record = next(store.runs_dir.rglob("record.json"))
    record_text = record.read_text()
    for argv in (["collect", store.root, "--out", store.study_yaml],
                 ["collect", store.root, "--out", record],
                 ["export", store.root, "--parquet", record.with_name("model.pt")],
                 ["analyze", store.root, "--out", store.runs_dir / "tables"],
                 ["report", store.root, "--out", store.root / "logs"]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and "would overwrite the study's own files" in err, (argv, err)
    assert store.study_yaml.read_text() == study_yaml and record.read_text() == record_text
    assert not record.with_name("model.pt").exists() and not (store.runs_dir / "tables").exists()
    assert run_cli(capsys, "status", store.root)[0] in (0, 1)  # the study still reads
    code, _, err = run_cli(capsys, "collect", store.root, "--out", store.root / "results.csv")
    assert code == 0, err  # the study's own results table is an output


def test_a_read_only_study_is_analysed_and_reported_elsewhere(study, capsys, tmp_path, monkeypatch):
    # issue 29 (10): analyze/report failed on a read-only study even with --out elsewhere, since
    # reading a study wrote its results.csv. (Root ignores file modes, so the write fails by hand.)
    import hplandscape.results as results

    store, _ = study

    def read_only(path, text, *a, **k):
        if str(path).startswith(str(store.root)):
            raise PermissionError(13, "Read-only file system", str(path))
        return original(path, text, *a, **k)

    original = results.atomic_write_text
    monkeypatch.setattr(results, "atomic_write_text", read_only)
    code, out, err = run_cli(capsys, "analyze", store.root, "--out", tmp_path / "a", "--n-boot", 99)
    assert code == 0, err
    code, _, err = run_cli(capsys, "report", store.root, "--out", tmp_path / "r", "--n-boot", 99)
    assert code == 0 and (tmp_path / "r" / "index.html").exists(), err
    code, _, err = run_cli(capsys, "collect", store.root)  # asked for the file itself: it says why not
    assert code != 0 and "Read-only" in err


def test_a_damaged_pruning_source_is_set_aside_for_retraining_without_unsafe_advice(study):
    # issue 29 (11): a corrupt model.pt was neither set aside nor retrained, and the message relayed
    # torch's advice to load it with weights_only=False (which runs any code the file holds)
    from hplandscape.errors import RunFailure
    from hplandscape.prune_step import make_pruning_specs
    from hplandscape.store import RunState, source_run

    store, _ = study
    config = store.config()
    run_id = source_run(config).run_id
    if store.read_record(run_id)[0] is not RunState.DONE:
        store.write_record(run_id, minimal_record(run_id, top1=90.0))
    weights = store.model_path(run_id)
    weights.write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(RunFailure) as e:
        make_pruning_specs(config, store.root)  # the real pruning reads the source
    text = str(e.value)
    assert "weights_only=False" not in text and "set aside" in text and "Re-run the same sweep" in text
    assert not weights.exists() and not store.record_path(run_id).exists()
    assert list(weights.parent.glob("model.pt.corrupt-*")) and list(weights.parent.glob("record.json.corrupt-*"))
    assert store.read_record(run_id)[0] is RunState.MISSING  # the next sweep trains it again


_CLI_DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from conftest import fake_prune, fake_train_run
from hplandscape import cli, sweep
real = sweep.run_sweep
sweep.run_sweep = lambda *a, **k: real(*a, **{{**k, "train_fn": fake_train_run, "prune_fn": fake_prune}})
sys.exit(cli.main(sys.argv[1:]))
"""


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting for its parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("target", ["sweep", "group"])
def test_sigterm_stops_the_sweep_and_its_workers_and_says_how_to_resume(tmp_path, fake_env, target):
    # issue 29 (8): SIGTERM ended the sweep (exit 143, no message) while its workers trained on
    # ("Bypassing signal SIGTERM"); the sweep alone (`kill PID`) or its whole process group
    # (`timeout`, a batch system) may get the signal
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import TESTS_DIR

    fake_env.setenv("HPL_FAKE_EPOCH_S", "1.0")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_study_dict(train={"preset": "digits", "epochs": 20, "batch_size": 64})))
    driver = tmp_path / "driver.py"
    driver.write_text(_CLI_DRIVER.format(tests=str(TESTS_DIR)))
    study = tmp_path / "s"
    argv = [sys.executable, str(driver), "sweep", str(config), "--study-dir", str(study), "--executor", "local",
            "--max-parallel", "2", "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(list(study.glob("runs/*/*/*/checkpoint.pt"))) < 2:
            time.sleep(0.1)  # both workers are training, past their first epoch
        assert len(list(study.glob("runs/*/*/*/checkpoint.pt"))) == 2, proc.stderr.read() if proc.poll() else ""
        if target == "sweep":
            os.kill(proc.pid, signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        workers = {int(line.split()[0]) for log in study.glob("runs/*/*/*/starts.log")
                   for line in log.read_text().splitlines()}
        assert proc.returncode == 143, (out, err)
        assert not [pid for pid in workers if _alive(pid)], "no worker trains on after the sweep stopped"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the sweep left behind
        proc.wait()
    lines = [line for line in err.splitlines() if line.startswith("hplandscape:")]
    assert len(lines) == 1 and "SIGTERM" in lines[0] and "stopped 2 worker" in lines[0], err
    assert "re-run the same command to resume" in lines[0] and "Traceback" not in err
    files = {p: p.stat().st_mtime for p in study.glob("runs/*/*/*/*") if p.is_file()}
    time.sleep(2.5)  # longer than two fake epochs
    assert {p: p.stat().st_mtime for p in study.glob("runs/*/*/*/*") if p.is_file()} == files, "nothing written after"
    # the same command resumes: the interrupted runs continue from their checkpoints
    fake_env.setenv("HPL_FAKE_EPOCH_S", "0")
    again = subprocess.run(argv + ["--no-report"], capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    resumed = [log for log in study.glob("runs/*/*/*/starts.log") if len(log.read_text().splitlines()) == 2]
    assert resumed and all(log.read_text().splitlines()[1].split()[1] != "0" for log in resumed)


@pytest.mark.parametrize("engine", ["sequential", "fused"])
def test_a_checkpoint_of_another_recipe_is_set_aside_and_the_run_starts_afresh(tmp_path, caplog, engine):
    # issue 29 (12): after `sweep --force` with a changed recipe the old checkpoint made its run fail
    # on every sweep ("Re-run the same command to retry"), the way out written in error.log only
    import dataclasses
    import logging

    import torch

    from hplandscape.config import DataConfig
    from hplandscape.fused import train_fused
    from hplandscape.store import RunFiles
    from hplandscape.train import train_run
    from test_train import make_spec, without_timings

    train = train_run if engine == "sequential" else (lambda spec: train_fused([spec])[0])
    data = DataConfig(name="digits", train_subset=64, test_subset=32)
    old = make_spec(tmp_path / "run", epochs=1, data=data)
    train_run(old)  # its final checkpoint stays until a record is stored
    files = RunFiles(tmp_path / "run")
    old_bytes = files.checkpoint.read_bytes()
    new = dataclasses.replace(old, recipe=dataclasses.replace(old.recipe, epochs=2))  # the recipe changed
    threads = torch.get_num_threads()
    try:
        with caplog.at_level(logging.WARNING):
            record = train(new)
        fresh = train(dataclasses.replace(new, run_dir=str(tmp_path / "fresh")))
    finally:
        torch.set_num_threads(threads)  # the runs set their recipe's
    assert without_timings(record) == without_timings(fresh), "the run trained from scratch"
    kept = list(files.dir.glob("checkpoint.pt.stale-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == old_bytes, "the old checkpoint is kept, renamed"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(kept[0]) in warnings[0] and "another config" in warnings[0], warnings
    assert "from scratch" in warnings[0]


_VICTIM = "base/lr-1.5000_wd-4.5000/seed0"  # the first run of the base step's work list


def _fake_sweep(study, **kwargs):
    from conftest import fake_prune, fake_train_run
    from hplandscape.sweep import run_sweep

    return run_sweep(tiny_config(), study, train_fn=fake_train_run, prune_fn=fake_prune, progress=False, **kwargs)


def test_a_dead_job_is_described_by_its_own_error_not_an_unrelated_log_line(tmp_path, fake_env):
    # issue 29 (13a): "job … died" quoted whatever line ended its log ("…: starting", a submitit line)
    from conftest import BrokenJob
    from hplandscape import run_local
    from hplandscape.plan import plan_study

    fake_env.setenv("HPL_FAKE_KILL", _VICTIM)
    summary = _fake_sweep(tmp_path / "killed", executor="local", max_parallel=2)
    [failure] = summary.job_failures
    text = failure.describe()
    assert text.startswith(f"job {failure.job_id} died while training {_VICTIM}: ") and "ended without" in text, text
    assert "starting" not in text and "submitit" not in text and text.endswith(f"_log.err"), text
    # a job that raised outside any run: the last line of its own traceback, nothing else
    config = tiny_config(pruning={"source": "random"})
    store = StudyStore(tmp_path / "broken")
    store.init_study(config)
    outcome = run_local.run_local(lambda: plan_study(config, store), config, store, kind="local", max_parallel=2,
                                  make_job=BrokenJob, progress=False, poll_s=0.1)
    assert outcome.job_failures
    for failure in outcome.job_failures:
        assert failure.error == "RuntimeError: the worker's environment is broken", failure.describe()
        assert failure.runs == () and f"job {failure.job_id} died: RuntimeError" in failure.describe()


def test_a_claim_lock_that_cannot_be_opened_fails_its_run_naming_the_file(tmp_path, fake_env, monkeypatch):
    # issue 29 (13b): a PermissionError on .claim.lock killed the job; the run was counted missing
    import builtins

    from hplandscape import claims
    from hplandscape.store import RunState

    store = StudyStore(tmp_path)
    lock = store.files(_VICTIM).claim_lock

    def open_(path, *args, **kwargs):
        if str(path) == str(lock):
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(claims, "open", open_, raising=False)
    summary = _fake_sweep(tmp_path, executor="debug")
    assert (summary.done, summary.failed, summary.missing, summary.job_failures) == (7, 1, 0, ())
    assert store.run_state(_VICTIM) is RunState.FAILED
    assert f"PermissionError: [Errno 13] Permission denied: '{lock}'" in store.read_error(_VICTIM)["error"]
    assert f"failed {_VICTIM}: PermissionError: [Errno 13] Permission denied: '{lock}'" in summary.describe()


def test_the_runs_left_by_a_dead_worker_go_to_a_new_worker_in_the_same_sweep(tmp_path, fake_env):
    # issue 29 (13c): one dead worker abandoned its whole share of runs for that call; the run
    # that killed it is tried once per call (it might kill every worker), the others are trained
    from hplandscape.store import RunState

    fake_env.setenv("HPL_FAKE_KILL", _VICTIM)
    summary = _fake_sweep(tmp_path, executor="local", max_parallel=1)
    store = StudyStore(tmp_path)
    assert (summary.done, summary.missing, len(summary.job_failures)) == (7, 1, 1), summary.describe()
    assert store.run_state(_VICTIM) is RunState.MISSING
    assert len((store.run_dir(_VICTIM) / "starts.log").read_text().splitlines()) == 1, "tried once"


def test_a_one_epoch_sweep_runs_with_the_lr_dropping_at_50_and_75_percent_of_its_steps(tmp_path, capsys,
                                                                                      monkeypatch):
    # issue 29 (E): `hpl sweep train.epochs=1`, the first smoke test, was refused: 0.5 × 1 epoch
    # rounds to epoch 0. The milestones now fall on SGD steps: 256 images in batches of 64 are 4
    # steps, the lr drops from step 2 (50 %) and from step 3 (75 %).
    import torch

    lrs = []
    step = torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_study_dict()))
    threads = torch.get_num_threads()
    try:
        code, out, err = run_cli(capsys, "sweep", config, "train.epochs=1", "grid.log10_lr=[-1.0]",
                                 "grid.log10_wd=[-4.0]", "--executor", "debug", "--study-dir", tmp_path / "s",
                                 "--no-progress", "--no-report")
    finally:
        torch.set_num_threads(threads)  # the runs set their recipe's
    assert code == 0, err
    assert "2 done" in out
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.001] * 2)  # the basemodel, then the pruned run
    record = StudyStore(tmp_path / "s").read_record("base/lr-1.0000_wd-4.0000/seed0")[1]
    assert record["epochs_completed"] == 1 and record["history"][0]["lr"] == 0.1
    assert "fractions of all SGD steps" in record["parametrisation"]
