"""Fault injection: nothing stale, nothing silent. Each case is one thing a user could do wrong or
one thing that goes wrong under them; each must end in a clear message and the right exit code,
with nothing computed lost. (Kills mid-sweep and concurrent sweeps: tests/test_sweep.py.)"""

from __future__ import annotations

import json
import os

import pytest
import yaml
from conftest import minimal_record, run_cli, tiny_config, tiny_study_dict

from hplandscape.store.study_store import StudyStore


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
    from hplandscape.run.status import study_status
    from hplandscape.run.sweep import RunOptions, run_sweep

    # explicit axes that leave the prior (lr 0.1, wd 1e-4) out, as an even grid size does
    config = tiny_config(grid={"prior_lr": 0.1, "prior_wd": 1e-4, "log10_lr": [-1.5, -0.5],
                               "log10_wd": [-4.5, -3.5]})
    summary = run_sweep(config, tmp_path, executor="debug",
                        options=RunOptions(train_fn=fake_train_run, prune_fn=fake_prune), progress=False)
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
    from hplandscape.report.study_report import write_report

    table = synthetic_results()
    table["condition"] = table["condition"].replace({"uniform-0.6": "<script>x</script>|u"})
    with pytest.raises(UserError, match="column condition must hold names of letters, digits"):
        write_report(table, out_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_one_epoch_with_an_epoch_milestone_says_what_to_do(tmp_path):
    from hplandscape.errors import ConfigError
    from hplandscape.study.validation import study_from_dict

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
    import hplandscape.store.results as results

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
    from hplandscape.run.prune_step import make_pruning_specs
    from hplandscape.store.study_store import RunState
    from hplandscape.study.runs import source_run
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


def _race_init(monkeypatch, study_dir, configs):
    """``init_study`` of each config in its own thread, all at once: every thread that gets as far
    as writing study.yaml waits up to a second for the others to get there too (before the fix,
    both saw no study.yaml and both wrote theirs). Returns one exception or None per config."""
    import threading

    import hplandscape.store.study_store as store_module

    barrier = threading.Barrier(len(configs))
    original = store_module.atomic_write_text

    def write_when_all_are_here(path, text):
        if path.name == "study.yaml":
            try:
                barrier.wait(timeout=1.0)
            except threading.BrokenBarrierError:
                pass  # the others wait for this one's lock (or were refused)
        return original(path, text)

    monkeypatch.setattr(store_module, "atomic_write_text", write_when_all_are_here)
    outcomes = [None] * len(configs)

    def init(i):
        try:
            StudyStore(study_dir).init_study(configs[i])
        except Exception as e:  # noqa: BLE001 — handed to the test
            outcomes[i] = e

    threads = [threading.Thread(target=init, args=(i,)) for i in range(len(configs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return outcomes


def test_two_sweeps_of_different_configs_on_a_new_study_cannot_both_be_accepted(tmp_path, monkeypatch):
    # issue 29 (2): started together on a new directory, both passed the config check; the records
    # mixed 2- and 3-epoch runs and study.yaml named only one of the configs
    from hplandscape.errors import ConfigChanged

    two, three = (tiny_config(train={"preset": "digits", "epochs": e, "batch_size": 64}) for e in (2, 3))
    outcomes = _race_init(monkeypatch, tmp_path / "s", [two, three])
    refused = [e for e in outcomes if e is not None]
    assert len(refused) == 1 and isinstance(refused[0], ConfigChanged), outcomes
    assert "train.epochs" in str(refused[0])
    accepted = two if outcomes[1] is refused[0] else three
    assert StudyStore(tmp_path / "s").config().recipe.epochs == accepted.recipe.epochs
    # the same config started twice stays accepted
    assert _race_init(monkeypatch, tmp_path / "same", [two, two]) == [None, None]


def _seeded_study(tmp_path, capsys):
    """A two-seed study (16 runs) of a config file, every run recorded, its results.csv collected."""
    from conftest import fake_prune

    from hplandscape.study.loading import load_study
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_study_dict(seeds=[0, 1], pruning={"source": "random"})))
    store = StudyStore(tmp_path / "s")
    store.init_study(load_study(config))
    store.write_arch("uniform-0.5", fake_prune("resnet20", "uniform", 0.5, num_classes=10, in_channels=1,
                                               input_shape=(1, 8, 8)))
    for run_id in store.run_ids():
        store.write_record(run_id, minimal_record(run_id))
    assert run_cli(capsys, "collect", store.root)[0] == 0
    return store, config


def test_a_study_yaml_cut_short_is_refused_never_completed_with_defaults(tmp_path, capsys):
    # issue 29 (3): a study.yaml cut at a line boundary was read with defaults for what was cut:
    # `status` said 8/8 finished for a 16-run study and `collect` rewrote results.csv with 8 rows
    store, config = _seeded_study(tmp_path, capsys)
    text = store.study_yaml.read_text()
    results = store.results_csv.read_text()
    lines = text.splitlines(keepends=True)
    for cut in range(1, len(lines)):
        store.study_yaml.write_text("".join(lines[:cut]))
        for command in ("status", "collect"):
            code, out, err = run_cli(capsys, command, store.root)
            assert code == 2 and f"{store.study_yaml} is damaged" in err, (cut, command, out, err)
            assert "Traceback" not in err and "--force" in err, err
    assert store.results_csv.read_text() == results, "the results table is never rewritten from a cut config"
    # how to recover: the sweep that made it, with --force, writes it again (every record kept)
    assert f"`hplandscape sweep {config} --study-dir {store.root} --force`" in err
    code, out, err = run_cli(capsys, "sweep", config, "--study-dir", store.root, "--force", "--no-report",
                             "--executor", "debug")
    assert code == 0 and "16 runs, 16 already recorded, 0 submitted" in out, (out, err)
    assert store.study_yaml.read_text().endswith(text.splitlines(keepends=True)[-1])
    code, out, err = run_cli(capsys, "status", store.root)
    assert code == 0 and "16/16 runs finished" in out, (out, err)


def test_a_study_yaml_of_an_older_version_still_loads_unless_a_section_was_cut(tmp_path, capsys):
    # study.yaml written before the checksum line: accepted when it holds every section the writer
    # has always written (launcher comes after all sections that decide the runs)
    store, _ = _seeded_study(tmp_path, capsys)
    old = ("# Resolved study config written by hplandscape; a sweep with a different\n"
           "# config is refused for this directory.\n# Read from <tiny>.\n"
           + yaml.safe_dump(tiny_config(seeds=[0, 1], pruning={"source": "random"}).to_dict(), sort_keys=False))
    store.study_yaml.write_text(old)
    code, out, err = run_cli(capsys, "status", store.root)
    assert code == 0 and "16/16 runs finished" in out, (out, err)
    store.init_study(tiny_config(seeds=[0, 1], pruning={"source": "random"}))  # the same config continues it
    store.study_yaml.write_text(old[:old.index("launcher:")])
    code, out, err = run_cli(capsys, "status", store.root)
    assert code == 2 and "lacks launcher" in err and "--force" in err, err


def _links(tmp_path):
    """A loop of symbolic links and a link to nothing."""
    loop, other, dangling = tmp_path / "loop", tmp_path / "loop2", tmp_path / "dangling"
    loop.symlink_to(other)
    other.symlink_to(loop)
    dangling.symlink_to(tmp_path / "nowhere")
    return loop, dangling


def test_links_to_nothing_and_loops_are_named_not_raw_os_errors(study, capsys, tmp_path):
    # issue 29 (9): a study directory or config file that is a loop of links or a link to nothing
    # ended in a raw OSError (exit 1) or claimed "no such file"
    store, _ = study
    loop, dangling = _links(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_study_dict()))
    words = {loop: "loop of symbolic links", dangling: f"symbolic link to {tmp_path / 'nowhere'}, which does not exist"}
    for link, what in words.items():
        for argv in (["sweep", config, "--executor", "debug", "--study-dir", link],
                     ["sweep", config, "--executor", "debug", "--study-dir", link / "sub"],
                     ["sweep", link, "--dry-run", "--study-dir", tmp_path / "s"],
                     ["grid", link],
                     ["status", link], ["collect", link], ["analyze", link], ["report", link],
                     ["collect", store.root, "--out", link],
                     ["export", store.root, "--parquet", link],
                     ["analyze", store.root, "--out", link]):
            code, _, err = run_cli(capsys, *argv)
            assert code == 2 and what in err and str(link) in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "s").exists()


