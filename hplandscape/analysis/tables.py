"""Turning a :class:`StudyAnalysis` into JSON, tables (thesis Tables 4.1/4.2) and text."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from hplandscape.analysis.beyond_tables import format_beyond
from hplandscape.analysis.notation import hp_log10_text, hp_text, metric_label
from hplandscape.analysis.regions import confidence_level, roi_key
from hplandscape.analysis.shift import FAMILY_CORRECTION
from hplandscape.analysis.study_analysis import StudyAnalysis
from hplandscape.analysis.verdict import (describe_excess, describe_noise, describe_region, describe_shift, seeds_line,
                                          truncated_lines)
from hplandscape.atomic import write_text as write_text_atomic


def _num(v):
    """JSON has no NaN: undefined statistics become null."""
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def to_json(result: StudyAnalysis) -> dict:
    """The ``analyze --json`` document, exactly::

        {"conditions": {NAME: {"best": {"lr", "wd", "top1", "top1_ci", "p_best"},
                               "roi": {"0.5": {"n", "ellipse", "ellipse_ci", "touches_edge"},
                                       "1.0": {...}},
                               "risk": {"d_mean", "d_std", "dR_mean", "dR_std", "n",
                                        "d_mean_ci", "d_std_ci", "excess_over_base"},
                               "importance": {"lr", "wd", "interaction"},
                               "importance_roi": {"x", "log10_lr", "log10_wd",
                                                  "lr", "wd", "interaction"},
                               "noise": {"seed_noise_sd", "seed_noise_sd_ci", "noise_df",
                                         "noise_points", "noise_within", "n_seeds",
                                         "noise_resolution", "roi_resolved", "seeds_needed",
                                         "eval_size", "binomial_se"},
                               "shift": {"log10_lr": {"estimate", "ci"}, "log10_wd": {...},
                                         "p_value", "p_value_single", "correction", "n_seeds",
                                         "x", "verdict", "statistic", "studentized", "censored",
                                         "base_optimum", "optimum", "region_centre"}}},
         "prior": {"lr", "wd", "source"},
         "frontier": {"hypervolume_best", "hypervolume_prior",
                      "points": [{"condition", "flops", "best_top1", "prior_top1"}]},
         "ratio_curves": {METHOD: {"best": CURVE, "prior": CURVE}},
         "bootstrap": {"n_boot", "seed", "level", "shift_x", "randomness": {NAME: design}},
         "replication": {"design", "used", "full", "saved", "saved_fraction", "rounds", "n_seeds",
                         "conditions": {NAME: {"design", "used", "full", "rounds",
                                               "seeds_per_point": {"log10_lr", "log10_wd", "counts"}}}},
         "xs": [x, ...],
         "metric": "top1" | "top5"}

    ``metric`` names the accuracy analysed: every ``top1`` field holds it.

    ``ellipse`` is null or ``{"length", "width", "centre_log10_wd", "centre_log10_lr",
    "angle_deg", "confidence"}``; risk statistics are null when no Θ_R point was measured.
    ``importance`` holds the fractions of the variance of the seed-averaged top-1 over the
    condition's full grid (they sum to 1), null where undefined (a grid cell never measured, a
    flat landscape); ``importance_roi`` the same over the x-ROI neighbourhood, whose lr and wd
    ranges are ``[low, high]`` log10 values (fractions null where undefined). ``prior`` is the
    basemodel's prior used for ``prior_top1``; ``source`` is "study.yaml", "argument" or "grid
    centre". Hypervolumes are null without FLOPs. ``ratio_curves`` has a method only with ≥ 3
    pruning ratios; CURVE = ``{"acc_p", "a", "b", "rmse", "r_drop", "ratio_at_drop", "drop",
    "reason", "points": [{"condition", "r", "top1"}]}`` for acc(r) = acc_p − a·e^{b(r−1)}
    with r the fraction of FLOPs pruned; ``r_drop`` is where the curve is ``drop`` (1) point
    below acc_p, ``ratio_at_drop`` = 1 − r_drop the FLOPs kept there (null if outside [0, 1]).

    Seeds as replicates (docs/method.md): every ``*_ci`` is ``[lo, hi]`` (95 %) or null with one
    seed. ``p_best`` lists ``{"lr", "wd", "p"}`` for the points that were the best in some
    bootstrap resample, most often first (null with one seed). ``ellipse_ci`` is null with one
    seed, else ``{"centre_log10_wd", "centre_log10_lr", "length", "width"}`` as ``[lo, hi]``
    (null where no resample had an ellipse) and ``"fitted"``, the fraction of resamples whose ROI
    held enough points for one. ``touches_edge`` lists the grid sides the ROI touches ("lr_low",
    "lr_high", "wd_low", "wd_high"): its ellipse is truncated by the grid. ``excess_over_base``
    is ``{"estimate", "ci"}``, the condition's d_mean minus the basemodel's. ``top1_ci`` is the
    interval of the cross-fitted best (``top1_crossfit``), clipped to [0, 100]; ``d_mean_ci`` and
    ``d_std_ci`` are the resampling spread of the risk over a Θ_R chosen from the same data
    (docs/method.md §12: not a confidence interval of a fixed quantity), clipped at 0.

    ``noise`` is the seed noise (null fields with one seed): ``seed_noise_sd`` the pooled
    within-point standard deviation of top-1 over the points within ``noise_within`` of the best,
    ``noise_resolution`` = 2·sd/√seeds the smallest ROI threshold it resolves, ``roi_resolved``
    per ROI whether it is at least that, ``seeds_needed`` the seeds that would resolve it.

    ``replication`` says how many seeds each grid point got: ``design`` "full" (every seed at
    every point) or "adaptive" (later rounds add seeds only where an ROI or the best point is
    still open: unequal seeds per point by design); ``used`` the runs with a record on the grid,
    ``full`` the full design's (grid points × the study's ``n_seeds`` distinct seeds), ``saved`` =
    full − used and ``saved_fraction`` = saved / full; ``rounds`` the last round that asked for a
    run. ``counts[i][j]`` are a condition's runs at ``log10_lr[i]``, ``log10_wd[j]``.

    ``shift`` (absent for the basemodel) is the move of the condition's optimum (the peak of a
    local surface fit, ``statistic: "optimum"``) away from the basemodel's, with 95 % intervals
    simultaneous over both axes and all pruned conditions; ``p_value`` is family-wise adjusted
    (``correction``), ``p_value_single`` this condition alone; ``verdict`` is "moved" when
    ``p_value`` ≤ 0.05, "no_evidence" otherwise, "single_seed" (null intervals and p-values) with
    one seed. ``base_optimum``/``optimum`` locate each optimum with its interval; ``censored``
    says one lies at the grid's edge. ``region_centre`` is the second question: the shift of the
    margin-weighted x-ROI centre, tested for this condition alone.
    """
    out = {}
    for c in result.conditions:
        rep = c.replicates
        out[c.name] = {
            "best": {"lr": c.best.lr, "wd": c.best.wd, "top1": c.best.top1,
                     "top1_ci": _ci(rep and rep.best_top1),
                     "top1_crossfit": _num(rep and rep.best_top1_crossfit),
                     "p_best": None if rep is None or not rep.replicated else
                     [{"lr": p.lr, "wd": p.wd, "p": p.p} for p in rep.p_best]},
            "roi": {r.key: {"n": r.n, "ellipse": None if r.ellipse is None
                            else {k: _num(v) for k, v in r.ellipse.to_json().items()},
                            "ellipse_ci": _ellipse_ci(rep, r.x), "touches_edge": list(r.touches_edge)}
                    for r in c.rois},
            "risk": {"d_mean": _num(c.risk.d_mean), "d_std": _num(c.risk.d_std),
                     "dR_mean": _num(c.risk.dR_mean), "dR_std": _num(c.risk.dR_std), "n": c.risk.n,
                     "d_mean_ci": _ci(rep and rep.d_mean), "d_std_ci": _ci(rep and rep.d_std),
                     "excess_over_base": (rep.excess_over_base.to_json() if rep is not None else
                                          {"estimate": _num(c.risk.d_mean - result.base_condition.risk.d_mean),
                                           "ci": None})},
            "importance": None if c.importance is None else c.importance.to_json(),
            "importance_roi": _importance_roi_json(c.importance_roi),
            "noise": None if c.noise is None else c.noise.to_json(),
        }
        if c.shift is not None:
            out[c.name]["shift"] = c.shift.to_json()
    doc = {"conditions": out}
    if result.prior is not None:
        doc["prior"] = {"lr": result.prior.lr, "wd": result.prior.wd, "source": result.prior.source}
    if result.frontier is not None:
        f = result.frontier
        doc["frontier"] = {"hypervolume_best": _num(f.hypervolume_best),
                           "hypervolume_prior": _num(f.hypervolume_prior),
                           "points": [{"condition": p.condition, "flops": _num(p.flops),
                                       "best_top1": _num(p.best_top1), "prior_top1": _num(p.prior_top1)}
                                      for p in f.points]}
    curves = {}
    for c in result.ratio_curves:
        curves.setdefault(c.method, {})[c.kind] = {
            "acc_p": _num(c.acc_p), "a": _num(c.a), "b": _num(c.b), "rmse": _num(c.rmse),
            "r_drop": _num(c.r_drop), "ratio_at_drop": _num(c.ratio_at_drop), "drop": c.drop,
            "reason": c.reason,
            "points": [{"condition": n, "r": _num(r), "top1": _num(v)} for n, r, v in zip(c.conditions, c.r, c.top1)]}
    doc["ratio_curves"] = curves
    if result.bootstrap is not None:
        b = result.bootstrap
        doc["bootstrap"] = {"n_boot": b.n_boot, "seed": b.seed, "level": b.level, "shift_x": b.shift_x,
                            "randomness": dict(b.randomness)}
    if result.replication is not None:
        doc["replication"] = result.replication.to_json()
    doc["metric"] = result.metric
    doc["xs"] = list(result.xs)
    return doc


def _ci(interval) -> list | None:
    """``[lo, hi]`` of an :class:`Interval`, or None (no interval: one seed)."""
    if not interval or not interval.defined:
        return None
    return [_num(interval.lo), _num(interval.hi)]


def _ellipse_ci(rep, x: float) -> dict | None:
    if rep is None or not rep.replicated:
        return None
    return rep.ellipse(x).to_json()


def _importance_roi_json(info) -> dict | None:
    if info is None:
        return None
    return {"x": info.x, "log10_lr": [min(info.log10_lr), max(info.log10_lr)],
            "log10_wd": [min(info.log10_wd), max(info.log10_wd)],
            "lr": _num(info.lr), "wd": _num(info.wd), "interaction": _num(info.interaction)}


def tables(result: StudyAnalysis) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 4.1 (ellipses per ROI) and Table 4.2 (risk), one row per condition.

    Table 4.1 columns: ``best_top1`` (with ``best_top1_lo``/``_hi``, the interval of the
    cross-fitted ``best_top1_crossfit``), the seed noise ``seed_noise_sd`` (``_lo``/``_hi``) and
    ``noise_resolution`` (2·sd/√seeds), and, for each x: ``roi{x}_resolved`` (x ≥ resolution),
    ``roi{x}_n, roi{x}_length, roi{x}_width, roi{x}_centre_log10_wd, roi{x}_centre_log10_lr,
    roi{x}_angle_deg`` (NaN without an ellipse), ``roi{x}_touches_edge`` (the grid sides the ROI
    touches joined by "+", e.g. ``lr_high``; empty when enclosed: otherwise the ellipse is
    truncated by the grid), the 95 % bootstrap bounds ``roi{x}_{length, width, centre_log10_wd,
    centre_log10_lr}_{lo, hi}`` and ``roi{x}_fitted`` (the fraction of resamples with an ellipse).
    Table 4.2 columns: ``n, d_mean, d_std, dR_mean, dR_std, d_max, missing`` (dR as a fraction of
    the best: data; the report and the text show it in percent), then
    ``d_mean_lo, d_mean_hi, d_std_lo, d_std_hi, excess_over_base, excess_lo, excess_hi``.
    Bounds are NaN with one seed.
    """
    rows1, rows2 = [], []
    for c in result.conditions:
        rep = c.replicates
        row = {"condition": c.name, "method": c.method, "ratio": c.ratio, "best_top1": c.best.top1}
        row.update(_bounds("best_top1", rep and rep.best_top1))
        row["best_top1_crossfit"] = _nan(rep and rep.best_top1_crossfit)
        n = c.noise
        row["seed_noise_sd"] = _nan(n and n.sd)
        row["seed_noise_sd_lo"], row["seed_noise_sd_hi"] = (n.sd_ci if n is not None and n.sd_ci
                                                            else (float("nan"), float("nan")))
        row["noise_resolution"] = _nan(n and n.resolution)
        for r in c.rois:
            e = r.ellipse
            row[f"roi{r.key}_n"] = r.n
            for name in ("length", "width", "centre_log10_wd", "centre_log10_lr", "angle_deg"):
                row[f"roi{r.key}_{name}"] = float("nan") if e is None else getattr(e, name)
            row[f"roi{r.key}_touches_edge"] = "+".join(r.touches_edge)
            resolved = None if n is None else n.resolves(r.x)
            row[f"roi{r.key}_resolved"] = "" if resolved is None else bool(resolved)
            ci = rep.ellipse(r.x) if rep is not None else None
            for name in ("length", "width", "centre_log10_wd", "centre_log10_lr"):
                row.update(_bounds(f"roi{r.key}_{name}", ci and getattr(ci, name)))
            row[f"roi{r.key}_fitted"] = float("nan") if ci is None or ci.fitted is None else ci.fitted
        rows1.append(row)
        k = c.risk
        row2 = {"condition": c.name, "method": c.method, "ratio": c.ratio, "n": k.n,
                "d_mean": k.d_mean, "d_std": k.d_std, "dR_mean": k.dR_mean, "dR_std": k.dR_std,
                "d_max": k.d_max, "missing": len(k.missing)}
        row2.update(_bounds("d_mean", rep and rep.d_mean))
        row2.update(_bounds("d_std", rep and rep.d_std))
        excess = rep.excess_over_base if rep is not None else None
        row2["excess_over_base"] = (k.d_mean - result.base_condition.risk.d_mean if excess is None
                                    else _nan(excess.estimate))
        row2.update(_bounds("excess", excess))
        rows2.append(row2)
    return pd.DataFrame(rows1), pd.DataFrame(rows2)


