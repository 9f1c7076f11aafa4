"""Structured L1-norm pruning to a FLOPs budget, and the architecture specs it produces.

A filter's importance is the L1 norm of its kernel weights (torch-pruning's
``MagnitudeImportance(p=1, group_reduction="first")``). Only the prunable widths inside residual
blocks are cut (see :mod:`hplandscape.models.widths`): the first convolution, classifier layers and
every channel tied through a residual addition keep their size, and every prunable layer keeps at
least one channel.

- **uniform**: every prunable layer keeps the same fraction ``f`` of its filters, rounded to whole
  channels (each layer keeps ``floor(f·C)`` or ``ceil(f·C)``; ``f`` and the rounding are chosen
  to land closest to the budget).
- **global**: one threshold across all prunable layers on the L1 norms after a per-layer
  normaliser (``normalizer``, torch-pruning's names, see :data:`NORMALIZERS`; ``"none"`` ranks the
  raw norms as in Li et al., 2017), and no layer loses more than ``max_layer_prune`` of its
  filters. Each layer's fraction falls out of the ranking.

Why normalise and cap: raw L1 norms grow with a filter's fan-in (about √fan-in for He-initialised
weights), so one raw threshold empties the layers of small fan-in first. At 20 % of the FLOPs it
leaves 19 of ResNet-56's 27 prunable convolutions with one channel, which turns width pruning
into depth pruning (figures in docs/method.md §5).

Because block outputs never change, the FLOPs of a pruned model are an exact function of the
per-layer widths. The fraction (uniform) or threshold (global) is therefore searched on an
analytic FLOPs model, and torch-pruning then removes the chosen channels once; the resulting
module is checked against the analytic count.

Examples
--------
>>> spec = prune("resnet20", "global", 0.5)
>>> abs(spec.achieved_ratio - 0.5) < 0.01, spec.source, spec.min_kept_fraction >= 0.1
(True, 'random-init', True)
>>> model = build_from_spec(spec)
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from hplandscape.errors import UserError
from hplandscape.models import (build_model, count_flops, count_params, declared_meta_model, declares_groups, get_entry,
                                input_shape_of, load_weights, prunable_groups)
from hplandscape.models.counting import layer_costs
from hplandscape.models.graph_groups import dependency_graph, graph_groups, remove_channels
from hplandscape.pruning.arch_spec import (DEFAULT_MAX_LAYER_PRUNE, DEFAULT_NORMALIZER,  # noqa: F401  (re-exported)
                                           METHODS, NORMALIZERS, RANDOM_INIT, ArchSpec, is_layer_cap, layer_floor,
                                           load_spec, save_spec)
from hplandscape.pruning.methods import STRUCTURED, get_kind
from hplandscape.user_code import file_sha256

TOLERANCE = 0.02  # relative FLOPs error accepted before a ratio counts as unreachable

# -- analytic FLOPs --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _flops_model(name: str, num_classes: int, in_channels: int, input_shape: tuple[int, int, int]):
    """The FLOPs model of an architecture: from its declared groups (:class:`_FlopsModel`, the
    built-ins), else from torch-pruning's dependency graph (:class:`_GraphFlopsModel`)."""
    if (model := declared_meta_model(name, num_classes, in_channels)) is not None:
        return _FlopsModel(model, input_shape)
    return _GraphFlopsModel(name, num_classes, in_channels, input_shape)


