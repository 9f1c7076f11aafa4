"""How much accuracy each pruning condition buys per FLOP: Pareto fronts and hypervolumes.

Every condition is a point (FLOPs, top-1) twice over: with its own best grid point (re-tuned
after pruning) and at the basemodel's prior (not re-tuned). The Pareto front of each kind holds
the conditions no other beats on both cost and accuracy; the hypervolume of a front measures
the whole front in one number. Both hypervolumes share one normalisation, so their difference is
what re-tuning buys across the accuracy–cost trade-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from hplandscape.analysis.study_analysis import StudyAnalysis


@dataclass(frozen=True)
class FrontierPoint:
    """One condition on the accuracy–cost plane.

    ``best_top1`` is the condition's best seed-averaged top-1 over its grid (re-tuned);
    ``prior_top1`` its seed-averaged top-1 at the basemodel's prior (not re-tuned; None when the
    prior was not measured for it). ``on_best_front`` / ``on_prior_front``: the point is Pareto
    optimal (fewer FLOPs, higher top-1) among the points of that kind.
    """

    study: str
    condition: str
    method: str
    ratio: float
    flops: Optional[float]
    params: Optional[float]
    best_top1: float
    prior_top1: Optional[float]
    on_best_front: bool = False
    on_prior_front: bool = False


@dataclass(frozen=True)
class FrontierInfo:
    """Accuracy vs cost across conditions (and studies): points, Pareto fronts, hypervolumes.

    Hypervolumes are taken in a minimisation space where both objectives are normalised to
    [0, 1] by min–max over every point of both kinds together (log10 FLOPs; error = 1 − top-1),
    with reference point ``reference`` = (1.1, 1.1); a single shared normalisation makes
    ``hypervolume_best − hypervolume_prior`` "what re-tuning buys" in one number. They are None
    (with ``reason``) when no condition has FLOPs.
    """

    points: tuple  # FrontierPoint, in condition order
    hypervolume_best: Optional[float]
    hypervolume_prior: Optional[float]
    log10_flops_range: Optional[tuple]  # (min, max) used for the normalisation
    error_range: Optional[tuple]  # (min, max) of 1 − top-1/100 used for the normalisation
    reference: tuple = (1.1, 1.1)
    reason: Optional[str] = None

    @property
    def retuning_gain(self) -> Optional[float]:
        """``hypervolume_best − hypervolume_prior`` (None if either is undefined)."""
        if self.hypervolume_best is None or self.hypervolume_prior is None:
            return None
        return self.hypervolume_best - self.hypervolume_prior


REFERENCE = (1.1, 1.1)  # in the normalised minimisation space: just beyond the worst point


def pareto_mask(flops: Sequence[float], top1: Sequence[float]) -> np.ndarray:
    """Which points are Pareto optimal for (fewer FLOPs, higher top-1).

    A point is dominated when another has no more FLOPs and no lower top-1, and is strictly
    better in one of them. Points with a non-finite value are never on the front.

    Examples
    --------
    >>> pareto_mask([1, 2, 3, 2], [80, 90, 85, 88]).tolist()
    [True, True, False, False]
    """
    c = np.asarray(flops, dtype=float)
    f = np.asarray(top1, dtype=float)
    ok = np.isfinite(c) & np.isfinite(f)
    out = np.zeros(len(c), dtype=bool)
    for i in np.flatnonzero(ok):
        others = ok & (c <= c[i]) & (f >= f[i]) & ((c < c[i]) | (f > f[i]))
        out[i] = not others.any()
    return out


def hypervolume_2d(points, reference: tuple = REFERENCE) -> float:
    """Area dominated by ``points`` and bounded by ``reference``, both objectives minimised.

    Points not strictly better than the reference in both objectives add nothing.

    Examples
    --------
    >>> round(hypervolume_2d([(0, 1), (1, 0)]), 10)
    0.21
    >>> round(hypervolume_2d([(0, 1), (1, 0), (0.5, 0.5)]), 10)
    0.46
    """
    rx, ry = (float(v) for v in reference)
    pts = sorted((float(x), float(y)) for x, y in points if x < rx and y < ry)
    area, best_y = 0.0, ry
    # Sweep by increasing x; a point adds the strip between its y and the lowest y so far, from
    # its x to the reference. Dominated points (y not below best_y) add nothing.
    for x, y in pts:
        if y < best_y:
            area += (rx - x) * (best_y - y)
            best_y = y
    return area


def _range(values: np.ndarray) -> tuple:
    return float(np.min(values)), float(np.max(values))


def _normalise(values: np.ndarray, rng: tuple) -> np.ndarray:
    lo, hi = rng
    if hi == lo:  # one value only: every point sits at the best end of this objective
        return np.zeros_like(values)
    return (values - lo) / (hi - lo)


def frontier_info(results, reference: tuple = REFERENCE) -> FrontierInfo:
    """Points, Pareto fronts and hypervolumes of one or several analysed studies.

    Parameters
    ----------
    results : StudyAnalysis or sequence of StudyAnalysis
        Several studies are compared on one plane (e.g. two architectures on one dataset).
    reference : (float, float)
        Reference point in the normalised minimisation space (log10 FLOPs, error).

    Returns
    -------
    FrontierInfo
        Hypervolumes are None when no condition has FLOPs (a results table without the ``flops``
        column); a front of the prior kind leaves out conditions not measured at the prior.
    """
    if isinstance(results, StudyAnalysis):
        results = (results,)
    rows = [(r.source, c) for r in results for c in r.conditions]
    flops = np.array([np.nan if c.flops is None else c.flops for _, c in rows], dtype=float)
    best = np.array([c.best.top1 for _, c in rows], dtype=float)
    prior = np.array([np.nan if c.prior_top1 is None else c.prior_top1 for _, c in rows], dtype=float)
    on_best = pareto_mask(flops, best)
    on_prior = pareto_mask(flops, prior)
    points = tuple(FrontierPoint(study=s, condition=c.name, method=c.method, ratio=c.ratio, flops=c.flops,
                                 params=c.params, best_top1=c.best.top1, prior_top1=c.prior_top1,
                                 on_best_front=bool(b), on_prior_front=bool(p))
                   for (s, c), b, p in zip(rows, on_best, on_prior))
    has = np.isfinite(flops) & (flops > 0)
    if not has.any():
        return FrontierInfo(points, None, None, None, None, tuple(reference),
                            reason="no condition has FLOPs (the results table lacks a flops column)")
    log_c = np.log10(np.where(has, flops, np.nan))
    c_range = _range(log_c[has])
    e_range = _range(1.0 - np.concatenate([best[has], prior[has & np.isfinite(prior)]]) / 100.0)

    def volume(top1) -> Optional[float]:
        ok = has & np.isfinite(top1)
        if not ok.any():
            return None
        xs = _normalise(log_c[ok], c_range)
        ys = _normalise(1.0 - top1[ok] / 100.0, e_range)
        return hypervolume_2d(zip(xs, ys), reference)

    return FrontierInfo(points, volume(best), volume(prior), c_range, e_range, tuple(reference))

