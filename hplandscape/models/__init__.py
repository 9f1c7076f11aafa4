"""Architectures by name, their He initialisation, parameter and FLOPs counts.

Examples
--------
>>> from hplandscape.models import build_model, model_info
>>> model = build_model("resnet20", num_classes=10, in_channels=1)
>>> info = model_info("resnet56")
>>> round(info.params / 1e6, 2), f"{info.flops:.2e}"
(0.85, '2.51e+08')
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import torch
from torch import nn

from hplandscape.errors import UserError
from hplandscape.models.counting import count_flops, count_params
from hplandscape.models.init import he_init
from hplandscape.models.graph_groups import apply_graph_widths, graph_widths
from hplandscape.models.registry import ModelEntry, find_entry, get_entry, list_models, register_model
from hplandscape.models.weights import Weights, load_weights, save_weights
from hplandscape.models.widths import PrunableGroup, apply_widths, check_widths, current_widths, prunable_groups

# importing the architecture modules registers them
from hplandscape.models import cifar_resnet, imagenet, mobilenetv2, vgg, wide_resnet  # noqa: E402,F401  isort:skip

__all__ = ["ModelInfo", "ModelEntry", "PrunableGroup", "Weights", "build_model", "count_flops", "count_params",
           "current_widths", "declared_meta_model", "declares_groups", "find_entry", "get_entry", "prunable_widths", "he_init", "input_shape_of", "list_models", "load_weights", "model_info",
           "original_widths", "prunable_groups", "register_model", "save_weights"]


class ModelInfo(NamedTuple):
    """Size of one architecture: ``flops`` = 2 × conv/linear multiply-accumulates at ``input_shape``."""

    name: str
    params: int
    flops: int
    input_shape: tuple[int, int, int]


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def declares_groups(model: nn.Module) -> bool:
    """Whether ``model``'s blocks declare their prunable groups (the built-ins); the others' groups
    come from torch-pruning's dependency graph (:mod:`hplandscape.models.graph_groups`)."""
    return bool(prunable_groups(model))


def prunable_widths(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """``{layer: out_channels}`` of every prunable width of ``model``: its declared groups, or the
    dependency graph's groups traced at ``input_shape``."""
    return current_widths(model) if declares_groups(model) else graph_widths(model, input_shape)


def build_model(name: str, num_classes: int | None = None, in_channels: int = 3,
                widths: dict[str, int] | None = None, input_shape: Sequence[int] | None = None) -> nn.Module:
    """Build a registered architecture with fresh He initialisation.

    Parameters
    ----------
    name : str
        Registered name (see :func:`list_models`).
    num_classes : int, optional
        Classifier outputs; default is the architecture's own (10 for CIFAR models, 1000 for
        ImageNet ones).
    in_channels : int
        Channels of the input image (1 for grey digits).
    widths : dict, optional
        ``{layer_name: out_channels}`` for prunable inner convolutions (see
        :func:`original_widths`); other layers keep their size. This is how a pruned
        architecture is rebuilt from its JSON spec.
    input_shape : sequence of int, optional
        (channels, height, width) the dependency graph of a model without declared groups is
        traced at to apply ``widths`` (its spec's ``input_shape``); default the model's.

    Returns
    -------
    nn.Module
        Initialised with :func:`he_init` from torch's global generator (seed it for
        reproducibility). Build under ``with torch.device("meta"):`` for shapes only.

    Raises
    ------
    UserError
        Unknown name (the message lists the available ones), bad counts or widths.
    """
    entry = get_entry(name)
    num_classes = entry.num_classes if num_classes is None else _positive_int(num_classes, "num_classes")
    in_channels = _positive_int(in_channels, "in_channels")
    model = entry.builder(num_classes=num_classes, in_channels=in_channels)
    if widths:
        if declares_groups(model):
            apply_widths(model, check_widths(widths, current_widths(model), f"model {name!r}"))
        else:
            apply_graph_widths(model, widths, input_shape_of(name, in_channels, input_shape))
    return he_init(model)


def input_shape_of(name: str, in_channels: int = 3, input_shape: Sequence[int] | None = None) -> tuple[int, int, int]:
    """The input shape to count ``name`` at: ``input_shape`` validated, or the model's default
    spatial size with ``in_channels`` channels."""
    if input_shape is None:
        return (in_channels, *get_entry(name).input_shape[1:])
    shape = tuple(input_shape)
    if len(shape) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape):
        raise UserError(f"input_shape must be three positive integers (channels, height, width), got {input_shape!r}")
    if shape[0] != in_channels:
        raise UserError(f"input_shape {shape} has {shape[0]} channels but in_channels is {in_channels}")
    return shape


def declared_meta_model(name: str, num_classes: int | None, in_channels: int) -> nn.Module | None:
    """``name`` built on the ``meta`` device (shapes only) when its blocks declare their prunable
    groups (the built-ins); None for a model whose groups come from the dependency graph."""
    if ":" in name:  # a user's builder need not support the meta device
        return None
    with torch.device("meta"):
        model = build_model(name, num_classes=num_classes, in_channels=in_channels)
    return model if declares_groups(model) else None


@functools.lru_cache(maxsize=64)
def _meta_info(name: str, num_classes: int | None, in_channels: int, shape: tuple[int, int, int]):
    if (model := declared_meta_model(name, num_classes, in_channels)) is not None:
        return count_params(model), count_flops(model, shape), current_widths(model)
    # A model without declared groups is traced by torch-pruning, far faster on real tensors (0.04 s
    # against 1.6 s for ResNet-56 on the meta device); a user's builder need not support meta.
    with torch.random.fork_rng(devices=[]):
        model = build_model(name, num_classes=num_classes, in_channels=in_channels)
    return count_params(model), count_flops(model, shape), graph_widths(model, shape)


def model_info(name: str, input_shape: Sequence[int] | None = None, num_classes: int | None = None) -> ModelInfo:
    """Parameters and FLOPs of an unpruned architecture.

    Parameters
    ----------
    name : str
        Registered name.
    input_shape : sequence of int, optional
        (channels, height, width); default (3, 32, 32) for CIFAR models, (3, 224, 224) for
        ImageNet ones.
    num_classes : int, optional
        Default: the architecture's own (10 or 1000).

    Notes
    -----
    FLOPs = 2 × multiply-accumulates of conv and linear layers (see
    :mod:`hplandscape.models.counting`). Counted on the ``meta`` device: no weights are
    allocated, so this is fast even for ResNet-50.
    """
    shape = tuple(input_shape) if input_shape is not None else get_entry(name).input_shape
    shape = input_shape_of(name, shape[0] if shape else 3, shape)
    params, flops, _ = _meta_info(name, num_classes, shape[0], shape)
    return ModelInfo(name, params, flops, shape)


def original_widths(name: str, num_classes: int | None = None, in_channels: int = 3,
                    input_shape: Sequence[int] | None = None) -> dict[str, int]:
    """``{layer_name: out_channels}`` of every prunable layer of the unpruned architecture, in
    module order (these are the keys a ``widths`` mapping may use). ``input_shape``: where a model
    without declared groups is traced (default the model's)."""
    shape = input_shape_of(name, in_channels, input_shape)
    return dict(_meta_info(name, num_classes, in_channels, shape)[2])
