import json

import numpy as np
import pytest
import torch

from hplandscape.errors import UserError
from hplandscape.models import (build_model, count_flops, count_params, current_widths, get_entry, input_shape_of,
                                list_models, prunable_groups, save_weights)
from hplandscape.pruning.structured import (NORMALIZERS, ArchSpec, _flops_model, _global_widths, _uniform_widths,
                                            build_from_spec, filter_l1_norms, layer_floor, load_spec,
                                            normalize_importance, prune, prune_model, reachable, save_spec,
                                            smallest_ratio)

_CACHE = {}


def pruned(name, method, ratio):
    if (name, method, ratio) not in _CACHE:
        _CACHE[name, method, ratio] = prune_model(name, method, ratio)
    return _CACHE[name, method, ratio]


def width_model(name):
    return _flops_model(name, get_entry(name).num_classes, 3, input_shape_of(name))


def rankings(fm, seed=0):
    """Filter norms to rank on: i.i.d. ones, and ones whose scale differs by layer as after training
    (the case where raw-L1 global pruning empties whole layers)."""
    rng = np.random.default_rng(seed)
    iid = [rng.random(int(c)) for c in fm.original]
    scaled = [rng.random(int(c)) * 10 ** rng.normal(0, 1) for c in fm.original]
    return {"iid": iid, "layer-scaled": scaled}


@pytest.mark.parametrize("name", list_models())
def test_flops_budget_within_2_percent_on_the_width_model(name):
    # The budget is met by the width search alone (torch-pruning then cuts exactly those widths,
    # see the next tests), so every architecture × method × ratio is checked without pruning.
    fm = width_model(name)
    original = fm.flops(fm.original)
    for ratio in (0.2, 0.4, 0.6, 0.8):
        target = ratio * original
        candidates = {"uniform": _uniform_widths(fm, target)}
        candidates.update({f"global/{k}": _global_widths(fm, norms, target) for k, norms in rankings(fm).items()})
        for method, widths in candidates.items():
            assert abs(fm.flops(widths) / target - 1) <= 0.02, (name, method, ratio, fm.flops(widths) / original)
            assert (1 <= widths).all() and (widths <= fm.original).all(), (name, method, ratio)


@pytest.mark.parametrize("name", list_models())
def test_width_model_counts_the_flops_of_the_built_architecture(name):
    # The analytic FLOPs a spec records must be what the rebuilt network really costs.
    fm = width_model(name)
    rng = np.random.default_rng(1)
    for _ in range(2):
        widths = rng.integers(1, fm.original + 1)
        with torch.device("meta"):
            model = build_model(name, widths={k: int(w) for k, w in zip(fm.keys, widths)})
        assert count_flops(model, input_shape_of(name)) == fm.flops(widths)


@pytest.mark.parametrize("name, method, ratio", [("resnet20", "uniform", 0.5), ("resnet20", "global", 0.5),
                                                 ("mobilenet_v2", "global", 0.4), ("resnet50", "global", 0.2)])
def test_flops_budget_within_2_percent_through_torch_pruning(name, method, ratio):
    spec, module = pruned(name, method, ratio)
    assert abs(spec.flops / (ratio * spec.original_flops) - 1) <= 0.02
    assert spec.achieved_ratio == pytest.approx(spec.flops / spec.original_flops, abs=1e-6)
    assert count_flops(module, spec.input_shape) == spec.flops  # the pruned module, measured
    assert current_widths(module) == spec.widths
    assert min(spec.widths.values()) >= 1
    if method == "global":  # the default cap: every prunable layer keeps at least 10 % of its channels
        assert spec.min_kept_fraction >= 0.1 and spec.max_layer_prune == 0.9


def test_prune_refuses_a_module_torch_pruning_cut_differently(monkeypatch):
    # prune_model's own guard: the recorded (analytic) widths and FLOPs are only valid if
    # torch-pruning removed exactly the chosen channels; one channel fewer must be an error.
    import torch_pruning as tp

    real = tp.DependencyGraph.get_pruning_group

    def one_fewer(self, module, fn, idxs):
        return real(self, module, fn, idxs=idxs[:-1])

    monkeypatch.setattr(tp.DependencyGraph, "get_pruning_group", one_fewer)
    with pytest.raises(RuntimeError, match="torch-pruning left widths"):
        prune_model("resnet20", "uniform", 0.5)


