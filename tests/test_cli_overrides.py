"""`hplandscape sweep CONFIG KEY=VALUE ...`: overrides on the command line, as a user types them."""

import json

import pytest
import yaml
from conftest import fake_prune, fake_train_run, run_cli, tiny_study_dict

from hplandscape.store.study_store import StudyStore
from hplandscape.study.loading import preset_path

RESNET56 = str(preset_path("resnet56_cifar10.yaml"))


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """The tiny study as a YAML file; `sweep` trains it with the fast stand-ins."""
    from hplandscape.run import sweep

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_study_dict()))
    real = sweep.run_sweep
    fakes = sweep.RunOptions(train_fn=fake_train_run, prune_fn=fake_prune)
    monkeypatch.setattr(sweep, "run_sweep", lambda *a, **k: real(*a, **{**k, "options": fakes}))
    return str(path)


def _sweep(capsys, tiny, study, *overrides):
    return run_cli(capsys, "sweep", tiny, "--executor", "debug", "--study-dir", study, "--no-progress",
                   "--no-report", *overrides)


def test_grid_takes_overrides(capsys):
    code, out, err = run_cli(capsys, "grid", RESNET56, "grid.size=[3,3]", "grid.step=0.5", "--json")
    assert code == 0, err
    points = json.loads(out)["points"]
    assert len(points) == 9 and sorted({p["log10_lr"] for p in points}) == [-1.5, -1.0, -0.5]


def test_overrides_may_follow_options(capsys, tmp_path):
    # argparse stops reading positionals at the first option; the overrides after it still count
    code, out, err = run_cli(capsys, "sweep", "train.epochs=2", "--dry-run", "--study-dir", tmp_path / "s",
                             "grid.size=[2,2]", "seeds=[0]")
    assert code == 0, err
    assert out.startswith(f"Dry run of {tmp_path / 's'}: 13 runs, 0 already recorded")  # 3 × 2 × 2 + the prior
    assert not (tmp_path / "s").exists()


def test_the_study_yaml_stores_the_resolved_config(capsys, tmp_path, tiny, fake_env):
    study = tmp_path / "s"
    code, out, err = _sweep(capsys, tiny, study, "seeds=[0, 1]", "train.epochs=2")
    assert code == 0, err
    assert "16 runs" in out  # 2 conditions × 4 points × 2 seeds
    text = (study / "study.yaml").read_text()
    stored = yaml.safe_load(text)
    assert stored["seeds"] == [0, 1] and stored["train"]["epochs"] == 2
    assert f"# Read from {tiny} with the overrides 'seeds=[0, 1]' train.epochs=2." in text
    config = StudyStore(study).config()
    assert (config.seeds, config.recipe.epochs) == ((0, 1), 2)
    assert len(list(study.glob("runs/*/*/*/record.json"))) == 16


def test_a_rerun_with_other_overrides_is_refused_naming_them(capsys, tmp_path, tiny, fake_env):
    study = tmp_path / "s"
    assert _sweep(capsys, tiny, study, "train.epochs=2")[0] == 0
    before = (study / "study.yaml").read_text()
    code, out, err = _sweep(capsys, tiny, study, "train.epochs=4")
    assert code == 2, (out, err)
    assert "was made from a different config (train.epochs: 2 → 4)" in err
    assert "The override train.epochs=4 made this difference." in err
    assert "To continue the stored study instead, give train.epochs=2 in its place." in err
    assert (study / "study.yaml").read_text() == before
    # the dry run refuses it the same way, writing nothing
    code, _, dry_err = run_cli(capsys, "sweep", tiny, "train.epochs=4", "--dry-run", "--study-dir", study)
    assert code == 2 and "The override train.epochs=4 made this difference." in dry_err
    # without the override: the stored study came from one, and the message says which to give
    code, _, err = _sweep(capsys, tiny, study)
    assert code == 2 and "(train.epochs: 2 → 3)" in err
    assert "To continue the stored study, add the override train.epochs=2." in err
    # the same overrides continue it; launcher settings may differ
    code, out, err = _sweep(capsys, tiny, study, "train.epochs=2", "launcher.runs_per_job=1")
    assert code == 0 and "8 already recorded, 0 submitted" in out, err


def test_force_adopts_the_overridden_config(capsys, tmp_path, tiny, fake_env):
    study = tmp_path / "s"
    assert _sweep(capsys, tiny, study)[0] == 0
    code, out, err = _sweep(capsys, tiny, study, "seeds=[0,1]", "--force")
    assert code == 0, err
    assert "8 already recorded, 8 submitted" in out
    assert yaml.safe_load((study / "study.yaml").read_text())["seeds"] == [0, 1]


@pytest.mark.parametrize("argv, words", [
    (["train.epoch=3"], "tiny.yaml: train.epoch is not a known key; allowed here: amp, augment, batch_size"),
    (["train.epochs=0"], "tiny.yaml: train.epochs must be a positive integer, got 0 (set by the override "
                         "train.epochs=0)"),
    (["--dry-run", "train.epochs"], "override 'train.epochs' has no '=': write KEY=VALUE"),
    (["seeds=[0,", "1]"], "override 'seeds=[0,': the value is not valid YAML"),
    (["launcher.device=tpu"], "launcher.device must be one of auto, cpu, cuda; got 'tpu'"),
])
def test_bad_overrides_exit_2_naming_them(capsys, tmp_path, tiny, argv, words):
    code, out, err = run_cli(capsys, "sweep", tiny, "--study-dir", tmp_path / "s", *argv)
    assert code == 2, (out, err)
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_an_unknown_option_is_still_an_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "sweep", "--dry-run", "--bogus", "train.epochs=2")
    assert code == 2 and "unrecognized arguments: --bogus" in err


def test_grid_needs_its_config_before_the_overrides(capsys):
    code, _, err = run_cli(capsys, "grid", "grid.size=[3,3]")
    assert code == 2
    assert "grid: give the study YAML before its overrides, e.g. `hplandscape grid grids/quickstart.yaml " in err


def test_commands_without_a_config_take_no_overrides(capsys, tmp_path):
    code, _, err = run_cli(capsys, "status", tmp_path, "train.epochs=3")
    assert code == 2 and "unrecognized arguments: train.epochs=3" in err