def shift_table(result: StudyAnalysis) -> pd.DataFrame:
    """One row per pruned condition: the shift of its optimum with its simultaneous 95 % bounds,
    the family-wise and single p-values and the verdict ("moved", "no_evidence", "single_seed"),
    where each optimum lies, and the region-centre shift (the second line)."""
    rows = []
    for c in result.conditions:
        s = c.shift
        if s is None:
            continue
        row = {"condition": c.name, "method": c.method, "ratio": c.ratio, "x": s.x, "n_seeds": s.n_seeds}
        for axis in ("log10_lr", "log10_wd"):
            i = getattr(s, axis)
            row[f"shift_{axis}"] = _nan(i.estimate)
            row.update(_bounds(f"shift_{axis}", i))
        row["p_value"] = _nan(s.p_value)
        row["verdict"] = s.verdict
        row["p_value_single"] = _nan(s.p_value_single)
        row["family_size"] = s.family_size
        row["studentized"] = s.studentized
        row["censored"] = s.censored
        for who, o in (("base_optimum", s.base_optimum), ("optimum", s.optimum)):
            for axis in ("log10_lr", "log10_wd"):
                row[f"{who}_{axis}"] = _nan(None if o is None else getattr(o, axis).estimate)
        r = s.region
        for axis in ("log10_lr", "log10_wd"):
            i = None if r is None else getattr(r, axis)
            row[f"region_{axis}"] = _nan(None if i is None else i.estimate)
            row.update(_bounds(f"region_{axis}", i))
        row["region_p_value"] = _nan(None if r is None else r.p_value)
        row["region_verdict"] = "" if r is None else r.verdict
        rows.append(row)
    return pd.DataFrame(rows, columns=SHIFT_COLUMNS)


