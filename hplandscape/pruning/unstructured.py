"""Unstructured sparsity: which weights a condition keeps, its masks file, and holding the masks
through training.

The prunable weights are the weights of every convolution and linear layer except the first
convolution and the classifier (the last linear layer), which stay dense as in structured pruning
(method §5). A mask keeps ``ratio`` (the condition's *density*) of them:

- ``magnitude``: one ranking of |w| across all prunable layers (Han et al., 2015, applied
  globally). Every layer first keeps its floor of strongest weights, ``sparse_layer_floor`` ×
  the density × its size (at least one weight); all other weights compete on one ranking. Without
  the floor, the layers whose weights are small (large fan-in: He init scales by 1/√fan-in) empty
  first, as one raw threshold does for structured pruning (docs/method.md §5).
- ``magnitude_layerwise``: the same density in every layer, each its strongest |w|.
- ``random``: as many weights per layer as ``magnitude`` keeps, at random positions: the control
  that separates *which* weights from *how many per layer*.
- ``set``: Sparse Evolutionary Training (Mocanu et al., 2018): Erdős–Rényi per-layer densities
  ε·(c_in + c_out)/(c_in·c_out) (channels; a layer that would exceed 1 stays dense and ε is
  solved again), random positions; the topology then evolves during training
  (:mod:`hplandscape.pruning.set_topology`).

Masks come from the weights that rank structured pruning too (:func:`hplandscape.pruning.structured.source_model`:
the basemodel trained at the prior, or a seeded He init), are applied to each run's network at its
start and held by :class:`MaskedTraining`: gradients of masked weights are zeroed before every
optimizer step, so neither weight decay (λ·0 = 0) nor momentum revives them, and the weights are
zeroed again after it.

Examples
--------
>>> spec, masks = make_masks("resnet20", "magnitude", 0.2)
>>> abs(spec.achieved_density - 0.2) < 0.01, spec.source
(True, 'random-init')
>>> sorted(masks)[:2]
['layer1.0.conv1', 'layer1.0.conv2']
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from hplandscape.atomic import atomic_open
from hplandscape.errors import UserError
from hplandscape.models import build_model, count_params, input_shape_of
from hplandscape.models.counting import layer_costs
from hplandscape.pruning.mask_spec import DEFAULT_SET_ZETA, DEFAULT_SPARSE_LAYER_FLOOR, MaskSpec, is_fraction
from hplandscape.pruning.methods import UNSTRUCTURED, get_kind

MASKS_FORMAT = 1

# -- which weights ---------------------------------------------------------------------------------


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """``{module name: weight}`` of the layers unstructured pruning may mask, in module order.

    Every convolution and linear layer except the first convolution and the last linear layer (the
    classifier).

    Raises
    ------
    UserError
        The model has no convolution or no linear layer to leave dense, or nothing else.
    """
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
    convs = [n for n, m in layers if isinstance(m, nn.modules.conv._ConvNd)]
    linears = [n for n, m in layers if isinstance(m, nn.Linear)]
    if not convs or not linears:
        raise UserError(f"{type(model).__name__}: unstructured pruning needs a first convolution and a classifier "
                        f"(linear) layer to keep dense; found {len(convs)} convolution(s), {len(linears)} linear")
    dense = {convs[0], linears[-1]}
    out = {n: m.weight for n, m in layers if n not in dense}
    if not out:
        raise UserError(f"{type(model).__name__}: no prunable layer besides the first convolution and the classifier")
    return out


# -- how many per layer ------------------------------------------------------------------------------


def _total_kept(sizes: dict[str, int], density: float) -> int:
    return max(1, int(math.floor(density * sum(sizes.values()) + 0.5)))


def layer_floors(sizes: dict[str, int], density: float, floor: float) -> dict[str, int]:
    """Weights each layer keeps at least under global magnitude pruning: ``ceil(floor·density·n)``, ≥ 1.

    Examples
    --------
    >>> layer_floors({"a": 1000, "b": 10}, 0.2, 0.1)
    {'a': 20, 'b': 1}
    """
    # the 1e-9 absorbs float error (0.1·0.2·1000 is 20.000000000000004)
    return {k: min(n, max(1, math.ceil(floor * density * n - 1e-9))) for k, n in sizes.items()}


def magnitude_counts(weights: dict[str, torch.Tensor], density: float,
                     floor: float = DEFAULT_SPARSE_LAYER_FLOOR) -> dict[str, int]:
    """Weights kept per layer by one global |w| ranking with a per-layer floor.

    Each layer keeps its :func:`layer_floors` strongest weights; the rest of the budget
    ``round(density·N)`` goes to the strongest of all remaining weights (ties: earlier layer,
    then earlier position).
    """
    sizes = {k: w.numel() for k, w in weights.items()}
    floors = layer_floors(sizes, density, floor)
    rest = _total_kept(sizes, density) - sum(floors.values())
    if rest <= 0:
        return floors
    pools = [_descending(w)[floors[k]:] for k, w in weights.items()]
    layer = torch.cat([torch.full((len(p),), i, dtype=torch.int64) for i, p in enumerate(pools)])
    order = torch.sort(torch.cat(pools), descending=True, stable=True).indices[:rest]
    extra = torch.bincount(layer[order], minlength=len(pools)).tolist()
    return {k: floors[k] + e for k, e in zip(weights, extra)}


def layerwise_counts(sizes: dict[str, int], density: float) -> dict[str, int]:
    """The same density in every layer: ``round(density·n)`` weights, at least one.

    Examples
    --------
    >>> layerwise_counts({"a": 1000, "b": 10}, 0.05)
    {'a': 50, 'b': 1}
    """
    return {k: min(n, max(1, int(math.floor(density * n + 0.5)))) for k, n in sizes.items()}


def erdos_renyi_counts(shapes: dict[str, torch.Size], density: float) -> dict[str, int]:
    """Erdős–Rényi per-layer counts (SET): density_l = ε·(c_in + c_out)/(c_in·c_out), ε from the budget.

    ``c_out`` and ``c_in`` are a weight's first two dimensions (a depthwise convolution has
    c_in = 1). A layer whose density would exceed 1 is kept dense and ε is solved again for the
    others, as in the RigL reference implementation.

    Examples
    --------
    >>> erdos_renyi_counts({"a": torch.Size([64, 64]), "b": torch.Size([64, 16])}, 0.25)
    {'a': 788, 'b': 492}
    """
    sizes = {k: int(np.prod(s)) for k, s in shapes.items()}
    scale = {k: (s[0] + s[1]) / (s[0] * s[1]) for k, s in shapes.items()}
    budget = density * sum(sizes.values())
    dense: set[str] = set()
    eps = 0.0
    while True:
        free = [k for k in shapes if k not in dense]
        denom = sum(scale[k] * sizes[k] for k in free)
        if not free or denom <= 0:
            break
        eps = (budget - sum(sizes[k] for k in dense)) / denom
        over = [k for k in free if eps * scale[k] > 1]
        if not over:
            break
        dense.update(over)
    return {k: sizes[k] if k in dense else min(sizes[k], max(1, int(math.floor(eps * scale[k] * sizes[k] + 0.5))))
            for k in shapes}


# -- where in each layer -----------------------------------------------------------------------------


def _descending(w: torch.Tensor) -> torch.Tensor:
    return torch.sort(w.detach().abs().flatten().double().cpu(), descending=True, stable=True).values


def top_magnitude_masks(weights: dict[str, torch.Tensor], counts: dict[str, int]) -> dict[str, torch.Tensor]:
    """Each layer's ``counts[layer]`` largest |w| (ties: earlier position) as a boolean mask."""
    out = {}
    for k, w in weights.items():
        flat = w.detach().abs().flatten().double().cpu()
        keep = torch.sort(flat, descending=True, stable=True).indices[:counts[k]]
        out[k] = _mask_from(keep, w.shape)
    return out


