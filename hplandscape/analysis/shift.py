"""Did the optimum move? The shift of a pruned condition's optimum, with a calibrated test.

**The optimum** of a condition is the peak of a local cubic surface fitted around its best grid
point (:mod:`~hplandscape.analysis.optimum`): the best setting, located between grid points. The
shift is the pruned condition's optimum minus the basemodel's, in (log10 wd, log10 lr). It is
tested over both axes at once with its covariance (a Mahalanobis bootstrap test: a shift across a
diagonal lr × wd band is measured with the precision across the band, not with the poor precision
along it), studentized (each resample scaled by the size of its own delta-method covariance, the
data's shift by the data's: Hall 1992; where the landscape is too irregular for that, not at all), and over all pruned conditions of a study at once (single-step max-T, Westfall &
Young 1993): "moved" is wrong for any of them at most 5 % of the time when nothing moved
(:func:`family_test`).

**The centre of the near-optimal region** is a second, different question: the margin-weighted
x-ROI centre, the points of the x-ROI averaged with weight w(θ) = f(θ) − (f* − x). The region can
move without the best setting moving (a band that grows flatter on one side); its test is a
studentized bootstrap (bootstrap-t; Hall 1992) over both axes, per condition
(:func:`region_shift`), and its verdict is worded as the region's, never as the optimum's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from hplandscape.analysis.bootstrap import (BOOT_SEED, LEVEL, N_BOOT, Interval, SeedMatrix, condition_rng,
                                            finite_or_none, order_statistic, percentile_interval, pool_within,
                                            replicate_means)
from hplandscape.analysis.noise import mean_variance, noise_within
from hplandscape.analysis.optimum import OptimumInfo, PeakFinder, Peaks

# -- what this module's computation gives: its Info types ----------------------------------------


SHIFT_VERDICTS = ("moved", "no_evidence", "single_seed")


@dataclass(frozen=True)
class RegionShift:
    """The shift of the margin-weighted x-ROI centre (condition − basemodel): where the
    near-optimal *region* lies, not the best setting. Simultaneous intervals over both axes and
    their studentized bootstrap test, for this condition alone."""

    x: float
    log10_lr: Interval
    log10_wd: Interval
    p_value: Optional[float]
    verdict: str  # one of SHIFT_VERDICTS

    def to_json(self) -> dict:
        return {"x": float(self.x), "log10_lr": self.log10_lr.to_json(), "log10_wd": self.log10_wd.to_json(),
                "p_value": finite_or_none(self.p_value), "verdict": self.verdict}


@dataclass(frozen=True)
class ShiftInfo:
    """Did a pruned condition's optimum (its best setting) move away from the basemodel's?

    ``log10_lr``/``log10_wd``: the shift of the optimum (condition − basemodel; each optimum the
    peak of a local surface fit, :mod:`hplandscape.analysis.optimum`) with intervals that are
    simultaneous over both axes *and* over the ``family_size`` pruned conditions of the study;
    ``p_value`` is family-wise adjusted (single-step max-T) and ``verdict`` is ``"moved"``
    exactly when it is at most 1 − level, so "moved" is wrong for any condition of the study at
    most 5 % of the time when nothing moved; ``p_value_single`` tests this condition alone. With
    one seed the intervals and p-values are None and the verdict is ``"single_seed"``.
    ``base_optimum``/``optimum`` say where each optimum lies; ``region`` is the second question,
    whether the centre of the near-optimal x-ROI moved. ``studentized``: the test scaled each
    resample by the size of its own delta-method covariance (False: the landscape was too irregular
    for it and the resamples' common covariance was used alone; None with one seed).
    """

    x: float
    n_seeds: int
    log10_lr: Interval
    log10_wd: Interval
    p_value: Optional[float]
    verdict: str  # one of SHIFT_VERDICTS
    p_value_single: Optional[float] = None
    family_size: int = 1
    base_optimum: Optional[OptimumInfo] = None
    optimum: Optional[OptimumInfo] = None
    region: Optional[RegionShift] = None
    studentized: Optional[bool] = None

    @property
    def censored(self) -> bool:
        """Either optimum lies at the grid's edge, where the surface still rises."""
        return any(o is not None and o.censored for o in (self.base_optimum, self.optimum))

    def to_json(self) -> dict:
        """The ``conditions.NAME.shift`` document of ``analyze --json``."""
        return {"log10_lr": self.log10_lr.to_json(), "log10_wd": self.log10_wd.to_json(),
                "p_value": finite_or_none(self.p_value), "p_value_single": finite_or_none(self.p_value_single),
                "correction": {"method": FAMILY_CORRECTION, "family_size": int(self.family_size)},
                "n_seeds": int(self.n_seeds), "x": float(self.x), "verdict": self.verdict,
                "statistic": "optimum", "studentized": self.studentized, "censored": self.censored,
                "base_optimum": None if self.base_optimum is None else self.base_optimum.to_json(),
                "optimum": None if self.optimum is None else self.optimum.to_json(),
                "region_centre": None if self.region is None else self.region.to_json()}


#: How the shift test corrects for testing every pruned condition of a study.
FAMILY_CORRECTION = "single-step max-T (Westfall-Young) over the pruned conditions"



def cap_centre(values: np.ndarray, coords: np.ndarray, x: float, randomness: str) -> tuple:
    """Margin-weighted x-ROI centre and its delta-method standard error.

    Parameters
    ----------
    values : numpy.ndarray
        ``(..., P, S)`` top-1 per point and seed (NaN: no result); the leading axes are resamples.
    coords : numpy.ndarray
        ``(P, 2)`` point coordinates (log10 wd, log10 lr).
    x : float
        ROI threshold in accuracy points.
    randomness : {"independent", "common"}
        ``independent``: the variance of a point's mean is its seeds' variance over n, pooled over
        the x-ROI's points (near-optimal runs share one noise level; three seeds alone give a
        point's variance two degrees of freedom). ``common``: the between-seed variance of each
        seed's linearised contribution Σ_θ g_θ·y(θ, s), over S (the seeds are the replicates).

    Returns
    -------
    centre, se : numpy.ndarray
        ``(..., 2)`` each: (log10 wd, log10 lr).

    Notes
    -----
    With W = Σ w and c the centre, ∂c/∂f(θ) = (θ − c)/W for an ROI point other than the best,
    and −Σ_{θ' ≠ θ*} (θ' − c)/W for the best point θ* (it moves the threshold); 0 elsewhere.

    Examples
    --------
    >>> v = np.array([[92.8], [93.0], [92.6]])  # three points along lr, one seed
    >>> xy = np.array([[-4.0, -1.2], [-4.0, -1.0], [-4.0, -0.8]])
    >>> c, _ = cap_centre(v, xy, 0.5, "independent")  # weights 0.3, 0.5, 0.1
    >>> round(float(c[1]), 6)
    -1.044444
    """
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    n = finite.sum(axis=-1)  # (..., P); every point has a result, so n ≥ 1
    v0 = np.where(finite, v, 0.0)
    m = v0.sum(axis=-1) / np.maximum(n, 1)
    top = np.argmax(np.where(np.isfinite(m), m, -np.inf), axis=-1)
    threshold = np.take_along_axis(m, top[..., None], axis=-1) - x
    w = np.clip(np.nan_to_num(m - threshold, nan=0.0), 0.0, None)
    W = w.sum(axis=-1, keepdims=True)  # ≥ x > 0: the best point always weighs x
    centre = (w @ coords) / W
    inside = (w > 0)[..., None]
    dev = coords - centre[..., None, :]  # (..., P, 2)
    g = inside * dev / W[..., None]
    others = (inside * dev).sum(axis=-2) - np.take_along_axis(dev, top[..., None, None], axis=-2)[..., 0, :]
    np.put_along_axis(g, top[..., None, None], (-others / W)[..., None, :], axis=-2)
    if randomness == "common":
        filled = np.where(finite, v, m[..., None])
        contrib = np.einsum("...pj,...ps->...sj", g, filled)  # (..., S, 2)
        S = v.shape[-1]
        var = contrib.var(axis=-2, ddof=1) / S if S > 1 else np.zeros_like(centre)  # one seed: no spread
    else:
        ss = (np.where(finite, v0 - m[..., None], 0.0) ** 2).sum(axis=-1)
        usable = inside[..., 0] & (n > 1)  # a point with one result shows no spread
        s2 = np.where(usable, ss / np.maximum(n - 1, 1), 0.0)
        k = usable.sum(axis=-1)
        pooled = np.where(k > 0, s2.sum(axis=-1) / np.maximum(k, 1), 0.0)
        inv_n = 1.0 / np.maximum(n, 1)  # a single result varies by the pooled σ² (as it is resampled)
        var = pooled[..., None] * (g * g * inv_n[..., None]).sum(axis=-2)
    return centre, np.sqrt(np.maximum(var, 0.0))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """|num| / den with 0/0 = 0 (no deviation, no spread) and a/0 = inf."""
    num = np.abs(num)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where(den > 0, out, np.where(num > 0, np.inf, 0.0))


def simultaneous_test(estimate: np.ndarray, se: np.ndarray, boot: np.ndarray, boot_se: np.ndarray,
                      span: np.ndarray, level: float = LEVEL) -> tuple:
    """Studentized max-t intervals and p-value for a vector of shifts.

    Parameters
    ----------
    estimate, se : numpy.ndarray
        ``(J,)`` the shifts and their standard errors from the data.
    boot, boot_se : numpy.ndarray
        ``(B, J)`` the same from each resample.
    span : numpy.ndarray
        ``(J,)`` the largest possible |shift| (the grid's extent): intervals are clipped to it,
        and an unbounded one (too few seeds to bound it) becomes ±span.
    level : float
        Simultaneous confidence level.

    Returns
    -------
    lo, hi : numpy.ndarray
        ``(J,)`` interval ends.
    p_value : float
        (1 + #{T* ≥ t}) / (B + 1), t = max_j |estimate_j| / se_j, T* = max_j |boot_j − estimate_j| / boot_se_j.
    moved : bool
        Some interval excludes 0 (⇔ t beyond the critical value ⇔ p ≤ 1 − level when
        (B + 1)(1 − level) is a whole number).
    """
    T = _ratio(boot - estimate[None, :], boot_se).max(axis=1)
    t = float(_ratio(estimate, se).max())
    crit = order_statistic(T, level)
    p = float((1 + np.sum(T >= t)) / (len(T) + 1))
    if np.isfinite(crit):
        half = np.where(se > 0, crit * se, 0.0)
        lo, hi = np.maximum(estimate - half, -span), np.minimum(estimate + half, span)
    else:  # the resamples cannot bound the shift: everything the grid allows
        lo, hi = -span.astype(float), span.astype(float)
    return lo, hi, p, bool(t > crit)


def region_shift(base: SeedMatrix, cond: SeedMatrix, base_draws, cond_draws, x: float = 0.5,
                 level: float = LEVEL, span=None, *, centres=None) -> RegionShift:
    """The shift of ``cond``'s margin-weighted x-ROI centre from ``base``'s, from given resamples.

    ``base_draws`` / ``cond_draws`` are ``(B, P, S)`` arrays from :meth:`SeedMatrix.resample`
    (None with a single seed: then only the estimate is given, verdict ``"single_seed"``).
    ``span`` bounds |shift| per axis (wd, lr); by default the extent of the points' coordinates.
    ``centres`` may hold the four :func:`cap_centre` results already computed, as
    ``((base_centre, base_se), (cond_centre, cond_se), (base_boot, base_boot_se),
    (cond_boot, cond_boot_se))``; a study computes each condition's once for all its comparisons.
    """
    if centres is None:
        centres = (cap_centre(base.values, base.coords, x, base.randomness),
                   cap_centre(cond.values, cond.coords, x, cond.randomness),
                   None if base_draws is None else cap_centre(base_draws, base.coords, x, base.randomness),
                   None if cond_draws is None else cap_centre(cond_draws, cond.coords, x, cond.randomness))
    (cb, sb), (cc, sc), boot_b, boot_c = centres
    est = cc - cb  # (wd, lr)
    n_seeds = min(base.n_seeds, cond.n_seeds)
    if n_seeds < 2 or boot_b is None or boot_c is None:
        return RegionShift(x=float(x), log10_lr=Interval(float(est[1]), level=level),
                           log10_wd=Interval(float(est[0]), level=level), p_value=None, verdict="single_seed")
    if span is None:
        span = _extent(base, cond)
    (bb, sbb), (bc, sbc) = boot_b, boot_c
    lo, hi, p, moved = simultaneous_test(est, np.hypot(sb, sc), bc - bb, np.hypot(sbb, sbc),
                                         np.asarray(span, dtype=float), level)
    return RegionShift(x=float(x), log10_lr=Interval(float(est[1]), float(lo[1]), float(hi[1]), level),
                       log10_wd=Interval(float(est[0]), float(lo[0]), float(hi[0]), level),
                       p_value=p, verdict="moved" if moved else "no_evidence")


def _extent(*matrices) -> np.ndarray:
    xy = np.vstack([m.coords for m in matrices])
    return xy.max(axis=0) - xy.min(axis=0)


# --------------------------------------------------------------------------------------------
# The shift of the optimum (the best setting): the peak of each condition's local surface fit
# (:mod:`~hplandscape.analysis.optimum`), tested jointly over both axes and over the family of
# pruned conditions.


@dataclass(frozen=True)
class FamilyTest:
    """The joint test of one condition's 2-D shift, inside a family of conditions.

    ``lo``/``hi``: ``(2,)`` (wd, lr) simultaneous interval ends (every axis of every condition of
    the family); ``p_single``: this condition tested alone; ``p_family``: adjusted for the family
    (single-step max-T); ``moved``: ``p_family`` ≤ 1 − level, i.e. the family's joint region
    excludes no shift; ``studentized``: each resample was scaled by its own size (False: all
    by the resamples' common covariance alone).
    """

    lo: np.ndarray
    hi: np.ndarray
    p_single: float
    p_family: float
    moved: bool
    studentized: bool = False


def family_test(estimates: dict, boots: dict, span, level: float = LEVEL, floor: float = 1e-3,
                covs: dict | None = None, boot_covs: dict | None = None) -> dict:
    """Studentized Mahalanobis bootstrap test of several 2-D shifts at once, with family-wise
    error control.

    Parameters
    ----------
    estimates : dict
        ``{condition: (2,) shift}`` from the data.
    boots : dict
        ``{condition: (B, 2) shifts}`` from the resamples; resample b of every condition must use
        the basemodel's resample b (they share it), so that the maximum below sees their dependence.
    span : array_like
        ``(2,)`` the largest possible |shift| per axis: intervals are clipped to it.
    level : float
        Family-wise confidence level.
    floor : float
        Smallest standard deviation of a shift (decades) the covariance keeps on each axis: a
        location that never moves between resamples is known to this resolution, not exactly.
    covs, boot_covs : dict, optional
        ``{condition: (2, 2)}`` and ``{condition: (B, 2, 2)}``: each shift's own covariance
        estimate (delta method; NaN where it has none) on the data and on every resample. Given,
        the test is studentized: each resample is scaled by its own size (below).

    Returns
    -------
    dict
        ``{condition: FamilyTest}``.

    Notes
    -----
    For condition c, with S_c the resamples' covariance of the shift, T*_c,b = (Δ*_c,b − Δ̂_c)ᵀ
    W_c,b⁻¹ (Δ*_c,b − Δ̂_c) and t_c = Δ̂_cᵀ Ŵ_c⁻¹ Δ̂_c, where W_c,b = r_c,b·S_c is S_c scaled by
    resample b's own size and Ŵ_c = r̂_c·S_c by the data's (studentized, :func:`_studentizers`),
    or S_c for all of them (the plain test). The family's critical value q is the
    ⌈level·(B + 1)⌉-th smallest of M*_b = max_c T*_c,b, p_family = (1 + #{M* ≥ t_c}) / (B + 1)
    (Westfall & Young 1993, single step), and the joint region of c is the ellipse
    {δ : (Δ̂_c − δ)ᵀ Ŵ_c⁻¹ (Δ̂_c − δ) ≤ q}; its shadows on the axes, Δ̂_c,j ± √(q·Ŵ_c,jj), are the
    intervals. An interval that excludes 0 implies "moved"; a shift across a diagonal band can be
    "moved" with both shadows containing 0 (the region excludes 0, its shadows do not).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> boots = {"a": rng.normal([0.0, 0.3], 0.05, (1999, 2)), "b": rng.normal([0.0, 0.0], 0.05, (1999, 2))}
    >>> out = family_test({"a": np.array([0.0, 0.3]), "b": np.array([0.0, 0.01])}, boots, span=[1.6, 1.6])
    >>> out["a"].moved, out["b"].moved
    (True, False)
    """
    span = np.asarray(span, dtype=float)
    names = list(estimates)
    T, t, S, student = {}, {}, {}, {}
    for name in names:
        d = np.asarray(estimates[name], dtype=float)
        E = np.asarray(boots[name], dtype=float) - d[None, :]
        cov = np.cov(E, rowvar=False) + floor ** 2 * np.eye(2)
        own, own_boot, student[name] = _studentizers(cov, None if covs is None else covs.get(name),
                                                     None if boot_covs is None else boot_covs.get(name),
                                                     len(E), floor)
        T[name] = np.einsum("bi,bij,bj->b", E, np.linalg.inv(own_boot), E)
        t[name] = float(d @ np.linalg.inv(own) @ d)
        S[name] = own
    M = np.max(np.stack([T[n] for n in names]), axis=0)
    q = order_statistic(M, level)
    out = {}
    for name in names:
        d = np.asarray(estimates[name], dtype=float)
        half = np.sqrt(q * np.diag(S[name]))
        out[name] = FamilyTest(lo=np.maximum(d - half, -span), hi=np.minimum(d + half, span),
                               p_single=float((1 + np.sum(T[name] >= t[name])) / (len(M) + 1)),
                               p_family=float((1 + np.sum(M >= t[name])) / (len(M) + 1)),
                               moved=bool(t[name] > q), studentized=student[name])
    return out


#: The test is studentized only where the delta method holds for the data's shift and for at
#: least this share of its resamples (elsewhere the landscape is too irregular for a local
#: surface's covariance: a coarse grid with cliffs, few seeds).
STUDENTIZE_SHARE = 0.9


def _studentizers(boot_cov, cov, boot_covs, n_boot: int, floor: float) -> tuple:
    """``(data's (2, 2), resamples' (B, 2, 2), studentized)``: the covariances that scale the shifts.

    The shape is always S, the resamples' covariance (it follows the estimate's wandering along a
    bent crest, which a single fit's covariance does not); the size is each shift's own: S times
    r = tr(S⁻¹V)/2 for its delta-method covariance V, relative to the median r of the resamples
    (the factor cancels between t and q). A resample without V gets r = 1. The plain Mahalanobis
    test (S for all) without covariances, where the data's shift has none, or where fewer than
    :data:`STUDENTIZE_SHARE` of the resamples have one.
    """
    plain = np.broadcast_to(boot_cov, (n_boot, 2, 2))
    if cov is None or boot_covs is None or not np.isfinite(cov).all():
        return boot_cov, plain, False
    boot_covs = np.asarray(boot_covs, dtype=float)
    has = np.isfinite(boot_covs).all(axis=(1, 2))
    if has.mean() < STUDENTIZE_SHARE:
        return boot_cov, plain, False
    inv = np.linalg.inv(boot_cov)
    ratio = np.einsum("ij,bji->b", inv, np.where(has[:, None, None], boot_covs, 0.0)) / 2.0
    typical = np.median(ratio[has])
    if not typical > 0:  # most resamples without spread (two seeds, common randomness)
        return boot_cov, plain, False
    size = np.where(has, ratio / typical, 1.0)
    own = float(np.trace(inv @ np.asarray(cov)) / 2.0 / typical)
    ridge = floor ** 2 * np.eye(2)  # the floor stays a floor, whatever the size
    shape = boot_cov - ridge
    return own * shape + ridge, size[:, None, None] * shape + ridge, True


#: The optimum's surface is fitted to points within this many accuracy points of the best, or
#: within FIT_ROI_FACTOR times the largest ROI threshold where that is wider.
FIT_WITHIN = 3.0
FIT_ROI_FACTOR = 3.0


def fit_within(xs) -> float:
    """How far below the best a point may lie and still be fitted (:class:`PeakFinder`)."""
    return max(FIT_WITHIN, FIT_ROI_FACTOR * max(xs))


def optimum_info(peak: Peaks, boot, level: float = LEVEL) -> OptimumInfo:
    """Where one condition's optimum is, with percentile intervals from its resamples' peaks."""
    loc = peak.location[0]
    lr = Interval(float(loc[1]), *(percentile_interval(boot.location[:, 1], level) if boot is not None
                                   else (None, None)), level)
    wd = Interval(float(loc[0]), *(percentile_interval(boot.location[:, 0], level) if boot is not None
                                   else (None, None)), level)
    share = None if boot is None else float(np.mean(boot.censored))
    return OptimumInfo(log10_lr=lr, log10_wd=wd, censored=bool(peak.censored[0]), censored_share=share)


def shift_tests(matrices: dict, base: str, draws: dict, xs=(0.5, 1.0), level: float = LEVEL,
                span=None, region_x=None) -> dict:
    """The shift test of every pruned condition against the basemodel, as one family.

    Parameters
    ----------
    matrices : dict
        ``{condition: SeedMatrix}``, the basemodel among them.
    base : str
        The basemodel's name.
    draws : dict
        ``{condition: (B, P, S) resamples or None}``; resample b of every condition is paired
        with the basemodel's resample b.
    xs : sequence of float
        The study's ROI thresholds (they set how far below the best a fitted point may lie).
    level : float
        Family-wise confidence level.
    span : (float, float), optional
        Largest possible |shift| in (log10 wd, log10 lr); by default the points' extent.
    region_x : float, optional
        The ROI whose margin-weighted centre gives the second line; default the smallest x.

    Returns
    -------
    dict
        ``{pruned condition: ShiftInfo}``.
    """
    region_x = min(xs) if region_x is None else region_x
    peaks = locate_peaks(matrices, draws, xs)
    # each condition's region centre on its data and resamples, once (the basemodel's serves all)
    caps = {n: (cap_centre(m.values, m.coords, region_x, m.randomness),
                None if draws[n] is None else cap_centre(draws[n], m.coords, region_x, m.randomness))
            for n, m in matrices.items()}
    if span is None:
        span = _extent(*matrices.values())
    span = np.asarray(span, dtype=float)
    pruned = [n for n in matrices if n != base]
    pb, bb = peaks[base]
    est = {n: peaks[n][0].location[0] - pb.location[0] for n in pruned}
    tested = [n for n in pruned if bb is not None and peaks[n][1] is not None]
    fam = family_test({n: est[n] for n in tested}, {n: peaks[n][1].location - bb.location for n in tested},
                      span, level, covs={n: peaks[n][0].cov[0] + pb.cov[0] for n in tested},
                      boot_covs={n: peaks[n][1].cov + bb.cov for n in tested}) if tested else {}
    out = {}
    for n in pruned:
        m = matrices[n]
        n_seeds = min(matrices[base].n_seeds, m.n_seeds)
        region = region_shift(matrices[base], m, draws[base], draws[n], x=region_x, level=level, span=span,
                              centres=(caps[base][0], caps[n][0], caps[base][1], caps[n][1]))
        common = dict(x=float(region_x), n_seeds=n_seeds, base_optimum=optimum_info(pb, bb, level),
                      optimum=optimum_info(*peaks[n], level=level), region=region, family_size=len(pruned))
        if n not in fam:
            out[n] = ShiftInfo(log10_lr=Interval(float(est[n][1]), level=level),
                               log10_wd=Interval(float(est[n][0]), level=level), p_value=None,
                               verdict="single_seed", **common)
            continue
        f = fam[n]
        out[n] = ShiftInfo(log10_lr=Interval(float(est[n][1]), float(f.lo[1]), float(f.hi[1]), level),
                           log10_wd=Interval(float(est[n][0]), float(f.lo[0]), float(f.hi[0]), level),
                           p_value=f.p_family, verdict="moved" if f.moved else "no_evidence",
                           p_value_single=f.p_single, studentized=f.studentized, **common)
    return out


def locate_peaks(matrices: dict, draws: dict, xs=(0.5, 1.0)) -> dict:
    """``{condition: (Peaks of its means, Peaks of its resamples' means or None)}``."""
    out = {}
    within = noise_within(xs)
    for name, m in matrices.items():
        finder = PeakFinder(m.coords, fit_within(xs))
        d = draws.get(name)
        out[name] = (finder.locate(m.means[None, :], mean_variance(m.values, within)[None, :]),
                     None if d is None else finder.locate(replicate_means(d), mean_variance(d, within)))
    return out


def shift_test(base: SeedMatrix, cond: SeedMatrix, xs=(0.5, 1.0), *, n_boot: int = N_BOOT,
               seed: int = BOOT_SEED, level: float = LEVEL, names=("base", "pruned")) -> ShiftInfo:
    """Test whether ``cond``'s optimum moved away from ``base``'s (one comparison, no family).

    Parameters
    ----------
    base, cond : SeedMatrix
        The basemodel's and the pruned condition's runs (points × seeds, with their design).
    xs : sequence of float
        The ROI thresholds (the smallest gives the region-centre line).
    n_boot : int
        Resamples per condition.
    seed : int
        Seed of the resampling; each condition draws from ``condition_rng(seed, name)``.
    level : float
        Simultaneous confidence level of the two intervals.
    names : (str, str)
        The conditions' names (they select the random streams, as in :func:`analyze`).

    Returns
    -------
    ShiftInfo

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lr, wd = (a.ravel() for a in np.meshgrid(np.arange(-4, 5) * 0.2, np.arange(-4, 5) * 0.2, indexing="ij"))
    >>> def runs(shift):
    ...     f = 93 - 8 * (lr - shift) ** 2 - 4 * wd ** 2
    ...     return SeedMatrix(f[:, None] + rng.normal(0, 0.15, (81, 3)), wd, lr)
    >>> shift_test(runs(0.0), runs(0.3), n_boot=199).verdict
    'moved'
    """
    matrices = dict(zip(names, (base, cond)))
    draws = {name: m.resample(n_boot, condition_rng(seed, name), pool_within(xs)) if m.n_seeds >= 2 else None
             for name, m in matrices.items()}
    return shift_tests(matrices, names[0], draws, xs, level)[names[1]]
