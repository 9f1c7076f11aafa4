"""Effective gradient flow over the grid, and whether it predicts the final accuracy.

Each run that measured gradient flow (``train.gradient_flow``) has in the results table the mean
of its EGF_1 and EGF_2 measurements over training (``egf1_mean``, ``egf2_mean``;
:mod:`hplandscape.training.gradient_flow` defines them). Per condition this module maps them over the
(lr, wd) grid, seed-averaged, and measures with Kendall's τ how well they rank the runs' final
top-1: τ near 1 (or −1) means more (or less) gradient flow goes with higher accuracy at every
setting of the grid, τ near 0 that it says little about it.

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"condition": ["a"] * 4, "log10_lr": [-1.0, -1.0, -2.0, -2.0],
...                   "log10_wd": [-4.0, -3.0, -4.0, -3.0], "top1": [90.0, 80.0, 70.0, 60.0],
...                   "diverged": [False] * 4, "egf1_mean": [4.0, 3.0, 2.0, 1.0], "egf2_mean": [1.0, 2.0, 3.0, 4.0]})
>>> info = gradient_flow_info(t)
>>> [(c.p, c.tau) for c in info.correlations]
[(1, 1.0), (2, -1.0)]
>>> info.map("a", 2).values
((3.0, 4.0), (1.0, 2.0))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from scipy.stats import kendalltau


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


COLUMNS = {1: "egf1_mean", 2: "egf2_mean"}
MIN_RUNS = 3  # a rank correlation of fewer runs says nothing


def has_gradient_flow(table: pd.DataFrame) -> bool:
    """Whether any run of ``table`` measured gradient flow."""
    return any(c in table.columns and pd.to_numeric(table[c], errors="coerce").notna().any()
               for c in COLUMNS.values())


def gradient_flow_info(table: pd.DataFrame, order: Sequence[str] | None = None) -> GradientFlowInfo:
    """Maps and Kendall τ of every condition whose runs measured gradient flow.

    Parameters
    ----------
    table : pandas.DataFrame
        A results table (:func:`hplandscape.analysis.load_results`) with ``egf1_mean`` /
        ``egf2_mean`` columns; conditions without any value are left out.
    order : sequence of str, optional
        Condition order (e.g. the analysis' ``result.names``); default the table's.

    Returns
    -------
    GradientFlowInfo
    """
    if not has_gradient_flow(table):
        return GradientFlowInfo(reason="no run measured gradient flow (train.gradient_flow: true in the study "
                                       "config records it)")
    names = list(order) if order is not None else list(dict.fromkeys(table["condition"]))
    maps, correlations = [], []
    for name in names:
        rows = table[table["condition"] == name]
        if not has_gradient_flow(rows):
            continue
        for p, column in COLUMNS.items():
            egf = pd.to_numeric(rows[column], errors="coerce") if column in rows.columns else \
                pd.Series(np.nan, index=rows.index)
            maps.append(_map(name, p, rows, egf))
            correlations.append(_correlation(name, p, rows, egf))
    return GradientFlowInfo(maps=tuple(maps), correlations=tuple(correlations))


def _map(name: str, p: int, rows: pd.DataFrame, egf: pd.Series) -> EgfMap:
    lrs = tuple(sorted(float(v) for v in rows["log10_lr"].unique()))
    wds = tuple(sorted(float(v) for v in rows["log10_wd"].unique()))
    means = egf.groupby([rows["log10_lr"], rows["log10_wd"]]).mean()
    values = tuple(tuple(float(means.get((lr, wd), math.nan)) for wd in wds) for lr in lrs)
    return EgfMap(name, p, lrs, wds, values)


def _correlation(name: str, p: int, rows: pd.DataFrame, egf: pd.Series) -> EgfCorrelation:
    ok = np.isfinite(egf.to_numpy(float)) & np.isfinite(rows["top1"].to_numpy(float)) & ~rows["diverged"].to_numpy(bool)
    n = int(ok.sum())
    if n < MIN_RUNS:
        return EgfCorrelation(name, p, math.nan, math.nan, n,
                              reason=f"{n} non-diverged run(s) with a gradient flow; τ needs {MIN_RUNS}")
    x, y = egf.to_numpy(float)[ok], rows["top1"].to_numpy(float)[ok]
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return EgfCorrelation(name, p, math.nan, math.nan, n, reason="every run has the same value; no ranking")
    res = kendalltau(x, y)
    return EgfCorrelation(name, p, float(res.statistic), float(res.pvalue), n)


def correlation_table(info: GradientFlowInfo) -> pd.DataFrame:
    """One row per condition: τ and its p-value for EGF_1 and EGF_2, and the runs counted."""
    rows: dict[str, dict] = {}
    for c in info.correlations:
        row = rows.setdefault(c.condition, {"condition": c.condition})
        row[f"tau_egf{c.p}"] = c.tau
        row[f"p_egf{c.p}"] = c.p_value
        row["runs"] = c.n
    return pd.DataFrame(list(rows.values()),
                        columns=["condition", "tau_egf1", "p_egf1", "tau_egf2", "p_egf2", "runs"])
