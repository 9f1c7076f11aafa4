"""The numbers of method §8: x-ROI, confidence ellipse, performance risk, grid edges.

Pure functions on plain arrays, so each can be checked against a hand-computed case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from hplandscape.study.grid import GRID_DECIMALS, Log10Values

# -- what this module's computation gives: its Info types ----------------------------------------


#: Two seed-averaged accuracies this close are a tie for the best point.
TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PointStat(Log10Values):
    """One grid point of one condition, aggregated over its measured seeds.

    ``top1`` is the mean top-1 (percent) over the seeds with a result; diverged seeds count with
    their recorded (chance-level) accuracy.
    """

    log10_lr: float
    log10_wd: float
    top1: float
    top1_std: float
    n_seeds: int
    n_diverged: int


@dataclass(frozen=True)
class BestPoint(Log10Values):
    """θ* of one condition: the grid point with the highest mean top-1."""

    log10_lr: float
    log10_wd: float
    top1: float


@dataclass(frozen=True)
class EllipseInfo:
    """A k-scaled standard-deviation ellipse in the (log10 wd, log10 lr) plane.

    ``length`` = 2k√λ1 and ``width`` = 2k√λ2 are full diameters; ``angle_deg`` is the direction of
    the major axis measured from the log10 wd axis, in (−90, 90]. A band where a larger lr needs a
    smaller wd has a negative angle. ``confidence`` = 1 − exp(−k²/2).
    """

    centre_log10_wd: float
    centre_log10_lr: float
    length: float
    width: float
    angle_deg: float
    confidence: float
    k: float
    n: int

    def outline(self, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
        """Closed outline of the ellipse as ``(log10_wd, log10_lr)`` arrays of ``n + 1`` points."""
        t = np.linspace(0.0, 2.0 * np.pi, n + 1)
        a, b = self.length / 2.0, self.width / 2.0
        phi = math.radians(self.angle_deg)
        x = a * np.cos(t) * math.cos(phi) - b * np.sin(t) * math.sin(phi)
        y = a * np.cos(t) * math.sin(phi) + b * np.sin(t) * math.cos(phi)
        return self.centre_log10_wd + x, self.centre_log10_lr + y

    def to_json(self) -> dict:
        return {"length": self.length, "width": self.width,
                "centre_log10_wd": self.centre_log10_wd, "centre_log10_lr": self.centre_log10_lr,
                "angle_deg": self.angle_deg, "confidence": self.confidence}


@dataclass(frozen=True)
class RoiInfo:
    """The x-ROI of one condition and its ellipse, or the reason there is none."""

    x: float
    n: int
    points: tuple  # ((log10_wd, log10_lr), ...)
    ellipse: Optional[EllipseInfo]
    reason: Optional[str]
    # the grid sides ("lr_low", "lr_high", "wd_low", "wd_high") this ROI touches: an ellipse
    # fitted to it is truncated by the grid (method §3: extend until the region is enclosed)
    touches_edge: tuple = ()

    @property
    def truncated(self) -> bool:
        """True when the ROI reaches the grid's edge, so its ellipse is cut off by the grid."""
        return bool(self.touches_edge)

    @property
    def key(self) -> str:
        """The ROI's name in JSON and tables: ``"0.5"``, ``"1.0"``."""
        return roi_key(self.x)


def roi_key(x: float) -> str:
    return str(float(x))


@dataclass(frozen=True)
class RiskInfo:
    """Performance risk of keeping the basemodel's near-optimal settings (method §8).

    ``d`` and ``dR`` hold one value per point of Θ_R (the basemodel's 0.5-ROI) that this condition
    measured, in the order of ``points``; ``missing`` lists the Θ_R points it lacks. Statistics
    use the population standard deviation; they are NaN when no point could be used.
    """

    condition: str
    best_top1: float
    points: tuple  # ((log10_wd, log10_lr), ...)
    d: tuple
    dR: tuple
    missing: tuple  # ((log10_wd, log10_lr), ...)

    @property
    def n(self) -> int:
        return len(self.d)

    def _stat(self, values, fn) -> float:
        return float(fn(np.asarray(values, dtype=float))) if values else float("nan")

    @property
    def d_mean(self) -> float:
        return self._stat(self.d, np.mean)

    @property
    def d_std(self) -> float:
        return self._stat(self.d, np.std)  # ddof=0: population std, Eq. 3.5

    @property
    def d_max(self) -> float:
        return self._stat(self.d, np.max)

    @property
    def dR_mean(self) -> float:
        return self._stat(self.dR, np.mean)

    @property
    def dR_std(self) -> float:
        return self._stat(self.dR, np.std)


