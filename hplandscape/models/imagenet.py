"""torchvision's ImageNet ResNet-50 and MobileNetV2 under the registry.

ResNet-50 bottlenecks have two prunable widths: ``conv1`` (consumed by ``conv2``) and ``conv2``
(consumed by ``conv3``); ``conv3`` and the downsample branch form the block output, tied to the
residual addition. MobileNetV2's rule lives in :mod:`hplandscape.models.mobilenetv2`.

Neither block needs a ``fused_forward`` for horizontal fusion (``hplandscape.training.model_fusion``): a
``Bottleneck`` (its downsample branch a strided 1×1 conv and a BatchNorm, no channel padding) and
an ``InvertedResidual`` are convolutions, BatchNorms, activations and an addition, which all act per
channel on the fused layout.
"""

from __future__ import annotations

from torch import nn

from hplandscape.models.registry import register_model
from hplandscape.models.widths import PrunableGroup, register_group_rule


def _bottleneck_groups(block: nn.Module, prefix: str) -> list[PrunableGroup]:
    return [PrunableGroup(f"{prefix}conv1", bns=(f"{prefix}bn1",), consumers=(f"{prefix}conv2",)),
            PrunableGroup(f"{prefix}conv2", bns=(f"{prefix}bn2",), consumers=(f"{prefix}conv3",))]


# torchvision is imported by the builders only: the CIFAR models train without it.
register_group_rule("torchvision.models.resnet.Bottleneck", _bottleneck_groups)


def _with_stem_channels(model: nn.Module, stem: str, in_channels: int) -> nn.Module:
    """Swap the first convolution for one reading ``in_channels`` (e.g. 1 for grey images)."""
    if in_channels == 3:
        return model
    parent_name, _, child = stem.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, nn.Conv2d(in_channels, old.out_channels, old.kernel_size, stride=old.stride,
                                     padding=old.padding, bias=old.bias is not None))
    return model


@register_model("resnet50", input_shape=(3, 224, 224), num_classes=1000)
def resnet50(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    """torchvision ResNet-50 (25.6 M parameters, 8.2e9 FLOPs with 1000 classes)."""
    import torchvision

    return _with_stem_channels(torchvision.models.resnet50(weights=None, num_classes=num_classes), "conv1", in_channels)


@register_model("mobilenet_v2_imagenet", input_shape=(3, 224, 224), num_classes=1000)
def mobilenet_v2_imagenet(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    """torchvision MobileNetV2 for 224×224 inputs (3.5 M parameters, 6.0e8 FLOPs with 1000 classes)."""
    import torchvision

    return _with_stem_channels(torchvision.models.mobilenet_v2(weights=None, num_classes=num_classes),
                               "features.0.0", in_channels)