def test_an_existing_folder_as_an_output_file_is_exit_2(study, capsys, tmp_path):
    # issue 29 (9): `prune --out DIR` computed the spec, then failed with IsADirectoryError (exit 1)
    store, _ = study
    folder = tmp_path / "folder"
    folder.mkdir()
    code, out, err = run_cli(capsys, "prune", "resnet20", "--method", "uniform", "--ratio", "0.5", "--out", folder)
    assert code == 2 and f"the spec file {folder} is a directory" in err and "spec.json" in err, err
    code, _, err = run_cli(capsys, "export", store.root, "--parquet", folder)
    assert code == 2 and f"the Parquet file {folder} is a directory" in err and "results.parquet" in err, err
    assert list(folder.iterdir()) == []


def test_names_too_long_for_the_file_system_are_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    # issue 29 (9): a 300-character study name failed with ENAMETOOLONG (exit 1), a long condition
    # name only after study.yaml had been written
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_study_dict()))
    long = "n" * 300
    for argv, words in ((["name=" + long], "name must be at most 128 bytes"),
                        (["conditions[1].name=" + "c" * 250], "conditions[1].name must be at most 128 bytes"),
                        (["--study-dir", tmp_path / "sub" / long], "the file system allows at most 255 bytes")):
        for dry in ((), ("--dry-run",)):
            code, _, err = run_cli(capsys, "sweep", config, "--executor", "debug", *argv, *dry)
            assert code == 2 and words in err and "Traceback" not in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"], "nothing written"


