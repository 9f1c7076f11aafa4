"""Seeds as replicates for a whole study: bootstrap intervals and the shift test of every condition.

:func:`analyze` hands over each condition's :class:`~hplandscape.analysis.bootstrap.SeedMatrix`;
this module resamples each condition once (:data:`~hplandscape.analysis.bootstrap.N_BOOT`
times, seeded, in the condition's own design) and reads every interval off the same resamples:
the best point's top-1 (cross-fitted, :func:`~hplandscape.analysis.optimum.crossfit_best`) and how
often each point is the best, each x-ROI ellipse's centre, length and width, the performance risk
d_mean and d_std with its excess over the basemodel's, and the shift of every pruned condition's
optimum, tested as one family (:mod:`~hplandscape.analysis.shift`).

Percentile intervals, except the shift's, whose simultaneous intervals carry the verdict. Every
interval stays inside its quantity's range: accuracies in [0, 100], risks ≥ 0. The basemodel's 0.5-ROI Θ_R is re-drawn in every resample, so the risk's intervals
include the uncertainty of which settings the unpruned model rates near-optimal; each condition's
resample b is paired with the basemodel's resample b.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hplandscape.analysis.bootstrap import (LEVEL, Interval, SeedMatrix, best_index, condition_rng, ellipse_samples,
                                            finite_or_none, percentile_interval, pool_within, replicate_means,
                                            roi_masks)
from hplandscape.analysis.optimum import crossfit_best
from hplandscape.analysis.regions import MIN_ELLIPSE_POINTS, roi_key
from hplandscape.analysis.shift import shift_tests
from hplandscape.study.grid import Log10Values

# -- what this module's computation gives: its Info types ----------------------------------------


@dataclass(frozen=True)
class EllipseIntervals:
    """Bootstrap intervals of one x-ROI's ellipse (method §8) over the seed resamples.

    ``fitted`` is the fraction of resamples whose x-ROI held enough points for an ellipse; the
    intervals cover those resamples only. They are None with one seed, where no resample had an
    ellipse, and where the data themselves have none (the estimate is None).
    """

    x: float
    centre_log10_wd: Interval
    centre_log10_lr: Interval
    length: Interval
    width: Interval
    fitted: Optional[float]

    def to_json(self) -> dict:
        """``{"centre_log10_wd": [lo, hi] | null, "centre_log10_lr", "length", "width", "fitted"}``."""
        out = {name: None if not getattr(self, name).defined else
               [finite_or_none(getattr(self, name).lo), finite_or_none(getattr(self, name).hi)]
               for name in ("centre_log10_wd", "centre_log10_lr", "length", "width")}
        out["fitted"] = finite_or_none(self.fitted)
        return out


@dataclass(frozen=True)
class PointProbability(Log10Values):
    """How often a grid point is the best one over the seed resamples."""

    log10_lr: float
    log10_wd: float
    p: float


@dataclass(frozen=True)
class ReplicateInfo:
    """What a condition's seeds, read as replicates, say about the uncertainty of its numbers.

    ``n_seeds`` counts the condition's seeds with a result; with fewer than two every interval
    is None and ``p_best`` is empty. ``randomness`` is the design the resampling followed
    (``"independent"``: seeds resampled per grid point; ``"common"``: whole seeds).
    ``best_top1`` is the best point's seed-averaged top-1 with the interval of its cross-fitted
    estimate ``best_top1_crossfit`` (the max over noisy means is biased upwards; see
    :func:`hplandscape.analysis.optimum.crossfit_best`); ``p_best`` the points that were the
    best in at least one resample, most often first; ``ellipses`` one entry per requested x;
    ``d_mean``/``d_std`` the performance risk; ``excess_over_base`` this condition's d_mean
    minus the basemodel's (0 for the basemodel itself).
    """

    n_seeds: int
    randomness: str
    best_top1: Interval
    p_best: tuple  # PointProbability, p descending
    ellipses: tuple  # EllipseIntervals, in the order of the requested xs
    d_mean: Interval
    d_std: Interval
    excess_over_base: Interval
    best_top1_crossfit: Optional[float] = None

    @property
    def replicated(self) -> bool:
        return self.n_seeds >= 2

    def ellipse(self, x: float) -> EllipseIntervals:
        for e in self.ellipses:
            if math.isclose(e.x, x):
                return e
        raise KeyError(f"no {x}-ROI intervals; computed: " + ", ".join(roi_key(e.x) for e in self.ellipses))



def _interval(estimate, samples, level: float, bounds=(-np.inf, np.inf)) -> Interval:
    est = None if estimate is None or not np.isfinite(estimate) else float(estimate)
    if samples is None:
        return Interval(est, level=level)
    lo, hi = percentile_interval(samples, level)
    if lo is not None:
        lo, hi = float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds))
    return Interval(est, lo, hi, level)


ACCURACY = (0.0, 100.0)
NON_NEGATIVE = (0.0, np.inf)


def study_replicates(matrices: dict, conditions: dict, base: str, k: float, risk_x: float,
                     xs, n_boot: int, seed: int, level: float = LEVEL, span=None, region_x=None) -> tuple:
    """Intervals of every condition and the shift of every pruned one.

    Parameters
    ----------
    matrices : dict
        ``{condition: SeedMatrix}``, points in the order of the condition's ``points``.
    conditions : dict
        ``{condition: ConditionAnalysis}`` with the point estimates (best, rois, risk).
    base : str
        The basemodel's name.
    k, risk_x : as in :func:`~hplandscape.analysis.analyze` (the ellipses' xs are the
        conditions' ROIs).
    xs : sequence of float
        The study's ROI thresholds (the optimum's fit and the region-centre line use them).
    n_boot, seed, level : resamples per condition, generator seed, confidence level.
    span : (float, float), optional
        Largest possible |shift| in (log10 wd, log10 lr): the grid's extent.
    region_x : float, optional
        The ROI whose margin-weighted centre gives the shift's second line (default ``risk_x``).

    Returns
    -------
    replicates, shifts : dict, dict
        ``{condition: ReplicateInfo}`` and ``{pruned condition: ShiftInfo}``.
    """
    draws = {name: (m.resample(n_boot, condition_rng(seed, name), pool_within(xs)) if m.n_seeds >= 2 else None)
             for name, m in matrices.items()}
    means = {name: None if d is None else replicate_means(d) for name, d in draws.items()}
    theta_r = _theta_r(matrices[base], means[base], conditions[base], risk_x)
    risks = {name: _risk_samples(matrices[base], m, means[name], theta_r) for name, m in matrices.items()}
    replicates = {}
    for name, m in matrices.items():
        c = conditions[name]
        reps = means[name]
        mean_d, std_d = risks[name]
        base_d = risks[base][0]
        excess = None if mean_d is None or base_d is None else mean_d - base_d
        crossfit = float(crossfit_best(m.values)) if m.n_seeds >= 2 else None
        best = _interval(c.best.top1, None if reps is None else crossfit_best(draws[name]), level, ACCURACY)
        replicates[name] = ReplicateInfo(
            n_seeds=m.n_seeds, randomness=m.randomness, best_top1=best, p_best=_p_best(m, reps),
            ellipses=tuple(_ellipse_intervals(m, reps, r, k, level) for r in c.rois),
            d_mean=_interval(c.risk.d_mean, mean_d, level, NON_NEGATIVE),
            d_std=_interval(c.risk.d_std, std_d, level, NON_NEGATIVE),
            excess_over_base=_interval(c.risk.d_mean - conditions[base].risk.d_mean, excess, level),
            best_top1_crossfit=crossfit)
    shifts = shift_tests(matrices, base, draws, xs, level, span=span, region_x=region_x or risk_x)
    return replicates, shifts


def _p_best(m: SeedMatrix, reps) -> tuple:
    if reps is None:
        return ()
    counts = np.bincount(best_index(reps), minlength=len(m.means)) / len(reps)
    order = sorted((i for i in np.flatnonzero(counts)), key=lambda i: (-counts[i], i))
    return tuple(PointProbability(float(m.log10_lr[i]), float(m.log10_wd[i]), float(counts[i])) for i in order)


def _ellipse_intervals(m: SeedMatrix, reps, roi, k: float, level: float) -> EllipseIntervals:
    e = roi.ellipse
    est = {name: None if e is None else getattr(e, name)
           for name in ("centre_log10_wd", "centre_log10_lr", "length", "width")}
    if reps is None:
        return EllipseIntervals(roi.x, *(Interval(v, level=level) for v in est.values()), fitted=None)
    s = ellipse_samples(reps, m.coords, roi.x, k, MIN_ELLIPSE_POINTS)
    fitted = float(np.mean(s["fitted"]))
    # no ellipse in the data: a few resamples that happen to have one describe no estimate
    return EllipseIntervals(roi.x, *(_interval(v, None if e is None else s[name], level) for name, v in est.items()),
                            fitted=fitted)


def _theta_r(base: SeedMatrix, base_reps, base_analysis, risk_x: float) -> np.ndarray:
    """``(B, P_base)`` Θ_R of each resample, or ``(1, P_base)``: the observed one, held fixed."""
    if base_reps is None:
        observed = set(base_analysis.risk.points) | set(base_analysis.risk.missing)
        mask = np.array([(w, l) in observed for w, l in zip(base.log10_wd, base.log10_lr)])
        return mask[None, :]
    return roi_masks(base_reps, risk_x)


def _risk_samples(base: SeedMatrix, m: SeedMatrix, reps, theta_r: np.ndarray) -> tuple:
    """``(B,)`` d_mean and d_std (population, Eq. 3.5) of each resample; (None, None) without one."""
    if reps is None:
        return None, None
    where = {(w, l): i for i, (w, l) in enumerate(zip(m.log10_wd, m.log10_lr))}
    idx = np.array([where.get((w, l), -1) for w, l in zip(base.log10_wd, base.log10_lr)])
    measured = idx >= 0
    use = theta_r & measured[None, :]  # (B or 1, P_base)
    best = np.nanmax(reps, axis=1)
    d = best[:, None] - reps[:, np.where(measured, idx, 0)]  # (B, P_base)
    use = np.broadcast_to(use, d.shape)
    n = use.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(use, d, 0.0).sum(axis=1) / n
        var = np.where(use, (d - mean[:, None]) ** 2, 0.0).sum(axis=1) / n
    return mean, np.sqrt(var)
