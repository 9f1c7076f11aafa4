"""MobileNetV2 (Sandler et al., 2018) for 32×32 inputs, the variant of the thesis (Table 2.2).

Three of the five stride-2 layers of the ImageNet network run at stride 1: the stem convolution
and the first blocks of the 24- and 32-channel stages. Their FLOPs fix which ones: with
10 classes this gives 2.24 M parameters and 5.93e8 FLOPs against the thesis' 2.2 M / 6.1e8 (keeping
the 32-channel stage at stride 2 instead would give 1.76e8). The feature map entering the
classifier is 8×8.

Prunable: the hidden (expanded) width of every inverted residual block with expansion > 1. The
expansion 1×1 conv, its depthwise conv and their BatchNorms share that width; the projection 1×1
conv consumes it. Block outputs stay whole because residual additions tie them.

Horizontal fusion (``hplandscape.training.model_fusion``) needs no ``fused_forward`` here: torchvision's
``InvertedResidual`` is convolutions, BatchNorms, ReLU6 and an identity addition, all of which act
per channel, and the head pools, flattens and applies a Linear, which the fusion translates.
"""

from __future__ import annotations

from torch import nn

from hplandscape.models.registry import register_model
from hplandscape.models.widths import PrunableGroup, register_group_rule

# t, c, n, s  (expansion, output channels, repeats, stride of the first block)
CIFAR_SETTING = [
    [1, 16, 1, 1],
    [6, 24, 2, 1],  # stride 2 in the ImageNet network
    [6, 32, 3, 1],  # stride 2 in the ImageNet network
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]
STEM_STRIDE = 1  # 2 in the ImageNet network
STEM_CHANNELS, LAST_CHANNELS = 32, 1280


def _inverted_residual_groups(block: nn.Module, prefix: str) -> list[PrunableGroup]:
    if len(block.conv) < 4:  # expansion 1: the hidden width is the block input, tied upstream
        return []
    p = f"{prefix}conv."
    return [PrunableGroup(f"{p}0.0", bns=(f"{p}0.1", f"{p}1.1"), depthwise=(f"{p}1.0",), consumers=(f"{p}2",))]


# by name: torchvision is imported when a network is built, not when this module is
register_group_rule("torchvision.models.mobilenetv2.InvertedResidual", _inverted_residual_groups)


class MobileNetV2Cifar(nn.Module):
    """MobileNetV2 with the stage table :data:`CIFAR_SETTING` and a stride-1 stem.

    ``dropout`` > 0 puts a Dropout before the classifier (torchvision's ImageNet network uses 0.2);
    the default 0 follows the cited 32×32 implementation, which has none.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        from torchvision.models.mobilenetv2 import InvertedResidual
        from torchvision.ops.misc import Conv2dNormActivation

        layers: list[nn.Module] = [Conv2dNormActivation(in_channels, STEM_CHANNELS, stride=STEM_STRIDE,
                                                        activation_layer=nn.ReLU6)]
        in_planes = STEM_CHANNELS
        for t, c, n, s in CIFAR_SETTING:
            for i in range(n):
                layers.append(InvertedResidual(in_planes, c, s if i == 0 else 1, expand_ratio=t))
                in_planes = c
        layers.append(Conv2dNormActivation(in_planes, LAST_CHANNELS, kernel_size=1, activation_layer=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        # the Identity keeps the Linear at classifier.1, where weights files saved with dropout have it
        head = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Sequential(head, nn.Linear(LAST_CHANNELS, num_classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)


@register_model("mobilenet_v2", cpu_channels_last=True)  # faster on the CPU: docs/performance.md
def mobilenet_v2(num_classes: int = 10, in_channels: int = 3) -> MobileNetV2Cifar:
    """MobileNetV2, 32×32 variant (2.2 M parameters, 5.9e8 FLOPs with 10 classes), no dropout."""
    return MobileNetV2Cifar(num_classes=num_classes, in_channels=in_channels)
