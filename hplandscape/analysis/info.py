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

from hplandscape.study.grid import Log10Values
from hplandscape.analysis.notation import hp_text


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


@dataclass(frozen=True)
class RunIssue(Log10Values):
    """A missing, failed or diverged run, as reported to the user."""

    condition: str
    log10_lr: float
    log10_wd: float
    seed: int
    kind: str  # "missing" | "failed" | "diverged" | "off_grid"
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


# ---------------------------------------------------------------- beyond the method (issue 16)

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


@dataclass(frozen=True)
class ImportanceInfo:
    """Exact two-way functional ANOVA of the seed-averaged top-1 over a full lr × wd (sub)grid.

    On a full factorial grid the decomposition f(i, j) = μ + a_i + b_j + r_ij is exact and its
    variances add up: ``lr``, ``wd`` and ``interaction`` are the fractions of the variance of the
    cell means (population variance, every cell weighted equally) explained by a_i, b_j and r_ij;
    they sum to 1. They are None, with ``reason`` set, where the decomposition is undefined (a
    grid cell without any measured seed, or a flat landscape).

    ``x`` is None for the condition's whole grid; otherwise the fractions cover the x-ROI
    neighbourhood: the smallest sub-grid holding every x-ROI point, grown by ``pad`` grid steps on
    each side (clipped to the grid), so it includes where accuracy falls off the region.
    ``log10_lr`` / ``log10_wd`` are the axis values the decomposition covers; ``variance`` is the
    total variance in accuracy points².
    """

    lr: Optional[float]
    wd: Optional[float]
    interaction: Optional[float]
    log10_lr: tuple
    log10_wd: tuple
    variance: float
    x: Optional[float] = None
    pad: int = 0
    reason: Optional[str] = None

    @property
    def defined(self) -> bool:
        return self.reason is None

    def to_json(self) -> Optional[dict]:
        """``{"lr", "wd", "interaction"}``, or None when undefined."""
        if not self.defined:
            return None
        return {"lr": self.lr, "wd": self.wd, "interaction": self.interaction}


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


@dataclass(frozen=True)
class RatioCurveInfo:
    """acc(r) = acc_p − a·e^{b(r−1)} fitted over r = fraction of FLOPs pruned, for one method.

    ``kind`` is ``"best"`` (each condition's best top-1: re-tuned) or ``"prior"`` (top-1 at the
    basemodel's prior: not re-tuned). ``conditions`` / ``r`` / ``top1`` are the fitted points,
    the basemodel first at r = 0. ``r_drop`` is where the curve falls ``drop`` accuracy points
    below acc_p (None if not within 0 ≤ r ≤ 1); ``rmse`` the fit's root-mean-square residual.
    Without a fit (``reason`` set) the parameters are NaN.
    """

    method: str
    kind: str
    conditions: tuple
    r: tuple
    top1: tuple
    acc_p: float
    a: float
    b: float
    rmse: float
    r_drop: Optional[float]
    drop: float = 1.0
    reason: Optional[str] = None

    def value(self, r) -> np.ndarray:
        """The fitted curve at ``r`` (scalar or array)."""
        return self.acc_p - self.a * np.exp(self.b * (np.asarray(r, dtype=float) - 1.0))

    @property
    def ratio_at_drop(self) -> Optional[float]:
        """The FLOPs fraction *kept* where the curve has dropped ``drop`` points (1 − r_drop)."""
        return None if self.r_drop is None else 1.0 - self.r_drop


# ---------------------------------------------------------------- seeds as replicates (issue 11)

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
        return {"estimate": _finite(self.estimate),
                "ci": None if not self.defined else [_finite(self.lo), _finite(self.hi)]}


def _finite(v) -> Optional[float]:
    return None if v is None or not math.isfinite(v) else float(v)


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
               [_finite(getattr(self, name).lo), _finite(getattr(self, name).hi)]
               for name in ("centre_log10_wd", "centre_log10_lr", "length", "width")}
        out["fitted"] = _finite(self.fitted)
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


SHIFT_VERDICTS = ("moved", "no_evidence", "single_seed")


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
                "censored": bool(self.censored), "censored_share": _finite(self.censored_share)}


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
                "p_value": _finite(self.p_value), "verdict": self.verdict}


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
                "p_value": _finite(self.p_value), "p_value_single": _finite(self.p_value_single),
                "correction": {"method": FAMILY_CORRECTION, "family_size": int(self.family_size)},
                "n_seeds": int(self.n_seeds), "x": float(self.x), "verdict": self.verdict,
                "statistic": "optimum", "studentized": self.studentized, "censored": self.censored,
                "base_optimum": None if self.base_optimum is None else self.base_optimum.to_json(),
                "optimum": None if self.optimum is None else self.optimum.to_json(),
                "region_centre": None if self.region is None else self.region.to_json()}


#: How the shift test corrects for testing every pruned condition of a study.
FAMILY_CORRECTION = "single-step max-T (Westfall-Young) over the pruned conditions"


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
        return {"seed_noise_sd": _finite(self.sd),
                "seed_noise_sd_ci": None if self.sd_ci is None else [_finite(v) for v in self.sd_ci],
                "noise_df": int(self.df), "noise_points": int(self.n_points), "noise_within": float(self.within),
                "n_seeds": int(self.n_seeds), "noise_resolution": _finite(self.resolution),
                "roi_resolved": {roi_key(x): ok for x, ok in self.resolvable},
                "seeds_needed": {roi_key(x): self.seeds_needed(x) for x, _ in self.resolvable},
                "eval_size": self.eval_size, "binomial_se": _finite(self.binomial_se)}


@dataclass(frozen=True)
class BootstrapInfo:
    """How the seed resampling was done: resamples, generator seed, level, design per condition."""

    n_boot: int
    seed: int
    level: float
    randomness: tuple  # ((condition, "independent" | "common"), ...)
    shift_x: float


# --------------------------------------------------------------------------------------------
# Sparsity and gradient flow (analysis/sparsity.py, analysis/gradient_flow.py)


@dataclass(frozen=True)
class EgfMap:
    """One condition's effective gradient flow over the grid: ``values[i][j]`` is the seed-mean of
    the runs' mean EGF_p at ``log10_lr[i]``, ``log10_wd[j]`` (NaN where no run measured it)."""

    condition: str
    p: int
    log10_lr: tuple
    log10_wd: tuple
    values: tuple  # rows (lr) of columns (wd)


@dataclass(frozen=True)
class EgfCorrelation:
    """Kendall's τ between a condition's runs' mean EGF_p and their final top-1 (non-diverged runs);
    ``tau`` and ``p_value`` are NaN with a ``reason`` when fewer than three runs have both."""

    condition: str
    p: int
    tau: float
    p_value: float
    n: int
    reason: Optional[str] = None


@dataclass(frozen=True)
class GradientFlowInfo:
    """The gradient-flow maps and correlations of a study, conditions in the analysis' order;
    empty with a ``reason`` when no run measured gradient flow."""

    maps: tuple = ()  # EgfMap, for p = 1 then p = 2 per condition
    correlations: tuple = ()  # EgfCorrelation, same order
    reason: Optional[str] = None

    def map(self, condition: str, p: int = 2) -> EgfMap:
        return next(m for m in self.maps if m.condition == condition and m.p == p)