def random_masks(shapes: dict[str, torch.Size], counts: dict[str, int], seed: int) -> dict[str, torch.Tensor]:
    """``counts[layer]`` positions per layer drawn uniformly without replacement, seeded."""
    g = torch.Generator().manual_seed(int(seed))
    return {k: _mask_from(torch.randperm(int(np.prod(s)), generator=g)[:counts[k]], s) for k, s in shapes.items()}


def _mask_from(indices: torch.Tensor, shape) -> torch.Tensor:
    m = torch.zeros(int(np.prod(shape)), dtype=torch.bool)
    m[indices] = True
    return m.reshape(shape)


# -- the masks of a condition ------------------------------------------------------------------------


# The registered unstructured methods' masks (:mod:`hplandscape.pruning.methods`): each takes the
# prunable weights and the density, its settings by spec field and the seed of random positions.


def magnitude_masks(weights: dict[str, torch.Tensor], density: float, *, seed: int,
                    layer_floor: float) -> dict[str, torch.Tensor]:
    """``magnitude``: the strongest |w| of one ranking across layers, each layer above its floor."""
    return top_magnitude_masks(weights, magnitude_counts(weights, density, layer_floor))


def layerwise_masks(weights: dict[str, torch.Tensor], density: float, *, seed: int) -> dict[str, torch.Tensor]:
    """``magnitude_layerwise``: the strongest |w| of each layer, the same density in every layer."""
    return top_magnitude_masks(weights, layerwise_counts({k: w.numel() for k, w in weights.items()}, density))


