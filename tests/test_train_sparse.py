"""Sparse, fine-tuned and gradient-flow runs through the sequential engine: exact masks, resume, records."""

import dataclasses

import pytest
import torch

from hplandscape.errors import UserError
from hplandscape.models import build_model, load_weights, save_weights
from hplandscape.pruning.structured import prune, pruned_source
from hplandscape.pruning.unstructured import make_masks, prunable_weights, save_masks
from hplandscape.store.layout import RunFiles
from hplandscape.study.config import Condition, DataConfig
from hplandscape.study.grid import GridPoint
from hplandscape.study.recipes import recipe_preset
from hplandscape.study.run_spec import RunSpec
from hplandscape.training import sequential_engine as train_module
from hplandscape.training.data import load_data
from hplandscape.training.fused_engine import train_fused
from hplandscape.training.lifecycle import evaluate
from hplandscape.training.sequential_engine import train_run
from hplandscape.training.setup import Placement

DATA = DataConfig(name="digits", train_subset=256, test_subset=128)
SHAPE = (1, 8, 8)


def source_weights(path, seed=0):
    torch.manual_seed(seed)
    return save_weights(path, "resnet20", build_model("resnet20", num_classes=10, in_channels=1), 10, 1)


def sparse_spec(tmp_path, method="set", density=0.2, *, epochs=3, pipeline="retrain", name="r", **recipe_kw):
    source = source_weights(tmp_path / "source.pt") if not (tmp_path / "source.pt").exists() else tmp_path / "source.pt"
    mask_spec, masks = make_masks("resnet20", method, density, input_shape=SHAPE, source=source)
    save_masks(tmp_path / "masks.pt", masks)
    recipe = dataclasses.replace(recipe_preset("digits"), epochs=epochs, threads=1, **recipe_kw)
    return RunSpec(study="t", condition=Condition(f"{method}-{density}", method, density, pipeline),
                   point=GridPoint(-1.0, -4.0), seed=0, model="resnet20", data=DATA, recipe=recipe, arch=None,
                   run_dir=str(tmp_path / name), device="cpu",
                   sparsity={**mask_spec.to_dict(), "content_hash": mask_spec.content_hash},
                   masks_file=str(tmp_path / "masks.pt"),
                   start_weights=str(source) if pipeline == "finetune" else None,
                   checkpoint_every_s=0.0), masks  # every epoch: the resume tests interrupt after one


def without_timings(record):
    return {k: v for k, v in record.items() if k != "wall_time_s"}


def test_masks_hold_through_training_and_the_record_measures_them(tmp_path):
    spec, masks = sparse_spec(tmp_path, "magnitude", 0.2, epochs=2)
    rec = train_run(dataclasses.replace(spec, keep_weights=True))
    model = load_weights(RunFiles(spec.run_dir).weights).build()
    for k, w in prunable_weights(model).items():
        assert torch.count_nonzero(w[~masks[k]]) == 0, k
    assert rec["density"] == pytest.approx(spec.sparsity["achieved_density"], abs=1e-3)
    assert rec["flops"] < rec["dense_flops"] and rec["params"] < rec["dense_params"]
    assert rec["flops"] == pytest.approx(spec.sparsity["flops"], rel=0.01)
    assert (rec["pipeline"], rec["egf"], rec["method"]) == ("retrain", None, "magnitude")


class Killed(Exception):
    pass


