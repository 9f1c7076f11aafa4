"""Prunable widths: which channels inside a block may be removed, and rebuilding with new widths.

A *prunable group* is one width inside a residual block: the convolution whose filters are removed
(its ``key``, a module name such as ``"layer1.0.conv1"``), the BatchNorms and depthwise
convolutions that carry the same channels, and the layers that consume them as inputs: convolutions,
or a ``Linear`` reading the globally pooled channels (VGG's last convolution feeds its classifier).
Block outputs are never part of a group because a residual addition ties them to the block input.

Block classes declare their groups either with a method ``prunable_groups(prefix)`` or, for
classes defined in torchvision, through :func:`register_group_rule`, by the class's dotted name, so
that declaring the rule does not import torchvision (1.3 s of every worker's start-up: importing
any part of it imports its detection ops and ``torch._dynamo``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from torch import nn

from hplandscape.errors import UserError


class PrunableGroup(NamedTuple):
    """One prunable width; all entries are qualified module names."""

    key: str
    bns: tuple[str, ...] = ()
    depthwise: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()


_GROUP_RULES: dict[str, Callable[[nn.Module, str], list[PrunableGroup]]] = {}


def _dotted_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_group_rule(cls: type | str, rule: Callable[[nn.Module, str], list[PrunableGroup]]) -> None:
    """Declare the prunable groups of a block class that cannot carry a ``prunable_groups`` method.

    ``cls`` is the class or its dotted name (``"torchvision.models.resnet.Bottleneck"``).
    """
    name = cls if isinstance(cls, str) else _dotted_name(cls)
    if name in _GROUP_RULES:
        raise ValueError(f"a group rule for {name} is already registered")
    _GROUP_RULES[name] = rule


def prunable_groups(model: nn.Module) -> list[PrunableGroup]:
    """All prunable groups of ``model``, in module order."""
    groups: list[PrunableGroup] = []
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if hasattr(module, "prunable_groups"):
            groups.extend(module.prunable_groups(prefix))
        elif (rule := _GROUP_RULES.get(_dotted_name(type(module)))) is not None:
            groups.extend(rule(module, prefix))
    return groups


def current_widths(model: nn.Module) -> dict[str, int]:
    """``{key: out_channels}`` of every prunable group of ``model``."""
    return {g.key: model.get_submodule(g.key).out_channels for g in prunable_groups(model)}


def check_widths(widths: dict, allowed: dict[str, int], what: str) -> dict[str, int]:
    """Validate a ``{layer_name: channels}`` mapping against the prunable layers of a model.

    Parameters
    ----------
    widths : dict
        The mapping to check; a subset of the prunable layers is fine.
    allowed : dict
        ``{layer_name: original_channels}`` of the model.
    what : str
        Names the culprit in error messages (a model name or a file).

    Returns
    -------
    dict
        A copy with plain ``int`` values.
    """
    if not isinstance(widths, dict):
        raise UserError(f"{what}: widths must be a mapping {{layer_name: channels}}, got {type(widths).__name__}")
    out = {}
    for name, value in widths.items():
        if name not in allowed:
            shown = ", ".join(list(allowed)[:6]) + (", ..." if len(allowed) > 6 else "")
            raise UserError(f"{what}: {name!r} is not a prunable layer; prunable layers are {shown}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{what}: widths[{name!r}] must be a positive integer, got {value!r}")
        out[name] = int(value)
    return out


def apply_widths(model: nn.Module, widths: dict[str, int]) -> nn.Module:
    """Replace the modules of each prunable group by fresh ones with the requested width.

    Consumers are convolutions or a ``Linear`` on the globally pooled channels (a VGG's classifier),
    whose ``in_features`` then follow the width. The new modules are default-initialised; callers
    re-initialise the whole model afterwards. Only shapes change, so this works on the ``meta``
    device as well.
    """
    groups = {g.key: g for g in prunable_groups(model)}
    widths = check_widths(widths, {k: model.get_submodule(k).out_channels for k in groups}, type(model).__name__)
    conv_shape: dict[str, dict[str, int]] = {}
    bn_width: dict[str, int] = {}
    linear_in: dict[str, int] = {}
    for key, width in widths.items():
        g = groups[key]
        conv_shape.setdefault(key, {})["out_channels"] = width
        for name in g.depthwise:  # a depthwise conv has one filter per channel: all three follow
            conv_shape.setdefault(name, {}).update(in_channels=width, out_channels=width, groups=width)
        for name in g.consumers:
            consumer = model.get_submodule(name)
            if isinstance(consumer, nn.Linear):
                _check_linear_consumer(model, key, name, consumer)
                linear_in[name] = width
            else:
                conv_shape.setdefault(name, {})["in_channels"] = width
        for name in g.bns:
            bn_width[name] = width
    for name, width in linear_in.items():
        old = model.get_submodule(name)
        _replace(model, name, nn.Linear(width, old.out_features, bias=old.bias is not None, device=old.weight.device))
    for name, changes in conv_shape.items():
        old = model.get_submodule(name)
        kw = dict(in_channels=old.in_channels, out_channels=old.out_channels, groups=old.groups)
        kw.update(changes)
        _replace(model, name, nn.Conv2d(kernel_size=old.kernel_size, stride=old.stride, padding=old.padding,
                                        dilation=old.dilation, bias=old.bias is not None,
                                        padding_mode=old.padding_mode, device=old.weight.device, **kw))
    for name, width in bn_width.items():
        old = model.get_submodule(name)
        _replace(model, name, type(old)(width, eps=old.eps, momentum=old.momentum, affine=old.affine,
                                        track_running_stats=old.track_running_stats,
                                        device=old.weight.device if old.affine else None))
    return model


def _check_linear_consumer(model: nn.Module, key: str, name: str, linear: nn.Linear) -> None:
    # Only a Linear reading one feature per channel can follow the width; one reading a flattened
    # H×W map per channel would need H·W features per channel (a wrong group declaration).
    channels = model.get_submodule(key).out_channels
    if linear.in_features != channels:
        raise ValueError(f"{type(model).__name__}: the Linear {name!r} has {linear.in_features} input features, not "
                         f"the {channels} channels of {key!r}; a Linear consumer must read globally pooled channels")


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
