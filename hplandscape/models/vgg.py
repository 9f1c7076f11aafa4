"""VGG-16 with BatchNorm for 32×32 inputs, the variant of Li et al. (2017), Tables 1 and 2.

"Pruning Filters for Efficient ConvNets" (ICLR 2017, §4.1) uses Zagoruyko's (2015) CIFAR VGG-16
with a BatchNorm after every convolution and after the first linear layer, and no dropout: 13 3×3
convolutions, then ``Linear(512, 512) → BN → ReLU → Linear(512, classes)`` on the 512 features the
fifth max-pool leaves at 1×1. With 10 classes that is 1.50e7 parameters and 3.13e8
multiply-accumulates, Li et al.'s 1.5e7 / 3.13e8 (Table 1): they count multiply-accumulates
(Table 2, Conv_1: 32·32·3·64·9 = 1.8e6), so this package's FLOPs (2 × MACs,
:mod:`hplandscape.models.counting`) are 6.27e8. Convolutions have no bias (a BatchNorm follows
each), as in the PyTorch re-implementation of Liu et al. (2019, "Rethinking the Value of Network
Pruning").

The features are average-pooled to 1×1 before the classifier, which is the identity at 32×32 and
lets larger inputs through; the max-pools round up (``ceil_mode``), which changes nothing at sizes
divisible by 32 and lets inputs down to 1×1 through (8×8 digits).

Prunable: the output channels of every convolution but the first (the first layer keeps its size,
as everywhere in this package). Each width is carried by the conv's BatchNorm and consumed by the
next conv; the last conv's is consumed by the classifier's first Linear, whose input features are
exactly those channels because the features are pooled to 1×1. No residual addition ties any of
them.

Horizontal fusion (``hplandscape.training.model_fusion``) needs no ``fused_forward``: convolutions,
BatchNorms, ReLU and max-pooling act per channel, and the head pools, flattens and applies
Linear → BatchNorm1d → ReLU → Linear, which the fusion translates.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from hplandscape.models.registry import register_model
from hplandscape.models.widths import PrunableGroup

# output channels of each 3×3 conv (each followed by BatchNorm and ReLU); "M": 2×2 max-pool, stride 2
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
HIDDEN = 512  # the first linear layer's outputs


class VGGCifar(nn.Module):
    """A plain VGG stack ``features`` (torchvision's layout: conv, BN, ReLU, ..., pool) and
    ``classifier = Linear → BatchNorm1d → ReLU → Linear``."""

    def __init__(self, cfg: list, num_classes: int = 10, in_channels: int = 3, hidden: int = HIDDEN):
        super().__init__()
        layers: list[nn.Module] = []
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                conv = nn.Conv2d(in_channels, v, 3, padding=1, bias=False)
                layers += [conv, nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                in_channels = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(in_channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                        nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))

    def prunable_groups(self, prefix: str) -> list[PrunableGroup]:
        p = f"{prefix}features."
        convs = [i for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]
        consumers = [f"{p}{i}" for i in convs[2:]] + [f"{prefix}classifier.0"]
        # the BatchNorm right after conv i is features.{i + 1}
        return [PrunableGroup(f"{p}{i}", bns=(f"{p}{i + 1}",), consumers=(consumer,))
                for i, consumer in zip(convs[1:], consumers)]

@register_model("vgg16")
def vgg16(num_classes: int = 10, in_channels: int = 3) -> VGGCifar:
    """VGG-16 with BatchNorm for CIFAR, Li et al. (2017) (1.5e7 parameters, 6.27e8 FLOPs = 3.13e8 MACs)."""
    return VGGCifar(VGG16_CFG, num_classes=num_classes, in_channels=in_channels)
