"""Unstructured masks: which weights, how many per layer, the masks file, held through training, SET."""

import dataclasses

import pytest
import torch
from torch import nn

from hplandscape.errors import UserError
from hplandscape.models import build_model
from hplandscape.pruning.mask_spec import MaskSpec, load_mask_spec, save_mask_spec
from hplandscape.pruning.set_topology import epoch_generator, prune_and_regrow
from hplandscape.pruning.unstructured import (MaskedTraining, erdos_renyi_counts, load_masks, magnitude_counts,
                                              make_masks, masks_sha256, measure, prunable_weights, save_masks)

SHAPE = (1, 8, 8)  # digits


@pytest.fixture(scope="module")
def made():
    """Every method at both densities of the preset, from one seeded He init of ResNet-20."""
    return {(m, d): make_masks("resnet20", m, d, input_shape=SHAPE, num_classes=10, seed=3)
            for m in ("magnitude", "magnitude_layerwise", "random", "set") for d in (0.2, 0.05)}


def test_first_convolution_and_classifier_stay_dense():
    model = build_model("resnet20", num_classes=10, in_channels=1)
    names = list(prunable_weights(model))
    assert "conv1" not in names and "fc" not in names
    assert names[0] == "layer1.0.conv1" and names[-1] == "layer3.2.conv2" and len(names) == 18
    with pytest.raises(UserError, match="classifier"):
        prunable_weights(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3)))


def test_densities_are_within_one_percent_of_the_target(made):
    for (method, density), (spec, masks) in made.items():
        kept = sum(int(m.sum()) for m in masks.values())
        total = sum(m.numel() for m in masks.values())
        assert abs(kept / total - density) <= 0.01 * density, (method, density, kept / total)
        assert spec.achieved_density == pytest.approx(kept / total, abs=1e-6)
        assert spec.kept == {k: int(m.sum()) for k, m in masks.items()}
        assert spec.flops < spec.original_flops and spec.params < spec.original_params


def test_each_method_distributes_the_weights_as_it_says(made):
    mag, masks = made[("magnitude", 0.05)]
    # the floor: every layer keeps at least 10 % of the target density
    assert all(k >= 0.1 * 0.05 * n for k, n in zip(mag.kept.values(), mag.sizes.values()))
    assert len(set(round(d, 2) for d in mag.densities.values())) > 1  # the ranking, not one density
    layerwise, _ = made[("magnitude_layerwise", 0.05)]
    assert all(abs(d - 0.05) < 0.01 for d in layerwise.densities.values())
    rand, rand_masks = made[("random", 0.05)]
    assert rand.kept == mag.kept  # the control: magnitude's counts ...
    assert any(not torch.equal(rand_masks[k], masks[k]) for k in masks)  # ... at other positions
    assert (rand.mask_seed, rand.layer_floor, mag.mask_seed) == (3, 0.1, None)
    set_spec, _ = made[("set", 0.05)]
    assert set_spec.zeta == 0.3 and set_spec.layer_floor is None
    # Erdős–Rényi: a 16→16 layer is denser than a 64→64 one
    assert set_spec.densities["layer1.0.conv1"] > set_spec.densities["layer3.2.conv2"]


def test_magnitude_keeps_the_largest_weights_and_its_floor():
    weights = {"a": torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.4, 0.3, 0.2, 0.1]),
               "b": torch.tensor([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.011])}
    # density 0.3 of 20 weights = 6; floor 1.0 × 0.3 × 10 = 3 per layer, then nothing is left
    assert magnitude_counts(weights, 0.3, 1.0) == {"a": 3, "b": 3}
    # a small floor (1 weight each): the 4 others all go to the layer of larger weights
    assert magnitude_counts(weights, 0.3, 0.1) == {"a": 5, "b": 1}


def test_erdos_renyi_keeps_a_layer_dense_when_its_share_exceeds_one():
    counts = erdos_renyi_counts({"small": torch.Size([2, 2]), "big": torch.Size([100, 100])}, 0.5)
    assert counts["small"] == 4  # would be > 1: dense, and ε is solved again for the rest
    assert sum(counts.values()) == pytest.approx(0.5 * 10004, abs=1)


