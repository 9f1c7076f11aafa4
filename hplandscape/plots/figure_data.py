"""The data layer shared by both renderers: what to draw, computed once from a StudyAnalysis.

numpy/scipy only. The Plotly and matplotlib back ends turn these Info objects into figures and
make no decision of their own about ranges, interpolation or which ellipse is which colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.interpolate import griddata

from hplandscape.analysis.beyond_tables import describe_curve
from hplandscape.analysis.frontier import frontier_info
from hplandscape.analysis.notation import hp_log10_text, metric_label, nice_step, nice_ticks, tick_text
from hplandscape.analysis.regions import MIN_ELLIPSE_POINTS
from hplandscape.analysis.study_analysis import StudyAnalysis
from hplandscape.choices import COLOUR_SCALES

TOP_FRACTION = 0.15  # thesis Fig. 4.1/4.2: the colour bar covers the top 15 % of observations
# A colour range spans at least this many times the widest ROI threshold below a condition's best,
# so its near-optimal band takes at most half the colours and is never clipped to the lowest one.
BAND_FACTOR = 2.0
# ... and that band spans at least this many contour levels (a shared range over conditions far
# apart gets finer levels), up to MAX_LEVELS in all
BAND_LEVELS = 4
MAX_LEVELS = 60
# COLOUR_SCALES: each condition its own range (default), or one range for all that still reaches
# every condition's near-optimal band
# Thesis §3.3.1: 1.0-ROI ellipses white, 0.5-ROI black; a study with its own thresholds
# (``analysis.roi``) gets white for its largest and black for its smallest, others grey.
ELLIPSE_COLOURS = {0.5: "black", 1.0: "white"}
OTHER_ELLIPSE_COLOUR = "grey"
#: The risk figures' marker for d_mean and its interval over resampled seeds: a resampled range,
#: not a confidence interval (the basemodel's ROI is drawn again with the seeds; method §12).
D_MEAN_RANGE = "d_mean, resampled 95 % range"


def ellipse_colour(x: float, xs) -> str:
    """The colour of the x-ROI's ellipse among the study's thresholds ``xs``.

    >>> ellipse_colour(0.5, (0.5, 1.0)), ellipse_colour(4.0, (2.0, 4.0)), ellipse_colour(3.0, (2.0, 3.0, 4.0))
    ('black', 'white', 'grey')
    """
    xs = sorted(xs)
    if len(xs) > 1 and np.isclose(x, xs[-1]):
        return ELLIPSE_COLOURS[1.0]
    if np.isclose(x, xs[0]):
        return ELLIPSE_COLOURS[0.5]
    return OTHER_ELLIPSE_COLOUR


@dataclass(frozen=True)
class EllipseTrace:
    """One x-ROI ellipse's outline.

    ``truncated`` lists the grid sides its ROI touches (drawn dashed: the grid cuts the region
    off); ``centre`` is its centre (wd, lr) and ``centre_ci`` the 95 % bootstrap bounds
    ``(wd_lo, wd_hi, lr_lo, lr_hi)`` over seeds (None with one seed), drawn as error bars.
    """

    x: float
    label: str
    colour: str
    wd: np.ndarray
    lr: np.ndarray
    truncated: tuple = ()
    centre: Optional[tuple] = None
    centre_ci: Optional[tuple] = None

    @property
    def name(self) -> str:
        """Legend entry: ``"1.0-ROI ellipse"``, or ``"1.0-ROI truncated ellipse"`` at the grid edge."""
        return f"{self.label} {'truncated ' if self.truncated else ''}ellipse"


@dataclass(frozen=True)
class ColourScale:
    """The colours of one panel: range, contour levels and colour-bar ticks on round numbers.

    ``levels`` are the contour boundaries from ``zmin`` to ``zmax`` every ``step``; ``ticks`` /
    ``tick_text`` label the colour bar (``97.5``, never ``98.6667``). ``mode`` is one of
    :data:`COLOUR_SCALES`; ``label`` names the metric (``"top-1 (%)"``).
    """

    zmin: float
    zmax: float
    step: float
    ticks: tuple
    tick_text: tuple
    mode: str
    label: str

    @property
    def levels(self) -> np.ndarray:
        n = int(round((self.zmax - self.zmin) / self.step))
        return np.round(self.zmin + self.step * np.arange(n + 1), 10)


#: How both back ends mark a grid point of a running study that has no record yet.
PENDING_LABEL = "pending (no record yet)"
PENDING_COLOUR = "#888888"


@dataclass(frozen=True)
class PanelInfo:
    """One condition's landscape on the (log10 wd, log10 lr) plane.

    ``best`` is θ* (the first of ties in (lr, wd) order); ``best_ties`` every point that ties
    with it, all drawn as stars. ``notes`` explain on the figure what is not drawn (an ROI
    without an ellipse and why).
    """

    condition: str
    title: str
    wd: np.ndarray  # measured points
    lr: np.ndarray
    top1: np.ndarray
    diverged: np.ndarray  # bool: at least one seed diverged at the point
    mesh_wd: np.ndarray  # 1-D axes of the interpolated surface
    mesh_lr: np.ndarray
    mesh_z: np.ndarray  # (len(mesh_lr), len(mesh_wd)), clipped to the colour range, NaN outside the data
    zmin: float
    zmax: float
    ellipses: tuple  # EllipseTrace, larger x first so smaller regions are drawn on top
    no_ellipse: tuple  # (label, reason) for ROIs without an ellipse
    best: tuple  # (log10_wd, log10_lr, top1)
    wd_ticks: tuple  # ((values...), (labels...))
    lr_ticks: tuple
    wd_range: tuple  # axis limits: the grid plus half a step, so panels line up
    lr_range: tuple
    best_ties: tuple = ()  # ((log10_wd, log10_lr), ...): every point as good as ``best``
    notes: tuple = ()  # short lines drawn on the panel
    colours: Optional[ColourScale] = None
    #: Grid points of a study still running that have no record yet (drawn as pending, never as an
    #: accuracy): ((log10_wd, log10_lr), ...).
    pending: tuple = ()

    @property
    def best_label(self) -> str:
        """Legend entry of the stars: ``"best point"`` or ``"best points (3 tied)"``."""
        return "best point" if len(self.best_ties) <= 1 else f"best points ({len(self.best_ties)} tied)"


def common_best_label(panels) -> str:
    """One legend entry for the stars of several panels: theirs when all agree, else a general one."""
    labels = {p.best_label for p in panels}
    return labels.pop() if len(labels) == 1 else "best point (every tie starred)"


@dataclass(frozen=True)
class LandscapeInfo:
    """Every condition's panel; ``zmin``/``zmax`` span all panels' colour ranges."""

    panels: tuple
    zmin: float
    zmax: float
    scale: str = "condition"
    title: str = ""


@dataclass(frozen=True)
class RiskPlotInfo:
    """Per condition, the values of d and d^R over Θ_R (box plots, thesis Fig. 4.5).

    ``d`` is in accuracy points and ``dR`` in percent of the condition's best (the report's one
    convention for the relative risk). Boxes show the mean as well as the median, since the text
    and Table 4.2 speak of means. ``d_mean_ci`` holds per condition ``(d_mean, lo, hi)``, the
    95 % bootstrap interval of the mean risk over seeds, or None with one seed (drawn as an
    error bar on the box).
    """

    conditions: tuple
    d: tuple
    dR: tuple
    base: str
    d_mean_ci: tuple = ()
    metric: str = "top-1"


def _check_scale(scale: str) -> str:
    if scale not in COLOUR_SCALES:
        raise ValueError(f"colour scale must be one of {', '.join(COLOUR_SCALES)}, got {scale!r}")
    return scale


def colour_range(result: StudyAnalysis, top: float = TOP_FRACTION) -> tuple[float, float]:
    """``(zmin, zmax)`` covering the top ``top`` fraction of all conditions' point values (the
    thesis's shared range, before :func:`shared_range` widens it to every near-optimal band)."""
    values = np.concatenate([c.arrays()[2] for c in result.conditions])
    zmax = float(np.max(values))
    zmin = float(np.quantile(values, 1.0 - top))
    if zmin >= zmax:  # a flat landscape still needs a non-empty range
        zmin = zmax - 1.0
    return zmin, zmax