@pytest.mark.parametrize("name", ["resnet56", "mobilenet_v2", "resnet50"])
def test_uniform_keeps_one_fraction_and_global_does_not(name):
    # The widths prune() chooses, from the width model and the L1 norms of prune()'s own random
    # init (seed 0); torch-pruning then cuts exactly these (see the tests above).
    fm = width_model(name)
    target = 0.4 * fm.flops(fm.original)
    c, k = fm.original, _uniform_widths(fm, target)
    # one fraction f with floor(f*C) <= kept <= ceil(f*C) for every layer
    assert ((k - 1) / c).max() <= ((k + 1) / c).min()
    torch.manual_seed(0)
    model = build_model(name)
    glob = _global_widths(fm, [filter_l1_norms(model.get_submodule(key)) for key in fm.keys], target) / c
    assert glob.max() - glob.min() > 0.3


@pytest.mark.parametrize("name", ["resnet56", "mobilenet_v2", "resnet50"])
def test_layers_outside_blocks_and_block_outputs_keep_their_shapes(name):
    spec, module = pruned(name, "global", 0.2)
    original = build_model(name)
    changed = set()
    keys = {g.key for g in prunable_groups(original)}
    for g in prunable_groups(original):
        changed |= {g.key, *g.bns, *g.depthwise}
        changed |= {c for c in g.consumers}
    before = {k: v.shape for k, v in original.state_dict().items()}
    after = {k: v.shape for k, v in module.state_dict().items()}
    assert before.keys() == after.keys()
    for key, shape in before.items():
        layer = key.rsplit(".", 1)[0]
        if layer not in changed:
            assert after[key] == shape, key
        elif layer in {c for g in prunable_groups(original) for c in g.consumers} - keys:
            assert after[key][0] == shape[0], key  # consumers keep their output channels
    first_conv = next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.out_channels == next(m for m in original.modules() if isinstance(m, torch.nn.Conv2d)).out_channels


@pytest.mark.parametrize("name, method", [("resnet56", "uniform"), ("mobilenet_v2", "global"), ("resnet50", "global")])
def test_rebuilt_from_spec_has_the_pruned_shapes_and_runs(name, method, tmp_path):
    spec, module = pruned(name, method, 0.4)
    path = save_spec(spec, tmp_path / "spec.json")
    rebuilt = build_from_spec(load_spec(path))
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in module.state_dict().items()}
    assert count_params(rebuilt) == spec.params
    assert rebuilt.eval()(torch.zeros(1, *spec.input_shape[:1], 32, 32)).shape[1] == spec.num_classes
    assert build_from_spec(spec.to_dict()) is not None  # the RunSpec.arch form


def test_rebuild_is_fresh_he_init():
    spec, module = pruned("resnet56", "uniform", 0.4)
    torch.manual_seed(1)
    a = build_from_spec(spec)
    assert not torch.equal(a.layer1[0].conv1.weight, module.layer1[0].conv1.weight)
    assert torch.all(a.layer1[0].bn1.weight == 1)


def test_digits_resnet20_prunes_both_ways():
    for method in ("uniform", "global"):
        spec = prune("resnet20", method, 0.5, input_shape=(1, 8, 8))  # grey follows from the shape
        assert spec.input_shape == (1, 8, 8) and spec.in_channels == 1 and abs(spec.achieved_ratio - 0.5) <= 0.01
        assert build_from_spec(spec).eval()(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def _checkpoint_with_one_strong_block(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet20")
    with torch.no_grad():
        model.layer3[2].conv1.weight.mul_(100)  # this block's filters outrank every other
        w = model.layer1[0].conv1.weight
        w.mul_(0.01)
        w[[3, 7, 11]] *= 1000  # three clear winners inside one layer
    return model, save_weights(tmp_path / "model.pt", "resnet20", model, 10, 3)


def test_l1_norms_are_torch_prunings_magnitude_importance():
    import torch_pruning as tp

    from hplandscape.pruning.structured import filter_l1_norms

    torch.manual_seed(0)
    model = build_model("resnet50").eval()
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, 3, 32, 32), verbose=False)
    importance = tp.importance.MagnitudeImportance(p=1, group_reduction="first", normalizer=None)
    for conv in (model.layer1[0].conv1, model.layer4[2].conv2):
        group = dg.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(range(conv.out_channels)))
        assert np.allclose(importance(group).numpy(), filter_l1_norms(conv), rtol=1e-5)


