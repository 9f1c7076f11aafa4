"""Study configs: the presets reproduce the thesis setups; malformed configs fail precisely."""

import copy
import math

import pytest
import yaml

from hplandscape.errors import ConfigError
from hplandscape.study.grid import make_grid
from hplandscape.study.loading import load_quickstart, load_study, preset_path
from hplandscape.study.validation import study_from_dict


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
    assert len(cfg.seeds) >= 2, "replicates, so the quickstart report shows the shift test"


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
    ("train.randomness", "random", "train.randomness", "independent, common"),
    ("analysis.roi", [0.5, -1.0], "analysis.roi", "positive numbers, got element -1.0"),
    ("train.epochs", 10 ** 30, "train.epochs", "at most 100,000, got 1000000000000000000000000000000"),
    ("train.batch_size", 10 ** 9, "train.batch_size", "at most 1,048,576"),
    ("train.threads", 100000, "train.threads", "at most 1,024, got 100000"),
    ("analysis.roi", [], "analysis.roi", "non-empty list"),
    ("analysis.roi", [1.0, 1.0], "analysis.roi", "must not repeat"),
    ("analysis.roi", [0.5, 150.0], "analysis.roi", "at most 100"),
    ("analysis.rois", [1.0], "analysis.rois", "not a known key"),
    ("model", "resnet57", "model", "available"),
    ("model", _DELETE, "model", "is required"),
    ("modle", "resnet20", "modle", "not a known key"),
    ("data.name", "mnist", "data.name", "digits, cifar10, cifar100, imagenet, imagefolder, python"),
    ("data", {"name": "cifar10"}, "data.root", "required for dataset 'cifar10'"),
    ("conditions", [], "conditions", "non-empty list"),
    ("conditions.1.method", "lottery", "conditions[1].method",
     "none, uniform, global, magnitude, magnitude_layerwise, random, set"),
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
    import subprocess
    import sys
    code = ("from hplandscape.study.validation import study_from_dict\n"
            "try:\n study_from_dict({'model': 'resnet20', 'data': {'name': 'digits'}, 'conditions': [],"
            " 'grid': {}}, 'x.yaml')\nexcept Exception as e: print(e)")
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True).stdout
    assert "x.yaml: conditions must be a non-empty list" in out


# -- rules across fields and bounds: each rejected input names the file, the key and the value ----

# (changes to the base config, key the message must name, words the message must contain)
REJECTED = [
    ({"train.nesterov": True, "train.momentum": 0}, "train.nesterov", "needs momentum > 0"),
    ({"data.image_size": 100000}, "data.image_size", "at most 1024 pixels per side, got 100000"),
    ({"data.download": True}, "data.download", "only supported for cifar10"),
    ({"grid.size": [10000, 10000]}, "grid.size", "at most 100 points per axis, got [10000, 10000]"),
    ({"grid.size": 3, "grid.step": 1000}, "grid.step", "puts log10 lr at -1001.0"),
    ({"grid.step": 0.00001}, "grid.step", "same grid point"),
    ({"grid.prior_lr": 1e30}, "grid.prior_lr", "must lie in [1e-20, 1e20], got 1e+30"),
    ({"grid.prior_wd": 10**400}, "grid.prior_wd", "must be a finite number"),
    ({"grid.extra_log10_lr": [400]}, "grid.extra_log10_lr", "puts log10 lr at 400"),
    ({"grid.extra_log10_wd": [-4.00001, -4.00002]}, "grid.extra_log10_wd", "same grid point"),
    ({"grid.extra_log10_lr": [0.01 * i for i in range(1, 101)]}, "grid.extra_log10_lr",
     "extends the lr axis to 103 points; at most 100"),
    ({"seeds": [2**64]}, "seeds", "up to 2**63 - 1"),
    ({"name": ".."}, "name", "must not be '.' or '..'"),
    ({"name": "a/b"}, "name", "got 'a/b'"),
    ({"conditions.1.name": "."}, "conditions[1].name", "must not be '.' or '..'"),
    ({"conditions.1.name": ".."}, "conditions[1].name", "must not be '.' or '..'"),
]