def condition_range(result: StudyAnalysis, condition: str, top: float = TOP_FRACTION) -> tuple[float, float]:
    """``(zmin, zmax)`` of one condition: the top ``top`` fraction of its own values, reaching at
    least ``BAND_FACTOR`` × the widest ROI threshold below its best (never below its worst point)."""
    values = result.condition(condition).arrays()[2]
    zmax = float(np.max(values))
    band = zmax - BAND_FACTOR * max(result.xs)
    zmin = max(min(float(np.quantile(values, 1.0 - top)), band), float(np.min(values)))
    if zmin >= zmax:
        zmin = zmax - 1.0
    return zmin, zmax


def shared_range(result: StudyAnalysis, top: float = TOP_FRACTION) -> tuple[float, float]:
    """One ``(zmin, zmax)`` for all panels: the thesis's top-``top`` range, widened down to reach
    every condition's own near-optimal band (so a strongly pruned condition is never one flat box)."""
    zmin, zmax = colour_range(result, top)
    lowest = min(condition_range(result, c.name, top)[0] for c in result.conditions)
    return min(zmin, lowest), zmax


def colour_scale(zrange: tuple, mode: str = "condition", label: str = "top-1 (%)", band=None) -> ColourScale:
    """Snap ``zrange`` outwards to round contour steps and pick round colour-bar ticks.

    About 10 contour levels over the range; finer where needed so that a near-optimal ``band``
    (accuracy points) spans at least :data:`BAND_LEVELS` levels, but never more than
    :data:`MAX_LEVELS` in all.
    """
    lo, hi = (float(v) for v in zrange)
    step = nice_step(hi - lo, 10)
    if band is not None and band > 0:
        while step > band / BAND_LEVELS and (hi - lo) / step < MAX_LEVELS / 2.5:
            step = nice_step(step, 2)  # the next round step down (1 → 0.5 → 0.2 → 0.1 …)
    zmin = float(round(np.floor(lo / step + 1e-9) * step, 10)) + 0.0
    zmax = float(round(np.ceil(hi / step - 1e-9) * step, 10)) + 0.0
    if zmax <= zmin:
        zmax = zmin + step
    ticks = nice_ticks(zmin, zmax, 5)
    return ColourScale(zmin, zmax, step, ticks, tick_text(ticks), mode, label)


