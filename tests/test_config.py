"""Study configs: the presets reproduce the thesis setups; malformed configs fail precisely."""

import copy
import math

import pytest
import yaml

from hplandscape.config import load_quickstart, load_study, preset_path, study_from_dict
from hplandscape.errors import ConfigError
from hplandscape.grid import make_grid


def test_resnet56_preset_reproduces_thesis_setup():
    cfg = load_study(preset_path("resnet56_cifar10.yaml"))
    assert cfg.model == "resnet56" and cfg.data.name == "cifar10"
    assert [(c.method, c.ratio) for c in cfg.conditions] == [
        ("none", 1.0), ("uniform", 0.6), ("uniform", 0.2), ("global", 0.6), ("global", 0.2)]
    r = cfg.recipe
    assert (r.epochs, r.batch_size, r.momentum, r.milestone_epochs()) == (180, 128, 0.9, (90, 135))
    assert r.weight_decay_on_bn_bias and r.lr_gamma == 0.1
    points = make_grid(cfg.grid)
    assert len(points) == 81
    assert cfg.grid.log10_lr_values() == pytest.approx([-1.8, -1.6, -1.4, -1.2, -1.0, -0.8, -0.6, -0.4, -0.2])
    assert cfg.grid.log10_wd_values()[4] == -4.0


def test_mobilenet_and_resnet50_presets():
    mob = load_study(preset_path("mobilenetv2_cifar10.yaml"))
    assert [(c.method, c.ratio) for c in mob.conditions] == [
        ("none", 1.0), ("uniform", 0.6), ("uniform", 0.4), ("global", 0.6), ("global", 0.4)]
    assert len(make_grid(mob.grid)) == 81
    r50 = load_study(preset_path("resnet50_imagenet.yaml"))
    assert [(c.method, c.ratio) for c in r50.conditions] == [("none", 1.0), ("global", 0.4)]
    assert r50.grid.log10_lr_values() == pytest.approx([-1.4, -1.0, -0.6])
    assert r50.grid.log10_wd_values() == pytest.approx([-4.4, -4.0, -3.6])
    assert (r50.recipe.epochs, r50.recipe.batch_size, r50.recipe.milestone_epochs()) == (90, 256, (30, 60))


def test_quickstart_is_small_and_complete():
    cfg = load_quickstart()
    assert cfg.data.name == "digits"
    assert {c.method for c in cfg.conditions} == {"none", "uniform", "global"}
    assert len(cfg.grid.log10_lr_values()) >= 5 and len(cfg.grid.log10_wd_values()) >= 5


def test_resolved_config_round_trips():
    cfg = load_study(preset_path("resnet56_cifar10.yaml"))
    again = study_from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())), "again.yaml")
    assert again.to_dict() == cfg.to_dict()


def test_explicit_value_lists_and_extension():
    d = _base()
    del d["grid"]["size"], d["grid"]["step"]
    d["grid"].update(lr_values=[0.01, 0.1], log10_wd=[-5, -4], extra_log10_lr=[0.0])
    cfg = study_from_dict(d, "x.yaml")
    assert cfg.grid.log10_lr_values() == [-2.0, -1.0, 0.0]
    assert [p.key for p in make_grid(cfg.grid)][:2] == ["lr-2.0000_wd-5.0000", "lr-2.0000_wd-4.0000"]


def _base():
    return copy.deepcopy({
        "name": "t", "model": "resnet20", "data": {"name": "digits"},
        "conditions": [{"method": "none"}, {"method": "global", "ratio": 0.5}],
        "grid": {"prior_lr": 0.1, "prior_wd": 1e-4, "size": [3, 3], "step": 0.5},
        "seeds": [0], "train": {"epochs": 2},
    })


def _set(d, dotted, value):
    *head, last = dotted.split(".")
    for k in head:
        d = d[int(k)] if isinstance(d, list) else d.setdefault(k, {})
    if value is _DELETE:
        del d[last]
    else:
        d[last] = value


_DELETE = object()