@dataclass(frozen=True)
class EdgeInfo:
    """Where a condition's edge-ROI touches the grid boundary and which values would enclose it.

    ``sides`` ⊆ {"lr_low", "lr_high", "wd_low", "wd_high"}; ``new_log10_lr`` / ``new_log10_wd``
    are the proposed extra axis values, one step beyond the touched boundary.
    """

    condition: str
    x: float
    sides: tuple
    new_log10_lr: tuple
    new_log10_wd: tuple
    note: Optional[str] = None

    @property
    def touches(self) -> bool:
        return bool(self.sides)


@dataclass(frozen=True)
class GridAxes:
    """The study's rectangular grid: sorted log10 axis values and their step (None if one value)."""

    log10_lr: tuple
    log10_wd: tuple
    step_lr: Optional[float]
    step_wd: Optional[float]

    @property
    def size(self) -> int:
        return len(self.log10_lr) * len(self.log10_wd)


MIN_ELLIPSE_POINTS = 5  # thesis §4.1.1: five points guarantee a unique fit
# Mean accuracies such as 93.34 − 0.5 are not exact in binary; a point sitting exactly on the
# threshold must stay inside the ROI.
_ROI_TOL = 1e-9


def confidence_level(k: float) -> float:
    """Probability mass inside a k-scaled standard-deviation ellipse: 1 − exp(−k²/2).

    >>> round(confidence_level(2.0), 4)
    0.8647
    """
    return 1.0 - math.exp(-k * k / 2.0)


def roi_mask(top1: np.ndarray, x: float) -> np.ndarray:
    """Boolean mask of the x-ROI (Eq. 3.3): f(θ) ≥ f(θ*) − x."""
    top1 = np.asarray(top1, dtype=float)
    return top1 >= np.nanmax(top1) - x - _ROI_TOL


def fit_ellipse(log10_wd: Sequence[float], log10_lr: Sequence[float], k: float = 2.0) -> EllipseInfo:
    """Fit the k-scaled standard-deviation ellipse to points of the (log10 wd, log10 lr) plane.

    Centre = mean; Σ = sample covariance (ddof=1); length = 2k√λ1, width = 2k√λ2 (λ1 ≥ λ2);
    ``angle_deg`` = direction of the major axis from the wd axis, in (−90, 90] (0 for a circle).

    Examples
    --------
    >>> e = fit_ellipse([-1, 1, 0, 0, 0], [0, 0, -0.5, 0.5, 0], k=2)
    >>> round(e.length, 4), round(e.width, 4), e.angle_deg
    (2.8284, 1.4142, 0.0)
    """
    pts = np.column_stack([np.asarray(log10_wd, float), np.asarray(log10_lr, float)])
    centre = pts.mean(axis=0)
    cov = np.cov(pts, rowvar=False, ddof=1)
    evals, evecs = np.linalg.eigh(cov)  # ascending
    lam1, lam2 = (max(float(v), 0.0) for v in evals[::-1])  # clip −1e-17 noise of a line
    if math.isclose(lam1, lam2, rel_tol=1e-12, abs_tol=1e-15):
        angle = 0.0  # a circle has no major axis
    else:
        vx, vy = evecs[:, 1]
        angle = math.degrees(math.atan2(vy, vx))
        # an axis is a line, not a ray: fold into (−90, 90]
        while angle <= -90.0:
            angle += 180.0
        while angle > 90.0:
            angle -= 180.0
        angle = round(angle, 10) + 0.0
    return EllipseInfo(centre_log10_wd=float(centre[0]), centre_log10_lr=float(centre[1]),
                       length=2.0 * k * math.sqrt(lam1), width=2.0 * k * math.sqrt(lam2),
                       angle_deg=angle, confidence=confidence_level(k), k=float(k), n=len(pts))