def _explicit(**axes):
    d = _base()
    del d["grid"]["size"], d["grid"]["step"]
    d["grid"].update(axes)
    return d


@pytest.mark.parametrize("changes,named,words", REJECTED, ids=[repr(c) for c, _, _ in REJECTED])
def test_rejected_config_names_file_key_value(tmp_path, changes, named, words):
    d = _base()
    for key, value in changes.items():
        _set(d, key, value)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError) as err:
        load_study(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {named} "), msg
    assert words in msg, msg


@pytest.mark.parametrize("axes,named,words", [
    ({"lr_values": [0.1, 0.100001], "log10_wd": [-4]}, "grid.lr_values", "-1.0 and -0.99999"),
    ({"log10_lr": [-1], "log10_wd": [-4, -4.00001]}, "grid.log10_wd", "values -4 and -4.00001, which are the same grid point"),
    ({"log10_lr": [-1, 400], "log10_wd": [-4]}, "grid.log10_lr", "puts log10 lr at 400"),
    ({"lr_values": [1e-300], "log10_wd": [-4]}, "grid.lr_values", "puts log10 lr at -300"),
    ({"log10_lr": list(range(-60, 60)), "log10_wd": [-4]}, "grid.log10_lr", "at most 100 values, got 120"),
])
def test_explicit_axes_must_be_distinct_grid_points_in_range(axes, named, words):
    with pytest.raises(ConfigError) as err:
        study_from_dict(_explicit(**axes), "x.yaml")
    assert str(err.value).startswith(f"x.yaml: {named} ") and words in str(err.value), str(err.value)


def test_accepted_edges_of_the_new_rules():
    # the smallest fraction that rounds to epoch 1, Nesterov with momentum, a grid at the limits
    d = _base()
    d["train"].update(epochs=4, milestones=[0.25, 0.75], nesterov=True)
    d["grid"].update(size=[100, 1], step=0.0002)
    d["data"]["image_size"] = 1024
    d["seeds"] = [2**63 - 1]
    cfg = study_from_dict(d, "x.yaml")
    assert cfg.recipe.milestone_epochs() == (1, 3) and cfg.recipe.nesterov
    assert len(make_grid(cfg.grid)) == 100
    assert study_from_dict({**_base(), "train": {"epochs": 1, "milestones": []}}, "x.yaml").recipe.milestones == ()
    # fractions that would round to epoch 0 fall on SGD steps instead (issue 29: E); the others stay on epochs
    for train, on_steps in (({"epochs": 1}, True), ({"epochs": 3, "milestones": [0.1, 0.5]}, True),
                            ({"epochs": 3}, False), ({"epochs": 2}, False)):
        d = _base()
        d["train"].update(train)
        assert study_from_dict(d, "x.yaml").recipe.milestones_on_steps is on_steps, train


@pytest.mark.parametrize("text,named,lines", [
    ("model: resnet20\nmodel: resnet56\n", "model", (1, 2)),
    ("train:\n  epochs: 2\n  batch_size: 8\n  epochs: 30\n", "train.epochs", (2, 4)),
    ("conditions:\n  - {method: none}\n  - {method: global, ratio: 0.5, ratio: 0.2}\n", "conditions[1].ratio", (3, 3)),
])
def test_a_key_given_twice_is_an_error_naming_key_and_lines(tmp_path, text, named, lines):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_study(path)
    assert str(err.value) == (f"{path}: {named} is given twice (lines {lines[0]} and {lines[1]}); "
                              "each key may appear once per mapping")


def test_anchors_and_merge_keys_still_load(tmp_path):
    # "<<:" merges a mapping whose keys the local ones override: that is not a repeated key
    d = {k: v for k, v in _base().items() if k != "train"}
    path = tmp_path / "anchors.yaml"
    path.write_text(yaml.safe_dump(d) + "train: &t {epochs: 2}\n"
                    + "launcher:\n  <<: {cpus_per_task: 1, mem_gb: 1.0}\n  cpus_per_task: 2\n")
    cfg = load_study(path)
    assert cfg.recipe.epochs == 2 and cfg.launcher.cpus_per_task == 2 and cfg.launcher.mem_gb == 1.0


def test_builtin_model_names_are_the_registry():
    from hplandscape.models import list_models
    from hplandscape.study.config import BUILTIN_MODELS

    assert sorted(BUILTIN_MODELS) == list_models()


def test_a_user_registered_model_is_found_in_the_live_registry(monkeypatch):
    from hplandscape.models import registry

    entry = registry.ModelEntry("my_net", registry.get_entry("resnet20").builder, (3, 32, 32), 10)
    monkeypatch.setitem(registry._REGISTRY, "my_net", entry)
    assert study_from_dict({**_base(), "model": "my_net"}, "x.yaml").model == "my_net"
    with pytest.raises(ConfigError, match="x.yaml: model is not a registered architecture: 'my_nett'; "
                                          "available: .*my_net"):
        study_from_dict({**_base(), "model": "my_nett"}, "x.yaml")


# -- check_runnable: what only the machine can tell ---------------------------------------------


def test_check_runnable_returns_the_data_shape_and_accepts_the_quickstart():
    from hplandscape.run.preflight import check_runnable
    info = check_runnable(load_quickstart())
    assert (info.name, info.num_classes, info.in_channels, info.image_size) == ("digits", 10, 1, 8)


def test_check_runnable_refuses_an_unreachable_ratio_before_any_training():
    from hplandscape.pruning.structured import smallest_ratio
    from hplandscape.run.preflight import check_runnable

    d = _base()
    d["conditions"].append({"method": "uniform", "ratio": 0.01})
    cfg = study_from_dict(d, "x.yaml")
    smallest = smallest_ratio("resnet20", "uniform", in_channels=1, input_shape=(1, 8, 8))  # digits: 1×8×8
    with pytest.raises(ConfigError) as err:
        check_runnable(cfg)
    assert str(err.value).startswith("x.yaml: conditions[2].ratio is 0.01, unreachable for resnet20 (uniform pruning) "
                                     f"at input (1, 8, 8): the smallest reachable ratio is {smallest:.4f}")
    d["conditions"][2]["ratio"] = round(smallest + 0.001, 4)
    check_runnable(study_from_dict(d, "x.yaml"))


def test_check_runnable_needs_the_data_directory(tmp_path):
    from hplandscape.errors import UserError
    from hplandscape.run.preflight import check_runnable

    d = _base()
    d["data"] = {"name": "cifar10", "root": str(tmp_path / "nope")}
    with pytest.raises(UserError, match=str(tmp_path / "nope")):
        check_runnable(study_from_dict(d, "x.yaml"))


def test_check_runnable_refuses_cuda_on_a_machine_without_it():
    import torch

    from hplandscape.errors import UserError
    from hplandscape.run.preflight import check_runnable

    d = _base()
    d["launcher"] = {"device": "cuda"}
    cfg = study_from_dict(d, "x.yaml")
    check_runnable(cfg, executor="slurm")  # the runs go to GPU nodes: this machine need not have one
    if torch.cuda.is_available():
        check_runnable(cfg)
    else:
        with pytest.raises(ConfigError, match="x.yaml: launcher.device is 'cuda' but this machine has no CUDA device"):
            check_runnable(cfg)
    with pytest.raises(UserError, match="executor must be one of local, slurm, debug; got 'k8s'"):
        check_runnable(cfg, executor="k8s")


def test_analysis_roi_is_a_study_setting_that_invalidates_no_run():
    from hplandscape.store.study_store import config_changes
    cfg = study_from_dict({**_base(), "analysis": {"roi": [2.0, 1.0]}})
    assert cfg.analysis.roi == (1.0, 2.0)  # smallest first: the risk's Θ_R
    assert study_from_dict(_base()).analysis.roi == (0.5, 1.0)  # the method's thresholds by default
    assert study_from_dict(cfg.to_dict()) == cfg
    assert config_changes(study_from_dict(_base()).to_dict(), cfg.to_dict()) == []
