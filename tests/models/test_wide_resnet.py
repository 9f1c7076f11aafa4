"""WRN-22-2 (Zagoruyko & Komodakis, 2016): its construction against the paper's counts, shapes,
prunable widths, structured pruning and fusion."""

import pytest
import torch
from torch import nn

from hplandscape.models import build_model, count_flops, count_params, list_models, model_info, prunable_groups
from hplandscape.models.wide_resnet import WideResNet
from hplandscape.pruning.structured import TOLERANCE, build_from_spec, prune_model
from hplandscape.study.config import BUILTIN_MODELS
from hplandscape.training.model_fusion import fuse_models


# Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016 (arXiv:1605.07146v4), Table 4
# (depth, k, parameters in millions) and Table 2 (WRN-28-2 with B(3,3) blocks, 1.5 M). The paper
# prints one decimal of a million: equality after rounding to it is the tolerance (±0.05 M).
@pytest.mark.parametrize("depth, k, millions", [
    (40, 1, 0.6), (40, 2, 2.2), (40, 4, 8.9), (40, 8, 35.7), (28, 10, 36.5), (28, 12, 52.5),
    (22, 8, 17.2), (22, 10, 26.8), (16, 8, 11.0), (16, 10, 17.1), (28, 2, 1.5),
])
def test_the_construction_gives_the_papers_parameter_counts(depth, k, millions):
    with torch.device("meta"):
        model = WideResNet(depth, k)
    assert round(count_params(model) / 1e6, 1) == millions


def test_wrn22_2_counts():
    # The paper has no count for WRN-22-2 with B(3,3) blocks (its 1.1 M WRN-22-2 in Table 2 is
    # B(3,1,3)); built as the networks above, it has 1,079,642 parameters by hand: stem 432;
    # stage 1 (32 ch) 14,432 + 2·18,560; stage 2 (64 ch) 57,536 + 2·73,984; stage 3 (128 ch)
    # 229,760 + 2·295,424; final BN 256; fc 1,290.
    # FLOPs: Sundar & Dwaraknath, "[Re] Rigging the Lottery", ReScience C 7(2), 2021, Table 2,
    # dense WRN-22-2 inference: 3.15e8 (MicroNet counting, multiplications + additions = 2 × MACs,
    # this package's convention), printed to 3 digits (±0.16 %). By hand: stem 442,368 MACs, each
    # stage 52,428,800, fc 1,280, i.e. 157,730,048 MACs.
    info = model_info("wrn22_2")
    assert (info.params, info.flops) == (1_079_642, 2 * 157_730_048)
    assert f"{info.flops:.2e}" == "3.15e+08"


def test_structure_is_pre_activation_with_1x1_shortcuts_where_the_shape_changes():
    model = build_model("wrn22_2")
    assert model.conv1.out_channels == 16
    stages = [model.layer1, model.layer2, model.layer3]
    assert [len(s) for s in stages] == [3, 3, 3]
    assert [s[0].conv2.out_channels for s in stages] == [32, 64, 128]
    assert [s[0].shortcut.kernel_size for s in stages] == [(1, 1)] * 3
    assert all(b.shortcut is None for s in stages for b in s[1:])
    assert [s[0].conv1.stride for s in stages] == [(1, 1), (2, 2), (2, 2)]
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("size", [8, 32])
def test_forward_shapes(in_channels, size):
    model = build_model("wrn22_2", num_classes=7, in_channels=in_channels).eval()
    assert model(torch.zeros(2, in_channels, size, size)).shape == (2, 7)


def test_the_inner_width_of_each_block_is_prunable():
    model = build_model("wrn22_2")
    groups = prunable_groups(model)
    assert [g.key for g in groups] == [f"layer{s}.{b}.conv1" for s in (1, 2, 3) for b in range(3)]
    assert groups[0].bns == ("layer1.0.bn2",) and groups[0].consumers == ("layer1.0.conv2",)


@pytest.mark.parametrize("method", ["uniform", "global"])
def test_pruning_to_half_the_flops_and_rebuilding_from_the_spec(method):
    spec, module = prune_model("wrn22_2", method, 0.5)
    assert abs(spec.flops / (0.5 * spec.original_flops) - 1) <= TOLERANCE
    rebuilt = build_from_spec(spec)
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(rebuilt) == shapes(module)
    assert count_flops(rebuilt, (3, 32, 32)) == spec.flops
    # block outputs (conv2, the shortcuts) are tied by the additions and keep their size
    original = shapes(build_model("wrn22_2"))
    for key, shape in original.items():
        if ".conv2." in key or ".shortcut." in key:
            assert shapes(module)[key][0] == shape[0], key
        elif ".conv1." not in key and ".bn2." not in key:
            assert shapes(module)[key] == shape, key


def test_registered_and_built_in():
    assert "wrn22_2" in list_models() and "wrn22_2" in BUILTIN_MODELS


def test_fusion_reproduces_each_model():
    torch.manual_seed(0)
    models = [build_model("wrn22_2", in_channels=1).double() for _ in range(2)]
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    out = fuse_models(models, example_input=x).eval()(x)
    for b, m in enumerate(models):
        torch.testing.assert_close(out[:, b], m.eval()(x), rtol=0, atol=1e-9)
