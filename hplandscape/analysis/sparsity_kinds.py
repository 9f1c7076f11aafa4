"""Structured against unstructured sparsity, retrained against fine-tuned: the study's conditions
side by side with what they keep and whether their optimum moved.

The numbers come from the results table (measured density, FLOPs) and the analysis (the shift
test of each condition, :mod:`hplandscape.analysis.shift`); this module lays them out so that the
question "does the optimum move more under unstructured than under structured sparsity?" is
answered with the same test for every condition and pipeline.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hplandscape.analysis.study_analysis import StudyAnalysis
from hplandscape.pruning.arch_spec import METHODS as STRUCTURED_METHODS
from hplandscape.pruning.mask_spec import SPARSE_METHODS

KINDS = ("dense", "structured", "unstructured")


def kind_of(method: str) -> str:
    """``dense``, ``structured`` or ``unstructured`` for a condition's method.

    Examples
    --------
    >>> kind_of("none"), kind_of("global"), kind_of("set")
    ('dense', 'structured', 'unstructured')
    """
    if method in STRUCTURED_METHODS:
        return "structured"
    if method in SPARSE_METHODS:
        return "unstructured"
    return "dense"


def has_sparsity(table: pd.DataFrame) -> bool:
    """Whether a study has an unstructured or a fine-tuned condition (what this analysis adds to)."""
    sparse = table["method"].isin(SPARSE_METHODS).any()
    tuned = "pipeline" in table.columns and (table["pipeline"].astype(str) == "finetune").any()
    return bool(sparse or tuned)


def _median(rows: pd.DataFrame, column: str) -> float:
    if column not in rows.columns:
        return math.nan
    v = pd.to_numeric(rows[column], errors="coerce").to_numpy(float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if len(v) else math.nan


def sparsity_table(table: pd.DataFrame, result: StudyAnalysis) -> pd.DataFrame:
    """One row per condition (analysis order): kind, method, pipeline, target, measured density,
    FLOPs and parameters kept relative to the basemodel, and the shift of the optimum.

    Columns ``condition, kind, method, pipeline, target, density, flops_kept, params_kept,
    shift_log10_lr, shift_log10_wd, shift_decades, p_value, verdict``. ``target`` is the FLOPs
    fraction of a structured condition and the density of an unstructured one; ``density`` is the
    median over runs of the measured non-zero fraction of the prunable weights; ``shift_decades``
    the length of the shift vector (NaN for the basemodel).
    """
    base_flops = _median(table[table["condition"] == result.base], "flops")
    base_params = _median(table[table["condition"] == result.base], "params")
    rows = []
    for c in result.conditions:
        runs = table[table["condition"] == c.name]
        pipeline = str(runs["pipeline"].iloc[0]) if "pipeline" in runs.columns and len(runs) else "retrain"
        s = c.shift
        lr = s.log10_lr.estimate if s is not None else math.nan
        wd = s.log10_wd.estimate if s is not None else math.nan
        rows.append({"condition": c.name, "kind": kind_of(c.method), "method": c.method,
                     "pipeline": "—" if c.method == "none" else (pipeline if pipeline in ("retrain", "finetune")
                                                                 else "retrain"),
                     "target": c.ratio, "density": _median(runs, "density"),
                     "flops_kept": _median(runs, "flops") / base_flops if base_flops else math.nan,
                     "params_kept": _median(runs, "params") / base_params if base_params else math.nan,
                     "shift_log10_lr": lr, "shift_log10_wd": wd, "shift_decades": math.hypot(lr, wd),
                     "p_value": math.nan if s is None or s.p_value is None else s.p_value,
                     "verdict": "—" if s is None else s.verdict})
    return pd.DataFrame(rows)


def kind_summary(sparsity: pd.DataFrame) -> pd.DataFrame:
    """Per (kind, pipeline) of the pruned conditions: how many, how many moved, the mean and largest
    shift in decades. Columns ``kind, pipeline, conditions, moved, tested, mean_shift, max_shift``;
    ``tested`` counts the conditions with a test (two or more seeds)."""
    pruned = sparsity[sparsity["kind"] != "dense"]
    out = []
    for (kind, pipeline), g in pruned.groupby(["kind", "pipeline"], sort=False):
        tested = g[g["verdict"].isin(["moved", "no_evidence"])]
        out.append({"kind": kind, "pipeline": pipeline, "conditions": len(g),
                    "moved": int((g["verdict"] == "moved").sum()), "tested": len(tested),
                    "mean_shift": float(g["shift_decades"].mean()), "max_shift": float(g["shift_decades"].max())})
    return pd.DataFrame(out, columns=["kind", "pipeline", "conditions", "moved", "tested", "mean_shift", "max_shift"])


def describe_kinds(summary: pd.DataFrame) -> list[str]:
    """One sentence per (kind, pipeline) from :func:`kind_summary`: no threshold, only the counts of
    the shift test's verdicts and the sizes of the shifts."""
    out = []
    for r in summary.itertuples(index=False):
        tested = (f"{r.moved} of {r.tested} tested moved (simultaneous 95 % intervals)" if r.tested
                  else "no shift test (one seed, or no near-optimal region)")
        shift = (f"; the optimum's centre shifted {r.mean_shift:.2f} decades on average (largest {r.max_shift:.2f})"
                 if math.isfinite(r.mean_shift) else "; no optimum's centre to compare")
        out.append(f"{r.kind}, {r.pipeline}: {r.conditions} condition(s), {tested}{shift}.")
    return out
