import math

import torch

from hplandscape.models import build_model, he_init


def test_he_init_statistics():
    torch.manual_seed(0)
    model = he_init(build_model("resnet56"))
    w = model.layer3[0].conv2.weight  # 64 filters of 64x3x3: fan_out = 576
    assert abs(w.std().item() / math.sqrt(2 / 576) - 1) < 0.05
    assert torch.all(model.layer1[0].bn1.weight == 1) and torch.all(model.layer1[0].bn1.bias == 0)
    assert torch.all(model.fc.bias == 0)
    assert abs(model.fc.weight.std().item() * math.sqrt(64) - 1) < 0.2


def test_he_init_is_reproducible_and_reinitialises():
    torch.manual_seed(3)
    a = build_model("resnet20")
    torch.manual_seed(3)
    b = build_model("resnet20")
    assert torch.equal(a.layer2[1].conv1.weight, b.layer2[1].conv1.weight)
    with torch.no_grad():
        a.bn1.weight.fill_(5.0)
    he_init(a)
    assert torch.all(a.bn1.weight == 1)
    assert not torch.equal(a.layer2[1].conv1.weight, b.layer2[1].conv1.weight)