def random_floor_masks(weights: dict[str, torch.Tensor], density: float, *, seed: int,
                       layer_floor: float) -> dict[str, torch.Tensor]:
    """``random``: as many weights per layer as ``magnitude`` keeps, at positions drawn with ``seed``."""
    shapes = {k: w.shape for k, w in weights.items()}
    return random_masks(shapes, magnitude_counts(weights, density, layer_floor), seed)


def set_masks(weights: dict[str, torch.Tensor], density: float, *, seed: int, zeta: float) -> dict[str, torch.Tensor]:
    """``set``: Erdős–Rényi counts at positions drawn with ``seed``; ``zeta`` acts between epochs
    (:func:`hplandscape.pruning.set_topology.prune_and_regrow`), not here."""
    shapes = {k: w.shape for k, w in weights.items()}
    return random_masks(shapes, erdos_renyi_counts(shapes, density), seed)


def make_masks(model_name: str, method: str, density: float, *, num_classes: int | None = None,
               in_channels: int | None = None, input_shape=None, source=None, seed: int = 0,
               layer_floor: float = DEFAULT_SPARSE_LAYER_FLOOR,
               zeta: float = DEFAULT_SET_ZETA) -> tuple[MaskSpec, dict[str, torch.Tensor]]:
    """The masks of an unstructured condition and their :class:`~hplandscape.pruning.mask_spec.MaskSpec`.

    Parameters
    ----------
    model_name : str
        Registered architecture.
    method : str
        A registered unstructured method (:mod:`hplandscape.pruning.methods`): ``"magnitude"``,
        ``"magnitude_layerwise"``, ``"random"``, ``"set"``.
    density : float
        Fraction of the prunable weights kept, in (0, 1).
    num_classes, in_channels, input_shape, source, seed
        As in :func:`hplandscape.pruning.structured.prune`: ``source`` is the trained basemodel's weights
        file whose |w| rank the weights (None: a He init drawn with ``seed``). ``seed`` also
        draws the positions of ``random`` and ``set`` masks.
    layer_floor : float
        ``magnitude`` and ``random``: every layer keeps at least ``layer_floor × density`` of its
        weights (in (0, 1]).
    zeta : float
        ``set``: recorded in the spec, used by every run (:mod:`hplandscape.pruning.set_topology`).

    Returns
    -------
    (MaskSpec, dict)
        The spec and ``{layer: bool tensor}`` in module order.

    Raises
    ------
    UserError
        Unknown method, a density or floor outside its range, or what
        :func:`hplandscape.pruning.structured.prune` refuses about the source.
    """
    from hplandscape.pruning.structured import source_model  # late: pruning imports torch-pruning

    registered = get_kind(method, UNSTRUCTURED)
    if not is_fraction(density):
        raise UserError(f"density must be a number in (0, 1) (the fraction of prunable weights kept), got {density!r}")
    if not is_fraction(layer_floor, closed=True):
        raise UserError(f"layer_floor must be a number in (0, 1], got {layer_floor!r}")
    if not is_fraction(zeta):
        raise UserError(f"zeta must be a number in (0, 1), got {zeta!r}")
    if in_channels is None and source is None and isinstance(input_shape, (tuple, list)) and input_shape:
        in_channels = input_shape[0]
    model, num_classes, in_channels, label, init_seed = source_model(model_name, num_classes, in_channels, source,
                                                                     seed)
    weights = prunable_weights(model)
    sizes = {k: w.numel() for k, w in weights.items()}
    # the method's own settings only, by spec field; the others stay out of its spec (None)
    settings = {f: float(v) for f, v in dict(layer_floor=layer_floor, zeta=zeta).items() if f in registered.settings}
    masks = registered.maker()(weights, density, seed=seed, **settings)
    kept = {k: int(m.sum()) for k, m in masks.items()}
    shape = input_shape_of(model_name, in_channels, input_shape)
    with torch.device("meta"):
        meta = build_model(model_name, num_classes=num_classes, in_channels=in_channels)
    params, flops = sparse_costs(meta, shape, kept)
    dense_params, dense_flops = sparse_costs(meta, shape, sizes)
    spec = MaskSpec(model=model_name, num_classes=num_classes, in_channels=in_channels, input_shape=shape,
                    method=method, target_density=float(density),
                    achieved_density=round(sum(kept.values()) / sum(sizes.values()), 6), kept=kept, sizes=sizes,
                    params=params, flops=flops, original_params=dense_params, original_flops=dense_flops,
                    source=label, masks_sha256=masks_sha256(masks), init_seed=init_seed,
                    mask_seed=int(seed) if registered.seeded else None, **settings)
    return spec, masks


