import pytest
import torch
from torch import nn

from hplandscape.errors import UserError
from hplandscape.models import build_model, list_models, original_widths, register_model

CIFAR = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "mobilenet_v2", "vgg16", "wrn22_2"]


def test_all_architectures_registered():
    assert set(CIFAR + ["resnet50", "mobilenet_v2_imagenet"]) <= set(list_models())


def test_duplicate_registration_is_rejected():
    with pytest.raises(ValueError, match="resnet56.*already registered"):
        register_model("resnet56")(lambda num_classes=10, in_channels=3: nn.Identity())
    assert build_model("resnet56").fc.in_features == 64  # the original builder survived


def test_unknown_model_lists_available_names():
    with pytest.raises(UserError) as err:
        build_model("resnet57")
    assert "'resnet57'" in str(err.value) and "resnet56" in str(err.value) and "mobilenet_v2" in str(err.value)


@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_bad_class_count_is_a_user_error(value):
    with pytest.raises(UserError, match="num_classes must be a positive integer"):
        build_model("resnet20", num_classes=value)


@pytest.mark.parametrize("name, size", [(name, 8) for name in CIFAR] + [("resnet20", 16)])
def test_grey_tiny_inputs_work(name, size):
    model = build_model(name, num_classes=10, in_channels=1).eval()
    assert model(torch.zeros(2, 1, size, size)).shape == (2, 10)


def test_imagenet_models_take_other_channel_counts_and_small_inputs():
    for name in ("resnet50", "mobilenet_v2_imagenet"):
        model = build_model(name, num_classes=5, in_channels=1).eval()
        assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 5)


def test_imagenet_models_default_to_1000_classes():
    assert build_model("resnet50").fc.out_features == 1000
    assert build_model("resnet56").fc.out_features == 10


def test_widths_override_only_the_named_inner_convs():
    model = build_model("resnet20", widths={"layer2.1.conv1": 5})
    assert model.layer2[1].conv1.out_channels == 5
    assert model.layer2[1].bn1.num_features == 5
    assert model.layer2[1].conv2.in_channels == 5 and model.layer2[1].conv2.out_channels == 32
    assert model.layer2[0].conv1.out_channels == 32
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_mobilenet_widths_shrink_the_depthwise_conv_too():
    key = "features.4.conv.0.0"
    model = build_model("mobilenet_v2", widths={key: 7})
    block = model.features[4].conv
    assert (block[0][0].out_channels, block[1][0].in_channels, block[1][0].groups, block[2].in_channels) == (7, 7, 7, 7)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_prunable_layers_are_inside_blocks_only():
    assert len(original_widths("resnet56")) == 27 and "conv1" not in original_widths("resnet56")
    assert len(original_widths("resnet50")) == 32  # conv1 and conv2 of 16 bottlenecks
    assert len(original_widths("mobilenet_v2")) == 16  # all blocks but the expansion-1 one


@pytest.mark.parametrize("widths, match", [
    ({"conv1": 4}, "'conv1' is not a prunable layer"),
    ({"layer1.0.conv1": 0}, "must be a positive integer, got 0"),
    ({"layer1.0.conv1": "8"}, "must be a positive integer"),
])
def test_bad_widths_are_user_errors(widths, match):
    with pytest.raises(UserError, match=match):
        build_model("resnet20", widths=widths)