class _FlopsModel:
    """FLOPs of an architecture as a function of its prunable widths, from its declared groups.

    Each conv/linear layer costs ``2 · coef · w[out] · w[in]`` where ``w[out]``/``w[in]`` is a
    prunable width, or 1 when that side is fixed (its size is then folded into ``coef``).
    Traced once on the ``meta`` device, evaluated in microseconds.
    """

    graph = False  # prune with the declared groups

    def __init__(self, model: nn.Module, input_shape: tuple[int, int, int]):
        groups = prunable_groups(model)
        self.keys = [g.key for g in groups]
        self.original = np.array([model.get_submodule(k).out_channels for k in self.keys], dtype=np.int64)
        index = {k: i for i, k in enumerate(self.keys)}
        out_of, in_of = {}, {}
        for g in groups:
            out_of[g.key] = index[g.key]
            for n in g.depthwise:  # one input channel per group: only the output side varies
                out_of[n] = index[g.key]
            for n in g.consumers:
                in_of[n] = index[g.key]
        fixed = len(self.keys)  # index of the constant 1 appended to the width vector
        coef, oi, ii = [], [], []
        for name_, (m, positions) in layer_costs(model, input_shape).items():
            macs_per_out = m.weight.shape[1:].numel()  # (in/groups)·kernel, or in_features
            c = positions * (1 if name_ in out_of else m.weight.shape[0])
            # per input channel: the kernel size, or 1 for a Linear consumer (VGG's classifier reads
            # one pooled feature per channel, see models.widths.apply_widths)
            c *= (macs_per_out // m.weight.shape[1]) if name_ in in_of else macs_per_out
            coef.append(c)
            oi.append(out_of.get(name_, fixed))
            ii.append(in_of.get(name_, fixed))
        self.coef, self.oi, self.ii = (np.array(a, dtype=np.int64) for a in (coef, oi, ii))

    def flops(self, widths: np.ndarray) -> int:
        w = np.append(np.asarray(widths, dtype=np.int64), 1)
        return int(2 * (self.coef * w[self.oi] * w[self.ii]).sum())


class _GraphFlopsModel:
    """FLOPs as a function of the prunable widths of a model whose groups come from torch-pruning's
    dependency graph (:mod:`hplandscape.models.graph_groups`).

    Removing a channel of a group removes a fixed number of output and input channels from each
    layer (one per tied layer, H·W from a linear layer behind a flatten, none from a depthwise
    convolution's per-group input), so each layer's ``weight.shape[0]`` and ``weight.shape[1]``
    are affine in the widths. The slopes are measured once, by removing one channel of each group
    in turn from a copy of the model; the FLOPs of any widths are then a sum of products, and
    :func:`prune_model` checks them against the pruned module's counted FLOPs.

    ``keys`` restricts the groups to those named (a test compares this engine with the declared
    groups' on the built-ins).
    """

    graph = True  # prune through the dependency graph

    def __init__(self, name: str, num_classes: int, in_channels: int, input_shape: tuple[int, int, int],
                 keys: tuple[str, ...] | None = None):
        with torch.random.fork_rng(devices=[]):
            model = build_model(name, num_classes=num_classes, in_channels=in_channels)
        model.eval()
        dg = dependency_graph(model, input_shape)
        groups = graph_groups(model, input_shape, dg)
        if keys is not None:
            groups = [g for g in groups if g.key in keys]
        if not groups:
            raise UserError(f"model {name!r}: no prunable width: every convolution and linear layer is the "
                            f"first layer, the classifier, or tied to one of them")
        self.keys = [g.key for g in groups]
        self.original = np.array([model.get_submodule(k).weight.shape[0] for k in self.keys], dtype=np.int64)
        costs = layer_costs(model, input_shape)
        layers = [m for m, _ in costs.values()]
        shapes = lambda: np.array([m.weight.shape[:2] for m in layers], dtype=np.int64)  # noqa: E731
        self.base = shapes()
        self.coef = np.array([p * m.weight.shape[2:].numel() for m, p in costs.values()], dtype=np.int64)
        slopes = np.zeros((len(self.keys), *self.base.shape), dtype=np.int64)
        before = self.base
        for j, key in enumerate(self.keys):
            remove_channels(model, {key: [int(self.original[j]) - 1]}, input_shape, dg)
            after = shapes()
            slopes[j] = before - after
            before = after
        self.slopes = slopes  # (group, layer, [out, in])

    def flops(self, widths: np.ndarray) -> int:
        removed = self.original - np.asarray(widths, dtype=np.int64)
        shape = self.base - np.tensordot(removed, self.slopes, axes=1)
        return int(2 * (self.coef * shape[:, 0] * shape[:, 1]).sum())


def filter_l1_norms(conv: nn.Conv2d) -> np.ndarray:
    """L1 norm of each filter (output channel) of ``conv``.

    The same numbers as torch-pruning's ``MagnitudeImportance(p=1, group_reduction="first",
    normalizer=None)`` on the conv's pruning group (its first member is the conv's own output
    channels), without evaluating the rest of the group.
    """
    return conv.weight.detach().abs().flatten(1).sum(1).double().cpu().numpy()


# -- choosing widths -------------------------------------------------------------------------------


def _closest(candidates: list[np.ndarray], fm: _FlopsModel, target: float) -> np.ndarray:
    return min(candidates, key=lambda w: abs(fm.flops(w) - target))


def _uniform_widths(fm: _FlopsModel, target: float) -> np.ndarray:
    c = fm.original
    keep = lambda f: np.clip(np.floor(f * c + 1e-9).astype(np.int64), 1, c)  # noqa: E731
    breaks = np.unique(np.concatenate([np.arange(1, n + 1) / n for n in np.unique(c)]))
    flops = np.array([fm.flops(keep(b)) for b in breaks])
    j = max(int(np.searchsorted(flops, target, side="right")) - 1, 0)
    base = keep(breaks[j])
    if j + 1 == len(breaks):
        return base
    # between two consecutive fractions, raise the layers that step up one channel at a time so the
    # budget is met to within one layer's channel, not one stage's
    grow = np.flatnonzero(keep(breaks[j + 1]) > base)
    candidates = [base]
    for i in grow:
        nxt = candidates[-1].copy()
        nxt[i] += 1
        candidates.append(nxt)
    return _closest(candidates, fm, target)


def uniform_widths(fm: _FlopsModel, norms, target: float) -> np.ndarray:
    """``uniform`` as the registry calls it: the same fraction of every prunable layer's filters,
    closest to ``target`` FLOPs (the norms do not matter: each layer keeps its strongest)."""
    return _uniform_widths(fm, target)


def normalize_importance(norms: np.ndarray, normalizer: str) -> np.ndarray:
    """One layer's filter importances after torch-pruning's per-layer ``normalizer``.

    The formulas of ``MagnitudeImportance._normalize`` in torch-pruning 1.6 (same epsilons, the
    sample standard deviation for ``"gaussian"``), in float64. Every one of them is increasing in
    the norm, so within a layer the strongest filters stay the strongest; only the ranking across
    layers changes. A layer whose norms are all zero (or one channel for ``"gaussian"``) scores 0.

    Parameters
    ----------
    norms : numpy.ndarray
        L1 norm of each filter of one layer (:func:`filter_l1_norms`).
    normalizer : str
        One of :data:`NORMALIZERS`.

    Returns
    -------
    numpy.ndarray
        The normalised importances, in the order of ``norms``.

    Examples
    --------
    >>> normalize_importance(np.array([1.0, 2.0, 3.0]), "mean").tolist()
    [0.5, 1.0, 1.5]
    >>> normalize_importance(np.array([1.0, 2.0, 3.0]), "lamp").round(3).tolist()
    [0.167, 0.4, 1.0]
    """
    x = np.asarray(norms, dtype=np.float64)
    if _check_normalizer(normalizer) == "none" or len(x) == 0:
        return x
    if normalizer == "lamp":
        # LAMP (Lee et al., 2021): each score over the sum of itself and every larger score
        order = np.argsort(x, kind="stable")
        ascending = x[order]
        remaining = ascending[::-1].cumsum()[::-1]
        out = np.empty_like(x)
        out[order] = _safe_divide(ascending, remaining)
        return out
    if normalizer == "standarization":  # sic: torch-pruning's spelling, kept so the names match
        return (x - x.min()) / (x.max() - x.min() + 1e-8)
    if normalizer == "gaussian":
        std = x.std(ddof=1) if len(x) > 1 else 0.0
        return (x - x.mean()) / (std + 1e-8)
    scale = {"sum": x.sum(), "mean": x.mean(), "max": x.max()}[normalizer]
    return _safe_divide(x, np.full_like(x, scale))


def _safe_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # 0 where the divisor is 0: an all-zero layer (e.g. dead filters) ranks last, not as NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0)


def _global_widths(fm: _FlopsModel, norms: list[np.ndarray], target: float, normalizer: str = "none",
                   max_layer_prune: float | None = None) -> np.ndarray:
    # Every layer keeps its floor of strongest filters (one channel with no cap); all the others
    # compete on one ranking of normalised importance. A layer whose remaining filters all fall
    # below the threshold stays at its floor, i.e. at the cap, and drops out of the competition:
    # the search below then moves the threshold so the remaining layers share the rest of the
    # budget, rather than pruning the capped layer further or falling short of the budget.
    floor = np.array([1 if max_layer_prune is None else layer_floor(int(c), max_layer_prune) for c in fm.original],
                     dtype=np.int64)
    scores = [normalize_importance(n, normalizer) for n in norms]
    layer = np.concatenate([np.full(len(v) - f, i) for i, (v, f) in enumerate(zip(scores, floor))])
    value = np.concatenate([np.sort(v)[::-1][f:] for v, f in zip(scores, floor)])
    order = np.lexsort((layer, -value))  # descending importance, ties by layer order
    ranked = layer[order]
    at = lambda k: floor + np.bincount(ranked[:k], minlength=len(norms))  # noqa: E731
    lo, hi = 0, len(ranked)  # largest k with flops(at(k)) <= target
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fm.flops(at(mid)) <= target:
            lo = mid
        else:
            hi = mid - 1
    return _closest([at(lo), at(min(lo + 1, len(ranked)))], fm, target)


def _settings(method, **given) -> dict:
    """The settings ``method`` (a registry entry) declares, out of those a caller was given."""
    return {k: v for k, v in given.items() if k in method.settings}


def _smallest_ratio(fm: _FlopsModel, method: str, max_layer_prune: float | None = None) -> float:
    # A target of 0 FLOPs makes each method return its narrowest architecture; which filters rank
    # highest does not matter there, so the ranking may be all ties (all-zero norms, which every
    # normaliser maps to zeros).
    m = get_kind(method, STRUCTURED)
    zeros = [np.zeros(int(c)) for c in fm.original]
    widths = m.maker()(fm, zeros, 0.0, **_settings(m, normalizer="none", max_layer_prune=max_layer_prune))
    return fm.flops(widths) / fm.flops(fm.original)


def smallest_ratio(model_name: str, method: str, *, num_classes: int | None = None, in_channels: int = 3,
                   input_shape=None, max_layer_prune: float = DEFAULT_MAX_LAYER_PRUNE) -> float:
    """The smallest FLOPs ratio ``method`` can reach on an architecture, with no weights and no training.

    Parameters
    ----------
    model_name : str
        Registered architecture.
    method : str
        A registered structured method (``"uniform"``, ``"global"``).
    num_classes, in_channels : int, optional
        As in :func:`prune` (default: the architecture's own class count, 3 channels).
    input_shape : tuple of int, optional
        (channels, height, width) the FLOPs are counted at; default the model's.
    max_layer_prune : float
        Global pruning's cap, as in :func:`prune` (uniform pruning ignores it).

    Returns
    -------
    float
        FLOPs of the narrowest architecture the method produces over the unpruned FLOPs: every
        prunable layer keeps one channel (uniform) or its floor under the cap (global). A ratio is
        accepted by :func:`prune` when :func:`reachable` says so.

    Examples
    --------
    >>> r = smallest_ratio("resnet56", "global")
    >>> 0 < r < 0.2, reachable(0.2, r), reachable(r / 2, r)
    (True, True, False)
    """
    get_kind(method, STRUCTURED)
    _check_layer_cap(max_layer_prune)
    num_classes = get_entry(model_name).num_classes if num_classes is None else num_classes
    shape = input_shape_of(model_name, in_channels, input_shape)
    return _smallest_ratio(_flops_model(model_name, num_classes, in_channels, shape), method, max_layer_prune)


def narrowest_words(method: str, max_layer_prune: float) -> str:
    """What the narrowest architecture of ``method`` is, in words (for error messages)."""
    return get_kind(method, STRUCTURED).narrowest_words(max_layer_prune=max_layer_prune)


def reachable(ratio: float, smallest: float) -> bool:
    """Whether a FLOPs ``ratio`` can be met given the method's :func:`smallest_ratio`, within ``TOLERANCE``."""
    return smallest <= ratio * (1 + TOLERANCE)


# -- pruning ---------------------------------------------------------------------------------------


def _check_ratio(ratio: Any) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) \
            or not 0 < ratio <= 1:
        raise UserError(f"ratio must be a number in (0, 1] (the fraction of FLOPs kept), got {ratio!r}")
    return float(ratio)