SHIFT_COLUMNS = ["condition", "method", "ratio", "x", "n_seeds", "shift_log10_lr", "shift_log10_lr_lo",
                 "shift_log10_lr_hi", "shift_log10_wd", "shift_log10_wd_lo", "shift_log10_wd_hi", "p_value",
                 "verdict", "p_value_single", "family_size", "studentized", "censored", "base_optimum_log10_lr",
                 "base_optimum_log10_wd", "optimum_log10_lr", "optimum_log10_wd", "region_log10_lr",
                 "region_log10_lr_lo", "region_log10_lr_hi", "region_log10_wd", "region_log10_wd_lo",
                 "region_log10_wd_hi", "region_p_value", "region_verdict"]


def _nan(v) -> float:
    return float("nan") if v is None else float(v)


def _bounds(prefix: str, interval) -> dict:
    ok = interval is not None and interval.defined
    return {f"{prefix}_lo": interval.lo if ok else float("nan"), f"{prefix}_hi": interval.hi if ok else float("nan")}


def write_tables(result: StudyAnalysis, out_dir) -> list[Path]:
    """Write ``table_4_1.csv``, ``table_4_2.csv`` and ``shift.csv`` into ``out_dir`` (atomically);
    return the paths."""
    out_dir = Path(out_dir)
    t1, t2 = tables(result)
    return [write_text_atomic(out_dir / "table_4_1.csv", t1.to_csv(index=False)),
            write_text_atomic(out_dir / "table_4_2.csv", t2.to_csv(index=False)),
            write_text_atomic(out_dir / "shift.csv", shift_table(result).to_csv(index=False))]


