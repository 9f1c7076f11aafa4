"""Did the optimum move? The shift of a pruned condition's x-ROI centre, with a calibrated test.

The statistic is the **margin-weighted x-ROI centre**: the x-ROI's points (f(θ) ≥ f* − x,
Eq. 3.3) averaged in the (log10 wd, log10 lr) plane with weight w(θ) = f(θ) − (f* − x), how far
each clears the ROI's threshold (the best point weighs x, a point on the threshold 0). It is the
centroid of the part of the accuracy surface that rises above the threshold. The plain centre of
method §8 jumps by a whole grid step whenever a point near the threshold flips in or out of the
ROI; the weighted one moves continuously with the data, which is what makes its bootstrap
calibrated (docs/method.md, "Seeds as replicates", and ``benchmarks/shift_power.py``).

The test is a studentized bootstrap (bootstrap-t; Hall 1992) over both axes at once: each
resample's shift is standardised by its own delta-method standard error, and the largest of the
two standardised deviations gives one critical value for both axes (a max-t simultaneous band).
Intervals, verdict and p-value are one procedure: "moved" (an interval excludes 0) exactly when
the p-value of "no shift on either axis" is at most 1 − level.
"""

from __future__ import annotations

import numpy as np

from hplandscape.analysis.bootstrap import BOOT_SEED, LEVEL, N_BOOT, SeedMatrix, condition_rng, order_statistic
from hplandscape.analysis.info import Interval, ShiftInfo


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
        var = contrib.var(axis=-2, ddof=1) / v.shape[-1]
    else:
        ss = (np.where(finite, v0 - m[..., None], 0.0) ** 2).sum(axis=-1)
        usable = inside[..., 0] & (n > 1)  # a point with one result shows no spread
        s2 = np.where(usable, ss / np.maximum(n - 1, 1), 0.0)
        k = usable.sum(axis=-1)
        pooled = np.where(k > 0, s2.sum(axis=-1) / np.maximum(k, 1), 0.0)
        inv_n = np.where(n > 1, 1.0 / np.maximum(n, 1), 0.0)  # a single result is held fixed
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


def shift_from_draws(base: SeedMatrix, cond: SeedMatrix, base_draws, cond_draws, x: float = 0.5,
                     level: float = LEVEL, span=None, *, centres=None) -> ShiftInfo:
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
        return ShiftInfo(x=float(x), n_seeds=n_seeds, log10_lr=Interval(float(est[1]), level=level),
                         log10_wd=Interval(float(est[0]), level=level), p_value=None, verdict="single_seed")
    if span is None:
        xy = np.vstack([base.coords, cond.coords])
        span = xy.max(axis=0) - xy.min(axis=0)
    (bb, sbb), (bc, sbc) = boot_b, boot_c
    lo, hi, p, moved = simultaneous_test(est, np.hypot(sb, sc), bc - bb, np.hypot(sbb, sbc),
                                         np.asarray(span, dtype=float), level)
    return ShiftInfo(x=float(x), n_seeds=n_seeds,
                     log10_lr=Interval(float(est[1]), float(lo[1]), float(hi[1]), level),
                     log10_wd=Interval(float(est[0]), float(lo[0]), float(hi[0]), level),
                     p_value=p, verdict="moved" if moved else "no_evidence")


def shift_test(base: SeedMatrix, cond: SeedMatrix, x: float = 0.5, *, n_boot: int = N_BOOT,
               seed: int = BOOT_SEED, level: float = LEVEL, names=("base", "pruned")) -> ShiftInfo:
    """Test whether ``cond``'s optimum moved away from ``base``'s (the test :func:`analyze` runs).

    Parameters
    ----------
    base, cond : SeedMatrix
        The basemodel's and the pruned condition's runs (points × seeds, with their design).
    x : float
        The ROI whose margin-weighted centre is compared (0.5, as the risk uses).
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
    draws = []
    for m, name in zip((base, cond), names):
        draws.append(m.resample(n_boot, condition_rng(seed, name)) if m.n_seeds >= 2 else None)
    return shift_from_draws(base, cond, draws[0], draws[1], x=x, level=level)
