"""A model of the user's, named by import path: located, checked, pruned through torch-pruning's
dependency graph, swept from the command line, and refused when its file changes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import USER_MODEL, write_user_model

import hplandscape.pruning.structured as structured
from hplandscape.errors import UserError
from hplandscape.models import build_model, count_flops, original_widths
from hplandscape.models.imported import check_builder_output, locate_model
from hplandscape.pruning.arch_spec import ArchSpec
from hplandscape.user_code import CodeSource, locate, split_import_path

DIGITS = (1, 8, 8)


def _module_name() -> str:
    # one module name per test: Python caches a module by name for the whole session
    return f"usernets_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def user_model(tmp_path):
    return write_user_model(tmp_path / "code", _module_name()), tmp_path / "code"


# -- import paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["resnet56", "a:b:c", "1mod:build", "mod:", ":build", "mod.:build"])
def test_a_malformed_import_path_is_refused_with_the_expected_form(bad):
    with pytest.raises(UserError, match="package.module:attribute"):
        split_import_path(bad)


def test_a_module_beside_the_base_dir_is_found_and_its_root_recorded(tmp_path):
    path = write_user_model(tmp_path, name := _module_name())
    source = locate(path, tmp_path)
    assert (source.file, source.import_root) == (str(tmp_path / f"{name}.py"), str(tmp_path))
    assert CodeSource.from_dict(source.to_dict()) == source


def test_a_changed_file_is_refused_when_loaded_naming_the_file(tmp_path):
    path = write_user_model(tmp_path, name := _module_name())
    source = locate(path, tmp_path)
    (tmp_path / f"{name}.py").write_text(USER_MODEL + "\n# changed\n")
    with pytest.raises(UserError, match=f"{name}.py changed since the study recorded it"):
        source.load("model")


# -- pruning through the dependency graph ----------------------------------------------------------


def test_the_graph_finds_concatenated_and_residual_groups_and_keeps_the_end_layers(user_model):
    name = locate_model(user_model[0], user_model[1]).import_path
    # stem (first layer) and fc (classifier) keep their size; mix and block.b share one width
    assert original_widths(name, 10, 1, DIGITS) == {"left": 16, "right": 8, "mix": 32, "block.a": 32, "head": 32}


@pytest.mark.parametrize("method", ["uniform", "global"])
@pytest.mark.parametrize("shape", [DIGITS, (3, 32, 32)])
def test_a_user_model_prunes_to_half_its_flops_within_two_percent(user_model, method, shape):
    name = locate_model(user_model[0], user_model[1]).import_path
    spec = structured.prune(name, method, 0.5, num_classes=10, in_channels=shape[0], input_shape=shape)
    assert abs(spec.achieved_ratio - 0.5) <= 0.02 * 0.5
    net = build_from_spec_checked(spec)
    assert count_flops(net, shape) == spec.flops
    # the residual addition ties mix's and block.b's output channels: both have mix's width
    assert net.block.b.out_channels == net.mix.out_channels == spec.widths["mix"]
    assert net.mix.in_channels == spec.widths["left"] + spec.widths["right"]  # the concatenation


def build_from_spec_checked(spec: ArchSpec):
    again = ArchSpec.from_dict(json.loads(json.dumps({**spec.to_dict(), "content_hash": spec.content_hash})))
    return structured.build_from_spec(again)


def test_a_ratio_below_what_the_user_model_can_reach_names_the_smallest(user_model):
    name = locate_model(user_model[0], user_model[1]).import_path
    smallest = structured.smallest_ratio(name, "uniform", num_classes=10, in_channels=1, input_shape=DIGITS)
    with pytest.raises(UserError, match=f"smallest reachable ratio is {smallest:.4f}"):
        structured.prune(name, "uniform", smallest / 2, num_classes=10, in_channels=1, input_shape=DIGITS)


@pytest.mark.parametrize("name,shape,classes", [("resnet20", (3, 32, 32), 10), ("mobilenet_v2", (3, 32, 32), 10),
                                                ("resnet56", (1, 8, 8), 10), ("vgg16", (3, 32, 32), 10),
                                                ("wrn22_2", (3, 32, 32), 100)])
def test_the_builtins_fast_path_and_the_dependency_graph_give_identical_specs(monkeypatch, name, shape, classes):
    """The built-ins keep their declared groups only because the graph engine, given the same
    groups, makes the same specs: same keys, same FLOPs for any widths, same pruned network."""
    fast = structured._flops_model(name, classes, shape[0], shape)
    graph = structured._GraphFlopsModel(name, classes, shape[0], shape, keys=tuple(fast.keys))
    assert graph.keys == fast.keys and graph.original.tolist() == fast.original.tolist()
    rng = np.random.default_rng(0)
    for widths in [fast.original] + [rng.integers(1, fast.original + 1) for _ in range(10)]:
        assert graph.flops(widths) == fast.flops(widths)
    for method in ("uniform", "global"):
        declared = structured.prune(name, method, 0.5, num_classes=classes, in_channels=shape[0], input_shape=shape)
        with monkeypatch.context() as m:
            m.setattr(structured, "_flops_model", lambda *a: structured._GraphFlopsModel(*a, keys=tuple(fast.keys)))
            traced = structured.prune(name, method, 0.5, num_classes=classes, in_channels=shape[0], input_shape=shape)
        assert traced == declared


def test_unstructured_masks_cover_the_user_models_inner_layers(user_model):
    from hplandscape.pruning.unstructured import make_masks

    name = locate_model(user_model[0], user_model[1]).import_path
    spec, masks = make_masks(name, "magnitude", 0.5, num_classes=10, in_channels=1, input_shape=DIGITS)
    assert set(masks) == {"left.weight", "right.weight", "mix.weight", "block.a.weight", "block.b.weight",
                          "head.weight"} or set(masks) == {"left", "right", "mix", "block.a", "block.b", "head"}
    kept = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert abs(kept - 0.5) < 0.01


# -- checks before anything runs -------------------------------------------------------------------


BAD_MODELS = {
    "import": ("import not_a_package_anywhere\n", "importing module .* failed \\(No module named 'not_a_package_anywhere'\\)"),
    "missing": (None, "cannot import module 'usernets_.*' \\(No module named 'usernets_"),
    "attribute": ("def other(num_classes):\n    pass\n", "has no attribute 'build'"),
    "not_a_module": ("def build(num_classes):\n    return 42\n", "returned a int, not a torch.nn.Module"),
    "forward": ("from torch import nn\n"
                "def build(num_classes):\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 36, num_classes))\n",
                r"forward pass on one input of shape \(1, 8, 8\) .* raised RuntimeError"),
    "lazy": ("from torch import nn\n"
             "def build(num_classes):\n    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))\n",
             "initialising the network the builder returned raised"),
    "outputs": ("from torch import nn\n"
                "def build(num_classes, in_channels):\n"
                "    return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.Flatten(), nn.Linear(4 * 36, 7))\n",
                r"gave \(1, 7\), expected \(1, 10\) logits"),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_a_bad_user_model_exits_2_before_anything_is_written(tmp_path, case):
    text, message = BAD_MODELS[case]
    module = _module_name()
    if text is not None:
        (tmp_path / f"{module}.py").write_text(text)
    config = _write_study(tmp_path, f"{module}:build")
    out = tmp_path / "study"
    run = _cli("sweep", config, "--study-dir", out, cwd=tmp_path.parent)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert re.search(message, run.stderr), run.stderr
    assert not out.exists()


# -- end to end from the command line --------------------------------------------------------------


def _write_study(folder: Path, model: str, **overrides) -> Path:
    study = {
        "name": "mine",
        "model": model,
        "data": {"name": "digits", "train_subset": 256, "test_subset": 128},
        "conditions": [{"method": "none"}, {"method": "uniform", "ratio": 0.5}, {"method": "global", "ratio": 0.5},
                       {"method": "magnitude", "ratio": 0.5}],
        "grid": {"prior_lr": 0.1, "prior_wd": 1e-4, "log10_lr": [-1.5, -1.0], "log10_wd": [-4.0]},
        "seeds": [0],
        "train": {"preset": "digits", "epochs": 1, "batch_size": 64},
        "pruning": {"source": "random"},
        "launcher": {"executor": "local", "runs_per_job": 2, "cpus_per_task": 1},
        **overrides,
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def _cli(*argv, cwd, env=None):
    env = {**os.environ, **(env or {})}
    env.pop("PYTHONPATH", None)  # the model must be found beside the study file, not on the path
    env["PYTHONPATH"] = str(Path(structured.__file__).resolve().parents[2])  # this checkout's package
    return subprocess.run([sys.executable, "-m", "hplandscape", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_a_user_model_beside_its_study_file_sweeps_analyses_and_reports_from_the_cli(tmp_path):
    code = tmp_path / "code"
    model = write_user_model(code, _module_name())
    config = _write_study(code, model)
    out = tmp_path / "study"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    run = _cli("sweep", config, "--study-dir", out, cwd=elsewhere)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "8 done" in run.stdout, run.stdout
    stored = yaml.safe_load((out / "study.yaml").read_text())
    module_file = code / f"{model.split(':')[0]}.py"
    assert stored["model_source"]["file"] == str(module_file)
    assert stored["model_source"]["import_root"] == str(code)
    records = [json.loads(p.read_text()) for p in (out / "runs").rglob("record.json")]
    assert len(records) == 8 and all(r["model_source"] == stored["model_source"] for r in records)
    for cond in ("uniform-0.5", "global-0.5"):
        spec = json.loads((out / "specs" / f"{cond}.json").read_text())
        assert spec["model"] == model and abs(spec["achieved_ratio"] - 0.5) <= 0.01
    for command in ("analyze", "report"):
        done = _cli(command, out, cwd=elsewhere)
        assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "report" / "index.html").is_file()

    module_file.write_text(USER_MODEL + "\n# a change\n")
    again = _cli("sweep", config, "--study-dir", out, cwd=elsewhere)
    assert again.returncode == 2
    assert f"The model's source file {module_file} changed since the study began" in again.stderr, again.stderr


def test_the_cli_prunes_a_user_model_from_the_working_directory(tmp_path):
    model = write_user_model(tmp_path, _module_name())
    run = _cli("prune", model, "--method", "global", "--ratio", "0.5", "--in-channels", "1", "--input-size", "8",
               "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert [layer["name"] for layer in summary["layers"]] == ["left", "right", "mix", "block.a", "head"]
    # the residual addition ties block.b's output to mix's: the spec's one width carries both
    assert {layer["name"]: layer["tied_layers"] for layer in summary["layers"]}["mix"] == ["block.b"]
    assert abs(summary["achieved_ratio"] - 0.5) <= 0.01


def test_check_builder_output_accepts_the_user_model(user_model):
    name = locate_model(user_model[0], user_model[1]).import_path
    check_builder_output(name, 10, DIGITS)
    assert build_model(name, num_classes=10, in_channels=1).fc.out_features == 10


def test_two_studies_of_one_import_path_from_different_files_read_in_one_process_but_do_not_build(tmp_path):
    """A study, its model edited, a second study in a new directory (as the refusal advises): one
    process (a report over both) reads both configs; building either would be ambiguous, and says so."""
    from hplandscape.models.imported import use_source

    name = _module_name()
    first = locate(write_user_model(tmp_path / "a", name), tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / f"{name}.py").write_text(USER_MODEL + "\n# the edited model\n")
    second = CodeSource(first.import_path, str(tmp_path / "b" / f"{name}.py"),
                        __import__("hplandscape.user_code").user_code.file_sha256(tmp_path / "b" / f"{name}.py"),
                        str(tmp_path / "b"))
    assert use_source(first) == use_source(second) == first.import_path
    assert use_source(first) == first.import_path  # the same source again: nothing new
    with pytest.raises(UserError, match=f"from two files in this process: {tmp_path / 'a'}.* and {tmp_path / 'b'}"):
        build_model(first.import_path, num_classes=10, in_channels=1)