def write_json(result: StudyAnalysis, path) -> Path:
    """Write :func:`to_json` of ``result`` to ``path`` (atomically)."""
    return write_text_atomic(path, json.dumps(to_json(result), indent=2) + "\n")


def edge_proposals(result: StudyAnalysis) -> dict:
    """The grid extension that would enclose every condition's edge-ROI (1.0-ROI by default).

    Returns
    -------
    dict
        ``{"extra_log10_lr": [...], "extra_log10_wd": [...], "sides": {condition: [side, ...]}}``
        where the lists are sorted new log10 axis values (same step as the grid) and ``sides``
        lists, for each touching condition, "lr_low", "lr_high", "wd_low" and/or "wd_high".
        Empty lists mean the grid already encloses the region.
    """
    lr, wd, sides = set(), set(), {}
    for c in result.conditions:
        if c.edge.touches:
            sides[c.name] = list(c.edge.sides)
            lr.update(c.edge.new_log10_lr)
            wd.update(c.edge.new_log10_wd)
    return {"extra_log10_lr": sorted(lr), "extra_log10_wd": sorted(wd), "sides": sides}


def _f(v, fmt="{:.3f}") -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def _label(c) -> str:
    return c.name if c.method == "none" else f"{c.name} ({c.method}, keeps {c.ratio:.0%} FLOPs)"


