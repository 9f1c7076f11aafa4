"""Table 3.4 (accuracy at the prior per condition) and the choice of metric (top-1 or top-5)."""

import math

import pandas as pd
import pytest

from hplandscape import analysis
from hplandscape.errors import UserError


def _rows(with_top5=True, prior_off_grid=False):
    rows = []
    for name, method, ratio, shift in (("base", "none", 1.0, 0.0), ("uniform-0.5", "uniform", 0.5, -2.0)):
        for seed, noise in ((0, 0.2), (1, -0.2)):
            for a in (-1.5, -1.0, -0.5):
                for b in (-4.5, -4.0, -3.5):
                    top1 = 90.0 + shift - 4 * ((a + 0.5) ** 2 + (b + 4) ** 2) + noise
                    row = {"condition": name, "method": method, "ratio": ratio, "lr": 10 ** a, "wd": 10 ** b,
                           "seed": seed, "top1": top1}
                    if with_top5:
                        row["top5"] = 99.0 - (90.0 - top1) / 4 if (a, b) != (-1.5, -4.5) else 97.0
                    rows.append(row)
    return pd.DataFrame(rows)


def test_prior_table_holds_each_conditions_accuracy_at_the_prior_and_the_retuning_gain():
    table = _rows()
    result = analysis.analyze(table, n_boot=99)
    assert (result.prior.log10_lr, result.prior.log10_wd) == (-1.0, -4.0)  # the grid's centre
    t = analysis.prior_table(table, result)
    assert t["condition"].tolist() == ["base", "uniform-0.5"]
    base = t.iloc[0]
    # at lr 0.1, wd 1e-4: 90 − 4·0.25 = 89 ± 0.2 over the two seeds; best: lr 10^-0.5, wd 1e-4 at 90
    assert base["n_seeds"] == 2 and base["top1_mean"] == pytest.approx(89.0) and base["top1_std"] == pytest.approx(0.2)
    assert base["top5_mean"] == pytest.approx(99.0 - 1.0 / 4)
    assert base["best_top1"] == pytest.approx(90.0) and base["retuning_gain"] == pytest.approx(1.0)
    assert t.iloc[1]["top1_mean"] == pytest.approx(87.0)
    no5 = analysis.prior_table(_rows(with_top5=False), result)
    assert math.isnan(no5.iloc[0]["top5_mean"])


def test_analyze_on_top5_uses_top5_everywhere_and_says_so():
    table = _rows()
    r5 = analysis.analyze(table, metric="top5", n_boot=99)
    assert r5.metric == "top5" and analysis.to_json(r5)["metric"] == "top5"
    assert r5.base_condition.best.top1 == pytest.approx(99.0)  # the best seed-averaged top-5
    assert analysis.analyze(table, n_boot=99).metric == "top1"
    with pytest.raises(UserError, match="no top5 values to analyse"):
        analysis.analyze(_rows(with_top5=False), metric="top5")
    with pytest.raises(UserError, match="metric must be one of top1, top5, got 'top3'"):
        analysis.analyze(table, metric="top3")
    assert analysis.has_metric(table, "top5") and not analysis.has_metric(_rows(with_top5=False), "top5")
