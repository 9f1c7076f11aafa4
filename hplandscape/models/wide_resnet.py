"""Wide residual networks for 32×32 inputs (Zagoruyko & Komodakis, 2016): WRN-22-2.

WRN-d-k: a 3×3 stem convolution with 16 channels, then three stages of (d − 4) / 6 pre-activation
basic blocks (BN → ReLU → 3×3 conv, twice) with 16k, 32k and 64k channels, the second and third
starting at stride 2; a final BN → ReLU, global average pooling and the classifier (the paper's
Table 1, and its code's functional ResNet). Where a block changes the shape, its shortcut is a 1×1
convolution of the block's pre-activated input; elsewhere it is the identity. Convolutions have no
bias. Dropout between the two convolutions is off by default (the paper's Table 4 and 5 networks).

This construction gives the paper's parameter counts (Table 4: WRN-28-10 36.5 M, WRN-16-8 11.0 M,
WRN-40-4 8.9 M, ...; Table 2: WRN-28-2 1.5 M). The paper gives none for WRN-22-2 with this block;
built the same way it has 1.08 M parameters and 3.15e8 FLOPs (2 × MACs) at 32×32, the
dense-inference FLOPs Sundar & Dwaraknath (2021, "[Re] Rigging the Lottery", ReScience C 7(2),
Table 2) report for it.

Prunable: the inner width of every block, ``conv1``'s output channels, which ``bn2`` carries and
``conv2`` consumes. Block outputs are tied through the residual additions and keep their size.

Horizontal fusion (``hplandscape.training.model_fusion``) needs no ``fused_forward``: the block is
BatchNorms, ReLU, convolutions (the shortcut a plain 1×1 one, no channel padding) and an addition,
all of which act per channel.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from hplandscape.models.registry import register_model
from hplandscape.models.widths import PrunableGroup

STEM_CHANNELS = 16
STAGE_CHANNELS = (16, 32, 64)  # × the widening factor k
STAGE_STRIDES = (1, 2, 2)


class PreActBlock(nn.Module):
    """BN → ReLU → 3×3 conv → BN → ReLU → (dropout) → 3×3 conv, plus the shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        same = stride == 1 and in_planes == planes
        self.shortcut = None if same else nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x), inplace=True)
        y = self.conv2(self.dropout(F.relu(self.bn2(self.conv1(o)), inplace=True)))
        # the 1×1 shortcut reads the pre-activated input, as in the paper's code
        return y.add_(x if self.shortcut is None else self.shortcut(o))

    def prunable_groups(self, prefix: str) -> list[PrunableGroup]:
        return [PrunableGroup(f"{prefix}conv1", bns=(f"{prefix}bn2",), consumers=(f"{prefix}conv2",))]


class WideResNet(nn.Module):
    """WRN-``depth``-``k`` for 32×32 inputs (any size ≥ 1 pixel works: pooling is adaptive)."""

    def __init__(self, depth: int, k: int, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"a WRN's depth must be 6n + 4, got {depth}")
        blocks_per_stage = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, STEM_CHANNELS, 3, padding=1, bias=False)
        layers, in_planes = [], STEM_CHANNELS
        for c, s in zip(STAGE_CHANNELS, STAGE_STRIDES):
            blocks = []
            for b in range(blocks_per_stage):
                blocks.append(PreActBlock(in_planes, c * k, s if b == 0 else 1, dropout))
                in_planes = c * k
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.bn = nn.BatchNorm2d(in_planes)  # the last blocks' output is not yet activated
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = F.relu(self.bn(x), inplace=True)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@register_model("wrn22_2")
def wrn22_2(num_classes: int = 10, in_channels: int = 3) -> WideResNet:
    """WRN-22-2 for CIFAR (3 pre-activation blocks per stage, 32/64/128 channels; 1.08 M parameters,
    3.15e8 FLOPs), no dropout."""
    return WideResNet(22, 2, num_classes=num_classes, in_channels=in_channels)
