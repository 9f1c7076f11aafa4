import torch
from torch import nn

from hplandscape.models import build_model, model_info


def test_cifar_mobilenet_has_no_dropout_and_unchanged_counts():
    # The cited 32×32 implementation (Chen, 2018) has no dropout; removing it changes no count.
    model = build_model("mobilenet_v2")
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    info = model_info("mobilenet_v2")
    assert (info.params, info.flops) == (2_236_682, 592_946_176)


def test_cifar_mobilenet_is_deterministic_in_train_mode():
    # With a dropout layer two training-mode passes would differ; BatchNorm uses batch statistics
    # either way, so the same batch gives the same output.
    torch.manual_seed(0)
    model = build_model("mobilenet_v2").train()
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(model(x), model(x))


def test_weights_keep_their_keys_and_imagenet_mobilenet_keeps_torchvisions_dropout():
    keys = build_model("mobilenet_v2").state_dict().keys()
    assert {"classifier.1.weight", "classifier.1.bias"} <= set(keys)  # older weights files still load
    drop = [m for m in build_model("mobilenet_v2_imagenet").modules() if isinstance(m, nn.Dropout)]
    assert [m.p for m in drop] == [0.2]