def _check_layer_cap(max_layer_prune: Any) -> float:
    if not is_layer_cap(max_layer_prune):
        raise UserError(f"max_layer_prune must be a number in (0, 1) (the largest fraction of one layer's "
                        f"channels global pruning may remove), got {max_layer_prune!r}")
    return float(max_layer_prune)


def _check_normalizer(normalizer: Any) -> str:
    if normalizer not in NORMALIZERS:
        raise UserError(f"unknown importance normalizer {normalizer!r}; allowed: {', '.join(NORMALIZERS)}")
    return normalizer


def source_model(model_name: str, num_classes, in_channels, source, seed: int):
    """The unpruned model whose weights rank the filters (or weights), its counts and its label.

    Returns ``(model, num_classes, in_channels, label, init_seed)``: the trained basemodel from the
    weights file ``source`` (label ``checkpoint:<sha256>``, init_seed None) or, with ``source``
    None, a He init drawn with ``seed`` (label ``random-init``). Structured pruning
    (:func:`prune`) and unstructured masks (:func:`hplandscape.pruning.unstructured.make_masks`) share it.
    """
    if source is None:
        num_classes = get_entry(model_name).num_classes if num_classes is None else num_classes
        in_channels = 3 if in_channels is None else in_channels
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserError(f"seed must be an integer, got {seed!r}")
        with torch.random.fork_rng(devices=[]):  # leave the caller's generator untouched
            torch.manual_seed(seed)
            model = build_model(model_name, num_classes=num_classes, in_channels=in_channels)
        return model, num_classes, in_channels, RANDOM_INIT, seed
    weights = load_weights(source, expected_model=model_name)
    if weights.widths:
        raise UserError(f"{source}: holds an already pruned {model_name!r}; "
                        "the importance ranking needs the unpruned basemodel's weights")
    for key, asked in (("num_classes", num_classes), ("in_channels", in_channels)):
        if asked is not None and asked != getattr(weights, key):
            raise UserError(f"{source}: was trained with {key}={getattr(weights, key)}, but {key}={asked} "
                            f"was asked for; omit it or pass {getattr(weights, key)}")
    return weights.build(), weights.num_classes, weights.in_channels, f"checkpoint:{file_sha256(source)}", None