# (dotted key to change, new value, key the message must name, words the message must contain)
MALFORMED = [
    ("train.epochs", -3, "train.epochs", "positive integer, got -3"),
    ("train.epochs", 2.5, "train.epochs", "positive integer"),
    ("train.epoch", 5, "train.epoch", "not a known key"),
    ("train.batch_size", 0, "train.batch_size", "positive integer"),
    ("train.momentum", 1.5, "train.momentum", "< 1.0"),
    ("train.momentum", -0.1, "train.momentum", "≥ 0"),
    ("train.milestones", [0.5, 1.5], "train.milestones", "(0, 1)"),
    ("train.milestones_unit", "steps", "train.milestones_unit", "fraction, epoch"),
    ("train.preset", "cifar100", "train.preset", "one of"),
    ("train.nesterov", "yes", "train.nesterov", "true or false"),
    ("train.data_order", "random", "train.data_order", "shared, per_point"),
    ("model", "resnet57", "model", "available"),
    ("model", _DELETE, "model", "is required"),
    ("modle", "resnet20", "modle", "not a known key"),
    ("data.name", "mnist", "data.name", "digits, cifar10, imagenet"),
    ("data", {"name": "cifar10"}, "data.root", "required for dataset 'cifar10'"),
    ("conditions", [], "conditions", "non-empty list"),
    ("conditions.1.method", "random", "conditions[1].method", "none, uniform, global"),
    ("conditions.1.ratio", 0.0, "conditions[1].ratio", "> 0"),
    ("conditions.1.ratio", 1.2, "conditions[1].ratio", "< 1.0"),
    ("conditions.1.ratio", _DELETE, "conditions[1].ratio", "is required"),
    ("conditions.0.method", "uniform", "conditions[0].ratio", "is required"),
    ("conditions", [{"method": "global", "ratio": 0.5}], "conditions", "exactly one basemodel"),
    ("conditions.0.ratio", 0.5, "conditions[0].ratio", "basemodel"),
    ("grid.step", -0.2, "grid.step", "> 0"),
    ("grid.size", [9], "grid.size", "pair [n_lr, n_wd]"),
    ("grid.size", "9x9", "grid.size", "positive integer"),
    ("grid.prior_lr", 0, "grid.prior_lr", "> 0"),
    ("grid.prior_wd", "1e-4", "grid.prior_wd", "finite number"),
    ("grid.lr_values", [0.1], "grid.size", "cannot be combined"),
    ("seeds", [0, 0], "seeds", "must not repeat"),
    ("seeds", [-1], "seeds", "non-negative"),
    ("launcher.executor", "kubernetes", "launcher.executor", "local, slurm, debug"),
    ("launcher.engine", "turbo", "launcher.engine", "auto, sequential, fused"),
    ("launcher.gpus", 1, "launcher.gpus", "not a known key"),
    ("pruning.source", "imagenet", "pruning.source", "trained, random"),
]


@pytest.mark.parametrize("key,value,named,words", MALFORMED, ids=[f"{m[0]}={m[1]!r}" for m in MALFORMED])
def test_malformed_config_names_file_key_value(tmp_path, key, value, named, words):
    d = _base()
    _set(d, key, value)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError) as err:
        load_study(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {named} "), msg
    assert words in msg, msg


def test_duplicate_condition_names_rejected():
    d = _base()
    d["conditions"].append({"method": "uniform", "ratio": 0.5, "name": "global-0.5"})
    with pytest.raises(ConfigError, match="repeated: global-0.5"):
        study_from_dict(d, "x.yaml")


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_study(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_study(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_study(bad)


def test_config_error_survives_python_O():
    # Validation uses real checks, not asserts: the message is the same with -O.
    import subprocess, sys
    code = ("from hplandscape.config import study_from_dict\n"
            "try:\n study_from_dict({'model': 'resnet20', 'data': {'name': 'digits'}, 'conditions': [],"
            " 'grid': {}}, 'x.yaml')\nexcept Exception as e: print(e)")
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True).stdout
    assert "x.yaml: conditions must be a non-empty list" in out
