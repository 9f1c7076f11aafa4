"""``analyze``: from a results table to a :class:`StudyAnalysis`."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pandas as pd

from hplandscape.analysis.bootstrap import BOOT_SEED, LEVEL, N_BOOT, BootstrapInfo, SeedMatrix, check_n_boot
from hplandscape.analysis.frontier import frontier_info
from hplandscape.analysis.importance import importance_info
from hplandscape.analysis.noise import seed_noise
from hplandscape.analysis.ratio_curve import ratio_curves
from hplandscape.analysis.regions import BestPoint, PointStat, edge_info, grid_axes, risk_info, roi_info
from hplandscape.analysis.replicates import study_replicates
from hplandscape.analysis.replication_info import ADAPTIVE, condition_design, replication_info
from hplandscape.analysis.results_io import PRIOR_ATTR, ROI_ATTR, SOURCE_ATTR, load_results
from hplandscape.analysis.study_analysis import ConditionAnalysis, PriorInfo, RunIssue, StudyAnalysis
from hplandscape.choices import METRICS
from hplandscape.errors import UserError
from hplandscape.study.grid import GridPoint

# -- what this module's computation gives: its Info types ----------------------------------------


def analyze(table, xs=None, k: float = 2.0, base=None, *, risk_x=None,
            edge_x=None, prior=None, importance_x=None, shift_x=None,
            n_boot: int = N_BOOT, boot_seed: int = BOOT_SEED, metric: str = "top1") -> StudyAnalysis:
    """Analyse a study: best point, x-ROIs with ellipses, performance risk, grid edges, and beyond.

    Seeds are replicates: with two or more seeds, 95 % bootstrap intervals come with the best
    point's top-1 (and how often each point is the best), every x-ROI ellipse's centre, length
    and width, d_mean and d_std and their excess over the basemodel's; and every pruned
    condition gets a test of whether its optimum moved (``ConditionAnalysis.shift``). The
    resampling follows the results' ``randomness`` column (``independent``, the default, or
    ``common``) and is seeded, so the analysis is deterministic (docs/method.md, "Seeds as
    replicates"). With one seed the point estimates stand alone.

    An adaptive design (the table's ``replicates`` column) gives a point only the seeds its rounds
    asked for: the statistics take each point's seeds as they come, a seed absent there is no
    missing run (only a recorded run that failed is), and ``StudyAnalysis.replication`` counts
    the seeds per grid point against the full design's.

    Beyond the method: per condition the exact lr/wd importance (whole grid and the
    ``importance_x``-ROI neighbourhood), FLOPs and top-1 at the basemodel's prior; for the study
    the accuracy–FLOPs frontier with hypervolumes and, per method with at least three pruning
    ratios, the accuracy-over-pruning-ratio curves.

    Parameters
    ----------
    table : pandas.DataFrame or path
        A results table (see :func:`load_results`, which is applied here too).
    xs : sequence of float, optional
        ROI thresholds in accuracy points. By default the study's ``analysis.roi`` when the
        table came from a study directory, else the method's 0.5 and 1.0.
    k : float
        Standard-deviation multiplier of the ellipses (2 → 86.47 % confidence).
    base : str, optional
        Name of the basemodel condition; by default the one condition whose method is ``none``.
    risk_x : float, optional
        Θ_R is the basemodel's ``risk_x``-ROI (method §8: 0.5); default the smallest of ``xs``.
    edge_x : float, optional
        The ROI whose contact with the grid boundary triggers an extension proposal (method: 1.0);
        default the largest of ``xs``.
    prior : (float, float), optional
        The basemodel's prior ``(lr, wd)`` in real units. By default the one in the study's
        ``study.yaml`` when the table came from a study directory, else the grid's centre.
    importance_x : float, optional
        The ROI whose neighbourhood gets its own importance; default the largest of ``xs``.
    shift_x : float, optional
        The ROI whose (margin-weighted) centre the region-centre line compares; default
        ``risk_x``. (The shift of the optimum itself needs no threshold.)
    n_boot : int
        Bootstrap resamples per condition (≥ 99; default 1999).
    boot_seed : int
        Seed of the resampling (each condition draws from its own stream, derived from this
        seed and its name).
    metric : {"top1", "top5"}
        The accuracy analysed (method §7). With ``"top5"`` every number of the analysis (best
        point, ROIs, risk, …) is about top-5; fields and columns keep their ``top1`` names and
        :attr:`StudyAnalysis.metric` says which accuracy they hold.

    Returns
    -------
    StudyAnalysis
        Frozen Info objects, basemodel first, other conditions in table order.

    Raises
    ------
    hplandscape.errors.UserError
        For a bad threshold or k, an ambiguous or absent basemodel, a condition without any
        measured value of the metric, or ``metric="top5"`` on a table without top-5 values.

    Examples
    --------
    >>> from hplandscape.analysis.example import synthetic_results
    >>> result = analyze(synthetic_results())
    >>> result.base, result.base_condition.roi(0.5).ellipse is not None
    ('base', True)
    """
    df = load_results(table)
    source = df.attrs.get(SOURCE_ATTR, "<DataFrame>")
    df = _select_metric(df, metric, source)
    # The basemodel at the prior is trained even when the grid leaves the prior out (the pruned
    # conditions need its weights); such a run is reported on its own, never as a grid cell.
    off_grid = tuple(RunIssue(str(r.condition), float(r.log10_lr), float(r.log10_wd), int(r.seed), "off_grid",
                              float(r.top1)) for r in df[~df["on_grid"]].itertuples())
    df = df[df["on_grid"]].reset_index(drop=True)
    xs = _check_xs(xs if xs is not None else df.attrs.get(ROI_ATTR, DEFAULT_XS))
    risk_x = min(xs) if risk_x is None else risk_x
    edge_x = max(xs) if edge_x is None else edge_x
    importance_x = max(xs) if importance_x is None else importance_x
    shift_x = risk_x if shift_x is None else shift_x
    for name, value in (("k", k), ("risk_x", risk_x), ("edge_x", edge_x), ("importance_x", importance_x),
                        ("shift_x", shift_x)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise UserError(f"{name} must be a positive number, got {value!r}")
    n_boot = check_n_boot(n_boot)
    base = _find_base(df, base, source)

    grid = grid_axes(df["log10_lr"], df["log10_wd"])
    prior_point = _prior(prior, df, grid)
    seeds = tuple(int(s) for s in sorted(df["seed"].unique()))
    order = [base] + [c for c in df["condition"].unique() if c != base]
    missing, diverged = _issues(df, order, grid, seeds)

    stats = {name: _point_stats(df[df["condition"] == name]) for name in order}
    for name, pts in stats.items():
        if not pts:
            raise UserError(f"{source}: condition {name!r} has no run with a top-1 value; "
                            f"nothing to analyse (see the failed runs in the table)")
    base_pts = stats[base]
    theta_r = roi_info([p.log10_wd for p in base_pts], [p.log10_lr for p in base_pts],
                       [p.top1 for p in base_pts], risk_x, k).points

    conditions = []
    for name in order:
        pts = stats[name]
        rows = df[df["condition"] == name]
        wd, lr, f = ([p.log10_wd for p in pts], [p.log10_lr for p in pts], [p.top1 for p in pts])
        best = max(pts, key=lambda p: p.top1)  # first of ties in (lr, wd) order: deterministic
        rois = tuple(_with_edges(name, roi_info(wd, lr, f, x, k), grid) for x in xs)
        edge_roi = roi_info(wd, lr, f, edge_x, k)
        values = {(p.log10_wd, p.log10_lr): p.top1 for p in pts}
        conditions.append(ConditionAnalysis(
            name=name, method=str(rows["method"].iloc[0]), ratio=float(rows["ratio"].iloc[0]),
            points=tuple(pts), best=BestPoint(best.log10_lr, best.log10_wd, best.top1), rois=rois,
            risk=risk_info(name, best.top1, values, theta_r), edge=edge_info(name, edge_roi, grid),
            importance=importance_info(lr, wd, f),
            importance_roi=importance_info(lr, wd, f, x=importance_x),
            flops=_size(rows, "flops"), params=_size(rows, "params"),
            prior_top1=values.get((prior_point.log10_wd, prior_point.log10_lr))))
    matrices = {name: _seed_matrix(df[df["condition"] == name], stats[name]) for name in order}
    span = (grid.log10_wd[-1] - grid.log10_wd[0], grid.log10_lr[-1] - grid.log10_lr[0])
    replicates, shifts = study_replicates(matrices, {c.name: c for c in conditions}, base, k, risk_x,
                                          xs, n_boot, boot_seed, LEVEL, span=span, region_x=shift_x)
    conditions = [dataclasses.replace(c, replicates=replicates[c.name], shift=shifts.get(c.name),
                                      noise=seed_noise(matrices[c.name], xs,
                                                       _eval_size(df[df["condition"] == c.name])))
                  for c in conditions]
    boot = BootstrapInfo(n_boot=n_boot, seed=int(boot_seed), level=LEVEL, shift_x=float(shift_x),
                         randomness=tuple((name, m.randomness) for name, m in matrices.items()))
    result = StudyAnalysis(source=source, base=base, xs=xs, k=float(k), risk_x=float(risk_x),
                           edge_x=float(edge_x), grid=grid, seeds=seeds, conditions=tuple(conditions),
                           missing=tuple(missing), diverged=tuple(diverged), prior=prior_point,
                           off_grid=off_grid, bootstrap=boot, metric=metric,
                           replication=replication_info(df, order, grid.log10_lr, grid.log10_wd, seeds))
    base_c = result.base_condition

    def pruned_fraction(c) -> float:
        # the FLOPs actually kept when both are known (the budget is met only approximately)
        if c.flops is not None and base_c.flops:
            return 1.0 - c.flops / base_c.flops
        return 1.0 - c.ratio

    return dataclasses.replace(result, frontier=frontier_info(result),
                               ratio_curves=ratio_curves(result.conditions, base_c, pruned_fraction))


def has_metric(table: pd.DataFrame, metric: str) -> bool:
    """True when ``table`` (a :func:`load_results` table) holds a finite value of ``metric``."""
    return metric in table.columns and bool(np.isfinite(pd.to_numeric(table[metric], errors="coerce")).any())


def _select_metric(df: pd.DataFrame, metric: str, source: str) -> pd.DataFrame:
    """The table with ``metric`` in the ``top1`` column the analysis reads."""
    if metric not in METRICS:
        raise UserError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if metric == "top1":
        return df
    if not has_metric(df, metric):
        raise UserError(f"{source}: no {metric} values to analyse (top-5 is recorded only for datasets with more "
                        f"than 5 classes); use metric top1")
    out = df.copy()
    out["top1"] = pd.to_numeric(out[metric], errors="coerce").astype(float)
    return out


def _with_edges(name: str, roi, grid):
    """The ROI with the grid sides it touches (its ellipse is then truncated by the grid)."""
    return dataclasses.replace(roi, touches_edge=edge_info(name, roi, grid).sides)


def _seed_matrix(rows: pd.DataFrame, points) -> SeedMatrix:
    """The condition's measured runs as points (in ``points`` order) × seeds, with its design."""
    ok = rows[np.isfinite(rows["top1"])]
    seeds = sorted(ok["seed"].unique())
    col = {s: j for j, s in enumerate(seeds)}
    row = {(p.log10_lr, p.log10_wd): i for i, p in enumerate(points)}
    values = np.full((len(points), len(seeds)), np.nan)
    for r in ok.itertuples(index=False):
        values[row[(r.log10_lr, r.log10_wd)], col[r.seed]] = r.top1
    return SeedMatrix(values, [p.log10_wd for p in points], [p.log10_lr for p in points],
                      str(rows["randomness"].iloc[0]) if "randomness" in rows.columns else "independent")


def _prior(prior, df: pd.DataFrame, grid) -> PriorInfo:
    if prior is not None:
        try:
            lr, wd = (float(v) for v in prior)
        except (TypeError, ValueError):
            raise UserError(f"prior must be a pair (lr, wd) of positive numbers, got {prior!r}") from None
        if not (lr > 0 and wd > 0 and math.isfinite(lr) and math.isfinite(wd)):
            raise UserError(f"prior must be a pair (lr, wd) of positive numbers, got {prior!r}")
        p = GridPoint(math.log10(lr), math.log10(wd))  # the grid's identity rule
        return PriorInfo(p.log10_lr, p.log10_wd, "argument")
    if PRIOR_ATTR in df.attrs:
        p = GridPoint(*df.attrs[PRIOR_ATTR])
        return PriorInfo(p.log10_lr, p.log10_wd, "study.yaml")
    # A grid made by centring on the prior has it in the middle (the lower middle of an even axis)
    return PriorInfo(grid.log10_lr[(len(grid.log10_lr) - 1) // 2], grid.log10_wd[(len(grid.log10_wd) - 1) // 2],
                     "grid centre")


#: The method's ROI thresholds (thesis: 0.5 and 1.0 accuracy points), when neither the caller nor
#: the study's ``analysis.roi`` names others.
DEFAULT_XS = (0.5, 1.0)


def _eval_size(rows: pd.DataFrame):
    """Images in the evaluation split of the condition's runs (None where the records predate it)."""
    if "eval_size" not in rows.columns:
        return None
    v = pd.to_numeric(rows["eval_size"], errors="coerce").to_numpy(float)
    v = v[np.isfinite(v) & (v > 0)]
    return int(np.median(v)) if len(v) else None


def _size(rows: pd.DataFrame, column: str):
    """FLOPs or parameters of the condition's network: the median over its runs, None if unknown."""
    if column not in rows.columns:
        return None
    v = pd.to_numeric(rows[column], errors="coerce").to_numpy(float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if len(v) else None


def _check_xs(xs) -> tuple:
    if isinstance(xs, (int, float)):
        xs = (xs,)
    out = []
    for x in xs:
        if not (isinstance(x, (int, float)) and math.isfinite(x) and x > 0):
            raise UserError(f"ROI threshold x must be a positive number of accuracy points, got {x!r}")
        if not any(math.isclose(x, y) for y in out):
            out.append(float(x))
    if not out:
        raise UserError("at least one ROI threshold x is needed (e.g. 0.5 1.0)")
    return tuple(out)


def _find_base(df: pd.DataFrame, base, source: str) -> str:
    names = list(df["condition"].unique())
    if base is not None:
        if base not in names:
            raise UserError(f"{source}: base condition {base!r} is not in the table; conditions: "
                            + ", ".join(names))
        return base
    bases = list(df.loc[df["method"] == "none", "condition"].unique())
    if len(bases) == 1:
        return bases[0]
    if not bases:
        raise UserError(f"{source}: no basemodel (a condition with method 'none'); conditions: "
                        + ", ".join(names) + ". Name one with base=...")
    raise UserError(f"{source}: several conditions have method 'none' ({', '.join(bases)}); "
                    f"name the basemodel with base=...")


def _point_stats(rows: pd.DataFrame) -> list:
    ok = rows[np.isfinite(rows["top1"])]
    out = []
    for (lr, wd), g in ok.groupby(["log10_lr", "log10_wd"], sort=True):
        f = g["top1"].to_numpy(float)
        out.append(PointStat(log10_lr=float(lr), log10_wd=float(wd), top1=float(f.mean()),
                             top1_std=float(f.std()) if len(f) > 1 else 0.0,
                             n_seeds=len(f), n_diverged=int(g["diverged"].sum())))
    return out


def _issues(df, order, grid, seeds):
    """Missing/failed runs against the rectangular grid × seeds, and diverged runs.

    A condition of an adaptive design (its rows' ``replicates``) runs a seed at a point only
    where a round asked for it, so a seed without a row there is no missing run: only the runs
    recorded and failed are reported.
    """
    missing, diverged = [], []
    for name in order:
        rows = df[df["condition"] == name]
        have = {(r.log10_lr, r.log10_wd, r.seed): r for r in rows.itertuples(index=False)}
        adaptive = condition_design(rows) == ADAPTIVE
        for lr, wd, seed in itertools.product(grid.log10_lr, grid.log10_wd, seeds):
            r = have.get((lr, wd, seed))
            if r is None:
                if not adaptive:
                    missing.append(RunIssue(name, lr, wd, seed, "missing"))
            elif not math.isfinite(r.top1):
                missing.append(RunIssue(name, lr, wd, seed, "failed"))
            elif r.diverged:
                diverged.append(RunIssue(name, lr, wd, seed, "diverged", float(r.top1)))
    return missing, diverged
