"""Table 3.4 of the thesis: the accuracy of every condition at the basemodel's prior.

The prior (lr, wd) is where a practitioner starts untuned; the thesis reports the basemodel's
top-1 (and top-5 on ImageNet) there. Per condition this table gives the same, with the spread
over seeds and how far re-tuning on the grid gets (best − prior).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hplandscape.analysis.results_io import load_results
from hplandscape.analysis.study_analysis import StudyAnalysis

COLUMNS = ("condition", "method", "ratio", "lr", "wd", "n_seeds", "top1_mean", "top1_std", "top5_mean",
           "top5_std", "best_top1", "retuning_gain")


def prior_table(table, result: StudyAnalysis) -> pd.DataFrame:
    """Accuracy at ``result.prior`` per condition (thesis Table 3.4), from the results table.

    Parameters
    ----------
    table : pandas.DataFrame or path
        The results table the analysis read (runs off the grid count: the basemodel at the
        prior is trained even when the grid leaves the prior out).
    result : StudyAnalysis
        Gives the prior, the conditions' order and their best top-1 (when it analysed top-1).

    Returns
    -------
    pandas.DataFrame
        One row per condition of ``result``, columns :data:`COLUMNS`: the prior's ``lr``/``wd``,
        ``n_seeds`` with a result there, mean and population std of top-1 and top-5 over those
        seeds (NaN when not measured; top-5 NaN without top-5 values), ``best_top1`` (the best
        seed-averaged top-1 on the grid) and ``retuning_gain`` = best − at the prior.

    Examples
    --------
    >>> from hplandscape import analysis
    >>> from hplandscape.analysis.example import synthetic_results
    >>> t = prior_table(synthetic_results(), analysis.analyze(synthetic_results(), n_boot=99))
    >>> t["condition"][0], int(t["n_seeds"][0])
    ('base', 2)
    """
    df = load_results(table)
    p = result.prior
    rows = []
    for c in result.conditions:
        mine = df[df["condition"] == c.name]
        at = mine[(mine["log10_lr"] == p.log10_lr) & (mine["log10_wd"] == p.log10_wd)]
        top1 = at["top1"].to_numpy(float)
        top1 = top1[np.isfinite(top1)]
        top5 = (pd.to_numeric(at["top5"], errors="coerce").to_numpy(float) if "top5" in at.columns
                else np.array([]))
        top5 = top5[np.isfinite(top5)]
        grid = mine[mine["on_grid"] & np.isfinite(mine["top1"])]
        best = grid.groupby(["log10_lr", "log10_wd"])["top1"].mean().max() if len(grid) else np.nan
        mean1 = float(top1.mean()) if len(top1) else np.nan
        rows.append({"condition": c.name, "method": c.method, "ratio": c.ratio, "lr": p.lr, "wd": p.wd,
                     "n_seeds": len(top1), "top1_mean": mean1,
                     "top1_std": float(top1.std()) if len(top1) else np.nan,
                     "top5_mean": float(top5.mean()) if len(top5) else np.nan,
                     "top5_std": float(top5.std()) if len(top5) else np.nan,
                     "best_top1": float(best), "retuning_gain": float(best) - mean1})
    return pd.DataFrame(rows, columns=list(COLUMNS))