def real_label(log10_value: float) -> str:
    """Tick label in real units for a log10 coordinate, one convention everywhere:
    -4 → '1.0e-4', -3.8 → '1.6e-4' (:func:`hplandscape.analysis.notation.hp_text`)."""
    return hp_log10_text(log10_value)


def _ticks(axis: tuple, max_ticks: int = 9) -> tuple:
    values = list(axis)
    stride = max(1, int(np.ceil(len(values) / max_ticks)))
    values = values[::stride]
    return tuple(values), tuple(real_label(v) for v in values)


def _zrange(result: StudyAnalysis, condition: str, scale: str) -> tuple:
    return shared_range(result) if scale == "shared" else condition_range(result, condition)


def panel_info(result: StudyAnalysis, condition: str, zrange: Optional[tuple] = None,
               mesh: int = 60, scale: str = "condition", pending=()) -> PanelInfo:
    """The landscape of one condition.

    Parameters
    ----------
    result : StudyAnalysis
    condition : str
    zrange : (float, float), optional
        An explicit colour range (snapped to round steps); by default the one ``scale`` gives.
    mesh : int
        Nodes per axis of the interpolated surface.
    scale : {"condition", "shared"}
        ``"condition"``: the condition's own range (:func:`condition_range`); ``"shared"``: one
        range for every panel (:func:`shared_range`).
    pending : sequence of (log10_wd, log10_lr)
        Grid points of a study still running with no record of this condition yet: drawn as
        pending, and the axes span them too.
    """
    _check_scale(scale)
    c = result.condition(condition)
    pending = tuple((round(float(w), 4), round(float(l), 4)) for w, l in pending)
    wd_axis = tuple(sorted(set(result.grid.log10_wd) | {w for w, _ in pending}))
    lr_axis = tuple(sorted(set(result.grid.log10_lr) | {l for _, l in pending}))
    colours = colour_scale(zrange if zrange is not None else _zrange(result, condition, scale), scale,
                           f"{metric_label(result.metric)} (%)", band=BAND_FACTOR * max(result.xs))
    zmin, zmax = colours.zmin, colours.zmax
    wd, lr, f = c.arrays()
    mesh_wd = np.linspace(min(result.grid.log10_wd), max(result.grid.log10_wd), mesh)
    mesh_lr = np.linspace(min(result.grid.log10_lr), max(result.grid.log10_lr), mesh)
    if len(f) >= 3 and len(np.unique(wd)) > 1 and len(np.unique(lr)) > 1:
        gw, gl = np.meshgrid(mesh_wd, mesh_lr)
        z = griddata(np.column_stack([wd, lr]), f, (gw, gl), method="linear")
        z = np.clip(z, zmin, zmax)  # below the range shows as its lowest colour, as in the thesis
    else:  # a line or a point cannot be triangulated
        z = np.full((mesh, mesh), np.nan)
    ellipses, no_ellipse, notes = [], [], []
    for r in sorted(c.rois, key=lambda r: -r.x):
        label = f"{r.key}-ROI"
        if r.ellipse is None:
            no_ellipse.append((label, r.reason))
            notes.append(f"no {label} ellipse: {r.n} point{'' if r.n == 1 else 's'} in it, "
                         f"{MIN_ELLIPSE_POINTS} needed")
            continue
        ew, el = r.ellipse.outline()
        colour = ellipse_colour(r.x, [q.x for q in c.rois])
        ellipses.append(EllipseTrace(r.x, label, colour, ew, el, truncated=r.touches_edge,
                                     centre=(r.ellipse.centre_log10_wd, r.ellipse.centre_log10_lr),
                                     centre_ci=_centre_ci(c, r.x)))
    div = np.array([p.n_diverged > 0 for p in c.points], dtype=bool)
    ties = tuple((p.log10_wd, p.log10_lr) for p in c.best_ties)
    title = c.name if c.method == "none" else f"{c.name} ({c.method}, {c.ratio:.0%} FLOPs)"
    return PanelInfo(condition=c.name, title=title, wd=wd, lr=lr, top1=f, diverged=div,
                     mesh_wd=mesh_wd, mesh_lr=mesh_lr, mesh_z=z, zmin=zmin, zmax=zmax,
                     ellipses=tuple(ellipses), no_ellipse=tuple(no_ellipse),
                     best=(c.best.log10_wd, c.best.log10_lr, c.best.top1),
                     wd_ticks=_ticks(wd_axis), lr_ticks=_ticks(lr_axis),
                     wd_range=_limits(wd_axis, result.grid.step_wd or _step(wd_axis)),
                     lr_range=_limits(lr_axis, result.grid.step_lr or _step(lr_axis)),
                     best_ties=ties, notes=tuple(notes), colours=colours, pending=pending)


