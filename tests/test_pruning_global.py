"""Global pruning that allocates width: normalised L1 importance, a per-layer cap, the raw variant.

The widths are chosen on the analytic FLOPs model from the norms of prune()'s own random init
(seed 0), so most checks need no torch-pruning; the ones that run it are marked as such.
"""

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch

from hplandscape.errors import UserError
from hplandscape.models import build_model, get_entry, input_shape_of
from hplandscape.pruning.structured import (DEFAULT_MAX_LAYER_PRUNE, DEFAULT_NORMALIZER, NORMALIZERS, _flops_model,
                                            _global_widths, filter_l1_norms, layer_floor, load_spec,
                                            normalize_importance, prune, save_spec)

# The widths of the raw single threshold (normalizer none, no cap) before the cap existed, from
# `hplandscape prune NAME --method global --ratio R --json` (random init, seed 0).
OLD_RAW_WIDTHS = {
    ("resnet56", 0.2): [1] * 19 + [32, 36, 34, 39, 35, 30, 40, 34],
    ("resnet20", 0.5): [1, 1, 1, 1, 31, 32, 1, 64, 64],
}
CASES = [("resnet56", 0.2), ("resnet56", 0.6), ("mobilenet_v2", 0.4), ("resnet50", 0.4), ("resnet20", 0.5)]


def width_model(name):
    return _flops_model(name, get_entry(name).num_classes, 3, input_shape_of(name))


_NORMS = {}


def init_norms(name):
    """The filter norms prune() ranks with no source: He init drawn after manual_seed(0)."""
    if name not in _NORMS:
        torch.manual_seed(0)
        model = build_model(name)
        _NORMS[name] = [filter_l1_norms(model.get_submodule(k)) for k in width_model(name).keys]
    return _NORMS[name]


def single_fraction_explains(kept, original) -> bool:
    """Whether one fraction f with floor(f·C) <= kept <= ceil(f·C) fits every layer (uniform)."""
    return ((kept - 1) / original).max() <= ((kept + 1) / original).min()


@pytest.mark.parametrize("name, ratio", CASES)
def test_default_global_pruning_meets_the_budget_keeps_10_percent_and_is_not_uniform(name, ratio):
    fm = width_model(name)
    target = ratio * fm.flops(fm.original)
    kept = _global_widths(fm, init_norms(name), target, DEFAULT_NORMALIZER, DEFAULT_MAX_LAYER_PRUNE)
    assert abs(fm.flops(kept) / target - 1) <= 0.02
    assert (kept / fm.original).min() >= 0.1
    assert not single_fraction_explains(kept, fm.original)


@pytest.mark.parametrize("normalizer", NORMALIZERS)
@pytest.mark.parametrize("name", ["resnet56", "mobilenet_v2", "resnet50"])
def test_every_normalizer_meets_the_budget_and_the_cap(name, normalizer):
    fm = width_model(name)
    rng = np.random.default_rng(3)
    scaled = [rng.random(int(c)) * 10 ** rng.normal(0, 1) for c in fm.original]  # scale differs by layer
    for norms in (init_norms(name), scaled):
        for ratio, cap in ((0.3, 0.9), (0.6, 0.5)):
            target = ratio * fm.flops(fm.original)
            kept = _global_widths(fm, norms, target, normalizer, cap)
            assert abs(fm.flops(kept) / target - 1) <= 0.02, (ratio, cap)
            assert (kept >= [layer_floor(int(c), cap) for c in fm.original]).all() and (kept <= fm.original).all()


def test_raw_variant_reproduces_the_widths_from_before_the_cap():
    for (name, ratio), old in OLD_RAW_WIDTHS.items():
        fm = width_model(name)
        kept = _global_widths(fm, init_norms(name), ratio * fm.flops(fm.original), "none", None)
        assert kept.tolist() == old
    # through prune() and torch-pruning: a cap that leaves one channel in these layers changes nothing
    spec = prune("resnet20", "global", 0.5, normalizer="none", max_layer_prune=0.99)
    assert list(spec.widths.values()) == OLD_RAW_WIDTHS["resnet20", 0.5]
    assert (spec.normalizer, spec.max_layer_prune) == ("none", 0.99)


def test_capped_layers_drop_out_and_the_others_share_the_budget():
    # In one layer all but 8 filters are so weak that every other filter outranks them: it stays
    # at its cap and the threshold moves down through the other layers until the budget is met.
    name = "resnet20"
    fm = width_model(name)
    norms = [n.copy() for n in init_norms(name)]
    norms[4] = np.r_[np.ones(8), np.full(24, 1e-3)]  # layer2.1.conv1, 32 channels
    target = 0.5 * fm.flops(fm.original)
    kept = _global_widths(fm, norms, target, "mean", 0.75)
    assert kept[4] == layer_floor(32, 0.75) == 8
    assert abs(fm.flops(kept) / target - 1) <= 0.02
    others = np.delete(kept / fm.original, 4)
    assert others.min() > 0.25  # no other layer is pushed to its cap