def format_tables(result: StudyAnalysis) -> str:
    """The text ``analyze`` prints: Table 4.1, Table 4.2, the shift of each optimum, importance,
    frontier, ratio curves, then warnings (edges, truncated ellipses, missing, diverged).

    With two or more seeds every number comes with its 95 % bootstrap interval; with one seed the
    text says that one seed cannot separate differences of this size from seed noise.
    """
    width = max(len(_label(c)) for c in result.conditions) + 2
    lines = [f"Study: {result.source}   basemodel: {result.base}   k = {result.k:g} "
             f"({confidence_level(result.k):.2%} ellipses)"
             + ("" if result.metric == "top1" else f"   accuracy: {metric_label(result.metric)} (every top-1 below)"),
             seeds_line(result),
             "", "Table 4.1  confidence ellipses in (log10 wd, log10 lr); centre = (wd, lr); "
                 "† ROI touches the grid edge: ellipse truncated"]
    head = "".ljust(width) + "".join(f"| {r.key + '-ROI':<8}{'n':>4}{'length':>8}{'width':>7}{'centre':>16}{'angle':>8}  "
                                     for r in result.conditions[0].rois)
    lines += [head, "-" * len(head)]
    for c in result.conditions:
        cells = []
        for r in c.rois:
            e = r.ellipse
            mark = "†" if r.truncated and e is not None else " "
            if e is None:
                cells.append(f"| {'':<8}{r.n:>4}{'—':>8}{'—':>7}{'(too few)':>16}{'—':>8}  ")
            else:
                centre = f"({e.centre_log10_wd:.2f}, {e.centre_log10_lr:.2f})"
                cells.append(f"| {'':<8}{r.n:>4}{e.length:>8.2f}{e.width:>7.2f}{centre:>16}{e.angle_deg:>7.1f}°{mark} ")
        lines.append(_label(c).ljust(width) + "".join(cells))
    lines += _noise_lines(result)
    lines += _interval_lines(result)
    lines += ["", f"Table 4.2  performance risk over the basemodel's {result.risk_x:g}-ROI "
                  f"(accuracy points; relative dR in % of the best; excess = d_mean − basemodel's; d_mean's "
                  f"range is its spread when the seeds are redrawn, Θ_R with them, not a confidence interval)"]
    head = "".ljust(width) + (f"{'best':>8}{'n':>4}{'d_mean':>9}{'resampled 95 %':>16}{'d_std':>8}{'dR_mean%':>9}"
                              f"{'dR_std%':>8}{'worst':>8}{'excess':>9}{'95 % CI':>16}")
    lines += [head, "-" * len(head)]
    for c in result.conditions:
        k, rep = c.risk, c.replicates
        excess = rep.excess_over_base if rep is not None else None
        excess_est = k.d_mean - result.base_condition.risk.d_mean if excess is None else excess.estimate
        lines.append(_label(c).ljust(width) + f"{c.best.top1:>8.2f}{k.n:>4}{_f(k.d_mean):>9}"
                     f"{_range(rep and rep.d_mean):>16}{_f(k.d_std):>8}"
                     f"{_f(100 * k.dR_mean, '{:.2f}'):>9}{_f(100 * k.dR_std, '{:.2f}'):>8}{_f(k.d_max):>8}"
                     f"{_f(excess_est, '{:+.3f}'):>9}{_range(excess):>16}")
    pruned = [c for c in result.conditions if c.shift is not None]
    if pruned:
        x = pruned[0].shift.x
        fam = pruned[0].shift.family_size
        lines += ["", "Did the optimum move?  shift of the optimum (the peak of a local surface fit) from the "
                      "basemodel's, log10 decades; 95 % intervals simultaneous over both axes"
                      + (f" and the {fam} pruned conditions (family-wise: {FAMILY_CORRECTION})" if fam > 1 else "")
                      + f"; then the centre of the {x:g}-ROI and the risk against the basemodel's own"]
        base = result.base_condition
        for c in pruned:
            lines.append(f"  {c.name}: {describe_shift(c.shift)}.")
            if c.shift.region is not None:
                lines.append(f"  {' ' * len(c.name)}  {describe_region(c.shift)}")
            if c.risk.n:
                lines.append(f"  {' ' * len(c.name)}  {describe_excess(c, base)}")
    lines += ["", format_beyond(result)] + warning_lines(result)
    return "\n".join(lines).rstrip() + "\n"


