"""Sparse Evolutionary Training (Mocanu et al., 2018): the topology step between two epochs.

After every epoch but the last, each prunable layer removes the fraction ζ of its active weights
with the smallest magnitude and regrows as many at positions drawn uniformly from those that were
inactive, so every layer keeps its density while its mask changes. Regrown weights start at zero
(their value is then what the next epoch's gradients make of it; the network's output does not
jump at the step), and :class:`hplandscape.pruning.unstructured.MaskedTraining` clears the momentum of removed
ones.

The draw is seeded per run and epoch (:func:`epoch_generator`), so a run that resumes from its
checkpoint (which holds the masks) evolves exactly as an uninterrupted one.

Examples
--------
>>> w = {"a": torch.tensor([[0.1, -2.0, 0.0, 0.0], [3.0, 0.0, 0.5, 0.0]])}
>>> m = {"a": w["a"] != 0}
>>> new = prune_and_regrow(w, m, 0.5, epoch_generator(0, 0))
>>> int(new["a"].sum()), bool(new["a"][0, 1]), bool(new["a"][1, 0]), bool(new["a"][0, 0])
(4, True, True, False)
"""

from __future__ import annotations

import hashlib
import math

import torch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of SET's regrowth after ``epoch`` of a run seeded ``seed``."""
    digest = hashlib.sha256(f"{int(seed)}:set:{int(epoch)}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def prune_and_regrow(weights: dict, masks: dict, zeta: float, generator: torch.Generator) -> dict:
    """New masks: per layer, drop the ζ smallest-|w| active weights and regrow as many at random.

    Parameters
    ----------
    weights : dict
        ``{layer: weight tensor}`` (any device, any memory format).
    masks : dict
        ``{layer: bool tensor}`` of the same shapes: the current topology.
    zeta : float
        Fraction of each layer's active weights replaced, in (0, 1). A layer removes
        ``round(ζ·active)`` weights, or fewer when it has fewer inactive positions to regrow into
        (a dense layer changes nothing).
    generator : torch.Generator
        CPU generator of the regrown positions; layers draw from it in order.

    Returns
    -------
    dict
        ``{layer: bool tensor}`` on the CPU, each with as many kept weights as before. Ties in
        magnitude are broken by position (the earlier is removed first).
    """
    out = {}
    for name, w in weights.items():
        m = masks[name].detach().cpu().flatten()
        active = m.nonzero().flatten()
        inactive = (~m).nonzero().flatten()
        k = min(int(math.floor(zeta * len(active) + 0.5)), len(inactive))
        if k == 0:
            out[name] = m.reshape(masks[name].shape).clone()
            continue
        magnitude = w.detach().flatten().abs().cpu()[active]  # flatten follows the logical (NCHW) order
        drop = active[torch.sort(magnitude, stable=True).indices[:k]]
        grow = inactive[torch.randperm(len(inactive), generator=generator)[:k]]
        new = m.clone()
        new[drop] = False
        new[grow] = True
        out[name] = new.reshape(masks[name].shape)
    return out