def _centre_ci(c, x: float) -> Optional[tuple]:
    """``(wd_lo, wd_hi, lr_lo, lr_hi)`` of the ellipse centre over seeds, or None."""
    rep = c.replicates
    if rep is None or not rep.replicated:
        return None
    e = rep.ellipse(x)
    if not (e.centre_log10_wd.defined and e.centre_log10_lr.defined):
        return None
    return (e.centre_log10_wd.lo, e.centre_log10_wd.hi, e.centre_log10_lr.lo, e.centre_log10_lr.hi)


def _step(axis: tuple):
    """The smallest spacing of an axis (None for a single value)."""
    gaps = [b - a for a, b in zip(axis, axis[1:]) if b - a > 1e-9]
    return min(gaps) if gaps else None


def _limits(axis: tuple, step) -> tuple:
    pad = (step or 0.2) / 2.0
    return (min(axis) - pad, max(axis) + pad)


def landscape_info(result: StudyAnalysis, mesh: int = 60, scale: str = "condition",
                   pending: Optional[dict] = None) -> LandscapeInfo:
    """All conditions' panels, each with its own colour range (``scale="condition"``) or one
    shared range (``scale="shared"``); ``pending``: {condition: grid points with no record yet}
    of a study still running (:func:`panel_info`)."""
    _check_scale(scale)
    zr = shared_range(result) if scale == "shared" else None
    pending = pending or {}
    panels = tuple(panel_info(result, n, zr, mesh, scale=scale, pending=pending.get(n, ())) for n in result.names)
    label = metric_label(result.metric)
    if scale == "shared":
        p = panels[0]
        title = (f"{label} landscapes; one colour range for all conditions, {p.zmin:g}–{p.zmax:g} % (the top "
                 f"{TOP_FRACTION:.0%} of all observations, widened to every condition's near-optimal band)")
    else:
        title = (f"{label} landscapes; each condition has its own colour range (the top {TOP_FRACTION:.0%} of its "
                 f"observations, at least {BAND_FACTOR * max(result.xs):g} points below its best): compare "
                 "colours within a column, numbers across")
    return LandscapeInfo(panels=panels, zmin=min(p.zmin for p in panels), zmax=max(p.zmax for p in panels),
                         scale=scale, title=title)


