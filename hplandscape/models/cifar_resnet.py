"""CIFAR-style ResNets (He et al., 2015, §4.2): 6n+2 layers, 3 stages of basic blocks, 16/32/64.

The shortcut between stages is option A of the paper (stride-2 identity, zero-padded channels):
parameter-free, which is what gives ResNet-56 its 0.85 M parameters. Padding channels is the one
step that is not channel-layout agnostic, so :class:`BasicBlock` says how it runs when B copies
are fused into one network (``fused_forward``). Only ``conv1`` of each
block is prunable: its output channels feed ``conv2`` alone, while the block output is tied to
the shortcut.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from hplandscape.models.registry import register_model
from hplandscape.models.widths import PrunableGroup


class BasicBlock(nn.Module):
    """3×3 conv → BN → ReLU → 3×3 conv → BN, plus the shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride = stride
        self.pad = planes - in_planes

    def forward(self, x):
        return F.relu(self._residual(x).add_(self._shortcut(x, 1)), inplace=True)

    def fused_forward(self, x, num_models: int):
        """The forward inside a network that fuses ``num_models`` copies of this block.

        ``x`` is laid out ``(N, B·C, H, W)`` with the model index outermost and the convolutions
        and BatchNorms are fused already (:mod:`hplandscape.training.model_fusion` calls this method); only the
        shortcut needs care, as it must pad each model's channels, not the fused tensor's.
        """
        return F.relu(self._residual(x).add_(self._shortcut(x, num_models)), inplace=True)

    def _residual(self, x):
        # In place where autograd allows it (BatchNorm's backward needs its input, not its output):
        # a fresh activation-sized buffer per op costs 4-6 % of a CPU training step.
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)), inplace=True)))

    def _shortcut(self, x, num_models: int):
        if self.stride == 1 and not self.pad:
            return x
        s = x[:, :, ::self.stride, ::self.stride]
        if num_models == 1:
            return F.pad(s, (0, 0, 0, 0, 0, self.pad))
        # Option A appends zero channels to each model's C channels, not to all B·C of them.
        n, bc, h, w = s.shape
        s = F.pad(s.reshape(n, num_models, bc // num_models, h, w), (0, 0, 0, 0, 0, self.pad))
        return s.reshape(n, -1, h, w)

    def prunable_groups(self, prefix: str) -> list[PrunableGroup]:
        return [PrunableGroup(f"{prefix}conv1", bns=(f"{prefix}bn1",), consumers=(f"{prefix}conv2",))]


class CifarResNet(nn.Module):
    """ResNet for 32×32 inputs (any size ≥ 1 pixel works: pooling is adaptive)."""

    def __init__(self, blocks_per_stage: int, num_classes: int = 10, in_channels: int = 3,
                 stage_widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, stage_widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stage_widths[0])
        layers, in_planes = [], stage_widths[0]
        for i, planes in enumerate(stage_widths):
            blocks = []
            for b in range(blocks_per_stage):
                blocks.append(BasicBlock(in_planes, planes, stride=2 if i > 0 and b == 0 else 1))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


# channels_last trains these faster on the CPU (ResNet-20 and -56 measured, same blocks at other
# depths; docs/performance.md).
_CPU_CHANNELS_LAST = True


def _cifar_resnet(depth: int, num_classes: int, in_channels: int) -> CifarResNet:
    return CifarResNet((depth - 2) // 6, num_classes=num_classes, in_channels=in_channels)


@register_model("resnet20", cpu_channels_last=_CPU_CHANNELS_LAST)
def resnet20(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """ResNet-20 for CIFAR (3 blocks per stage, 0.27 M parameters)."""
    return _cifar_resnet(20, num_classes, in_channels)


@register_model("resnet32", cpu_channels_last=_CPU_CHANNELS_LAST)
def resnet32(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """ResNet-32 for CIFAR (5 blocks per stage)."""
    return _cifar_resnet(32, num_classes, in_channels)


@register_model("resnet44", cpu_channels_last=_CPU_CHANNELS_LAST)
def resnet44(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """ResNet-44 for CIFAR (7 blocks per stage)."""
    return _cifar_resnet(44, num_classes, in_channels)


@register_model("resnet56", cpu_channels_last=_CPU_CHANNELS_LAST)
def resnet56(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """ResNet-56 for CIFAR (9 blocks per stage, 0.85 M parameters, 2.5e8 FLOPs)."""
    return _cifar_resnet(56, num_classes, in_channels)


@register_model("resnet110", cpu_channels_last=_CPU_CHANNELS_LAST)
def resnet110(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """ResNet-110 for CIFAR (18 blocks per stage)."""
    return _cifar_resnet(110, num_classes, in_channels)
