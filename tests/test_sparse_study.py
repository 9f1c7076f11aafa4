"""Sparse and fine-tuned conditions through the study machinery: prune step, plan, worker, engines."""

import dataclasses
import json

import pytest
import torch
from conftest import minimal_record, tiny_config, tiny_study_dict

from hplandscape.errors import UserError
from hplandscape.models import build_model, save_weights
from hplandscape.run import worker as launch
from hplandscape.run.plan import plan_study
from hplandscape.run.prune_step import conditions_to_prune, make_pruning_specs, stored_arch
from hplandscape.run.sweep import run_sweep
from hplandscape.store.study_store import StudyStore
from hplandscape.study.runs import source_run
from hplandscape.study.validation import study_from_dict
from hplandscape.training.fused_engine import choose_engine, fused_unsupported, train_fused

CONDITIONS = [{"method": "none"}, {"method": "magnitude", "ratio": 0.2}, {"method": "set", "ratio": 0.05},
              {"method": "random", "ratio": 0.2, "pipeline": "finetune"},
              {"method": "global", "ratio": 0.5, "pipeline": "finetune"}]


def sparse_config(**pruning):
    d = tiny_study_dict(conditions=CONDITIONS, pruning=pruning)
    d["train"] = {**d["train"], "finetune_epochs": 2}
    return study_from_dict(d, "<sparse>")


def trained_source(store, config):
    """A stand-in for the basemodel trained at the prior: its weights file, where the study has it."""
    torch.manual_seed(0)
    path = store.model_path(source_run(config).run_id)
    save_weights(path, "resnet20", build_model("resnet20", num_classes=10, in_channels=1), 10, 1)
    store.write_record(source_run(config).run_id, minimal_record(source_run(config).run_id, top1=50.0))
    return path


@pytest.fixture()
def pruned_study(tmp_path):
    config = sparse_config()
    store = StudyStore(tmp_path)
    store.init_study(config)
    trained_source(store, config)
    written = make_pruning_specs(config, tmp_path)
    return config, store, written


def test_prune_step_stores_masks_specs_and_start_weights(pruned_study):
    config, store, written = pruned_study
    assert written == [str(store.spec_path(c.name)) for c in config.conditions if c.pruned]
    mag = store.read_mask_spec("magnitude-0.2")
    assert mag.method == "magnitude" and mag.source.startswith("checkpoint:")
    assert store.masks_path("magnitude-0.2").exists()
    assert store.read_mask_spec("set-0.05").zeta == config.pruning.set_zeta
    assert store.start_weights_path("global-0.5-finetune").exists()  # the trained filters it keeps
    assert not store.start_weights_path("random-0.2-finetune").exists()  # starts from the basemodel's file
    assert conditions_to_prune(store, config) == []
    assert stored_arch(store, config, config.condition("magnitude-0.2")) == mag


def test_masks_made_with_other_settings_are_made_again(pruned_study):
    config, store, _ = pruned_study
    for changed, remade in ((sparse_config(sparse_layer_floor=0.5), {"magnitude-0.2", "random-0.2-finetune"}),
                            (sparse_config(set_zeta=0.5), {"set-0.05"})):
        assert {c.name for c in conditions_to_prune(store, changed)} == remade
    store.masks_path("set-0.05").unlink()  # a spec without its masks file is no spec
    assert [c.name for c in conditions_to_prune(store, config)] == ["set-0.05"]
    store.start_weights_path("global-0.5-finetune").unlink()
    assert "global-0.5-finetune" in {c.name for c in conditions_to_prune(store, config)}


