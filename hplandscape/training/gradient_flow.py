"""Effective gradient flow (Tessera et al., 2021): how much gradient reaches the weights a run keeps.

EGF_p = (1/L) Σ_l ‖g_l ⊙ m_l‖_p over the L prunable layers (:func:`hplandscape.pruning.unstructured.prunable_weights`),
g_l the gradient of the mean training loss with respect to layer l's weight and m_l its mask (all
ones for an unmasked network), for p = 1 and 2. Only the weights that can move count, so a sparse
and a dense network are compared on the gradient that actually trains them.

A run with ``train.gradient_flow: true`` measures it at :func:`egf_epochs` (about 11 evenly spaced
epoch boundaries: before training, ..., after the last epoch) on a fixed sample of
:data:`EGF_IMAGES` training images without augmentation, in training mode (batch statistics, as
training sees them). The measurement leaves the run untouched: BatchNorm's running statistics are
restored, the parameters' ``.grad`` and torch's random state are not used, so a run with and
without it trains identically.

Examples
--------
>>> g = [torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0, 2.0, 100.0])]
>>> m = [torch.tensor([True, True]), torch.tensor([True, True, True, False])]
>>> effective_gradient_flow(g, m)
(6.0, 4.0)
>>> egf_epochs(180)[:4], len(egf_epochs(180)), egf_epochs(3)
((0, 18, 36, 54), 11, (0, 1, 2, 3))
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from hplandscape.errors import UserError

#: Epoch boundaries measured: 0, E/10, ..., E (rounded; fewer when E < 10).
EGF_POINTS = 11
#: Training images in the fixed sample whose mean-loss gradient is measured.
EGF_IMAGES = 2048
#: Seeds the sample's order (one sample for every run and every measurement).
EGF_SAMPLE_SEED = 20210301


def egf_epochs(epochs: int) -> tuple[int, ...]:
    """The epoch boundaries where gradient flow is measured (0 = before the first epoch)."""
    return tuple(sorted({int(math.floor(k * epochs / (EGF_POINTS - 1) + 0.5)) for k in range(EGF_POINTS)}))


def effective_gradient_flow(grads: Sequence[torch.Tensor], masks: Sequence[torch.Tensor | None]) -> tuple[float, float]:
    """(EGF_1, EGF_2) of per-layer gradients and masks (None: the layer is dense).

    The mean over layers of the L1 and L2 norms of each masked gradient.
    """
    if not grads:
        raise ValueError("effective_gradient_flow needs at least one layer")
    n1 = n2 = 0.0
    for g, m in zip(grads, masks, strict=True):
        g = g.detach().double()
        if m is not None:
            g = torch.where(m.to(g.device), g, torch.zeros((), dtype=g.dtype, device=g.device))
        n1 += float(g.abs().sum())
        n2 += float(g.pow(2).sum().sqrt())
    return n1 / len(grads), n2 / len(grads)


def measure(model, weights: dict, masks: dict | None, data, batch_size: int, placement) -> tuple[float, float]:
    """(EGF_1, EGF_2) of ``model`` now, on the fixed training sample.

    Parameters
    ----------
    model : nn.Module
        The run's network on ``placement.device``.
    weights : dict
        ``{layer: weight}``: the prunable layers (:func:`hplandscape.pruning.unstructured.prunable_weights`).
    masks : dict or None
        ``{layer: bool tensor}``, or None for an unmasked network.
    data
        The run's data (``train_batches``), already on its device.
    batch_size : int
        Images per forward pass (the recipe's training batch size).
    placement : hplandscape.training.setup.Placement
    """
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    was_training = model.training
    params = list(weights.values())
    total = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    seen = 0
    sample = torch.Generator().manual_seed(EGF_SAMPLE_SEED)
    model.train()
    try:
        with torch.random.fork_rng(devices=[]):  # dropout draws must not move the run's own stream
            for x, y in data.train_batches(batch_size, sample, "none", device=placement.device,
                                           memory_format=placement.memory_format):
                x, y = x[:EGF_IMAGES - seen], y[:EGF_IMAGES - seen]
                loss = F.cross_entropy(model(x).float(), y, reduction="sum")
                # autograd.grad, not backward: the parameters' .grad stays as training left it
                for acc, g in zip(total, torch.autograd.grad(loss, params)):
                    acc += g.double()
                seen += len(y)
                if seen >= EGF_IMAGES:
                    break
    finally:
        with torch.no_grad():
            for k, v in model.named_buffers():
                v.copy_(buffers[k])
        model.train(was_training)
    grads = [t / max(seen, 1) for t in total]
    return effective_gradient_flow(grads, [None if masks is None else masks[k] for k in weights])


class GradientFlowLog:
    """A run's EGF measurements, ``[{"epoch", "egf1", "egf2"}]``, taken when :meth:`due`.

    Part of the checkpoint (:meth:`state_dict`), so a resumed run keeps the measurements it took.
    """

    def __init__(self, epochs: int):
        self.schedule = egf_epochs(epochs)
        self.entries: list[dict] = []

    def due(self, epoch: int) -> bool:
        """Whether the boundary before ``epoch`` (= epochs trained so far) is measured and not yet."""
        return epoch in self.schedule and all(e["epoch"] != epoch for e in self.entries)

    def record(self, epoch: int, egf1: float, egf2: float) -> None:
        # a diverged network's gradient is not a number: null in the JSON record
        self.entries.append({"epoch": int(epoch), "egf1": egf1 if math.isfinite(egf1) else None,
                             "egf2": egf2 if math.isfinite(egf2) else None})

    def state_dict(self) -> list:
        return [dict(e) for e in self.entries]

    def load_state_dict(self, state, where: str) -> None:
        if not isinstance(state, list) or not all(isinstance(e, dict) and {"epoch", "egf1", "egf2"} <= set(e)
                                                  for e in state):
            raise UserError(f"{where}: holds no gradient-flow log for this run")
        self.entries = [dict(e) for e in state]
