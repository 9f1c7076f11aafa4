"""The command-line contract: subcommands, --json shapes, exit codes and messages."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import run_cli

from hplandscape.errors import RunFailure
from hplandscape.study.loading import preset_path

RESNET56 = str(preset_path("resnet56_cifar10.yaml"))


def test_grid_json_lists_81_points_centred_on_prior(capsys):
    code, out, _ = run_cli(capsys, "grid", RESNET56, "--json")
    assert code == 0
    points = json.loads(out)["points"]
    assert len(points) == 81
    assert {"lr", "wd", "log10_lr", "log10_wd"} <= set(points[0])
    lrs = sorted({p["log10_lr"] for p in points})
    wds = sorted({p["log10_wd"] for p in points})
    assert lrs[4] == -1.0 and wds[4] == -4.0
    assert all(round(b - a, 10) == 0.2 for a, b in zip(lrs, lrs[1:]))
    assert all(round(b - a, 10) == 0.2 for a, b in zip(wds, wds[1:]))


def test_grid_text(capsys):
    code, out, _ = run_cli(capsys, "grid", RESNET56)
    assert code == 0 and "81 grid points (9 lr × 9 wd)" in out


def test_models_json_has_counts(capsys):
    code, out, _ = run_cli(capsys, "models", "--json")
    assert code == 0
    models = {m["name"]: m for m in json.loads(out)["models"]}
    assert {"resnet56", "resnet50"} <= set(models)
    assert set(models["resnet56"]) >= {"name", "params", "flops", "input_shape"}
    assert models["resnet56"]["input_shape"] == [3, 32, 32]


def _bad_yaml(tmp_path, **change):
    d = yaml.safe_load(Path(preset_path("quickstart.yaml")).read_text())
    d.update(change)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(d))
    return str(p)


BAD_CALLS = [
    (["grid", "no/such/file.yaml"], "no/such/file.yaml: no such file"),
    (["grid"], "the following arguments are required: config"),
    ([], "the following arguments are required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["prune", "resnet20", "--method", "random", "--ratio", "0.5"], "invalid choice: 'random'"),
    (["prune", "resnet20", "--method", "global", "--ratio", "0"], "fraction of FLOPs kept, in (0, 1], got '0'"),
    (["prune", "resnet20", "--method", "global", "--ratio", "1.5"], "in (0, 1], got '1.5'"),
    (["prune", "resnet20", "--method", "global", "--ratio", "abc"], "must be a number in (0, 1], got 'abc'"),
    (["prune", "resnet20", "--ratio", "0.5"], "the following arguments are required: --method"),
    (["prune", "resnet57", "--method", "global", "--ratio", "0.5"], "resnet57"),
    (["sweep", "--max-parallel", "0"], "must be a positive integer, got '0'"),
    (["sweep", "--executor", "kubernetes"], "invalid choice: 'kubernetes'"),
    (["sweep", "missing.yaml", "--dry-run"], "missing.yaml: no such file"),
    (["analyze", "x.csv", "--k", "-1"], "must be > 0, got '-1'"),
    (["analyze", "x.csv", "--x"], "expected at least one argument"),
    (["collect", "d", "--format", "xlsx"], "invalid choice: 'xlsx'"),
    (["status", "d", "--interval", "zero"], "must be a number, got 'zero'"),
]


@pytest.mark.parametrize("argv,words", BAD_CALLS, ids=[" ".join(a) or "<none>" for a, _ in BAD_CALLS])
def test_bad_calls_exit_2_with_precise_message(capsys, argv, words):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (out, err)
    assert words in err, err
    assert "Traceback" not in err


def test_bad_config_through_cli_names_file_and_key(capsys, tmp_path):
    path = _bad_yaml(tmp_path, seeds="zero")
    code, _, err = run_cli(capsys, "grid", path)
    assert code == 2
    assert f"{path}: seeds must be a non-empty list of integers, got 'zero'" in err


def test_missing_study_dirs_and_tables_exit_2(capsys, tmp_path):
    for argv in (["status", str(tmp_path / "nope")], ["collect", str(tmp_path / "nope")],
                 ["analyze", str(tmp_path / "nope.csv")], ["report", str(tmp_path / "nope.csv")]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2, (argv, err)
        assert "nope" in err and "Traceback" not in err


@pytest.mark.skipif(shutil.which("hplandscape") is None and not (Path(sys.executable).parent / "hplandscape").exists(),
                    reason="console script not installed")
def test_module_and_console_script_agree():
    exe = shutil.which("hplandscape") or str(Path(sys.executable).parent / "hplandscape")
    a = subprocess.run([sys.executable, "-m", "hplandscape", "grid", RESNET56, "--json"],
                       capture_output=True, text=True, check=True).stdout
    b = subprocess.run([exe, "grid", RESNET56, "--json"], capture_output=True, text=True, check=True).stdout
    assert a == b and json.loads(a)["points"]
    bad = subprocess.run([exe, "grid", "missing.yaml"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_sweep_with_missing_data_exits_2_before_launching_anything(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the preset's data.root (data/cifar10) does not exist here
    code, _, err = run_cli(capsys, "sweep", RESNET56, "--executor", "local", "--study-dir", "s")
    assert code == 2, err
    assert str(tmp_path / "data" / "cifar10") in err and "Traceback" not in err
    assert not (tmp_path / "s" / "runs").exists()


def _fake_sweep_cli(monkeypatch, tmp_path):
    """`hplandscape sweep` on the tiny study with the fast stand-ins for training and pruning."""
    from conftest import fake_prune, fake_train_run, tiny_study_dict

    from hplandscape.run import sweep

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_study_dict()))
    real = sweep.run_sweep
    fakes = sweep.RunOptions(train_fn=fake_train_run, prune_fn=fake_prune)
    monkeypatch.setattr(sweep, "run_sweep", lambda *a, **k: real(*a, **{**k, "options": fakes}))
    return str(config)


def test_sweep_with_failed_runs_exits_1_naming_the_tracebacks(capsys, tmp_path, monkeypatch, fake_env):
    config = _fake_sweep_cli(monkeypatch, tmp_path)
    fake_env.setenv("HPL_FAKE_FAIL", "base/lr-1.5000_wd-4.5000")
    code, out, err = run_cli(capsys, "sweep", config, "--executor", "debug", "--study-dir", str(tmp_path / "s"),
                             "--no-progress")
    assert code == 1, (out, err)
    assert "1 run(s) failed" in err and "error.log" in err and "Re-run" in err
    assert "7 done" in out
    fake_env.delenv("HPL_FAKE_FAIL")
    code, out, err = run_cli(capsys, "sweep", config, "--executor", "debug", "--study-dir", str(tmp_path / "s"),
                             "--no-progress", "--no-report")
    assert code == 0 and "1 submitted" in out, err


def test_a_run_failure_exits_1_naming_the_log(capsys, tmp_path, monkeypatch):
    import hplandscape.store.results

    log = tmp_path / "logs" / "job_7.err"
    log.parent.mkdir()
    log.write_text("RuntimeError: CUDA out of memory\n")

    def failing_collect(*args, **kwargs):
        raise RunFailure(f"1 run(s) failed: base/lr-1.0000_wd-4.0000/seed0; tracebacks: {log}")

    monkeypatch.setattr(hplandscape.store.results, "collect", failing_collect)
    code, out, err = run_cli(capsys, "collect", str(tmp_path))
    assert code == 1, err
    assert err.startswith("hplandscape: failed: 1 run(s) failed") and str(log) in err
    assert "Traceback" not in err


def test_an_unexpected_error_exits_1_with_the_traceback_in_a_file(capsys, tmp_path, monkeypatch):
    import tempfile

    import hplandscape.store.results

    def broken_collect(*args, **kwargs):
        return {}["no such key"]

    monkeypatch.setattr(hplandscape.store.results, "collect", broken_collect)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the traceback file goes
    code, out, err = run_cli(capsys, "collect", str(tmp_path))
    assert code == 1, err
    first, second = err.strip().splitlines()
    assert first == "hplandscape: failed: KeyError: 'no such key'"
    assert second.startswith("  full traceback: ")
    log = Path(second.split(": ", 1)[1])
    assert log.parent == tmp_path and log.is_file()
    text = log.read_text()
    assert text.startswith("Traceback (most recent call last)") and "broken_collect" in text
    assert "Traceback" not in err  # the terminal gets one line; the file has the rest


def test_analyze_json_carries_importance_frontier_and_ratio_curves(capsys, tmp_path):
    from hplandscape.analysis.example import synthetic_ratio_results

    csv = tmp_path / "results.csv"
    synthetic_ratio_results().to_csv(csv, index=False)
    code, out, _ = run_cli(capsys, "analyze", str(csv), "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc["conditions"]["base"]["importance"]) == {"lr", "wd", "interaction"}
    assert set(doc["frontier"]) == {"hypervolume_best", "hypervolume_prior", "points"}
    assert set(doc["ratio_curves"]) == {"uniform", "global"}
    code, out, _ = run_cli(capsys, "analyze", str(csv))
    assert "Importance" in out and "re-tuning buys" in out and "Ratio curves" in out


def test_ratio_preset_loads_with_four_ratios_per_method():
    from hplandscape.study.loading import load_study
    cfg = load_study(Path(__file__).resolve().parent.parent / "grids" / "resnet56_cifar10_ratios.yaml")
    ratios = {m: sorted(c.ratio for c in cfg.conditions if c.method == m) for m in ("uniform", "global")}
    assert ratios == {"uniform": [0.2, 0.4, 0.6, 0.8], "global": [0.2, 0.4, 0.6, 0.8]}
    assert cfg.model == "resnet56" and cfg.grid.prior_lr == 0.1 and cfg.grid.prior_wd == 1e-4


def test_analyze_takes_the_number_of_bootstrap_resamples(capsys, tmp_path):
    import json

    from hplandscape.analysis.example import synthetic_replicate_results

    csv = tmp_path / "r.csv"
    synthetic_replicate_results().to_csv(csv, index=False)
    code, out, _ = run_cli(capsys, "analyze", str(csv), "--json", "--n-boot", "199")
    assert code == 0 and json.loads(out)["bootstrap"]["n_boot"] == 199
    code, _, err = run_cli(capsys, "analyze", str(csv), "--n-boot", "20")
    assert code == 2 and "n_boot (bootstrap resamples) must be an integer from 99 to 100,000, got 20" in err