def _range(interval, fmt: str = "{:.3f}") -> str:
    if interval is None or not interval.defined:
        return "—"
    return f"[{fmt.format(interval.lo)}, {fmt.format(interval.hi)}]"


def _noise_lines(result: StudyAnalysis) -> list[str]:
    """Per condition: its seed noise and which ROI thresholds that resolves."""
    noisy = [c for c in result.conditions if c.noise is not None]
    if not noisy:
        return []
    return ["", "Seed noise (pooled within-point standard deviation of top-1 near the optimum)"] + [
        f"  {c.name}: {describe_noise(c, result.xs)}" for c in noisy]


def _interval_lines(result: StudyAnalysis) -> list[str]:
    """Per condition: best top-1 and how sure its point is the best; each ellipse's intervals."""
    reps = [(c, c.replicates) for c in result.conditions if c.replicates is not None and c.replicates.replicated]
    if not reps:
        return []
    lines = ["", "Intervals (95 %, bootstrap over seeds): best top-1, P(best) of the most likely best point; "
                 "per ROI centre (wd, lr), length, width, and the share of resamples with an ellipse"]
    for c, rep in reps:
        top = rep.p_best[0] if rep.p_best else None
        where = "" if top is None else f"; P(best) {top.p:.2f} at lr {hp_text(top.lr)}, wd {hp_text(top.wd)}"
        lines.append(f"  {c.name}: best top-1 {c.best.top1:.2f}, cross-fitted {_f(rep.best_top1_crossfit, '{:.2f}')} "
                     f"{_range(rep.best_top1, '{:.2f}')}{where}")
        for e in rep.ellipses:
            if e.length.estimate is None:
                lines.append(f"    {roi_key(e.x)}-ROI: too few points for an ellipse (enough in "
                             f"{e.fitted:.0%} of resamples)")
                continue
            lines.append(f"    {roi_key(e.x)}-ROI: centre ({_range(e.centre_log10_wd, '{:.2f}')}, "
                         f"{_range(e.centre_log10_lr, '{:.2f}')}), length {_range(e.length, '{:.2f}')}, "
                         f"width {_range(e.width, '{:.2f}')}, ellipse in {e.fitted:.0%} of resamples")
    return lines