def roi_info(log10_wd, log10_lr, top1, x: float, k: float) -> RoiInfo:
    """The x-ROI of one condition with its ellipse, or ``ellipse=None`` and the reason."""
    wd, lr, f = (np.asarray(a, dtype=float) for a in (log10_wd, log10_lr, top1))
    mask = roi_mask(f, x)
    pts = tuple((float(a), float(b)) for a, b in zip(wd[mask], lr[mask]))
    n = len(pts)
    if n < MIN_ELLIPSE_POINTS:
        return RoiInfo(x=float(x), n=n, points=pts, ellipse=None,
                       reason=f"the {x}-ROI holds {n} point{'s' if n != 1 else ''}; "
                              f"an ellipse needs at least {MIN_ELLIPSE_POINTS}")
    return RoiInfo(x=float(x), n=n, points=pts, ellipse=fit_ellipse(wd[mask], lr[mask], k), reason=None)


def risk_info(condition: str, best_top1: float, values: dict, theta_r: Sequence[tuple]) -> RiskInfo:
    """Performance risk (Eq. 3.4–3.6) of one condition over Θ_R.

    Parameters
    ----------
    condition : str
        The condition's name.
    best_top1 : float
        f_c(θ*_c), the condition's best mean top-1 over its own grid.
    values : dict
        ``{(log10_wd, log10_lr): mean top-1}`` of the condition's measured points.
    theta_r : sequence of (log10_wd, log10_lr)
        The basemodel's 0.5-ROI.
    """
    used, d, dR, missing = [], [], [], []
    for p in theta_r:
        if p in values:
            used.append(p)
            d.append(float(best_top1 - values[p]))
            dR.append(float((best_top1 - values[p]) / best_top1))
        else:
            missing.append(p)
    return RiskInfo(condition=condition, best_top1=float(best_top1), points=tuple(used),
                    d=tuple(d), dR=tuple(dR), missing=tuple(missing))


def axis_step(values: Sequence[float]) -> Optional[float]:
    """The grid step of one sorted axis (smallest gap), None for a single value."""
    v = np.unique(np.asarray(values, dtype=float))
    if len(v) < 2:
        return None
    return round(float(np.min(np.diff(v))), GRID_DECIMALS)


def grid_axes(log10_lr: Sequence[float], log10_wd: Sequence[float]) -> GridAxes:
    lr = tuple(float(v) for v in np.unique(np.asarray(log10_lr, float)))
    wd = tuple(float(v) for v in np.unique(np.asarray(log10_wd, float)))
    return GridAxes(log10_lr=lr, log10_wd=wd, step_lr=axis_step(lr), step_wd=axis_step(wd))


def edge_info(condition: str, roi: RoiInfo, grid: GridAxes) -> EdgeInfo:
    """Which grid sides the ROI touches and the axis values one step beyond each touched side."""
    sides, new_lr, new_wd, notes = [], [], [], []
    wd = [p[0] for p in roi.points]
    lr = [p[1] for p in roi.points]
    checks = (("lr_low", lr, grid.log10_lr[0], -1, grid.step_lr, new_lr),
              ("lr_high", lr, grid.log10_lr[-1], +1, grid.step_lr, new_lr),
              ("wd_low", wd, grid.log10_wd[0], -1, grid.step_wd, new_wd),
              ("wd_high", wd, grid.log10_wd[-1], +1, grid.step_wd, new_wd))
    for side, values, bound, sign, step, out in checks:
        if values and any(math.isclose(v, bound, abs_tol=1e-6) for v in values):
            sides.append(side)
            if step is None:
                notes.append(f"{side}: the axis has a single value, so no step to extend by")
            else:
                out.append(round(bound + sign * step, GRID_DECIMALS) + 0.0)
    return EdgeInfo(condition=condition, x=roi.x, sides=tuple(sides), new_log10_lr=tuple(sorted(new_lr)),
                    new_log10_wd=tuple(sorted(new_wd)), note="; ".join(notes) or None)