def test_ranking_comes_from_the_checkpoint(tmp_path):
    model, path = _checkpoint_with_one_strong_block(tmp_path)
    # raw norms: the scaled block outranks every other (a per-layer normaliser would undo the scale)
    spec, module = prune_model("resnet20", "global", 0.5, source=path, normalizer="none")
    assert spec.widths["layer3.2.conv1"] == 64
    import hashlib
    assert spec.source == "checkpoint:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert spec.init_seed is None
    # uniform: layer1.0.conv1 keeps its strongest filters, with their trained weights
    spec, module = prune_model("resnet20", "uniform", 0.2, source=path)
    kept = module.layer1[0].conv1.weight
    assert spec.widths["layer1.0.conv1"] >= 3
    for i in (3, 7, 11):
        assert any(torch.equal(model.layer1[0].conv1.weight[i], kept[j]) for j in range(kept.shape[0]))


def test_random_init_is_recorded_and_seeded():
    a, b, c = prune("resnet20", "global", 0.5, seed=1), prune("resnet20", "global", 0.5, seed=1), \
        prune("resnet20", "global", 0.5, seed=2)
    assert a.source == "random-init" and a.init_seed == 1
    assert a == b and a.content_hash == b.content_hash and a.content_hash != c.content_hash


def test_pruning_leaves_the_callers_generator_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    prune("resnet20", "uniform", 0.5)
    assert torch.equal(torch.rand(3), expected)


def test_summary_is_the_prune_json_shape():
    spec = pruned("resnet56", "uniform", 0.4)[0]
    s = json.loads(json.dumps(spec.summary()))
    assert {"model", "method", "target_ratio", "achieved_ratio", "original", "pruned", "layers"} <= set(s)
    assert set(s["original"]) == set(s["pruned"]) == {"params", "flops"}
    assert s["original"]["flops"] == spec.original_flops and s["pruned"]["params"] == spec.params
    assert len(s["layers"]) == 27
    kept = spec.widths["layer1.0.conv1"]
    assert s["layers"][0] == {"name": "layer1.0.conv1", "original_channels": 16, "kept_channels": kept,
                              "kept_fraction": kept / 16}
    assert s["min_kept_fraction"] == pytest.approx(min(layer["kept_fraction"] for layer in s["layers"]))
    assert s["normalizer"] is None and s["layers_at_cap"] is None  # uniform pruning has neither


def test_spec_file_is_readable_json_and_roundtrips(tmp_path):
    spec = pruned("mobilenet_v2", "global", 0.4)[0]
    path = save_spec(spec, tmp_path / "specs" / "global-0.4.json")
    text = path.read_text()
    assert text.startswith("{\n  \"achieved_ratio\"") and "state_dict" not in text
    data = json.loads(text)
    assert data["content_hash"] == spec.content_hash
    assert load_spec(path) == spec
    assert [p.name for p in path.parent.iterdir()] == ["global-0.4.json"]


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.pop("widths"), "missing field.*widths"),
    (lambda d: d.update(model="resnet57"), "model is not a registered architecture"),
    (lambda d: d["widths"].update({"layer1.0.conv1": 99}), r"widths\['layer1.0.conv1'\] must be an integer in \[1, 16\]"),
    (lambda d: d["widths"].update({"layer1.0.conv1": 1}), "content_hash .* edited"),
    (lambda d: d.update(target_ratio=1.5), r"target_ratio must be a number in \(0, 1\]"),
    (lambda d: d.update(colour="red"), "unknown field.*colour"),
    (lambda d: d.update(source="my-laptop"), "source must be"),
])
def test_corrupt_spec_names_the_file_and_field(tmp_path, edit, match):
    path = save_spec(pruned("resnet56", "uniform", 0.4)[0], tmp_path / "s.json")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=f"{path}: .*{match}"):
        load_spec(path)


