"""The CIFAR ResNet's BasicBlock: its fused forward is its plain forward, model by model."""

import types

import pytest
import torch

from hplandscape.models.cifar_resnet import BasicBlock
from hplandscape.training.model_fusion import fuse_models


@pytest.mark.parametrize("in_planes, planes, stride", [(16, 16, 1), (16, 32, 2)])
def test_fused_forward_equals_each_blocks_own_forward(in_planes, planes, stride):
    torch.manual_seed(0)
    blocks = [BasicBlock(in_planes, planes, stride).double().eval() for _ in range(3)]
    xs = torch.randn(3, 2, in_planes, 8, 8, dtype=torch.float64)  # one batch per model
    fused = fuse_models(blocks).eval()
    out = fused(xs)  # (N, B, C·H·W)
    for b, block in enumerate(blocks):
        torch.testing.assert_close(out[:, b], block(xs[b]).flatten(1), rtol=0, atol=1e-12)

    # The stage-entry block pads channels: its plain forward pads the fused B·C channels once
    # instead of each model's C, which is why the block carries a fused forward at all.
    plain = fuse_models(blocks).eval()
    plain.net.forward = types.MethodType(BasicBlock.forward, plain.net)
    if planes != in_planes:
        with pytest.raises(RuntimeError, match="must match the size"):
            plain(xs)
    else:
        torch.testing.assert_close(plain(xs), out, rtol=0, atol=0)