def prune_model(model_name: str, method: str, ratio: float, *, num_classes: int | None = None,
                in_channels: int | None = None, input_shape=None, source=None, seed: int = 0,
                normalizer: str = DEFAULT_NORMALIZER,
                max_layer_prune: float = DEFAULT_MAX_LAYER_PRUNE) -> tuple[ArchSpec, nn.Module]:
    """Like :func:`prune`, also returning the pruned module with the surviving source weights.

    The module is what torch-pruning produced from the source model; its shapes equal
    ``build_from_spec(spec)``'s.
    """
    registered = get_kind(method, STRUCTURED)
    ratio = _check_ratio(ratio)
    normalizer, max_layer_prune = _check_normalizer(normalizer), _check_layer_cap(max_layer_prune)
    get_entry(model_name)  # unknown names fail before any checkpoint is read
    if in_channels is None and source is None and isinstance(input_shape, (tuple, list)) and input_shape:
        in_channels = input_shape[0]  # (1, 8, 8) alone means a grey model
    model, num_classes, in_channels, label, init_seed = source_model(model_name, num_classes, in_channels,
                                                                      source, seed)
    shape = input_shape_of(model_name, in_channels, input_shape)
    fm = _flops_model(model_name, num_classes, in_channels, shape)
    original_flops = fm.flops(fm.original)
    target = ratio * original_flops
    smallest = _smallest_ratio(fm, method, max_layer_prune)
    if not reachable(ratio, smallest):
        raise UserError(f"ratio {ratio:g} is unreachable for {model_name} at input {shape}: the smallest "
                        f"reachable ratio is {smallest:.4f} ({narrowest_words(method, max_layer_prune)})")

    norms = [filter_l1_norms(model.get_submodule(key)) for key in fm.keys]
    # the method's own settings only: they are recorded in its spec, the others stay out of it
    settings = _settings(registered, normalizer=normalizer, max_layer_prune=max_layer_prune)
    widths = registered.maker()(fm, norms, target, **settings)

    original_params = count_params(model)
    _cut(model, dict(zip(fm.keys, (int(w) for w in widths))), shape, fm.graph)
    flops = fm.flops(widths)
    if fm.graph and count_flops(model, shape) != flops:  # the affine shape model must hold for this network
        raise RuntimeError(f"model {model_name!r}: the pruned network counts {count_flops(model, shape)} FLOPs, "
                           f"the dependency graph's FLOPs model {flops}")
    spec = ArchSpec(model=model_name, num_classes=num_classes, in_channels=in_channels, input_shape=shape,
                    method=method, target_ratio=ratio, achieved_ratio=round(flops / original_flops, 6),
                    widths={k: int(w) for k, w in zip(fm.keys, widths)},
                    original_widths={k: int(w) for k, w in zip(fm.keys, fm.original)},
                    params=count_params(model), flops=flops, original_params=original_params,
                    original_flops=original_flops, source=label, init_seed=init_seed, **settings)
    return spec, model