def risk_plot_info(result: StudyAnalysis) -> RiskPlotInfo:
    """Box-plot data of d (points) and d^R (percent) per condition, with the mean's interval."""
    cis = []
    for c in result.conditions:
        i = c.replicates.d_mean if c.replicates is not None else None
        cis.append((i.estimate, i.lo, i.hi) if i is not None and i.defined and i.estimate is not None else None)
    return RiskPlotInfo(conditions=result.names, d=tuple(c.risk.d for c in result.conditions),
                        dR=tuple(tuple(100.0 * v for v in c.risk.dR) for c in result.conditions),
                        base=result.base, d_mean_ci=tuple(cis), metric=metric_label(result.metric))


# ---------------------------------------------------------------- beyond the method (issue 16)

BEST_COLOUR, PRIOR_COLOUR = "#1f3b73", "#d95f02"  # re-tuned: dark blue; at the prior: orange


@dataclass(frozen=True)
class FrontSeries:
    """One kind of point on the accuracy–FLOPs plane and its Pareto front as a staircase."""

    kind: str  # "best" | "prior"
    label: str
    colour: str
    names: tuple
    flops: np.ndarray
    top1: np.ndarray
    front_flops: np.ndarray  # the front's points sorted by FLOPs (draw as a post-step line)
    front_top1: np.ndarray
    hypervolume: Optional[float]


@dataclass(frozen=True)
class FrontierPlotInfo:
    series: tuple  # FrontSeries: best, then prior
    title: str
    note: Optional[str]  # why nothing is drawn (no FLOPs), else None


@dataclass(frozen=True)
class RatioSeries:
    kind: str
    label: str
    colour: str
    names: tuple
    r: np.ndarray
    top1: np.ndarray
    curve_r: np.ndarray  # the fitted curve on a dense r grid (empty without a fit)
    curve_top1: np.ndarray
    r_drop: Optional[float]
    text: str  # the fit in words, for a legend or hover


@dataclass(frozen=True)
class RatioPanelInfo:
    method: str
    series: tuple  # RatioSeries: best, then prior


@dataclass(frozen=True)
class RatioPlotInfo:
    panels: tuple  # one per method with a fitted curve
    title: str