def test_plan_gives_sparse_and_fine_tuned_runs_what_they_need(pruned_study):
    config, store, _ = pruned_study
    runs = {(r.condition.name, r.point.key): r for r in plan_study(config, store).runs}
    mag = runs[("magnitude-0.2", "lr-1.0000_wd-4.0000")]
    assert mag.sparsity["content_hash"] == store.read_mask_spec("magnitude-0.2").content_hash
    assert mag.masks_file == str(store.masks_path("magnitude-0.2")) and mag.arch is None
    assert mag.start_weights is None and mag.recipe.epochs == 3
    rnd = runs[("random-0.2-finetune", "lr-1.0000_wd-4.0000")]
    assert rnd.start_weights == str(store.model_path(source_run(config).run_id)) and rnd.recipe.epochs == 2
    glob = runs[("global-0.5-finetune", "lr-1.5000_wd-4.5000")]
    assert glob.arch is not None and glob.sparsity is None
    assert glob.start_weights == str(store.start_weights_path("global-0.5-finetune"))


def test_worker_fills_in_masks_planned_before_they_existed(pruned_study):
    config, store, _ = pruned_study
    run = next(r for r in plan_study(config, store).runs if r.condition.name == "set-0.05")
    resolved = launch._resolve(store, dataclasses.replace(run, sparsity=None))
    assert resolved.sparsity == run.sparsity
    store.spec_path("set-0.05").unlink()
    with pytest.raises(Exception, match="masks of 'set-0.05' are missing"):
        launch._resolve(store, dataclasses.replace(run, sparsity=None))


def test_auto_engine_trains_masked_and_gradient_flow_runs_one_by_one(pruned_study):
    config, store, _ = pruned_study
    runs = plan_study(config, store, engine="auto").runs
    on_gpu = [dataclasses.replace(r, device="cuda") for r in runs]
    dense = [r for r in on_gpu if r.condition.name == "base"]
    masked = [r for r in on_gpu if r.condition.name == "magnitude-0.2"]
    assert choose_engine("auto", "cuda") == "fused"
    assert launch.engine_of(dense) == "fused"  # dense runs still fuse on CUDA
    assert launch.engine_of(masked) == "sequential"
    flow = [dataclasses.replace(r, recipe=dataclasses.replace(r.recipe, gradient_flow=True)) for r in dense]
    assert launch.engine_of(flow) == "sequential"
    assert fused_unsupported(masked[0]) == "its weights are masked (unstructured magnitude)"
    with pytest.raises(UserError, match="cannot be trained by the fused engine: its weights are masked"):
        train_fused(masked)


@pytest.mark.slow
def test_real_tiny_sparse_study_sweeps_and_reports(tmp_path):
    """resnet20 on digits, one epoch: real masks from the trained basemodel, real records, the report."""
    from hplandscape.report.study_report import write_report

    d = tiny_study_dict(conditions=CONDITIONS,
                        grid={"prior_lr": 0.1, "prior_wd": 1e-4, "log10_lr": [-1.5, -1.0], "log10_wd": [-4.0]},
                        train={"preset": "digits", "epochs": 1, "finetune_epochs": 1, "milestones": [],
                               "batch_size": 64, "gradient_flow": True})
    config = study_from_dict(d, "<real>")
    summary = run_sweep(config, tmp_path, executor="debug", progress=False)
    assert summary.finished and summary.done == 10, summary.describe()
    store = StudyStore(tmp_path)
    records = {r["condition"]: r for r in store.iter_records() if r["log10_lr"] == -1.0}
    assert records["magnitude-0.2"]["density"] == pytest.approx(0.2, abs=0.002)
    assert records["set-0.05"]["density"] == pytest.approx(0.05, abs=0.0005)
    assert records["random-0.2-finetune"]["pipeline"] == "finetune"
    assert records["global-0.5-finetune"]["flops"] < records["base"]["flops"]
    assert all(len(r["egf"]) == 2 for r in records.values())  # epochs 0 and 1
    index = write_report(tmp_path, n_boot=99)
    summary_md = (index.parent / "summary.md").read_text()
    assert "## Sparsity and gradient flow" in summary_md and "### Effective gradient flow" in summary_md
    assert (index.parent / "figures" / "egf_map.png").exists()
    table = (index.parent / "sparsity.csv").read_text()
    assert "magnitude-0.2,unstructured,magnitude,retrain" in table
    assert json.loads(store.spec_path("magnitude-0.2").read_text())["method"] == "magnitude"