def _cut(model: nn.Module, widths: dict[str, int], shape, graph: bool = False) -> None:
    """Remove from ``model`` (in place) each prunable layer's weakest filters by L1 norm, down to
    ``widths[layer]`` (ties: the later channel goes first). ``graph``: the model's groups come from
    the dependency graph (traced at ``shape``), not from declarations."""
    model.eval()
    # the declared groups' wiring does not depend on the resolution: trace them at most 32×32; a
    # model of the user's may need its own input size (a flatten into a linear layer)
    trace = tuple(shape) if graph else (shape[0], min(shape[1], 32), min(shape[2], 32))
    # every layer's norms before any cut: a cut changes the input channels of the next layer, not
    # the filters this layer is ranked by
    norms = {key: filter_l1_norms(model.get_submodule(key)) for key in widths}
    drop = {key: np.argsort(-norms[key], kind="stable")[keep:] for key, keep in widths.items()}  # strongest first
    remove_channels(model, drop, trace)
    got = {key: model.get_submodule(key).weight.shape[0] for key in widths}
    if got != widths:  # torch-pruning must cut exactly what was chosen
        raise RuntimeError(f"torch-pruning left widths {got}, expected {widths}")


def pruned_source(spec: ArchSpec, source) -> nn.Module:
    """The trained basemodel in ``source`` cut to ``spec``'s widths: the filters it keeps, with their
    trained weights (what a fine-tuned structured condition starts from).

    The same filters :func:`prune` kept when it made ``spec`` from ``source``: each layer's
    strongest by L1 norm.

    Raises
    ------
    UserError
        ``source`` is not the checkpoint ``spec`` was made from (its sha256 differs), or not a
        weights file of the spec's model.
    """
    if spec.source != f"checkpoint:{file_sha256(source)}":
        raise UserError(f"{source}: is not the checkpoint the pruned architecture was made from ({spec.source}); "
                        "delete the condition's spec so it is made again from these weights")
    model, *_ = source_model(spec.model, spec.num_classes, spec.in_channels, source, 0)
    _cut(model, dict(spec.widths), spec.input_shape, not declares_groups(model))
    return model