def frontier_plot_info(result: StudyAnalysis) -> FrontierPlotInfo:
    """Both kinds of (FLOPs, top-1) points with their Pareto fronts and hypervolumes."""
    f = result.frontier if result.frontier is not None else frontier_info(result)
    series = []
    for kind, label, colour, attr, front, hv in (
            ("best", "re-tuned (best top-1)", BEST_COLOUR, "best_top1", "on_best_front", f.hypervolume_best),
            ("prior", "at the basemodel's prior", PRIOR_COLOUR, "prior_top1", "on_prior_front", f.hypervolume_prior)):
        pts = [p for p in f.points if p.flops is not None and getattr(p, attr) is not None]
        on = sorted((p for p in pts if getattr(p, front)), key=lambda p: p.flops)
        series.append(FrontSeries(kind, label + ("" if hv is None else f", hypervolume {hv:.3f}"), colour,
                                  tuple(p.condition for p in pts), np.array([p.flops for p in pts], float),
                                  np.array([getattr(p, attr) for p in pts], float),
                                  np.array([p.flops for p in on], float), np.array([getattr(p, attr) for p in on], float),
                                  hv))
    gain = f.retuning_gain
    title = "accuracy vs FLOPs" + (f": re-tuning buys {gain:.3f} of hypervolume" if gain is not None else "")
    return FrontierPlotInfo(tuple(series), title, f.reason)


def ratio_plot_info(result: StudyAnalysis, n: int = 200) -> RatioPlotInfo:
    """One panel per method with a fitted curve: points, curves and the 1-point drop of each kind."""
    panels = {}
    for c in result.ratio_curves:
        colour = BEST_COLOUR if c.kind == "best" else PRIOR_COLOUR
        label = "re-tuned (best top-1)" if c.kind == "best" else "at the basemodel's prior"
        if c.reason:
            curve_r, curve_y = np.array([]), np.array([])
        else:
            # a little past the data (or the drop): the exponential runs away further out
            curve_r = np.linspace(0.0, min(1.0, max(max(c.r), c.r_drop or 0.0) + 0.05), n)
            curve_y = c.value(curve_r)
        panels.setdefault(c.method, []).append(RatioSeries(
            c.kind, label, colour, c.conditions, np.array(c.r, float), np.array(c.top1, float),
            curve_r, curve_y, c.r_drop, describe_curve(c)))
    return RatioPlotInfo(tuple(RatioPanelInfo(m, tuple(s)) for m, s in panels.items()),
                         "top-1 over the fraction of FLOPs pruned; fit acc(r) = acc_p − a·exp(b(r − 1))")


# -- pruned widths ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WidthInfo:
    """Per pruned condition, the fraction of each prunable layer's channels it keeps.

    ``fractions[i][j]`` belongs to ``conditions[i]`` and ``layers[j]`` (module order, shared by
    every condition of a study). ``caps[i]`` is the condition's ``1 - max_layer_prune`` (the
    fraction no layer goes below, up to rounding to whole channels), or None where no cap is
    recorded (uniform pruning, or a spec made before caps existed).
    """

    conditions: tuple
    labels: tuple  # legend text per condition
    layers: tuple
    fractions: tuple
    min_fraction: tuple
    caps: tuple


def width_info(specs) -> WidthInfo:
    """The kept fraction of every prunable layer per pruned condition.

    Parameters
    ----------
    specs : mapping of str to ArchSpec
        Condition name → its pruned architecture (e.g. read from a study's ``specs/``), in the
        order the conditions should be drawn.

    Returns
    -------
    WidthInfo

    Raises
    ------
    ValueError
        No specs, or specs of architectures with different prunable layers.
    """
    if not specs:
        raise ValueError("width_info needs at least one pruned architecture")
    names = tuple(specs)
    layers = tuple(specs[names[0]].original_widths)
    for n in names[1:]:
        if tuple(specs[n].original_widths) != layers:
            raise ValueError(f"condition {n!r} has other prunable layers than {names[0]!r} "
                             f"({specs[n].model} vs {specs[names[0]].model})")
    labels, fractions, caps = [], [], []
    for n in names:
        s = specs[n]
        words = [s.method, f"{s.target_ratio:.0%} FLOPs"]
        if s.normalizer is not None:
            words.append(f"normalizer {s.normalizer}")
        labels.append(f"{n} ({', '.join(words)})")
        fractions.append(tuple(s.kept_fractions[k] for k in layers))
        caps.append(None if s.max_layer_prune is None else 1.0 - s.max_layer_prune)
    return WidthInfo(conditions=names, labels=tuple(labels), layers=layers, fractions=tuple(fractions),
                     min_fraction=tuple(min(f) for f in fractions), caps=tuple(caps))