def test_masks_file_and_spec_round_trip_and_refuse_other_masks(tmp_path, made):
    spec, masks = made[("set", 0.2)]
    save_masks(tmp_path / "m.pt", masks)
    save_mask_spec(spec, tmp_path / "m.json")
    again = load_mask_spec(tmp_path / "m.json")
    assert again == spec and list(again.sizes) == list(spec.sizes)  # layers stay in module order
    assert MaskSpec.from_dict({**spec.to_dict(), "content_hash": spec.content_hash}) == spec
    loaded = load_masks(tmp_path / "m.pt", spec)
    assert masks_sha256(loaded) == spec.masks_sha256
    other = dict(masks)
    first = next(iter(other))
    other[first] = ~other[first]
    save_masks(tmp_path / "other.pt", other)
    with pytest.raises(UserError, match="other.pt: its masks are not the ones its spec describes"):
        load_masks(tmp_path / "other.pt", spec)
    with pytest.raises(UserError, match="m.json: content_hash"):
        edited = {**spec.to_dict(), "content_hash": spec.content_hash, "target_density": 0.3}
        (tmp_path / "m.json").write_text(__import__("json").dumps(edited))
        load_mask_spec(tmp_path / "m.json")
    with pytest.raises(UserError, match="method must be one of magnitude"):
        MaskSpec.from_dict({**spec.to_dict(), "method": "global"})


def _masked_model(seed=0):
    torch.manual_seed(seed)
    model = build_model("resnet20", num_classes=10, in_channels=1)
    _, masks = make_masks("resnet20", "magnitude", 0.2, input_shape=SHAPE, num_classes=10, seed=seed)
    return model, masks


def _steps(model, opt, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(8, 1, 8, 8, generator=g)
        y = torch.randint(0, 10, (8,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("nesterov", [False, True])
def test_masked_weights_stay_exactly_zero_under_momentum_and_weight_decay(nesterov):
    model, masks = _masked_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=0.05, nesterov=nesterov)
    held = MaskedTraining(model, masks, opt)
    held.apply()
    before = {k: w.detach().clone() for k, w in prunable_weights(model).items()}
    _steps(model, opt)
    for k, w in prunable_weights(model).items():
        assert torch.count_nonzero(w[~masks[k]]) == 0, k
        assert not torch.equal(w[masks[k]], before[k][masks[k]]), k  # the kept ones trained
        buf = opt.state[w]["momentum_buffer"]
        assert torch.count_nonzero(buf[~masks[k]]) == 0, k  # momentum cannot revive them later
    assert measure(model, SHAPE).density == pytest.approx(0.2, abs=0.002)
    assert held.density == pytest.approx(0.2, abs=0.002)


def test_set_keeps_each_layers_density_while_changing_its_mask():
    model, masks = _masked_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    held = MaskedTraining(model, masks, opt, zeta=0.3, seed=7)
    held.apply()
    _steps(model, opt)
    old = {k: m.clone() for k, m in held.masks.items()}
    assert held.end_epoch(0, epochs=3)
    for k, m in held.masks.items():
        assert int(m.sum()) == int(old[k].sum()), k
        assert not torch.equal(m, old[k]), k
        w = prunable_weights(model)[k]
        assert torch.count_nonzero(w[~m]) == 0 and torch.count_nonzero(opt.state[w]["momentum_buffer"][~m]) == 0
    assert not held.end_epoch(2, epochs=3)  # never after the last epoch
    # the same weights, masks and seed regrow the same positions
    again = prune_and_regrow(prunable_weights(model), old, 0.3, epoch_generator(7, 0))
    assert all(torch.equal(again[k], held.masks[k].cpu()) for k in again)


def test_masked_training_refuses_masks_of_another_network():
    model, masks = _masked_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    wrong = dict(list(masks.items())[1:])
    with pytest.raises(UserError, match="other layers"):
        MaskedTraining(model, wrong, opt)
    held = MaskedTraining(model, masks, opt)
    with pytest.raises(UserError, match="ckpt: holds no masks"):
        held.load_state_dict({"egf": []}, "ckpt")


def test_make_masks_checks_its_arguments():
    for kwargs, match in ((dict(method="global"), "unknown unstructured"), (dict(density=1.0), "density"),
                          (dict(layer_floor=0.0), "layer_floor"), (dict(zeta=1.0), "zeta")):
        args = {"method": "magnitude", "density": 0.2, **kwargs}
        with pytest.raises(UserError, match=match):
            make_masks("resnet20", args.pop("method"), args.pop("density"), input_shape=SHAPE, **args)


def test_spec_records_source_of_a_checkpoint(tmp_path):
    from hplandscape.models import save_weights
    from hplandscape.pruning.structured import file_sha256

    model = build_model("resnet20", num_classes=10, in_channels=1)
    path = save_weights(tmp_path / "model.pt", "resnet20", model, 10, 1)
    spec, masks = make_masks("resnet20", "magnitude", 0.2, input_shape=SHAPE, source=path)
    assert spec.source == f"checkpoint:{file_sha256(path)}" and spec.init_seed is None
    # the ranking is the checkpoint's: its largest weights are kept
    w = dict(model.named_parameters())["layer2.1.conv2.weight"].abs()
    m = masks["layer2.1.conv2"]
    assert w[m].min() >= w[~m].max()
    assert dataclasses.replace(spec, source="random-init") != spec
