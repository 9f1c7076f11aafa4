"""Which hyperparameter matters: exact two-way functional ANOVA on the full lr × wd grid.

Functional ANOVA (as in fANOVA or PED-ANOVA) usually has to estimate the marginals of a
surrogate model from scattered trials. On a full-factorial grid it is exact: with f(i, j) the
seed-averaged top-1 at the i-th lr and j-th wd value, f = μ + a_i + b_j + r_ij with
a_i = mean_j f(i, j) − μ, b_j = mean_i f(i, j) − μ and r_ij the rest, and the variances of a, b
and r add up to the variance of f. :func:`anova2` computes the three fractions;
:func:`importance_info` applies it to a condition's grid or to the neighbourhood of its x-ROI
("importance where it matters", the idea behind PED-ANOVA's top-quantile importance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from hplandscape.analysis.regions import roi_mask


@dataclass(frozen=True)
class ImportanceInfo:
    """Exact two-way functional ANOVA of the seed-averaged top-1 over a full lr × wd (sub)grid.

    On a full factorial grid the decomposition f(i, j) = μ + a_i + b_j + r_ij is exact and its
    variances add up: ``lr``, ``wd`` and ``interaction`` are the fractions of the variance of the
    cell means (population variance, every cell weighted equally) explained by a_i, b_j and r_ij;
    they sum to 1. They are None, with ``reason`` set, where the decomposition is undefined (a
    grid cell without any measured seed, or a flat landscape).

    ``x`` is None for the condition's whole grid; otherwise the fractions cover the x-ROI
    neighbourhood: the smallest sub-grid holding every x-ROI point, grown by ``pad`` grid steps on
    each side (clipped to the grid), so it includes where accuracy falls off the region.
    ``log10_lr`` / ``log10_wd`` are the axis values the decomposition covers; ``variance`` is the
    total variance in accuracy points².
    """

    lr: Optional[float]
    wd: Optional[float]
    interaction: Optional[float]
    log10_lr: tuple
    log10_wd: tuple
    variance: float
    x: Optional[float] = None
    pad: int = 0
    reason: Optional[str] = None

    @property
    def defined(self) -> bool:
        return self.reason is None

    def to_json(self) -> Optional[dict]:
        """``{"lr", "wd", "interaction"}``, or None when undefined."""
        if not self.defined:
            return None
        return {"lr": self.lr, "wd": self.wd, "interaction": self.interaction}


ROI_PAD = 1  # grid steps the x-ROI's bounding sub-grid grows by on each side


def anova2(values) -> tuple[float, float, float, float]:
    """Exact two-way ANOVA of a full grid of values (rows: lr, columns: wd).

    Parameters
    ----------
    values : array_like, shape (n_lr, n_wd)
        One value per grid cell, none missing.

    Returns
    -------
    tuple of float
        ``(lr, wd, interaction, variance)``: the fractions of the variance explained by the row
        effect, the column effect and their interaction (they sum to 1), and the total
        (population) variance.

    Raises
    ------
    ValueError
        If a value is not finite or all values are equal (the fractions are undefined).

    Examples
    --------
    >>> anova2([[1, 2], [3, 4]])
    (0.8, 0.2, 0.0, 1.25)
    """
    f = np.asarray(values, dtype=float)
    if f.ndim != 2 or f.size == 0:
        raise ValueError(f"anova2 needs a non-empty 2-D grid, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("anova2 needs a value in every grid cell; found NaN or inf")
    if np.ptp(f) == 0:
        raise ValueError("all values are equal: there is no variance to decompose")
    mu = f.mean()
    a = f.mean(axis=1) - mu
    b = f.mean(axis=0) - mu
    r = f - mu - a[:, None] - b[None, :]
    total = float(np.mean((f - mu) ** 2))
    v_lr, v_wd, v_int = float(np.mean(a ** 2)), float(np.mean(b ** 2)), float(np.mean(r ** 2))
    return v_lr / total, v_wd / total, v_int / total, total


def importance_info(log10_lr: Sequence[float], log10_wd: Sequence[float], top1: Sequence[float],
                    x: Optional[float] = None, pad: int = ROI_PAD) -> ImportanceInfo:
    """Importance of lr, wd and their interaction for one condition.

    Parameters
    ----------
    log10_lr, log10_wd, top1 : sequence of float
        The condition's measured grid points (seed-averaged top-1), one entry per point.
    x : float, optional
        None: the whole grid (the product of the condition's own lr and wd values). A number:
        the x-ROI neighbourhood, the smallest sub-grid holding every point within ``x`` points of
        the best, grown by ``pad`` grid steps on each side and clipped to the grid.
    pad : int
        Grid steps added around the x-ROI (ignored for the whole grid).

    Returns
    -------
    ImportanceInfo
        The fractions, or None fractions and a ``reason`` when a cell of the (sub)grid has no
        measured run or the values there are all equal.

    Examples
    --------
    >>> info = importance_info([-2, -2, -1, -1], [-5, -4, -5, -4], [1, 2, 3, 4])
    >>> info.lr, info.wd, info.interaction
    (0.8, 0.2, 0.0)
    """
    lr, wd, f = (np.asarray(v, dtype=float) for v in (log10_lr, log10_wd, top1))
    axis_lr, axis_wd = np.unique(lr), np.unique(wd)
    grid = np.full((len(axis_lr), len(axis_wd)), np.nan)
    grid[np.searchsorted(axis_lr, lr), np.searchsorted(axis_wd, wd)] = f
    rows, cols = slice(None), slice(None)
    where = "the grid"
    if x is not None:
        inside = roi_mask(f, x)
        i = np.searchsorted(axis_lr, lr[inside])
        j = np.searchsorted(axis_wd, wd[inside])
        rows = slice(max(int(i.min()) - pad, 0), min(int(i.max()) + pad, len(axis_lr) - 1) + 1)
        cols = slice(max(int(j.min()) - pad, 0), min(int(j.max()) + pad, len(axis_wd) - 1) + 1)
        where = f"the {x:g}-ROI neighbourhood"
    sub = grid[rows, cols]
    sub_lr = tuple(float(v) for v in axis_lr[rows])
    sub_wd = tuple(float(v) for v in axis_wd[cols])
    common = dict(log10_lr=sub_lr, log10_wd=sub_wd, x=None if x is None else float(x),
                  pad=0 if x is None else int(pad))
    holes = int(np.isnan(sub).sum())
    if holes:
        return ImportanceInfo(None, None, None, variance=float("nan"), **common,
                              reason=f"{holes} of the {sub.size} cells of {where} have no measured run; "
                                     f"the exact decomposition needs every cell")
    if np.ptp(sub) == 0:
        return ImportanceInfo(None, None, None, variance=0.0, **common,
                              reason=f"top-1 is the same in every cell of {where}: nothing to explain")
    f_lr, f_wd, f_int, total = anova2(sub)
    return ImportanceInfo(f_lr, f_wd, f_int, variance=total, **common)
