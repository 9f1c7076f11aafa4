"""Immutable Info objects that describe an analysed study.

The analysis computes these once; the plots, the report, the notebooks and the CLI only read
them. All coordinates are log10 values rounded to the grid's identity rule (4 decimals); the
ellipse plane is (log10 wd, log10 lr), with wd on the horizontal axis as in the thesis figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from hplandscape.grid import Log10Values


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


@dataclass(frozen=True)
class RunIssue(Log10Values):
    """A missing, failed or diverged run, as reported to the user."""

    condition: str
    log10_lr: float
    log10_wd: float
    seed: int
    kind: str  # "missing" | "failed" | "diverged"
    top1: Optional[float] = None

    def describe(self) -> str:
        where = f"{self.condition} lr={self.lr:.4g} wd={self.wd:.4g} seed {self.seed}"
        if self.kind == "diverged":
            return f"{where}: diverged (top-1 {self.top1:.2f}, counted as measured)"
        if self.kind == "failed":
            return f"{where}: failed (no top-1), left out"
        return f"{where}: no record, left out"


@dataclass(frozen=True)
class ConditionAnalysis:
    """Everything computed for one condition."""

    name: str
    method: str
    ratio: float
    points: tuple  # PointStat, sorted by (log10_lr, log10_wd)
    best: BestPoint
    rois: tuple  # RoiInfo, in the order of the requested xs
    risk: RiskInfo
    edge: EdgeInfo

    def roi(self, x: float) -> RoiInfo:
        for r in self.rois:
            if math.isclose(r.x, x):
                return r
        raise KeyError(f"no {x}-ROI computed for {self.name}; computed: "
                       + ", ".join(r.key for r in self.rois))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(log10_wd, log10_lr, top1)`` arrays of the measured points."""
        return (np.array([p.log10_wd for p in self.points]),
                np.array([p.log10_lr for p in self.points]),
                np.array([p.top1 for p in self.points]))


@dataclass(frozen=True)
class StudyAnalysis:
    """The analysis of a whole study: one :class:`ConditionAnalysis` per condition."""

    source: str
    base: str
    xs: tuple
    k: float
    risk_x: float
    edge_x: float
    grid: GridAxes
    seeds: tuple
    conditions: tuple  # ConditionAnalysis, basemodel first
    missing: tuple = field(default=())  # RunIssue (kind "missing" or "failed")
    diverged: tuple = field(default=())  # RunIssue (kind "diverged")

    def condition(self, name: str) -> ConditionAnalysis:
        for c in self.conditions:
            if c.name == name:
                return c
        raise KeyError(f"no condition {name!r}; available: " + ", ".join(self.names))

    @property
    def names(self) -> tuple:
        return tuple(c.name for c in self.conditions)

    @property
    def base_condition(self) -> ConditionAnalysis:
        return self.condition(self.base)