@pytest.mark.parametrize("normalizer", NORMALIZERS)
def test_normalisers_are_torch_prunings(normalizer):
    import torch_pruning as tp

    torch.manual_seed(0)
    model = build_model("resnet20").eval()
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, 3, 32, 32), verbose=False)
    imp = tp.importance.MagnitudeImportance(p=1, group_reduction="first",
                                            normalizer=None if normalizer == "none" else normalizer)
    conv = model.layer2[1].conv1
    with torch.no_grad():
        conv.weight[3] *= 0.2  # spread the norms so every normaliser has something to do
    group = dg.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(range(conv.out_channels)))
    ours = normalize_importance(filter_l1_norms(conv), normalizer)
    assert np.allclose(imp(group).numpy(), ours, rtol=1e-4, atol=1e-6)
    # increasing in the norm: within a layer the strongest filters stay the strongest
    norms = filter_l1_norms(conv)
    assert (np.argsort(ours, kind="stable") == np.argsort(norms, kind="stable")).all()


def test_normaliser_edge_cases():
    assert normalize_importance(np.zeros(4), "mean").tolist() == [0.0] * 4  # no division by zero
    assert normalize_importance(np.array([2.0]), "gaussian").tolist() == [0.0]
    assert normalize_importance(np.array([1.0, 3.0]), "sum").tolist() == [0.25, 0.75]
    with pytest.raises(UserError, match="unknown importance normalizer 'l2'; allowed: none, mean"):
        normalize_importance(np.ones(3), "l2")


def test_layer_floor_keeps_at_least_the_capped_fraction_and_one_channel():
    assert [layer_floor(c, 0.9) for c in (1, 9, 10, 11, 16, 64, 960)] == [1, 1, 1, 2, 2, 7, 96]
    assert layer_floor(16, 0.5) == 8 and layer_floor(3, 0.999) == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"normalizer": "l2"}, "unknown importance normalizer 'l2'"),
    ({"normalizer": None}, "unknown importance normalizer None; allowed: none"),
    ({"max_layer_prune": 1.0}, r"max_layer_prune must be a number in \(0, 1\)"),
    ({"max_layer_prune": 0}, r"max_layer_prune must be a number in \(0, 1\)"),
    ({"max_layer_prune": True}, r"max_layer_prune must be a number in \(0, 1\)"),
])
def test_bad_global_settings_are_user_errors(kwargs, match):
    with pytest.raises(UserError, match=match):
        prune("resnet20", "global", 0.5, **kwargs)


def test_uniform_ignores_and_does_not_record_the_global_settings():
    a = prune("resnet20", "uniform", 0.5)
    b = prune("resnet20", "uniform", 0.5, normalizer="none", max_layer_prune=0.5)
    assert a == b and a.normalizer is None and a.max_layer_prune is None


def _global_spec():
    spec = prune("resnet20", "global", 0.5, input_shape=(1, 8, 8))  # small and quick
    assert (spec.normalizer, spec.max_layer_prune) == (DEFAULT_NORMALIZER, DEFAULT_MAX_LAYER_PRUNE)
    return spec


def test_spec_round_trip_records_the_settings_in_the_hash(tmp_path):
    spec = _global_spec()
    path = save_spec(spec, tmp_path / "g.json")
    data = json.loads(path.read_text())
    assert (data["normalizer"], data["max_layer_prune"]) == (DEFAULT_NORMALIZER, DEFAULT_MAX_LAYER_PRUNE)
    assert load_spec(path) == spec
    other = dataclasses.replace(spec, normalizer="max")
    assert other.content_hash != spec.content_hash
    assert dataclasses.replace(spec, max_layer_prune=0.8).content_hash != spec.content_hash


def test_a_spec_file_from_before_the_settings_still_loads(tmp_path):
    data = _global_spec().to_dict()
    del data["normalizer"], data["max_layer_prune"]
    # the content hash as the older code wrote it: canonical JSON of the fields it knew
    data["content_hash"] = hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    spec = load_spec(path)
    assert spec.normalizer is None and spec.max_layer_prune is None and spec.layers_at_cap is None
    assert spec.content_hash == data["content_hash"]


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(normalizer="l2"), "normalizer must be one of none, mean"),
    (lambda d: d.update(max_layer_prune=1.5), r"max_layer_prune must be a number in \(0, 1\), got 1.5"),
    (lambda d: d.pop("normalizer"), "normalizer must be one of"),  # a cap without its normaliser
    (lambda d: d.update(method="uniform"), "normalizer is a global-pruning setting, but the method is 'uniform'"),
])
def test_corrupt_global_settings_name_the_file_and_field(tmp_path, edit, match):
    data = _global_spec().to_dict()
    edit(data)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=f"{path}: {match}"):
        load_spec(path)


def test_light_load_checks_the_file_but_not_the_registry(tmp_path):
    spec = _global_spec()
    data = spec.to_dict()
    path = save_spec(spec, tmp_path / "s.json")
    assert load_spec(path, check_architecture=False) == spec
    data["widths"]["layer1.0.conv1"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"widths\['layer1.0.conv1'\] must be an integer in \[1, 16\]"):
        load_spec(path, check_architecture=False)
