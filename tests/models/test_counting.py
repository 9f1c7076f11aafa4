import pytest
import torch
from torch import nn

from hplandscape.models import build_model, count_flops, count_params, model_info


@pytest.mark.parametrize("name, params, flops", [
    ("resnet56", 0.85e6, 2.5e8),
    ("mobilenet_v2", 2.2e6, 6.1e8),
    ("resnet50", 25.6e6, 8.2e9),
])
def test_counts_match_the_thesis_within_3_percent(name, params, flops):
    info = model_info(name)
    assert abs(info.params / params - 1) < 0.03
    assert abs(info.flops / flops - 1) < 0.03


def test_default_input_shapes():
    assert model_info("resnet20").input_shape == (3, 32, 32)
    assert model_info("resnet50").input_shape == (3, 224, 224)
    assert model_info("resnet20", input_shape=(1, 8, 8)).input_shape == (1, 8, 8)


def test_flops_are_twice_the_multiply_accumulates():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    assert count_flops(model, (3, 4, 4)) == 2 * (16 * 8 * 3 * 9) + 2 * (128 * 10)


def test_depthwise_and_strided_convs():
    dw = nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6)
    assert count_flops(dw, (6, 8, 8)) == 2 * 16 * 6 * 9  # 4x4 outputs, one input channel per filter


def test_meta_count_equals_real_count_and_params_by_hand():
    real = build_model("resnet20", in_channels=1)
    assert count_flops(real, (1, 16, 16)) == model_info("resnet20", input_shape=(1, 16, 16)).flops
    assert count_params(nn.Linear(4, 3)) == 15
    assert count_params(real) == model_info("resnet20", input_shape=(1, 32, 32)).params


def test_counting_leaves_training_mode_alone():
    model = build_model("resnet20").train()
    count_flops(model, (3, 8, 8))
    assert model.training and model.bn1.num_batches_tracked.item() == 0