def prune(model_name: str, method: str, ratio: float, *, num_classes: int | None = None,
          in_channels: int | None = None, input_shape=None, source=None, seed: int = 0,
          normalizer: str = DEFAULT_NORMALIZER, max_layer_prune: float = DEFAULT_MAX_LAYER_PRUNE) -> ArchSpec:
    """Prune an architecture to keep ``ratio`` of its FLOPs; return the pruned architecture spec.

    Parameters
    ----------
    model_name : str
        Registered architecture.
    method : str
        A registered structured method (:mod:`hplandscape.pruning.methods`): ``"uniform"``, the
        same filter fraction in every prunable layer, or ``"global"``, one threshold on normalised
        L1 importance across them.
    ratio : float
        Fraction of FLOPs kept, in (0, 1]; the result is the closest reachable (within 2 % for
        ratios 0.2–0.9 on the registered models).
    num_classes, in_channels : int, optional
        Default: the checkpoint's values with ``source``, else 10 (1000 for ImageNet models) and 3.
        Given together with ``source`` they must match the checkpoint.
    input_shape : tuple of int, optional
        (channels, height, width) the FLOPs are counted at; default the model's (32×32 or 224×224).
    source : str or Path, optional
        Weights file of the trained basemodel (see :func:`hplandscape.models.save_weights`) whose
        filter norms rank the channels; None ranks a random He init drawn with ``seed``.
    seed : int
        Seed of that random init.
    normalizer : str
        Global pruning: the per-layer normaliser of the L1 importance before the one threshold is
        applied, named as in torch-pruning's ``MagnitudeImportance(normalizer=...)`` (see
        :data:`NORMALIZERS`); ``"none"`` ranks the raw norms. Recorded in the spec.
    max_layer_prune : float
        Global pruning: the largest fraction of any one layer's filters that may be removed, in
        (0, 1); each layer keeps at least ``ceil((1 - max_layer_prune)·C)`` of its ``C`` filters
        (and always one). Recorded in the spec. Uniform pruning ignores both settings.

    Returns
    -------
    ArchSpec

    Raises
    ------
    UserError
        Unknown model, method or normalizer, ratio outside (0, 1] or below the smallest reachable
        ratio (named in the message), max_layer_prune outside (0, 1), a checkpoint of another
        architecture or a corrupt one.
    """
    return prune_model(model_name, method, ratio, num_classes=num_classes, in_channels=in_channels,
                       input_shape=input_shape, source=source, seed=seed, normalizer=normalizer,
                       max_layer_prune=max_layer_prune)[0]


def build_from_spec(spec: ArchSpec | dict) -> nn.Module:
    """Build the pruned architecture with fresh He init (seed torch's generator beforehand).

    ``spec`` may also be the dict form (``RunSpec.arch``); no pickled module is ever loaded.
    """
    if not isinstance(spec, ArchSpec):
        spec = ArchSpec.from_dict(spec)
    return build_model(spec.model, num_classes=spec.num_classes, in_channels=spec.in_channels,
                       widths=spec.widths, input_shape=spec.input_shape)
