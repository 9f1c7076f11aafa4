"""Resampling seeds as replicates: the bootstrap of one condition's seed matrix.

A condition's runs form a matrix ``values[point, seed]`` (NaN where a run is missing or failed).
The bootstrap redraws seeds with replacement in the way the runs were randomised
(docs/method.md, "Seeds as replicates"):

- ``independent`` — every run's initialisation and data order is seeded by (seed, grid point),
  so the runs of different points are independent: seeds are redrawn separately at each point;
- ``common`` — one initialisation and batch order per seed is shared by every grid point
  (common random numbers), so a seed's runs move together: whole seeds are redrawn, the same
  seed indices for every point of the condition.

Each resampled mean is moved away from the point's mean by √(n/(n−1)) times its bootstrap
deviation ("rescaled" bootstrap; Davison & Hinkley 1997, §3.3): the plain bootstrap variance of a
mean of n values is (n−1)/n of the unbiased one, a third too small with three seeds.

numpy only; every function is vectorised over the resamples.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hplandscape.errors import UserError
from hplandscape.study.recipes import RANDOMNESS

# -- what this module's computation gives: its Info types ----------------------------------------


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided confidence interval (``lo``/``hi`` None: no interval).

    Without replicates (one seed) there is nothing to resample: the estimate stands alone and
    ``lo``/``hi`` are None. ``level`` is the interval's confidence level (0.95).
    """

    estimate: Optional[float]
    lo: Optional[float] = None
    hi: Optional[float] = None
    level: float = 0.95

    @property
    def defined(self) -> bool:
        return self.lo is not None and self.hi is not None

    @property
    def ci(self) -> Optional[tuple]:
        """``(lo, hi)`` or None."""
        return (self.lo, self.hi) if self.defined else None

    def excludes(self, value: float = 0.0) -> bool:
        """True when the interval exists and lies entirely on one side of ``value``."""
        return self.defined and (self.lo > value or self.hi < value)

    def to_json(self) -> dict:
        """``{"estimate": float | null, "ci": [lo, hi] | null}``."""
        return {"estimate": finite_or_none(self.estimate),
                "ci": None if not self.defined else [finite_or_none(self.lo), finite_or_none(self.hi)]}


def finite_or_none(v) -> Optional[float]:
    return None if v is None or not math.isfinite(v) else float(v)


@dataclass(frozen=True)
class BootstrapInfo:
    """How the seed resampling was done: resamples, generator seed, level, design per condition."""

    n_boot: int
    seed: int
    level: float
    randomness: tuple  # ((condition, "independent" | "common"), ...)
    shift_x: float


# Resamples per condition. 1999 puts the 2.5 %/97.5 % percentiles and the 95 % critical value on
# whole order statistics ((B + 1)·0.025 = 50) and keeps their Monte Carlo error below a tenth of
# the interval's width on the example study (docs/method.md, "Seeds as replicates").
N_BOOT = 1999
#: Most resamples per condition: beyond it the resamples of a 9×9 grid with a few seeds would no
#: longer fit in memory (and the Monte Carlo error is long negligible: docs/method.md §12).
MAX_N_BOOT = 100_000
BOOT_SEED = 20231101  # the generator's seed: `analyze` is deterministic
LEVEL = 0.95
# Under independent randomness, the points whose mean lies within this many accuracy points of the
# condition's best draw from one pool of residuals: the region every ROI, the best point and the
# shift statistic live in, while diverged or far-off runs (other noise levels) keep their own.
POOL_WITHIN = 2.0
#: Where a run's top-1 (or top-5) can lie, in percent: resampled runs are kept inside it.
ACCURACY_RANGE = (0.0, 100.0)


def pool_within(xs) -> float:
    """How far below the best a point's mean may lie and still draw from the pool of residuals:
    :data:`POOL_WITHIN`, or the largest ROI threshold of the study where that is larger, so the
    pool covers every ROI (a study of noisy runs sets ``analysis.roi`` above 2 points).

    >>> pool_within((0.5, 1.0)), pool_within((2.5, 4.0))
    (2.0, 4.0)
    """
    return max(POOL_WITHIN, *(float(x) for x in xs))