def sparse_costs(model: nn.Module, input_shape, kept: dict[str, int]) -> tuple[int, int]:
    """(parameters, FLOPs) of ``model`` when its prunable layers keep ``kept[layer]`` weights.

    Masked weights are not counted as parameters; each layer costs its dense FLOPs × its density
    (2 × output positions × kept weights), the other layers their dense FLOPs. Works on the
    ``meta`` device.
    """
    weights = prunable_weights(model)
    if set(kept) != set(weights):
        raise UserError(f"kept counts name {sorted(kept)[:3]}…, the model's prunable layers are "
                        f"{list(weights)[:3]}…")
    params = count_params(model) - sum(w.numel() - kept[k] for k, w in weights.items())
    flops = sum(2 * positions * (kept[name] if name in weights else m.weight.numel())
                for name, (m, positions) in layer_costs(model, input_shape).items())
    return int(params), int(flops)


class Measured(NamedTuple):
    """What a trained network's weights say about its sparsity: non-zero fraction of the prunable
    weights, and parameters and FLOPs with the zero weights of the prunable layers left out."""

    density: float
    params: int
    flops: int


def _nonzero(model: nn.Module) -> tuple[dict[str, int], int]:
    weights = prunable_weights(model)
    nonzero = {k: int(torch.count_nonzero(w.detach())) for k, w in weights.items()}
    return nonzero, sum(w.numel() for w in weights.values())


def density_of(model: nn.Module) -> float:
    """The non-zero fraction of ``model``'s prunable weights."""
    nonzero, total = _nonzero(model)
    return sum(nonzero.values()) / total


def measure(model: nn.Module, input_shape) -> Measured:
    """Count the non-zero prunable weights of ``model`` and what the network costs without the zeros
    (one forward pass of a single input, for the layers' output sizes)."""
    nonzero, total = _nonzero(model)
    params, flops = sparse_costs(model, input_shape, nonzero)
    return Measured(sum(nonzero.values()) / total, params, flops)


# -- the masks file -----------------------------------------------------------------------------------


def masks_sha256(masks: dict[str, torch.Tensor]) -> str:
    """sha256 of the masks' content (layer names, shapes and bits, in order): not of a file's bytes."""
    h = hashlib.sha256()
    for k, m in masks.items():
        h.update(f"{k}:{tuple(m.shape)};".encode())
        h.update(np.packbits(m.detach().cpu().numpy().astype(bool).ravel()).tobytes())
    return h.hexdigest()


def save_masks(path, masks: dict[str, torch.Tensor]) -> Path:
    """Write ``{layer: bool tensor}`` atomically (``torch.save``, read back with ``weights_only``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": MASKS_FORMAT, "masks": {k: m.detach().cpu().bool() for k, m in masks.items()}}
    with atomic_open(path, "wb") as fh:
        torch.save(payload, fh)
    return path


def load_masks(path, spec: MaskSpec) -> dict[str, torch.Tensor]:
    """The masks in ``path``, checked against ``spec`` (layers, sizes, kept counts and content hash).

    Raises
    ------
    UserError
        Naming ``path``: unreadable, not a masks file, or not the masks ``spec`` describes.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: masks file not found; sweep again to make it") from None
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise UserError(f"{path}: cannot read this masks file ({type(exc).__name__}); delete it and the "
                        f"spec next to it, then sweep again") from None
    masks = payload.get("masks") if isinstance(payload, dict) and payload.get("format") == MASKS_FORMAT else None
    if not isinstance(masks, dict):
        raise UserError(f"{path}: not an hplandscape masks file (format {MASKS_FORMAT})")
    if list(masks) != list(spec.sizes) or any(masks[k].numel() != n for k, n in spec.sizes.items()):
        raise UserError(f"{path}: its layers do not match the mask spec ({len(masks)} layers, spec "
                        f"{len(spec.sizes)}); delete it and the spec next to it, then sweep again")
    if masks_sha256(masks) != spec.masks_sha256:
        raise UserError(f"{path}: its masks are not the ones its spec describes (content hash differs); "
                        f"delete it and the spec next to it, then sweep again")
    return masks


# -- holding the masks through training ----------------------------------------------------------------


