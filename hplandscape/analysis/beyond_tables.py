"""Tables and text of the analyses beyond the method: importance, frontier, ratio curves.

The numbers come from :mod:`~hplandscape.analysis.importance`,
:mod:`~hplandscape.analysis.frontier` and :mod:`~hplandscape.analysis.ratio_curve` through the
:class:`~hplandscape.analysis.study_analysis.StudyAnalysis`; this module only lays them out for the CLI,
the report and the notebooks.
"""

from __future__ import annotations

import math

import pandas as pd

from hplandscape.analysis.notation import hp_text
from hplandscape.analysis.regions import roi_key
from hplandscape.analysis.study_analysis import StudyAnalysis


def importance_table(result: StudyAnalysis) -> pd.DataFrame:
    """One row per condition: the importance fractions over the whole grid and the ROI neighbourhood.

    Columns ``condition, lr, wd, interaction, roi_x, roi_lr, roi_wd, roi_interaction,
    roi_log10_lr, roi_log10_wd`` (the last two: ``"low…high"`` ranges of the neighbourhood);
    NaN where a decomposition is undefined.
    """
    rows = []
    for c in result.conditions:
        g, n = c.importance, c.importance_roi
        row = {"condition": c.name}
        row.update({k: _nan(None if g is None else getattr(g, k)) for k in ("lr", "wd", "interaction")})
        if n is not None:
            row["roi_x"] = n.x
            row.update({f"roi_{k}": _nan(getattr(n, k)) for k in ("lr", "wd", "interaction")})
            row["roi_log10_lr"] = f"{min(n.log10_lr):g}…{max(n.log10_lr):g}"
            row["roi_log10_wd"] = f"{min(n.log10_wd):g}…{max(n.log10_wd):g}"
        rows.append(row)
    return pd.DataFrame(rows)


def frontier_table(result: StudyAnalysis) -> pd.DataFrame:
    """One row per condition: FLOPs, parameters, best top-1, top-1 at the prior, front membership."""
    f = result.frontier
    return pd.DataFrame([{"condition": p.condition, "flops": _nan(p.flops), "params": _nan(p.params),
                          "best_top1": p.best_top1, "prior_top1": _nan(p.prior_top1),
                          "on_best_front": p.on_best_front, "on_prior_front": p.on_prior_front}
                         for p in (f.points if f is not None else ())])


def ratio_curve_table(result: StudyAnalysis) -> pd.DataFrame:
    """One row per fitted curve: method, kind, acc_p, a, b, rmse, r_drop, ratio_at_drop, points."""
    return pd.DataFrame([{"method": c.method, "kind": c.kind, "acc_p": c.acc_p, "a": c.a, "b": c.b,
                          "rmse": c.rmse, "r_drop": _nan(c.r_drop), "ratio_at_drop": _nan(c.ratio_at_drop),
                          "points": len(c.r)} for c in result.ratio_curves],
                        columns=["method", "kind", "acc_p", "a", "b", "rmse", "r_drop", "ratio_at_drop", "points"])


def _nan(v) -> float:
    return float("nan") if v is None else float(v)


def _f(v, fmt="{:.3f}") -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def describe_curve(c) -> str:
    """One line of plain words about a fitted ratio curve."""
    label = "re-tuned (best top-1)" if c.kind == "best" else "at the basemodel's prior"
    if c.reason:
        return f"{c.method}, {label}: no fit ({c.reason})"
    where = (f"{c.drop:g} point below acc_p at r = {c.r_drop:.3f} (keeping {c.ratio_at_drop:.1%} of the FLOPs)"
             if c.r_drop is not None else f"never {c.drop:g} point below acc_p for 0 ≤ r ≤ 1")
    return (f"{c.method}, {label}: acc_p {c.acc_p:.2f}, a {c.a:.3g}, b {c.b:.3g} "
            f"(rmse {c.rmse:.3f} over {len(c.r)} points); {where}")


def format_beyond(result: StudyAnalysis) -> str:
    """The text block ``analyze`` prints after Tables 4.1/4.2: importance, frontier, ratio curves."""
    lines = ["Importance  fractions of the variance of the seed-averaged top-1 (exact two-way ANOVA)"]
    width = max(len(c.name) for c in result.conditions) + 2
    roi = next((c.importance_roi for c in result.conditions if c.importance_roi is not None), None)
    roi_head = f"{roi_key(roi.x)}-ROI neighbourhood (±{roi.pad} step)" if roi is not None else "ROI neighbourhood"
    head = "".ljust(width) + f"| {'whole grid':<22}| {roi_head}"
    sub = "".ljust(width) + f"| {'lr':>6}{'wd':>7}{'inter':>7}  | {'lr':>6}{'wd':>7}{'inter':>7}  lr range, wd range (log10)"
    lines += [head, sub, "-" * len(sub)]
    for c in result.conditions:
        g, n = c.importance, c.importance_roi
        cells = ("".join(f"{_f(None if g is None else getattr(g, k), '{:.3f}'):>7}" for k in ("lr", "wd", "interaction")))
        ncells = ("".join(f"{_f(None if n is None else getattr(n, k), '{:.3f}'):>7}" for k in ("lr", "wd", "interaction")))
        rng = "" if n is None else (f"  {min(n.log10_lr):g}…{max(n.log10_lr):g}, "
                                    f"{min(n.log10_wd):g}…{max(n.log10_wd):g}")
        lines.append(c.name.ljust(width) + f"|{cells}  |{ncells}{rng}")
    notes = [f"  {c.name}: {i.reason}" for c in result.conditions
             for i in (c.importance, c.importance_roi) if i is not None and i.reason]
    lines += notes
    f = result.frontier
    if f is not None:
        p = result.prior
        lines += ["", f"Frontier  (FLOPs, top-1); prior lr={hp_text(p.lr)} wd={hp_text(p.wd)} ({p.source})"]
        if f.reason:
            lines.append(f"  no hypervolume: {f.reason}")
        else:
            gain = f.retuning_gain
            lines.append(f"  hypervolume re-tuned {_f(f.hypervolume_best, '{:.4f}')}, at the prior "
                         f"{_f(f.hypervolume_prior, '{:.4f}')}"
                         + (f"; re-tuning buys {gain:.4f}" if gain is not None else "")
                         + f" (normalised log FLOPs × error, reference {f.reference})")
        lines.append("".ljust(width) + f"{'FLOPs':>12}{'best':>8}{'prior':>8}  on front")
        for q in f.points:
            fronts = [k for k, on in (("re-tuned", q.on_best_front), ("prior", q.on_prior_front)) if on]
            lines.append(q.condition.ljust(width) + f"{_f(q.flops, '{:.3e}'):>12}{q.best_top1:>8.2f}"
                         f"{_f(q.prior_top1, '{:.2f}'):>8}  {', '.join(fronts) or '—'}")
    if result.ratio_curves:
        lines += ["", "Ratio curves  acc(r) = acc_p − a·e^{b(r−1)}, r = fraction of FLOPs pruned"]
        lines += ["  " + describe_curve(c) for c in result.ratio_curves]
    return "\n".join(lines) + "\n"
