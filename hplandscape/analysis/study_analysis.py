"""What :func:`~hplandscape.analysis.analyze_results.analyze` returns: a :class:`StudyAnalysis` of the
whole study with a :class:`ConditionAnalysis` per condition, the runs it could not use
(:class:`RunIssue`) and the accuracy at the basemodel's prior (:class:`PriorInfo`).

Frozen: the plots, the report, the notebooks and the CLI only read them. Each part is the Info type
of the computation that makes it, defined beside it (:mod:`~hplandscape.analysis.regions`:
ROIs, ellipses, risk, edges; :mod:`~hplandscape.analysis.shift`, :mod:`~hplandscape.analysis.noise`,
:mod:`~hplandscape.analysis.replicates`, :mod:`~hplandscape.analysis.replication_info`,
:mod:`~hplandscape.analysis.importance`, :mod:`~hplandscape.analysis.frontier`,
:mod:`~hplandscape.analysis.ratio_curve`, :mod:`~hplandscape.analysis.bootstrap`). All coordinates are
log10 values rounded to the grid's identity rule (4 decimals); the ellipse plane is (log10 wd,
log10 lr), with wd on the horizontal axis as in the thesis figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

from hplandscape.analysis.notation import hp_text
from hplandscape.analysis.regions import TIE_TOLERANCE, BestPoint, EdgeInfo, GridAxes, RiskInfo, RoiInfo
from hplandscape.study.grid import Log10Values

if TYPE_CHECKING:  # annotations only: these modules' computations read a StudyAnalysis
    from hplandscape.analysis.bootstrap import BootstrapInfo
    from hplandscape.analysis.frontier import FrontierInfo
    from hplandscape.analysis.importance import ImportanceInfo
    from hplandscape.analysis.noise import NoiseInfo
    from hplandscape.analysis.replication_info import ReplicationInfo
    from hplandscape.analysis.replicates import ReplicateInfo
    from hplandscape.analysis.shift import ShiftInfo


@dataclass(frozen=True)
class RunIssue(Log10Values):
    """A missing, failed or diverged run, as reported to the user."""

    condition: str
    log10_lr: float
    log10_wd: float
    seed: int
    kind: str  # "missing" | "failed" | "diverged" | "off_grid" (an adaptive design's absent seeds are none)
    top1: Optional[float] = None

    def describe(self) -> str:
        where = f"{self.condition} lr={hp_text(self.lr)} wd={hp_text(self.wd)} seed {self.seed}"
        if self.kind == "off_grid":
            return (f"{where}: the basemodel at the prior, off the grid (trained as the pruning source), "
                    f"top-1 {self.top1:.2f}; reported on its own, not part of the landscape")
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
    # beyond the method: importance over the whole grid and the x-ROI neighbourhood, the cost of
    # one network of this condition (median over its runs; None without those columns) and its
    # seed-averaged top-1 at the basemodel's prior (None where that point was not measured)
    importance: Optional[ImportanceInfo] = None
    importance_roi: Optional[ImportanceInfo] = None
    flops: Optional[float] = None
    params: Optional[float] = None
    prior_top1: Optional[float] = None
    # seeds as replicates (bootstrap intervals) and, for a pruned condition, the test of whether
    # its optimum moved away from the basemodel's (None for the basemodel)
    replicates: Optional["ReplicateInfo"] = None
    shift: Optional["ShiftInfo"] = None
    # the seed noise and which ROI thresholds it resolves (None for a table analysed without seeds)
    noise: Optional["NoiseInfo"] = None

    def roi(self, x: float) -> RoiInfo:
        for r in self.rois:
            if math.isclose(r.x, x):
                return r
        raise KeyError(f"no {x}-ROI computed for {self.name}; computed: "
                       + ", ".join(r.key for r in self.rois))

    @property
    def best_ties(self) -> tuple:
        """Every point as good as :attr:`best` (equal seed means, up to float noise), in (lr, wd)
        order; ``best`` is the first of them. One entry when the best point is unique."""
        return tuple(p for p in self.points if p.top1 >= self.best.top1 - TIE_TOLERANCE)

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
    off_grid: tuple = field(default=())  # RunIssue (kind "off_grid"): runs outside the grid, e.g. the prior
    prior: Optional[PriorInfo] = None
    frontier: Optional[FrontierInfo] = None
    ratio_curves: tuple = field(default=())  # RatioCurveInfo, by method then kind ("best", "prior")
    bootstrap: Optional["BootstrapInfo"] = None
    # the accuracy analysed ("top1" or "top5"): every ``top1`` field holds it
    metric: str = "top1"
    # seeds per grid point of each condition against the full design (an adaptive design's are unequal)
    replication: Optional["ReplicationInfo"] = None

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


@dataclass(frozen=True)
class PriorInfo(Log10Values):
    """The basemodel's prior (lr, wd): where an untuned practitioner starts.

    ``source`` says where it came from: ``"study.yaml"`` (the study's own config), ``"argument"``
    (given to :func:`~hplandscape.analysis.analyze`) or ``"grid centre"`` (the middle value of each
    grid axis: the prior for a grid made by centring on it and not extended since).
    """

    log10_lr: float
    log10_wd: float
    source: str
