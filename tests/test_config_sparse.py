"""Config of unstructured conditions, pipelines and gradient flow: validated once, errors name the key."""

import copy
from pathlib import Path

import pytest
import yaml
from conftest import tiny_study_dict

from hplandscape.errors import ConfigError
from hplandscape.study.loading import load_study
from hplandscape.study.validation import study_from_dict

REPO = Path(__file__).resolve().parents[1]


def sparse_dict(**overrides):
    d = tiny_study_dict(conditions=[{"method": "none"}, {"method": "magnitude", "ratio": 0.2},
                                    {"method": "set", "ratio": 0.05, "pipeline": "finetune"},
                                    {"method": "global", "ratio": 0.5, "pipeline": "finetune"}])
    d["train"] = {**d["train"], "finetune_epochs": 2}
    for k, v in overrides.items():
        d[k] = v
    return d


def test_sparse_conditions_pipelines_and_round_trip():
    cfg = study_from_dict(sparse_dict(), "s.yaml")
    assert [c.name for c in cfg.conditions] == ["base", "magnitude-0.2", "set-0.05-finetune", "global-0.5-finetune"]
    base, mag, set_ft, glob_ft = cfg.conditions
    assert (mag.sparse, mag.structured, mag.finetune) == (True, False, False)
    assert (set_ft.sparse, set_ft.finetune, glob_ft.structured, glob_ft.finetune) == (True, True, True, True)
    assert cfg.recipe_for(set_ft).epochs == 2 and cfg.recipe_for(mag).epochs == cfg.recipe.epochs
    again = study_from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())), "again.yaml")
    assert again.to_dict() == cfg.to_dict() and again.conditions == cfg.conditions


def test_a_study_without_the_new_settings_resolves_as_before():
    d = tiny_study_dict()
    resolved = study_from_dict(d, "t.yaml").to_dict()
    assert "pipeline" not in resolved["conditions"][1] and set(resolved["pruning"]) == {
        "source", "normalizer", "max_layer_prune"}
    assert "finetune_epochs" not in resolved["train"] and "gradient_flow" not in resolved["train"]


def test_the_study_wide_pipeline_is_every_pruned_conditions_default():
    d = sparse_dict(pruning={"pipeline": "finetune"})
    d["conditions"] = [{"method": "none"}, {"method": "random", "ratio": 0.2},
                       {"method": "uniform", "ratio": 0.5, "pipeline": "retrain"}]
    cfg = study_from_dict(d, "s.yaml")
    assert [(c.name, c.pipeline) for c in cfg.conditions] == [
        ("base", "retrain"), ("random-0.2-finetune", "finetune"), ("uniform-0.5", "retrain")]


BAD = [
    (lambda d: d["conditions"][1].update(ratio=1.0), "conditions[1].ratio",
     "is the density of an unstructured condition (magnitude): the fraction of the prunable weights kept"),
    (lambda d: d["conditions"][1].update(method="sparse"), "conditions[1].method", "must be one of none, uniform"),
    (lambda d: d["conditions"][1].update(pipeline="rewind"), "conditions[1].pipeline",
     "must be one of retrain, finetune; got 'rewind'"),
    (lambda d: d["conditions"][0].update(pipeline="finetune"), "conditions[0].pipeline",
     "must be retrain (or absent) for the unpruned basemodel"),
    (lambda d: d["conditions"].append({"method": "magnitude", "ratio": 0.2, "name": "again"}), "conditions",
     "lists the same (method, ratio, pipeline) twice"),
    (lambda d: d["train"].pop("finetune_epochs"), "train.finetune_epochs",
     "is required: conditions[2] (set-0.05-finetune) uses pipeline finetune"),
    (lambda d: d["train"].update(finetune_epochs=0), "train.finetune_epochs", "must be a positive integer, got 0"),
    (lambda d: d["train"].update(gradient_flow="yes"), "train.gradient_flow", "must be true or false, got 'yes'"),
    (lambda d: d.update(pruning={"source": "random"}), "pruning.source", "must be trained when a condition fine-tunes"),
    (lambda d: d.update(pruning={"pipeline": "scratch"}), "pruning.pipeline", "must be one of retrain, finetune"),
    (lambda d: d.update(pruning={"sparse_layer_floor": 0}), "pruning.sparse_layer_floor",
     "must be a number in (0, 1]"),
    (lambda d: d.update(pruning={"set_zeta": 1.0}), "pruning.set_zeta", "must be a number in (0, 1)"),
    (lambda d: d["launcher"].update(engine="fused"), "launcher.engine",
     "is 'fused', but condition 'magnitude-0.2' is unstructured (magnitude); the fused engine holds no masks"),
]


@pytest.mark.parametrize("edit, key, message", BAD)
def test_bad_sparse_settings_name_the_file_key_value_and_what_is_allowed(edit, key, message):
    d = copy.deepcopy(sparse_dict())
    edit(d)
    with pytest.raises(ConfigError) as err:
        study_from_dict(d, "grids/s.yaml")
    text = str(err.value)
    assert text.startswith(f"grids/s.yaml: {key} ") and message in text, text


def test_fused_engine_refused_with_gradient_flow_alone():
    d = tiny_study_dict(launcher={"executor": "local", "engine": "fused"})
    d["train"] = {**d["train"], "gradient_flow": True}
    with pytest.raises(ConfigError, match="launcher.engine is 'fused', but train.gradient_flow is true"):
        study_from_dict(d, "s.yaml")


@pytest.mark.parametrize("name", ["sparse_digits.yaml", "sparse_resnet56_cifar10.yaml"])
def test_the_sparse_presets_load(name):
    cfg = load_study(REPO / "grids" / name)
    kinds = {(c.method, c.ratio, c.pipeline) for c in cfg.conditions}
    for pipeline in ("retrain", "finetune"):
        assert {("uniform", 0.4, pipeline), ("global", 0.4, pipeline)} <= kinds
        for method in ("magnitude", "random", "set"):
            assert {(method, 0.2, pipeline), (method, 0.05, pipeline)} <= kinds
    assert len(cfg.conditions) == 17 and len(cfg.seeds) >= 2 and cfg.recipe.gradient_flow
    assert cfg.recipe.finetune_epochs < cfg.recipe.epochs


def test_one_fine_tuning_epoch_decays_its_lr_on_steps():
    # 0.5 × 1 fine-tuning epoch rounds to epoch 0: the milestones fall on steps (issue 29: E)
    d = sparse_dict()
    d["train"]["finetune_epochs"] = 1
    cfg = study_from_dict(d, "s.yaml")
    tuned = cfg.recipe_for(cfg.conditions[2])
    assert tuned.epochs == 1 and tuned.milestones_on_steps and tuned.decay_steps(8) == (4, 6)
    assert not cfg.recipe_for(cfg.conditions[0]).milestones_on_steps