@dataclass(frozen=True, eq=False)
class SeedMatrix:
    """One condition's top-1 values as grid points × seeds, with the design of its randomness.

    Parameters
    ----------
    values : numpy.ndarray
        ``(P, S)`` top-1 values; NaN where that seed has no result at that point. Columns are
        seeds (in the same order at every point: ``common`` resamples them whole).
    log10_wd, log10_lr : numpy.ndarray
        ``(P,)`` coordinates of the points.
    randomness : {"independent", "common"}
        How the runs were randomised (see the module docstring).
    """

    values: np.ndarray
    log10_wd: np.ndarray
    log10_lr: np.ndarray
    randomness: str = "independent"

    def __post_init__(self):
        v = np.asarray(self.values, dtype=float)
        if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] == 0:
            raise ValueError(f"values must be a non-empty (points, seeds) matrix, got shape {v.shape}")
        if self.randomness not in RANDOMNESS:
            raise UserError(f"randomness must be one of {', '.join(RANDOMNESS)}, got {self.randomness!r}")
        if (~np.isfinite(v)).all(axis=1).any():
            raise ValueError("every point needs at least one seed with a result")
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "log10_wd", np.asarray(self.log10_wd, dtype=float))
        object.__setattr__(self, "log10_lr", np.asarray(self.log10_lr, dtype=float))

    @property
    def counts(self) -> np.ndarray:
        """``(P,)`` number of seeds with a result at each point."""
        return np.isfinite(self.values).sum(axis=1)

    @property
    def n_seeds(self) -> int:
        """Seeds with a result at some point."""
        return int(np.isfinite(self.values).any(axis=0).sum())

    @property
    def means(self) -> np.ndarray:
        """``(P,)`` seed-averaged top-1: f(θ) of method §8."""
        return np.nanmean(self.values, axis=1)

    @property
    def coords(self) -> np.ndarray:
        """``(P, 2)`` (log10 wd, log10 lr): the ellipse plane's order."""
        return np.column_stack([self.log10_wd, self.log10_lr])

    def resample(self, n_boot: int, rng: np.random.Generator, pool_within=None) -> np.ndarray:
        """``(n_boot, P, S)`` rescaled resampled values (NaN in slots a point does not fill).

        Under ``independent`` a point with n results gets n draws of its own residuals
        r = √(n/(n−1))·(y − ȳ), or, if ``pool`` marks it, n draws from the residuals of every
        marked point together (near the optimum all runs share one noise level, and three seeds
        alone estimate a point's spread from two degrees of freedom). ``pool_within`` (accuracy
        points; default :data:`POOL_WITHIN`; ``-1`` pools nothing) marks
        the points whose mean lies within that distance of the best mean. A point outside the pool
        keeps its resampled runs within the range its own runs spanned: its rescaled residuals
        come from one or two degrees of freedom, and where its seeds split (one trained to 92.7 %,
        one collapsed to 30.5 %) they would make runs of 105.6 % (clipped to 100), so that a point
        no seed found good became the best in a quarter of the resamples. Under ``common`` S seed
        indices are drawn once per resample for all points, a missing run counting as its
        point's mean. Either way a resampled value is ȳ + r*, so the mean of a point's draws has
        the unbiased variance (but for the clipping outside the pool); a point with a single result
        (and nothing pooled) stays at its value.
        A resampled value is clipped to :data:`ACCURACY_RANGE`, where a run's accuracy lies.
        """
        v = self.values
        P, S = v.shape
        n = self.counts
        mean = self.means
        scale = np.where(n > 1, np.sqrt(n / np.maximum(n - 1, 1)), 0.0)
        resid = scale[:, None] * (v - mean[:, None])  # (P, S), NaN where no result
        if self.randomness == "independent":
            # results first in each row (np.sort puts NaN last), then n draws among the first n
            packed = np.sort(resid, axis=1)
            u = rng.random((n_boot, P, S))
            idx = np.minimum((u * n[None, :, None]).astype(np.intp), S - 1)
            draws = np.take_along_axis(np.broadcast_to(packed, (n_boot, P, S)), idx, axis=2)
            within = POOL_WITHIN if pool_within is None else float(pool_within)
            pool = mean >= np.max(mean) - within
            pooled = resid[pool & (n > 1)]
            pooled = pooled[np.isfinite(pooled)]
            if len(pooled):
                # A point with one result outside the pool shows no spread of its own (an adaptive
                # design leaves most far-off points at one seed): it draws the measured noise too.
                shared = pooled[np.minimum((u * len(pooled)).astype(np.intp), len(pooled) - 1)]
                draws = np.where((pool | (n == 1))[None, :, None], shared, draws)
            # Outside the pool a point's rescaled residuals stay within what its own runs spanned:
            # from one or two degrees of freedom, √(n/(n−1)) would invent runs no seed produced.
            finite = np.isfinite(v)
            lo = np.where(finite, v, np.inf).min(axis=1) - mean
            hi = np.where(finite, v, -np.inf).max(axis=1) - mean
            own = ~pool & (n > 1)
            draws = np.where(own[None, :, None], np.clip(draws, lo[None, :, None], hi[None, :, None]), draws)
            draws = np.where(np.arange(S)[None, None, :] < n[None, :, None], draws, np.nan)
        else:
            filled = np.where(np.isfinite(resid), resid, 0.0)
            idx = rng.integers(0, S, size=(n_boot, S))
            draws = np.moveaxis(filled.T[idx], 1, 2)  # (B, S, P) -> (B, P, S)
        # A run's accuracy lies in [0, 100] %: a rescaled residual of a point whose seeds split
        # (one trained, one collapsed) would otherwise make runs of 125 % or −20 %.
        return np.clip(mean[None, :, None] + draws, ACCURACY_RANGE[0], ACCURACY_RANGE[1])


