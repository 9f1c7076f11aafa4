"""VGG-16 (Li et al., 2017): its counts, shapes, prunable widths, structured pruning and fusion."""

import pytest
import torch
from torch import nn

from hplandscape.models import build_model, count_flops, list_models, model_info, original_widths, prunable_groups
from hplandscape.models.widths import PrunableGroup, apply_widths
from hplandscape.pruning.structured import TOLERANCE, build_from_spec, prune_model
from hplandscape.study.config import BUILTIN_MODELS
from hplandscape.training.model_fusion import fuse_models


def test_counts_are_li_et_al_tables_1_and_2():
    # Li, Kadav, Durdanovic, Samet & Graf, "Pruning Filters for Efficient ConvNets", ICLR 2017,
    # Table 1 (VGG-16 on CIFAR-10): 1.5e7 parameters and 3.13e8 FLOP, where their FLOP are
    # multiply-accumulates: Table 2's per-layer rows are H·W·C_in·C_out·9 (Conv_1: 32·32·3·64·9 = 1.8e6).
    # The published figures are rounded to 2 and 3 significant digits: equality at that precision
    # is the tolerance (±3 % on the parameters, ±0.16 % on the MACs) ...
    info = model_info("vgg16")
    assert f"{info.params:.1e}" == "1.5e+07"
    assert f"{info.flops / 2:.2e}" == "3.13e+08"  # this package counts FLOPs = 2 × MACs
    # ... and the exact values are the hand count. MACs: convs at 32², 16², 8², 4², 2² —
    # 1,769,472 + 37,748,736 + 18,874,368 + 37,748,736 + 18,874,368 + 2·37,748,736 + 18,874,368
    # + 2·37,748,736 + 3·9,437,184 = 313,196,544; Linear 512·512 + 512·10 = 267,264.
    # Parameters: conv weights 14,710,464 (no bias), BatchNorm2d 2·4,224, Linear 262,656,
    # BatchNorm1d 1,024, Linear 5,130.
    assert (info.params, info.flops) == (14_987_722, 2 * (313_196_544 + 267_264))


def test_classifier_is_li_et_als_linear_bn_relu_linear_without_dropout():
    model = build_model("vgg16")
    assert [type(m) for m in model.classifier] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert (model.classifier[0].in_features, model.classifier[0].out_features) == (512, 512)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 13
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("size", [32, 40, 64])
def test_forward_shapes(in_channels, size):
    model = build_model("vgg16", num_classes=7, in_channels=in_channels).eval()
    assert model(torch.zeros(2, in_channels, size, size)).shape == (2, 7)


def test_larger_inputs_cost_more_but_leave_the_32_pixel_counts_alone():
    small, large = model_info("vgg16"), model_info("vgg16", input_shape=(3, 64, 64))
    assert large.params == small.params and large.flops > 3.9 * small.flops


def test_every_conv_but_the_first_is_prunable_and_the_last_feeds_the_classifier():
    model = build_model("vgg16")
    groups = prunable_groups(model)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert [g.key for g in groups] == convs[1:]
    assert [g.consumers for g in groups] == [(c,) for c in convs[2:]] + [("classifier.0",)]
    assert all(isinstance(model.get_submodule(b), nn.BatchNorm2d) for g in groups for b in g.bns)
    assert list(original_widths("vgg16").values()) == [64, 128, 128, 256, 256, 256] + [512] * 6


def test_widths_shrink_the_classifiers_input():
    model = build_model("vgg16", widths={"features.40": 9, "features.3": 5})
    assert (model.features[40].out_channels, model.features[41].num_features) == (9, 9)
    assert model.classifier[0].in_features == 9 and model.classifier[0].out_features == 512
    assert (model.features[3].out_channels, model.features[7].in_channels) == (5, 5)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_a_linear_consumer_must_read_pooled_channels():
    # A Linear on a flattened 2×2 map reads 4 features per channel: it cannot follow a width.
    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 2 * 2, 10)

        def prunable_groups(self, prefix):
            return [PrunableGroup(f"{prefix}conv", consumers=(f"{prefix}fc",))]

    with pytest.raises(ValueError, match="'fc' has 16 input features, not the 4 channels of 'conv'"):
        apply_widths(Flat(), {"conv": 2})


@pytest.mark.parametrize("method", ["uniform", "global"])
def test_pruning_to_half_the_flops_and_rebuilding_from_the_spec(method):
    spec, module = prune_model("vgg16", method, 0.5)
    assert spec.original_flops == model_info("vgg16").flops
    assert abs(spec.flops / (0.5 * spec.original_flops) - 1) <= TOLERANCE
    rebuilt = build_from_spec(spec)
    assert count_flops(rebuilt, (3, 32, 32)) == spec.flops  # the analytic count is the network's
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(rebuilt) == shapes(module)
    assert module.classifier[0].in_features == spec.widths["features.40"]
    assert module.features[0].out_channels == 64  # the first layer keeps its size
    assert rebuilt.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_registered_and_built_in():
    assert "vgg16" in list_models() and "vgg16" in BUILTIN_MODELS


def test_fusion_reproduces_each_model_with_its_batchnorm1d():
    # The classifier's BatchNorm1d acts on the fused Linear's (N, B·512) output, one feature each.
    torch.manual_seed(0)
    narrow = {k: 8 for k in original_widths("vgg16")}  # fast; the head keeps its 512 hidden features
    models = [build_model("vgg16", widths=narrow).double() for _ in range(2)]
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    fused = fuse_models(models, example_input=x).eval()
    out = fused(x)
    for b, m in enumerate(models):
        torch.testing.assert_close(out[:, b], m.eval()(x), rtol=0, atol=1e-9)
    assert isinstance(fused.net.classifier[1], nn.BatchNorm1d) and fused.net.classifier[1].num_features == 2 * 512
