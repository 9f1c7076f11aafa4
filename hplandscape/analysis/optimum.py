"""Where a condition's optimum is: the peak of a local cubic surface fitted around its best point.

The best grid point θ* (method §8) can only sit on the grid, and with noisy means it jumps from
point to point between seeds. The location of the optimum is estimated instead as the peak of a
surface fitted to the points around it (docs/method.md §12, "The optimum and its shift"):

1. the points whose mean lies within ``fit_within`` accuracy points of the best are fitted (a
   diverged or far-off point would bend the surface), weighted by a Gaussian kernel around the
   current estimate (first θ*), within ``WINDOW`` steps of it;
2. a full cubic in (log10 wd, log10 lr) is fitted by weighted least squares (10 terms; a cubic,
   not a quadratic, because a peak that is steeper on one side than on the other leaves a
   quadratic's vertex on the flatter side); with too few points for a cubic, a quadratic; with too
   few for that, θ* itself;
3. the estimate moves to the surface's highest point within a grid step (a lattice of a tenth of a
   step, then Newton steps), never beyond the grid; after the first fit the kernel follows the band
   of near-optimal settings, long along it and short across it; ``ITERATIONS`` fits in a row.
   An estimate on the grid's edge is flagged ``censored``: the optimum may lie beyond it.
4. given the variance of each mean, the location's delta-method covariance from the last fit: the
   coefficients' covariance carried through the peak's condition ∇f = 0 (the shift test scales
   each resample by it, :func:`hplandscape.analysis.shift.family_test`).

Everything is vectorised over bootstrap resamples: :meth:`PeakFinder.locate` takes ``(B, P)``
means and returns ``B`` locations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from hplandscape.analysis.bootstrap import Interval, finite_or_none
from hplandscape.analysis.regions import axis_step

# -- what this module's computation gives: its Info types ----------------------------------------


@dataclass(frozen=True)
class OptimumInfo:
    """Where one condition's optimum lies: the peak of its local surface fit (log10 units), with
    95 % percentile intervals over the seed resamples (None with one seed). ``censored``: the fitted
    surface still rises at the grid's edge, so the optimum may lie beyond it;
    ``censored_share`` the fraction of resamples where it did."""

    log10_lr: Interval
    log10_wd: Interval
    censored: bool = False
    censored_share: Optional[float] = None

    def to_json(self) -> dict:
        return {"log10_lr": self.log10_lr.to_json(), "log10_wd": self.log10_wd.to_json(),
                "censored": bool(self.censored), "censored_share": finite_or_none(self.censored_share)}


#: Grid steps on each side of the estimate that the fit reaches (across the band after the first fit).
WINDOW = 2
#: Resolution of the search for the fitted surface's peak, in grid steps (refined by Newton steps).
FINE = 0.1
CUBIC = ((0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2), (3, 0), (2, 1), (1, 2), (0, 3))
QUADRATIC = CUBIC[:6]
_COND_LIMIT = 1e8  # largest condition number of a fit's normal equations that counts as determined
#: Gaussian kernel width of the fit's weights, in grid steps, around the current estimate.
BANDWIDTH = 1.5
#: Along the band of near-optimal settings (the direction in which the fitted surface curves
#: least), the kernel is this much wider and reaches this many steps: a diagonal lr × wd band
#: determines its crest's position from many points along it, while across it the fit stays local
#: (a peak flatter on one side would pull a wide fit towards that side).
ALONG_BANDWIDTH = 3.0
ALONG_WINDOW = 4
#: Fits in a row: each re-centres the kernel on the previous peak (at most a step away), so the
#: estimate does not depend on which grid point happened to be the best.
ITERATIONS = 3


@dataclass(frozen=True)
class Peaks:
    """Located optima of ``B`` surfaces.

    ``location``: ``(B, 2)`` (log10 wd, log10 lr); ``value``: ``(B,)`` the fitted surface's value
    there; ``censored``: ``(B,)`` the estimate lies on the grid's edge (the optimum may lie beyond
    it); ``degree``: ``(B,)`` 3, 2, or 0 (too few points: the best grid point); ``cov``:
    ``(B, 2, 2)`` the location's delta-method covariance (decades²) from the last fit, NaN where the
    peak is not an interior maximum of a fitted surface (None: no noise was given).
    """

    location: np.ndarray
    value: np.ndarray
    censored: np.ndarray
    degree: np.ndarray
    cov: np.ndarray | None = None


class PeakFinder:
    """Finds the optimum of one condition's landscape (and of its resamples).

    Parameters
    ----------
    coords : numpy.ndarray
        ``(P, 2)`` (log10 wd, log10 lr) of the condition's grid points.
    fit_within : float
        Points whose mean lies more than this many accuracy points below the best are not fitted.
    window : int
        Grid steps on each side of the current estimate that the fit reaches.

    Examples
    --------
    >>> wd, lr = (a.ravel() for a in np.meshgrid(np.arange(-4, 5) * 0.2 - 4, np.arange(-4, 5) * 0.2 - 1))
    >>> f = 93 - 8 * (lr + 1.07) ** 2 - 4 * (wd + 3.95) ** 2   # peak at lr 10^-1.07, wd 10^-3.95
    >>> p = PeakFinder(np.column_stack([wd, lr]), fit_within=3.0).locate(f[None, :])
    >>> np.round(p.location[0], 4).tolist(), bool(p.censored[0])
    ([-3.95, -1.07], False)
    """

    def __init__(self, coords, fit_within: float, window: int = WINDOW):
        self.coords = np.asarray(coords, dtype=float)
        self.fit_within = float(fit_within)
        self.window = int(window)
        self.step = np.array([axis_step(self.coords[:, 0]) or 1.0, axis_step(self.coords[:, 1]) or 1.0])
        ticks = np.arange(-1.0, 1.0 + FINE / 2, FINE)
        fu, fv = np.meshgrid(ticks, ticks, indexing="ij")
        self.fine = np.column_stack([fu.ravel(), fv.ravel()])  # (F, 2) in steps from the estimate
        self.fine_basis = {terms: _basis(self.fine, terms) for terms in (CUBIC, QUADRATIC)}

    def locate(self, means, mean_var=None) -> Peaks:
        """The optimum of each row of ``means`` (``(B, P)`` seed-averaged top-1, NaN: no value).

        ``mean_var`` (``(B, P)`` or ``(P,)``, the variance of each mean, e.g. σ²/n) adds the
        location's delta-method covariance (:attr:`Peaks.cov`): the fitted coefficients' covariance
        (A⁻¹XᵀW·diag(mean_var)·WXA⁻¹) carried through the peak's condition ∇f = 0, J = −H⁻¹·∂∇f/∂β.
        """
        m = np.atleast_2d(np.asarray(means, dtype=float))
        B = m.shape[0]
        cov = np.full((B, 2, 2), np.nan)
        mv = None if mean_var is None else np.broadcast_to(np.asarray(mean_var, dtype=float), m.shape)
        filled = np.where(np.isfinite(m), m, -np.inf)
        best = np.argmax(filled, axis=1)
        top = filled[np.arange(B), best]
        used = np.isfinite(m) & (m >= top[:, None] - self.fit_within)  # (B, P)
        y = np.where(used, m, 0.0)
        centre = self.coords[best].copy()  # (B, 2) the current estimate, in decades
        value = top.copy()
        degree = np.zeros(B, dtype=np.int64)
        lo_grid, hi_grid = self.coords.min(axis=0), self.coords.max(axis=0)
        axes = np.broadcast_to(np.eye(2), (B, 2, 2)).copy()  # columns: across, along (steps)
        reach = np.array([self.window, self.window], dtype=float)
        width = np.array([BANDWIDTH, BANDWIDTH])
        for it in range(ITERATIONS):
            rel = (self.coords[None] - centre[:, None]) / self.step  # (B, P, 2) in steps
            rot = np.einsum("bpi,bij->bpj", rel, axes)  # (B, P, 2): across, along the band
            w = used * np.exp(-0.5 * ((rot / width) ** 2).sum(axis=2))
            w = np.where((np.abs(rot) <= reach + 1e-9).all(axis=2), w, 0.0)
            todo = np.ones(B, dtype=bool)
            for terms in (CUBIC, QUADRATIC):
                if not todo.any():
                    break
                X = _basis(rel[todo], terms)  # (b, P, T)
                Xw = np.swapaxes(X * w[todo][..., None], 1, 2)  # (b, T, P)
                A = Xw @ X
                rhs = (Xw @ y[todo][..., None])[..., 0]
                ok = _well_posed(A, (w[todo] > 0.05).sum(axis=1), len(terms))
                if not ok.any():
                    continue
                sel = np.flatnonzero(todo)[ok]
                coef = np.linalg.solve(A[ok], rhs[ok][..., None])[..., 0]
                # search a step around the current estimate, inside the fitted points and the grid
                inside = (w[sel] > 0.05)[..., None]
                lo = np.maximum(np.where(inside, rel[sel], np.inf).min(axis=1), -1.0)
                hi = np.minimum(np.where(inside, rel[sel], -np.inf).max(axis=1), 1.0)
                lo = np.maximum(lo, (lo_grid - centre[sel]) / self.step)
                hi = np.minimum(hi, (hi_grid - centre[sel]) / self.step)
                z, val = _peak(coef, terms, self.fine, self.fine_basis[terms], lo, hi)
                if mv is not None and it == ITERATIONS - 1:
                    Ainv = np.linalg.inv(A[ok])
                    M = Ainv @ Xw[ok]  # (b, T, P): coefficients = M @ y
                    cb = np.einsum("btp,bp,bsp->bts", M, np.where(used[sel], mv[sel], 0.0), M)
                    cov[sel] = _peak_cov(coef, terms, z, cb, lo, hi) * np.outer(self.step, self.step)
                centre[sel] = centre[sel] + z * self.step
                value[sel] = val
                degree[sel] = 3 if terms is CUBIC else 2
                axes[sel] = _band_axes(coef, terms, z)
                todo[sel] = False
            # after the first fit, the kernel follows the band: long along it, short across it
            reach = np.array([self.window, ALONG_WINDOW], dtype=float)
            width = np.array([BANDWIDTH, ALONG_BANDWIDTH])
        # at the grid's edge (the surface still rising there, or the best point itself on the edge
        # with too few points for a fit): the optimum may lie beyond it
        tol = 1e-6 * self.step
        at_edge = (np.abs(centre - lo_grid) < tol) | (np.abs(centre - hi_grid) < tol)
        censored = at_edge.any(axis=1)
        return Peaks(centre, value, censored, degree, None if mv is None else cov)


def _basis(uv: np.ndarray, terms) -> np.ndarray:
    """``(..., T)`` monomials u^a·v^b of the points ``uv`` (``(..., 2)``)."""
    return np.stack([uv[..., 0] ** a * uv[..., 1] ** b for a, b in terms], axis=-1)


def _well_posed(A: np.ndarray, n_used: np.ndarray, n_terms: int) -> np.ndarray:
    """Fits with more points than terms and normal equations far from singular."""
    ev = np.linalg.eigvalsh(A)  # ascending
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = ev[:, -1] / ev[:, 0]
    return (n_used > n_terms) & (ev[:, 0] > 0) & (cond < _COND_LIMIT)


def _peak(coef, terms, fine, fine_basis, lo, hi) -> tuple:
    """Highest point of each fitted polynomial in its box ``[lo, hi]`` (steps): a lattice search,
    then Newton steps while the surface is concave there."""
    vals = coef @ fine_basis.T  # (b, F)
    inside = ((fine[None] >= lo[:, None] - 1e-9) & (fine[None] <= hi[:, None] + 1e-9)).all(axis=2)
    k = np.argmax(np.where(inside, vals, -np.inf), axis=1)
    z = np.clip(fine[k], lo, hi)
    for _ in range(3):
        g, H = _derivatives(coef, terms, z)
        det = H[:, 0, 0] * H[:, 1, 1] - H[:, 0, 1] ** 2
        concave = (H[:, 0, 0] < 0) & (det > 0)
        safe = np.where(concave, det, 1.0)
        dz = np.stack([-(H[:, 1, 1] * g[:, 0] - H[:, 0, 1] * g[:, 1]) / safe,
                       -(H[:, 0, 0] * g[:, 1] - H[:, 0, 1] * g[:, 0]) / safe], axis=1)
        small = concave & (np.abs(dz) <= FINE).all(axis=1)
        z = np.where(small[:, None], np.clip(z + dz, lo, hi), z)
    return z, (coef * _basis(z, terms)).sum(axis=1)


def _pow(x, e):
    """x**e, and 0 for a negative exponent (the derivative of a constant term)."""
    return x ** e if e >= 0 else np.zeros_like(x)


def _peak_cov(coef, terms, z, coef_cov, lo, hi) -> np.ndarray:
    """``(b, 2, 2)`` delta-method covariance of the peaks ``z`` (steps²); NaN where a peak is not
    an interior maximum (the surface not concave there, or the peak on its search box)."""
    _, H = _derivatives(coef, terms, z)
    u, v = z[:, 0], z[:, 1]

    G = np.stack([np.stack([a * _pow(u, a - 1) * _pow(v, b), b * _pow(u, a) * _pow(v, b - 1)], axis=1)
                  for a, b in terms], axis=2)  # (b, 2, T): ∂(∇f)/∂β
    det = H[:, 0, 0] * H[:, 1, 1] - H[:, 0, 1] ** 2
    interior = ((z > lo + 1e-6) & (z < hi - 1e-6)).all(axis=1)
    ok = (H[:, 0, 0] < 0) & (det > 0) & interior
    J = -np.linalg.solve(np.where(ok[:, None, None], H, -np.eye(2)), G)  # (b, 2, T)
    out = J @ coef_cov @ np.swapaxes(J, 1, 2)
    return np.where(ok[:, None, None], out, np.nan)


def _band_axes(coef, terms, z) -> np.ndarray:
    """``(b, 2, 2)`` unit vectors (columns) across and along the band at ``z``: the Hessian's
    eigenvectors, the most curved first; the identity where the surface is not concave."""
    _, H = _derivatives(coef, terms, z)
    ev, vec = np.linalg.eigh(H)  # ascending: the most negative (most curved) first
    concave = ev[:, 1] < 0
    return np.where(concave[:, None, None], vec, np.eye(2)[None])


def _derivatives(coef, terms, z) -> tuple:
    """Gradient ``(b, 2)`` and Hessian ``(b, 2, 2)`` of the polynomials at ``z``."""
    u, v = z[:, 0], z[:, 1]
    g = np.zeros((len(z), 2))
    H = np.zeros((len(z), 2, 2))

    for t, (a, b) in enumerate(terms):
        c = coef[:, t]
        g[:, 0] += c * a * _pow(u, a - 1) * _pow(v, b)
        g[:, 1] += c * b * _pow(u, a) * _pow(v, b - 1)
        H[:, 0, 0] += c * a * (a - 1) * _pow(u, a - 2) * _pow(v, b)
        H[:, 1, 1] += c * b * (b - 1) * _pow(u, a) * _pow(v, b - 2)
        H[:, 0, 1] += c * a * b * _pow(u, a - 1) * _pow(v, b - 1)
    H[:, 1, 0] = H[:, 0, 1]
    return g, H


def crossfit_best(values) -> np.ndarray:
    """Cross-fitted best top-1: each seed judges the point the other seeds chose.

    The best mean over the grid is biased upwards: among points of nearly equal accuracy, the one
    whose seeds happened to land high wins. Choosing the point with all seeds but s and reading
    its value from seed s alone removes that bias (seed s played no part in the choice); the
    estimate averages this over the seeds. It errs low only by what choosing with one seed fewer
    costs, which is small where the candidates are nearly tied, and no estimate can be both
    unbiased for the best and free of the choice.

    Parameters
    ----------
    values : numpy.ndarray
        ``(..., P, S)`` top-1 per point and seed (NaN: no result), S ≥ 2.

    Returns
    -------
    numpy.ndarray
        ``(...)`` the estimates (NaN where no seed has a value at the chosen point).

    Examples
    --------
    >>> v = np.array([[93.0, 92.0], [92.6, 92.6]])  # point 0 wins on seed 0 alone
    >>> float(crossfit_best(v))   # seed 1 chooses point 1, seed 0 reads 92.6; seed 0 chooses point 0, seed 1 reads 92.0
    92.3
    """
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    total = np.where(finite, v, 0.0).sum(axis=-1)
    count = finite.sum(axis=-1)
    out, used = 0.0, 0
    for s in range(v.shape[-1]):
        own = v[..., s]
        others = count - finite[..., s]
        # among the points seed s measured (all of them in a full design; an adaptive one, method
        # §12, leaves far-off points without it): a pick it cannot read would drop seed s's turn
        # exactly when another seed's luck chose, which biases what the other turns average
        mean = np.where((others > 0) & finite[..., s],
                        (total - np.where(finite[..., s], own, 0.0)) / np.maximum(others, 1), -np.inf)
        k = np.argmax(mean, axis=-1)
        pick = np.take_along_axis(own, k[..., None], axis=-1)[..., 0]
        ok = np.isfinite(pick) & np.isfinite(np.take_along_axis(mean, k[..., None], axis=-1)[..., 0])
        out = out + np.where(ok, pick, 0.0)
        used = used + ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(used > 0, out / np.maximum(used, 1), np.nan)