def _tree(root):
    return sorted((str(p.relative_to(root)), p.is_symlink() or p.is_file() and p.read_bytes())
                  for p in root.rglob("*"))


@pytest.mark.parametrize("case", ["cuda", "ratio", "data", "slurm", "file", "loop", "name"])
def test_the_dry_run_refuses_what_the_sweep_refuses_writing_nothing(case, tmp_path, capsys, monkeypatch):
    # issue 29 (7): the dry run printed a plan and exited 0 where the sweep itself refused
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_study_dict()))
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    loop, _ = _links(tmp_path)
    argv, words = {
        "cuda": (["launcher.device=cuda"], "launcher.device is 'cuda' but this machine has no CUDA device"),
        "ratio": (["conditions[1].ratio=0.01"], "conditions[1].ratio is 0.01, unreachable for resnet20"),
        "data": (["data.name=cifar10", f"data.root={tmp_path / 'no-data'}"], f"{tmp_path / 'no-data'} does not exist"),
        "slurm": (["--executor", "slurm"], "needs SLURM's sbatch and srun on PATH"),
        "file": (["--study-dir", a_file], f"the study directory {a_file} cannot be a directory: it is a file"),
        "loop": (["--study-dir", loop], f"the study directory {loop} is a loop of symbolic links"),
        "name": (["name=" + "n" * 300], "name must be at most 128 bytes long"),
    }[case]
    if case == "cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    if case == "slurm":
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    before = _tree(tmp_path)
    code, out, dry_err = run_cli(capsys, "sweep", config, *argv, "--dry-run")
    assert code == 2 and words in dry_err and "Traceback" not in dry_err, (out, dry_err)
    code, _, err = run_cli(capsys, "sweep", config, *argv)
    assert code == 2 and err == dry_err, (dry_err, err)
    assert _tree(tmp_path) == before, "nothing written"