class MaskedTraining:
    """Keeps a run's masked weights exactly zero through training, and evolves SET's masks.

    Attaches two hooks to ``optimizer``: before every step the gradients of masked weights are
    zeroed (so the coupled weight decay λ·w = 0 and momentum, whose buffer only ever accumulates
    zeros there, move nothing), after it the masked weights are zeroed again (exact zeros whatever
    the optimizer does). The masks are part of the checkpoint (:meth:`state_dict`), so a resumed
    run continues with the topology it had.

    Parameters
    ----------
    model : nn.Module
        The run's network (on its device).
    masks : dict
        ``{layer: bool tensor}`` for exactly :func:`prunable_weights` of ``model``.
    optimizer : torch.optim.Optimizer
    zeta : float, optional
        SET's prune-and-regrow fraction. Without ``method``, a ζ alone is short for
        ``method="set"`` and None keeps the masks fixed.
    seed : int
        Seeds the topology step (one generator per epoch, derived from this seed and the epoch).
    method : str, optional
        The condition's unstructured method: the topology step its registry entry declares
        (:attr:`~hplandscape.pruning.methods.PruningMethod.evolve`; none keeps the masks fixed) runs
        between epochs, with the method's settings taken from ``settings``.
    settings : dict, optional
        The spec's settings by field (``{"zeta": 0.3}``); default ``{"zeta": zeta}``.
    """

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor], optimizer, *, zeta: float | None = None,
                 seed: int = 0, method: str | None = None, settings: dict | None = None):
        self.weights = prunable_weights(model)
        self.optimizer = optimizer
        self.seed = int(seed)
        if method is None and zeta is not None:
            method = "set"
        registered = None if method is None else get_kind(method, UNSTRUCTURED)
        self._evolve = None if registered is None else registered.evolver()
        given = {"zeta": zeta} if settings is None else settings
        self._settings = {} if registered is None else {f: given.get(f) for f in registered.settings}
        self._set(masks, "the masks")
        optimizer.register_step_pre_hook(lambda *_: self._mask_grads())
        optimizer.register_step_post_hook(lambda *_: self.apply())

    def _set(self, masks: dict, where: str) -> None:
        if list(masks) != list(self.weights) or any(masks[k].shape != w.shape for k, w in self.weights.items()):
            raise UserError(f"{where}: they mask other layers than the network's prunable ones "
                            f"({list(masks)[:2]}… vs {list(self.weights)[:2]}…)")
        self.masks = {k: masks[k].to(device=w.device, dtype=torch.bool) for k, w in self.weights.items()}
        self._off = {k: ~m for k, m in self.masks.items()}

    @torch.no_grad()
    def apply(self) -> None:
        """Zero every masked weight."""
        for k, w in self.weights.items():
            w.masked_fill_(self._off[k], 0.0)

    @torch.no_grad()
    def _mask_grads(self) -> None:
        for k, w in self.weights.items():
            if w.grad is not None:
                w.grad.masked_fill_(self._off[k], 0.0)

    def end_epoch(self, epoch: int, epochs: int) -> bool:
        """After ``epoch``: the method's topology step (SET removes and regrows), not after the last
        epoch. True when the masks changed."""
        if self._evolve is None or epoch + 1 >= epochs:
            return False
        from hplandscape.pruning.set_topology import epoch_generator

        new = self._evolve(self.weights, self.masks, generator=epoch_generator(self.seed, epoch), **self._settings)
        self._set(new, "the topology step")
        self.apply()
        # Removed weights must not come back with the momentum they had; regrown ones start at 0
        # with no momentum (their gradients were masked, so their buffers hold zeros already).
        for k, w in self.weights.items():
            buf = self.optimizer.state.get(w, {}).get("momentum_buffer")
            if buf is not None:
                buf.masked_fill_(self._off[k], 0.0)
        return True

    def state_dict(self) -> dict:
        """The masks on the CPU (plain tensors: checkpoints load with ``weights_only``)."""
        return {"masks": {k: m.cpu() for k, m in self.masks.items()}}

    def load_state_dict(self, state, where: str) -> None:
        """Restore masks saved by :meth:`state_dict`; ``where`` names the checkpoint in errors."""
        if not isinstance(state, dict) or not isinstance(state.get("masks"), dict):
            raise UserError(f"{where}: holds no masks for this sparse run")
        self._set(state["masks"], where)

    @property
    def density(self) -> float:
        """Kept fraction of the prunable weights."""
        kept = sum(int(m.sum()) for m in self.masks.values())
        return kept / sum(m.numel() for m in self.masks.values())