def warning_lines(result: StudyAnalysis) -> list[str]:
    """Plain-text warnings: grid edges (with the proposed extension), missing and diverged runs."""
    out = []
    for c in result.conditions:
        e = c.edge
        if e.touches:
            new = []
            if e.new_log10_lr:
                new.append("log10 lr " + ", ".join(f"{v:+.2f}" for v in e.new_log10_lr))
            if e.new_log10_wd:
                new.append("log10 wd " + ", ".join(f"{v:+.2f}" for v in e.new_log10_wd))
            out.append(f"grid edge: the {roi_key(e.x)}-ROI of {c.name} touches {', '.join(e.sides)}; "
                       f"extend with {'; '.join(new) or 'no proposal'}" + (f" ({e.note})" if e.note else ""))
        for p in c.risk.missing:
            out.append(f"risk: {c.name} has no result at lr={hp_log10_text(p[1])} wd={hp_log10_text(p[0])} of Θ_R; "
                       f"its risk uses n={c.risk.n} points")
    out += truncated_lines(result)
    prop = edge_proposals(result)
    if prop["sides"]:
        out.append("run `hplandscape sweep CONFIG --extend` to add these rows/columns and run only the new points")
    if result.missing:
        out.append(f"{len(result.missing)} run(s) missing or failed (not imputed):")
        out += ["  " + m.describe() for m in result.missing[:20]]
        if len(result.missing) > 20:
            out.append(f"  … and {len(result.missing) - 20} more")
    out += [m.describe() for m in result.off_grid]
    if result.diverged:
        out.append(f"{len(result.diverged)} run(s) diverged (kept with their chance-level top-1):")
        out += ["  " + m.describe() for m in result.diverged[:20]]
        if len(result.diverged) > 20:
            out.append(f"  … and {len(result.diverged) - 20} more")
    return out