@pytest.mark.slow
def test_a_damaged_pruning_source_is_announced_by_the_dry_run_and_trained_again_by_the_sweep(tmp_path, capsys):
    # issue 29 (7): the dry run planned the pruning from a model.pt that the sweep could not read
    # (the sweep then failed at the prune step); now both read it first, and the sweep sets it aside
    # (kept) and trains the basemodel at the prior again, as its dry run says
    from hplandscape.study.loading import load_study
    from hplandscape.study.runs import source_run
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_study_dict(
        grid={"prior_lr": 0.1, "prior_wd": 1e-4, "log10_lr": [-1.0], "log10_wd": [-4.0]},
        train={"preset": "digits", "epochs": 1, "milestones": [], "batch_size": 64})))
    store = StudyStore(tmp_path / "s")
    store.init_study(load_study(config))
    source = source_run(store.config()).run_id
    store.write_record(source, minimal_record(source))
    store.model_path(source).write_bytes(b"PK\x03\x04 not a checkpoint")
    before = _tree(tmp_path)
    code, out, err = run_cli(capsys, "sweep", config, "--study-dir", store.root, "--dry-run")
    assert code == 0 and "The pruning source is damaged" in out and f"phase 1  {source}" in out, (out, err)
    assert "2 runs, 0 already recorded, 2 would run and 1 pruned architecture" in out
    assert _tree(tmp_path) == before, "the dry run writes nothing"
    code, out, err = run_cli(capsys, "sweep", config, "--study-dir", store.root, "--executor", "debug",
                             "--no-report", "--no-progress")
    assert code == 0 and "The pruning source was damaged" in out and "now 2 done" in out, (out, err)
    kept = sorted(p.name.split(".corrupt-")[0] for p in store.run_dir(source).glob("*.corrupt-*"))
    assert kept == ["model.pt", "record.json"], "what was there is kept"
    assert json.loads(store.spec_path("uniform-0.5").read_text())["source"].startswith("checkpoint:")


def _fake_slurm(tmp_path, monkeypatch, nodes="debug*|8000|2|(null)|infinite"):
    """sbatch, srun and sinfo on PATH: sinfo lists ``nodes`` (partition|MB|CPUs|gres|time limit per
    line), sbatch refuses every job as SLURM does for a request no node can hold, and notes the call."""
    import stat

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "sinfo": f"#!/bin/sh\ncat <<'EOF'\n{nodes}\nEOF\n",
        "sbatch": f"#!/bin/sh\necho called >> {tmp_path / 'sbatch-calls'}\n"
                  "echo 'sbatch: error: Batch job submission failed: Requested node configuration is not available' >&2\n"
                  "exit 1\n",
        "srun": "#!/bin/sh\nexit 0\n",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return tmp_path / "sbatch-calls"


@pytest.mark.parametrize("override, words", [
    ("launcher.mem_gb=8", "launcher.mem_gb is 8: each job asks 8192 MB, but the largest node of partition debug "
                          "offers 8000 MB; set launcher.mem_gb to 7.8 or less (set by the override launcher.mem_gb=8)"),
    ("launcher.cpus_per_task=4", "launcher.cpus_per_task is 4, but the largest node of partition debug has 2 CPUs; "
                                 "set launcher.cpus_per_task to 2 or less"),
    ("launcher.gpus_per_task=1", "launcher.gpus_per_task is 1, but no node of partition debug has a GPU"),
    ("launcher.partition=gpu", "launcher.partition is 'gpu', which is not a partition of this cluster "
                               "(sinfo lists debug)"),
])
def test_a_slurm_request_no_node_can_hold_is_refused_before_anything_is_written(override, words, tmp_path,
                                                                                capsys, monkeypatch):
    # issue 29 (19): the default launcher.mem_gb (8 GB = 8192 MB) on the one-node cluster of
    # slurm/local-cluster.sh (RealMemory=8000): sbatch's "Requested node configuration is not
    # available" came back raw, exit 1, after study.yaml, logs/ and runs/ were written
    calls = _fake_slurm(tmp_path, monkeypatch)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_study_dict()))
    study = tmp_path / "s"
    for dry in (("--dry-run",), ()):
        code, out, err = run_cli(capsys, "sweep", config, override, "--executor", "slurm", "--study-dir", study, *dry)
        assert code == 2 and words in err and "Traceback" not in err, (dry, out, err)
    assert not study.exists() and not calls.exists(), "nothing written, nothing submitted"
    code, out, err = run_cli(capsys, "sweep", config, "launcher.mem_gb=7.8", "--executor", "slurm",
                             "--study-dir", study, "--dry-run")
    assert code == 0 and "slurm default partition, 1 cpu, 0 gpu, 7.8 GB" in out, err