def condition_rng(seed: int, condition: str) -> np.random.Generator:
    """The generator of one condition's resamples, from the study seed and the condition's name.

    Seeding by name keeps a condition's intervals unchanged when other conditions are added to
    or removed from the table.
    """
    return np.random.default_rng([int(seed), zlib.crc32(condition.encode("utf-8"))])


def replicate_means(draws: np.ndarray) -> np.ndarray:
    """``(B, P)`` means of ``(B, P, S)`` resampled values (NaN slots ignored)."""
    finite = np.isfinite(draws)
    return np.where(finite, draws, 0.0).sum(axis=2) / np.maximum(finite.sum(axis=2), 1)


def percentile_interval(samples, level: float = LEVEL) -> tuple:
    """Percentile interval of bootstrap replicates, ignoring NaN; ``(None, None)`` if none is finite.

    Examples
    --------
    >>> percentile_interval([1.0, 2.0, 3.0, 4.0, 5.0, float("nan")], level=0.5)
    (2.0, 4.0)
    """
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        return None, None
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(s, [a, 1.0 - a])
    return float(lo), float(hi)


def roi_masks(means: np.ndarray, x: float, tol: float = 1e-9) -> np.ndarray:
    """``(B, P)`` x-ROI membership of each resample (Eq. 3.3, as :func:`~hplandscape.analysis.regions.roi_mask`)."""
    return means >= np.nanmax(means, axis=-1, keepdims=True) - x - tol


def ellipse_samples(means: np.ndarray, coords: np.ndarray, x: float, k: float,
                    min_points: int) -> dict:
    """Centre, length and width of the x-ROI ellipse of every resample (NaN: too few points).

    The same numbers as :func:`~hplandscape.analysis.regions.fit_ellipse` (mean, sample covariance, 2k√λ), for ``B``
    resamples at once.
    """
    mask = roi_masks(means, x).astype(float)  # (B, P)
    n = mask.sum(axis=1)
    ok = n >= min_points
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (mask @ coords) / n[:, None]  # (B, 2)
        dw = (coords[None, :, 0] - centre[:, :1]) * mask
        dl = (coords[None, :, 1] - centre[:, 1:]) * mask
        denom = n - 1.0
        a = (dw * dw).sum(1) / denom
        d = (dl * dl).sum(1) / denom
        b = (dw * dl).sum(1) / denom
    half, root = (a + d) / 2.0, np.sqrt(((a - d) / 2.0) ** 2 + b * b)
    lam1, lam2 = np.maximum(half + root, 0.0), np.maximum(half - root, 0.0)
    nan = np.full_like(n, np.nan)
    return {"centre_log10_wd": np.where(ok, centre[:, 0], nan), "centre_log10_lr": np.where(ok, centre[:, 1], nan),
            "length": np.where(ok, 2.0 * k * np.sqrt(lam1), nan), "width": np.where(ok, 2.0 * k * np.sqrt(lam2), nan),
            "fitted": ok}


def best_index(means: np.ndarray) -> np.ndarray:
    """``(B,)`` index of each resample's best point (the first of ties, as :func:`analyze`)."""
    return np.argmax(np.where(np.isfinite(means), means, -np.inf), axis=-1)


def check_n_boot(n_boot) -> int:
    """``n_boot`` as an int ≥ 99, else a :class:`UserError` naming the value."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or not 99 <= n_boot <= MAX_N_BOOT:
        raise UserError(f"n_boot (bootstrap resamples) must be an integer from 99 to {MAX_N_BOOT:,}, got {n_boot!r}; "
                        f"the default is {N_BOOT}")
    return int(n_boot)


def order_statistic(samples: np.ndarray, level: float = LEVEL) -> float:
    """The ⌈level·(B+1)⌉-th smallest of ``B`` values (inf allowed): a bootstrap critical value.

    With B + 1 a multiple of 1/(1 − level), a value t exceeds it exactly when fewer than
    (1 − level)·(B + 1) replicates reach t, so "t is beyond the critical value" and
    "(1 + #{T* ≥ t})/(B + 1) ≤ 1 − level" are the same statement.
    """
    s = np.sort(np.asarray(samples, dtype=float))
    i = min(len(s), max(1, math.ceil(level * (len(s) + 1) - 1e-9))) - 1
    return float(s[i])