@pytest.mark.slow
def test_killed_set_run_resumes_to_the_uninterrupted_record(tmp_path, monkeypatch):
    """SET's masks change every epoch and gradient flow is logged: both must survive a resume."""
    spec, _ = sparse_spec(tmp_path, "set", 0.2, epochs=4, gradient_flow=True, name="killed")
    real = train_module.save_checkpoint
    calls = []

    def save_then_die(*args, **kwargs):
        real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # killed once epochs 0 and 1 are checkpointed
            raise Killed

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train_run(spec)
    saved = torch.load(RunFiles(spec.run_dir).checkpoint, weights_only=True)
    assert saved["state"]["next_epoch"] == 2 and len(saved["extras"]["egf"]) == 3  # epochs 0, 1, 2 of 4
    monkeypatch.setattr(train_module, "save_checkpoint", real)
    resumed = train_run(spec)
    straight = train_run(dataclasses.replace(spec, run_dir=str(tmp_path / "straight")))
    assert without_timings(resumed) == without_timings(straight)
    assert [e["epoch"] for e in resumed["egf"]] == [0, 1, 2, 3, 4]
    assert all(e["egf1"] > e["egf2"] > 0 for e in resumed["egf"])
    assert resumed["density"] == pytest.approx(0.2, abs=0.002)


def test_gradient_flow_measurements_leave_training_unchanged(tmp_path):
    spec, _ = sparse_spec(tmp_path, "random", 0.2, epochs=2, name="plain")
    plain = train_run(spec)
    flow = train_run(dataclasses.replace(spec, recipe=dataclasses.replace(spec.recipe, gradient_flow=True),
                                         run_dir=str(tmp_path / "flow")))
    assert flow["history"] == plain["history"] and flow["top1"] == plain["top1"]
    assert [e["epoch"] for e in flow["egf"]] == [0, 1, 2]


def test_finetuning_starts_from_the_masked_basemodel(tmp_path):
    spec, masks = sparse_spec(tmp_path, "magnitude", 0.2, epochs=0, pipeline="finetune")
    rec = train_run(spec)
    model = load_weights(tmp_path / "source.pt").build()
    with torch.no_grad():
        for k, w in prunable_weights(model).items():
            w.masked_fill_(~masks[k], 0.0)
    data = load_data(DATA)
    top1, _ = evaluate(model.to(memory_format=torch.channels_last), data, 128,
                       Placement(torch.device("cpu"), torch.channels_last))
    assert rec["top1"] == top1 and rec["pipeline"] == "finetune"
    # other weights than the masks were made from: refused, naming both
    source_weights(tmp_path / "other.pt", seed=1)
    with pytest.raises(UserError, match="changed since the masks were made"):
        train_run(dataclasses.replace(spec, start_weights=str(tmp_path / "other.pt"), run_dir=str(tmp_path / "x")))


def test_fine_tuned_structured_run_starts_from_the_kept_filters(tmp_path):
    source = source_weights(tmp_path / "source.pt")
    arch = prune("resnet20", "global", 0.5, input_shape=SHAPE, source=source)
    save_weights(tmp_path / "start.pt", "resnet20", pruned_source(arch, source), 10, 1, widths=arch.widths)
    recipe = dataclasses.replace(recipe_preset("digits"), epochs=0, threads=1)
    spec = RunSpec(study="t", condition=Condition("global-0.5-finetune", "global", 0.5, "finetune"),
                   point=GridPoint(-1.0, -4.0), seed=0, model="resnet20", data=DATA, recipe=recipe,
                   arch={**arch.to_dict(), "content_hash": arch.content_hash}, run_dir=str(tmp_path / "r"),
                   device="cpu", start_weights=str(tmp_path / "start.pt"), keep_weights=True)
    rec = train_run(spec)
    fused = train_fused([dataclasses.replace(spec, run_dir=str(tmp_path / "fused"))])[0]
    assert fused["top1"] == rec["top1"]  # the fused engine starts from the same filters
    kept = load_weights(RunFiles(spec.run_dir).weights).state_dict
    start = load_weights(tmp_path / "start.pt").state_dict
    assert all(torch.equal(kept[k], start[k]) for k in start)
    assert rec["flops"] == arch.flops and rec["density"] == pytest.approx(1.0)
    with pytest.raises(UserError, match="were not made for this condition's architecture"):
        train_run(dataclasses.replace(spec, start_weights=str(source), run_dir=str(tmp_path / "x")))