def test_sbatch_refusing_the_jobs_is_exit_2_naming_the_launcher_keys(tmp_path, capsys, monkeypatch):
    # what sinfo cannot tell (an account, a QOS, a constraint) sbatch may still refuse: its own
    # words then, with the keys to look at, never a raw error
    calls = _fake_slurm(tmp_path, monkeypatch, nodes="debug*|64000|16|gpu:2|infinite")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_study_dict()))
    code, out, err = run_cli(capsys, "sweep", config, "--executor", "slurm", "--study-dir", tmp_path / "s",
                             "--no-progress")
    assert code == 2 and "Requested node configuration is not available" in err and "Traceback" not in err, err
    assert "launcher.partition" in err and "slurm_additional_parameters" in err and calls.exists()


_CLI_DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from conftest import fake_prune, fake_train_run
from hplandscape import cli
from hplandscape.run import sweep
real = sweep.run_sweep
fakes = sweep.RunOptions(train_fn=fake_train_run, prune_fn=fake_prune)
sweep.run_sweep = lambda *a, **k: real(*a, **{{**k, "options": fakes}})
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
    from test_train import make_spec, without_timings

    from hplandscape.store.layout import RunFiles
    from hplandscape.study.config import DataConfig
    from hplandscape.training.fused_engine import train_fused
    from hplandscape.training.sequential_engine import train_run

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

    from hplandscape.run.sweep import RunOptions, run_sweep

    return run_sweep(tiny_config(), study, options=RunOptions(train_fn=fake_train_run, prune_fn=fake_prune),
                     progress=False, **kwargs)


def test_a_dead_job_is_described_by_its_own_error_not_an_unrelated_log_line(tmp_path, fake_env):
    # issue 29 (13a): "job … died" quoted whatever line ended its log ("…: starting", a submitit line)
    from conftest import BrokenJob

    from hplandscape.run import local_runner as run_local
    from hplandscape.run.plan import plan_study

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

    from hplandscape import atomic
    from hplandscape.store.study_store import RunState
    store = StudyStore(tmp_path)
    lock = store.files(_VICTIM).claim_lock

    def open_(path, *args, **kwargs):
        if str(path) == str(lock):
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(atomic, "open", open_, raising=False)  # claims take their lock with atomic.file_lock
    summary = _fake_sweep(tmp_path, executor="debug")
    assert (summary.done, summary.failed, summary.missing, summary.job_failures) == (7, 1, 0, ())
    assert store.run_state(_VICTIM) is RunState.FAILED
    assert f"PermissionError: [Errno 13] Permission denied: '{lock}'" in store.read_error(_VICTIM)["error"]
    assert f"failed {_VICTIM}: PermissionError: [Errno 13] Permission denied: '{lock}'" in summary.describe()


def test_the_runs_left_by_a_dead_worker_go_to_a_new_worker_in_the_same_sweep(tmp_path, fake_env):
    # issue 29 (13c): one dead worker abandoned its whole share of runs for that call; the run
    # that killed it is tried once per call (it might kill every worker), the others are trained
    from hplandscape.store.study_store import RunState
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


def test_a_task_that_outlives_its_stopped_job_is_killed_before_the_sweep_says_it_stopped():
    # the SIGTERM test failed once in a CI run with both workers training on after exit 143: a task
    # the runner waits for but that no signal reaches (its controller gone) must not outlive it
    import subprocess
    import sys
    import time

    from hplandscape.run.local_runner import _running, _SigtermStops, _stop_jobs

    class Gone:  # a job whose controlling process has already ended
        def done(self):
            return False if not self.cancelled else True

        def cancel(self, check=False):
            self.cancelled = True

        cancelled = False

    task = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        t0 = time.monotonic()
        assert _stop_jobs([Gone()], _SigtermStops(), timeout_s=1.0, tasks=[task.pid]) == 1
        task.wait(timeout=10)  # reaped: it was killed
        assert not _running(task.pid) and time.monotonic() - t0 < 10
    finally:
        task.kill()