def test_non_json_spec(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{not json")
    with pytest.raises(UserError, match=f"{path}: not a valid architecture spec"):
        load_spec(path)


@pytest.mark.parametrize("ratio", [0, -0.5, 1.01, float("nan"), "0.5", True])
def test_bad_ratio(ratio):
    with pytest.raises(UserError, match=r"ratio must be a number in \(0, 1\]"):
        prune("resnet20", "uniform", ratio)


def test_unknown_method_and_model():
    with pytest.raises(UserError, match="unknown pruning method 'random'; allowed: uniform, global"):
        prune("resnet20", "random", 0.5)
    with pytest.raises(UserError, match="unknown model 'vgg19'; available: .*resnet20"):
        prune("vgg19", "uniform", 0.5)


def test_unreachable_ratio_names_the_smallest_reachable_one():
    with pytest.raises(UserError, match=r"smallest reachable ratio is 0\.\d+ \(every prunable layer at its cap, "
                                        r"keeping ≥ 10 % .*pruning.max_layer_prune") as err:
        prune("resnet20", "global", 0.01)
    smallest = float(str(err.value).split("ratio is ")[1].split()[0])
    assert smallest == pytest.approx(smallest_ratio("resnet20", "global"), abs=1e-4)  # known before pruning
    spec = prune("resnet20", "global", smallest)
    # every layer at its floor under the 0.9 cap: 2 of 16, 4 of 32, 7 of 64 channels
    assert set(spec.widths.values()) == {2, 4, 7} and spec.layers_at_cap == list(spec.widths)
    assert prune("resnet20", "uniform", 1.0).widths == prune("resnet20", "uniform", 1.0).original_widths


@pytest.mark.parametrize("name", ["resnet56", "mobilenet_v2"])
def test_smallest_ratio_is_one_channel_per_layer_or_the_cap(name):
    fm = width_model(name)
    narrowest = fm.flops(np.ones_like(fm.original)) / fm.flops(fm.original)
    # uniform, and global with a cap loose enough to leave one channel (every layer here has < 1000)
    assert smallest_ratio(name, "uniform") == pytest.approx(narrowest, rel=1e-12)
    assert smallest_ratio(name, "global", max_layer_prune=0.999) == pytest.approx(narrowest, rel=1e-12)
    floors = np.array([layer_floor(int(c), 0.9) for c in fm.original])
    assert (floors >= 0.1 * fm.original).all()
    capped = fm.flops(floors) / fm.flops(fm.original)
    assert smallest_ratio(name, "global") == pytest.approx(capped, rel=1e-12) and capped > narrowest
    # within prune()'s 2 % tolerance a ratio just below the smallest still counts as reachable
    assert reachable(narrowest / 1.01, narrowest) and not reachable(narrowest / 1.03, narrowest)
    assert smallest_ratio("resnet20", "global", in_channels=1, input_shape=(1, 8, 8)) != \
        smallest_ratio("resnet20", "global")  # counted at the data's input shape
    with pytest.raises(UserError, match="unknown pruning method 'random'"):
        smallest_ratio(name, "random")


def test_checkpoint_of_another_architecture_or_pruned_or_mismatched(tmp_path):
    path = save_weights(tmp_path / "m.pt", "resnet20", build_model("resnet20"), 10, 3)
    with pytest.raises(UserError, match=f"{path}: holds weights of 'resnet20', not of 'resnet56'"):
        prune("resnet56", "uniform", 0.5, source=path)
    with pytest.raises(UserError, match=f"{path}: was trained with in_channels=3, but in_channels=1"):
        prune("resnet20", "uniform", 0.5, in_channels=1, source=path)
    small = save_weights(tmp_path / "p.pt", "resnet20", build_model("resnet20", widths={"layer1.0.conv1": 2}), 10, 3,
                         widths={"layer1.0.conv1": 2})
    with pytest.raises(UserError, match="already pruned"):
        prune("resnet20", "uniform", 0.5, source=small)
    corrupt = tmp_path / "c.pt"
    corrupt.write_bytes(b"\x00" * 10)
    with pytest.raises(UserError, match=str(corrupt)):
        prune("resnet20", "uniform", 0.5, source=corrupt)


def test_spec_type_is_frozen():
    spec = pruned("resnet56", "uniform", 0.4)[0]
    with pytest.raises(Exception):
        spec.method = "global"
    assert isinstance(ArchSpec.from_dict(spec.to_dict()), ArchSpec)
