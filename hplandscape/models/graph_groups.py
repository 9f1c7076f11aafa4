"""Prunable widths of any model, found by torch-pruning's dependency graph.

The built-in architectures declare their prunable groups (:mod:`hplandscape.models.widths`). A
model that declares none (the user's own, by import path) gets them from torch-pruning's
``DependencyGraph``: one group per set of channels that must be removed together, wherever the
network ties them (a residual addition, a concatenation, a depthwise convolution, a flatten into a
linear layer). By default every convolution and linear layer is prunable except the first layer
(the one that reads the input) and the classifier (the one whose output is the network's); a
group that includes either's output channels keeps its size.

A group is named by its *key*: the first convolution or linear layer, in module order, whose
output channels the group removes (a depthwise convolution is never the key: it follows the layer
before it). Its width is the key's output channel count. Widths are all that a pruned
architecture stores; :func:`apply_graph_widths` rebuilds it from a fresh model by removing the
last channels of each group (which channels does not matter: the network is re-initialised).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from hplandscape.errors import UserError

LAYER_TYPES = (nn.modules.conv._ConvNd, nn.Linear)


class GraphGroup(NamedTuple):
    """One prunable width: ``key`` and every conv/linear layer whose output channels go with it."""

    key: str
    members: tuple[str, ...]


def _example(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    param = next(model.parameters(), None)
    return torch.zeros(1, *input_shape, device=param.device if param is not None else None,
                       dtype=param.dtype if param is not None else None)


def end_layers(model: nn.Module, input_shape: Sequence[int]) -> tuple[str, str]:
    """Names of the first conv/linear layer a forward pass runs and the last one: the layer that
    reads the input and the classifier."""
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: order.append(name))
             for name, m in model.named_modules() if isinstance(m, LAYER_TYPES)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(_example(model, input_shape))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    if not order:
        raise UserError(f"{type(model).__name__}: has no convolution or linear layer to prune")
    return order[0], order[-1]


def dependency_graph(model: nn.Module, input_shape: Sequence[int]):
    """torch-pruning's ``DependencyGraph`` of ``model`` traced at one input of ``input_shape``."""
    import torch_pruning as tp

    was_training = model.training
    model.eval()
    try:
        return tp.DependencyGraph().build_dependency(model, example_inputs=_example(model, input_shape),
                                                     verbose=False)
    except Exception as e:
        raise UserError(f"{type(model).__name__}: torch-pruning could not trace its dependency graph at input "
                        f"{tuple(input_shape)} ({type(e).__name__}: {e})") from None
    finally:
        model.train(was_training)


def _is_depthwise(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.conv._ConvNd) and m.groups > 1 and m.groups == m.in_channels


def graph_groups(model: nn.Module, input_shape: Sequence[int], dg=None) -> list[GraphGroup]:
    """Every prunable group of ``model``, ordered by key in module order.

    Parameters
    ----------
    model : nn.Module
    input_shape : sequence of int
        (channels, height, width) of one input: the graph is traced with it.
    dg : torch_pruning.DependencyGraph, optional
        A graph already built for ``model``.
    """
    first, last = end_layers(model, input_shape)
    modules = dict(model.named_modules())
    position = {m: i for i, m in enumerate(modules.values())}
    name_of = {m: n for n, m in modules.items()}
    dg = dg or dependency_graph(model, input_shape)
    groups = []
    for group in dg.get_all_groups(ignored_layers=[modules[first], modules[last]], root_module_types=LAYER_TYPES):
        outs = sorted({dep.target.module for dep, _ in group
                       if dg.is_out_channel_pruning_fn(dep.handler) and isinstance(dep.target.module, LAYER_TYPES)},
                      key=position.__getitem__)
        keys = [m for m in outs if not _is_depthwise(m)]
        if keys and keys[0].weight.shape[0] > 1:
            groups.append(GraphGroup(name_of[keys[0]], tuple(name_of[m] for m in outs)))
    return sorted(groups, key=lambda g: position[modules[g.key]])


def graph_widths(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """``{key: out_channels}`` of every prunable group (:func:`graph_groups`), in module order."""
    return {g.key: model.get_submodule(g.key).weight.shape[0] for g in graph_groups(model, input_shape)}


def remove_channels(model: nn.Module, drop: dict[str, Sequence[int]], input_shape: Sequence[int], dg=None) -> nn.Module:
    """Remove from ``model`` (in place) the output channels ``drop[key]`` of each group's key layer,
    and with them every channel the dependency graph ties to them."""
    dg = dg or dependency_graph(model, input_shape)
    for key, idxs in drop.items():
        idxs = sorted(int(i) for i in idxs)
        if idxs:
            module = model.get_submodule(key)
            dg.get_pruning_group(module, dg.get_pruner_of_module(module).prune_out_channels, idxs=idxs).prune()
    return model


def apply_graph_widths(model: nn.Module, widths: dict[str, int], input_shape: Sequence[int]) -> nn.Module:
    """Cut ``model`` (in place) to ``{key: channels}`` by removing each group's last channels.

    Raises
    ------
    UserError
        A key that is not a prunable group of the model, or a width outside [1, current].
    """
    from hplandscape.models.widths import check_widths

    current = graph_widths(model, input_shape)
    widths = check_widths(widths, current, type(model).__name__)
    for key, w in widths.items():
        if w > current[key]:
            raise UserError(f"{type(model).__name__}: widths[{key!r}] = {w} exceeds the layer's {current[key]} channels")
    remove_channels(model, {k: range(w, current[k]) for k, w in widths.items()}, input_shape)
    got = {k: model.get_submodule(k).weight.shape[0] for k in widths}
    if got != widths:  # torch-pruning must cut exactly what was asked
        raise RuntimeError(f"torch-pruning left widths {got}, expected {widths}")
    return model
