"""Seed noise: how far apart two seeds of the same grid point land, and which ROIs that resolves.

An x-ROI (Eq. 3.3) compares seed-averaged accuracies with the best one minus x. With seed noise
σ (the standard deviation of one run's top-1 around its grid point's mean) and S seeds, a point's
mean errs by σ/√S; an ROI means something only when x is at least twice that, so that a point
clearly inside stays inside when the seeds are drawn again (method §10). This module measures σ
per condition and says which thresholds it resolves.

σ is pooled over the points near the optimum (within ``within`` accuracy points of the best:
where every ROI lies), because far-off and diverged points have other noise levels (a diverged
run sits at chance, with no spread). The pooled variance is Σ(n_i − 1)s_i² / Σ(n_i − 1); its 95 %
interval is the chi-square interval on df = Σ(n_i − 1) degrees of freedom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import stats

from hplandscape.analysis.bootstrap import POOL_WITHIN, SeedMatrix, finite_or_none
from hplandscape.analysis.regions import roi_key


@dataclass(frozen=True)
class NoiseInfo:
    """One condition's seed noise: how far apart two seeds of the same grid point land.

    ``sd`` is the pooled within-point standard deviation of top-1 (points with two or more seeds
    whose mean lies within ``within`` points of the best), with its 95 % chi-square interval
    ``sd_ci`` on ``df`` degrees of freedom; None with one seed. ``resolution`` = 2·sd/√seeds, the
    smallest ROI threshold the study resolves (a point's mean then errs by at most half the
    threshold, one standard error); ``resolvable`` maps each ROI threshold to whether it is at least
    that. ``eval_size`` is the evaluation split's size where the records carry it and
    ``binomial_se`` the binomial standard error of top-1 at the best accuracy on that split.
    """

    n_seeds: int
    sd: Optional[float]
    sd_ci: Optional[tuple]
    df: int
    n_points: int
    within: float
    resolution: Optional[float]
    resolvable: tuple  # ((x, bool), ...) in the order of the study's xs
    eval_size: Optional[int] = None
    binomial_se: Optional[float] = None

    def seeds_needed(self, x: float) -> Optional[int]:
        """Seeds per point that resolve an x-ROI at this noise: (2·sd/x)², rounded up."""
        if self.sd is None:
            return None
        return max(2, math.ceil((2.0 * self.sd / x) ** 2 - 1e-9))

    def resolves(self, x: float) -> Optional[bool]:
        for key, ok in self.resolvable:
            if math.isclose(key, x):
                return ok
        return None

    def to_json(self) -> dict:
        return {"seed_noise_sd": finite_or_none(self.sd),
                "seed_noise_sd_ci": None if self.sd_ci is None else [finite_or_none(v) for v in self.sd_ci],
                "noise_df": int(self.df), "noise_points": int(self.n_points), "noise_within": float(self.within),
                "n_seeds": int(self.n_seeds), "noise_resolution": finite_or_none(self.resolution),
                "roi_resolved": {roi_key(x): ok for x, ok in self.resolvable},
                "seeds_needed": {roi_key(x): self.seeds_needed(x) for x, _ in self.resolvable},
                "eval_size": self.eval_size, "binomial_se": finite_or_none(self.binomial_se)}



def noise_within(xs) -> float:
    """The points pooled lie within this many accuracy points of the best: the widest ROI's
    neighbourhood, at least :data:`~hplandscape.analysis.bootstrap.POOL_WITHIN`."""
    return max(POOL_WITHIN, 2.0 * max(xs))


def seed_noise(m: SeedMatrix, xs, eval_size=None, level: float = 0.95) -> NoiseInfo:
    """The seed noise of one condition and the ROI thresholds it resolves.

    Parameters
    ----------
    m : SeedMatrix
        The condition's top-1 values, points × seeds.
    xs : sequence of float
        The study's ROI thresholds.
    eval_size : int, optional
        Images in the evaluation split (the records' ``eval_size``), for the binomial floor.
    level : float
        Confidence level of the interval of σ.

    Examples
    --------
    >>> v = np.array([[90.0, 91.0], [92.0, 92.0], [93.0, 94.0], [50.0, 10.0]])
    >>> n = seed_noise(SeedMatrix(v, [0, 0, 0, 0], [0, 1, 2, 3]), (0.5, 1.0))
    >>> round(n.sd, 4), n.df, n.n_points   # the diverged point and the one 3 points below are not pooled
    (0.5, 2, 2)
    >>> round(n.resolution, 3), n.resolvable
    (0.707, ((0.5, False), (1.0, True)))
    """
    v = m.values
    n = m.counts
    means = m.means
    within = noise_within(xs)
    near = (means >= np.nanmax(means) - within) & (n >= 2)
    seeds = m.n_seeds
    binomial = None
    if eval_size:
        p = min(max(float(np.nanmax(means)) / 100.0, 0.0), 1.0)
        binomial = 100.0 * math.sqrt(p * (1.0 - p) / eval_size)
    if seeds < 2 or not near.any():
        return NoiseInfo(n_seeds=seeds, sd=None, sd_ci=None, df=0, n_points=int(near.sum()), within=within,
                         resolution=None, resolvable=tuple((float(x), None) for x in xs),
                         eval_size=eval_size, binomial_se=binomial)
    dev = np.where(np.isfinite(v), v - means[:, None], 0.0)[near]
    ss = float((dev ** 2).sum())
    df = int((n[near] - 1).sum())
    sd = math.sqrt(ss / df)
    a = (1.0 - level) / 2.0
    ci = (math.sqrt(ss / stats.chi2.ppf(1.0 - a, df)), math.sqrt(ss / stats.chi2.ppf(a, df)))
    resolution = 2.0 * sd / math.sqrt(seeds)
    return NoiseInfo(n_seeds=seeds, sd=sd, sd_ci=ci, df=df, n_points=int(near.sum()), within=within,
                     resolution=resolution,
                     resolvable=tuple((float(x), bool(x >= resolution - 1e-12)) for x in xs),
                     eval_size=eval_size, binomial_se=binomial)


def mean_variance(values, within: float) -> np.ndarray:
    """The variance of each point's seed-averaged top-1, σ²/n, with σ² pooled as in
    :func:`seed_noise` (the points with two or more results within ``within`` accuracy points of
    the best), vectorised over leading axes: ``values`` ``(..., P, S)`` → ``(..., P)``; NaN where
    nothing is pooled. The delta-method covariance of an optimum's location uses it
    (:meth:`hplandscape.analysis.optimum.PeakFinder.locate`).

    >>> v = np.array([[90.0, 91.0], [92.0, 92.0], [93.0, 94.0], [50.0, 10.0]])
    >>> mean_variance(v, 2.0).tolist()   # σ² = 0.25 from the two points within 2 of the best
    [0.125, 0.125, 0.125, 0.125]
    """
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    n = finite.sum(axis=-1)
    means = np.where(finite, v, 0.0).sum(axis=-1) / np.maximum(n, 1)
    means = np.where(n > 0, means, -np.inf)
    ss = np.where(finite, (v - means[..., None]) ** 2, 0.0).sum(axis=-1)
    near = (means >= means.max(axis=-1, keepdims=True) - within) & (n >= 2)
    df = ((n - 1) * near).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(df > 0, (ss * near).sum(axis=-1) / np.maximum(df, 1), np.nan)
    return var[..., None] / np.maximum(n, 1)
