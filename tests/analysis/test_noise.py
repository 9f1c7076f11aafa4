"""Seed noise: the pooled within-point spread, its interval, and what it resolves, in every output."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hplandscape import analysis
from hplandscape.analysis.bootstrap import SeedMatrix
from hplandscape.analysis.example import synthetic_replicate_results, synthetic_results
from hplandscape.analysis.noise import seed_noise
from hplandscape.analysis.results_io import ROI_ATTR


def test_pooled_sd_matches_an_anova_within_group_estimate_and_its_chi_square_interval():
    rng = np.random.default_rng(0)
    values = 93.0 + rng.normal(0, 0.4, (25, 3))
    values[0, 2] = np.nan  # a missing run: that point has two seeds
    n = seed_noise(SeedMatrix(values, np.zeros(25), np.arange(25) * 0.1), (0.5, 1.0))
    groups = [row[np.isfinite(row)] for row in values]
    within = sum(((g - g.mean()) ** 2).sum() for g in groups)
    df = sum(len(g) - 1 for g in groups)
    assert n.df == df == 49 and n.sd == pytest.approx(math.sqrt(within / df))
    assert n.sd_ci == pytest.approx((math.sqrt(within / stats.chi2.ppf(0.975, df)),
                                     math.sqrt(within / stats.chi2.ppf(0.025, df))))
    assert n.resolution == pytest.approx(2 * n.sd / math.sqrt(3))
    assert n.resolves(1.0) is True and n.resolves(0.5) is (0.5 >= n.resolution)


def test_far_off_and_diverged_points_are_not_pooled():
    near = np.array([[93.0, 93.2], [92.8, 92.6]])
    far = np.array([[10.0, 60.0]])  # a diverged seed next to a trained one
    n = seed_noise(SeedMatrix(np.vstack([near, far]), [0, 0, 0], [0.0, 0.1, 0.2]), (0.5, 1.0))
    assert n.n_points == 2 and n.sd == pytest.approx(math.sqrt(0.04 / 2))


def test_one_seed_gives_no_noise_but_the_binomial_floor_of_the_evaluation_split():
    n = seed_noise(SeedMatrix(np.array([[95.0], [94.0]]), [0, 0], [0, 0.1]), (0.5, 1.0), eval_size=450)
    assert n.sd is None and n.resolution is None and n.resolves(0.5) is None
    assert n.binomial_se == pytest.approx(100 * math.sqrt(0.95 * 0.05 / 450))
    text = analysis.verdict.describe_noise(type("C", (), {"noise": n, "name": "base"})(), (0.5, 1.0))
    assert "one seed" in text and "450 images" in text and "0.22 points" in text


def test_analyze_reports_noise_in_json_tables_and_text_and_says_when_an_roi_is_below_it():
    table = synthetic_replicate_results()
    table["top1"] += np.random.default_rng(1).normal(0, 0.6, len(table))  # noise 0.6 on top of 0.15
    table["eval_size"] = 10000
    result = analysis.analyze(table, n_boot=199)
    doc = json.loads(json.dumps(analysis.to_json(result), allow_nan=False))
    noise = doc["conditions"]["base"]["noise"]
    assert noise["seed_noise_sd"] == pytest.approx(0.62, abs=0.12) and noise["eval_size"] == 10000
    assert noise["roi_resolved"] == {"0.5": False, "1.0": True} and noise["seeds_needed"]["0.5"] >= 4
    t1, _ = analysis.tables(result)
    row = t1.set_index("condition").loc["base"]
    assert row["seed_noise_sd"] == pytest.approx(noise["seed_noise_sd"]) and not row["roi0.5_resolved"]
    text = analysis.format_tables(result)
    assert "The 0.5-ROI is below that: which points it holds is decided by seed noise." in text
    assert "seeds, or less noise per run (a larger evaluation split than 10000 images" in text


def test_the_study_roi_setting_drives_every_threshold():
    table = analysis.load_results(synthetic_results())
    table.attrs[ROI_ATTR] = (1.0, 3.0)  # what a study.yaml with analysis.roi: [1, 3] gives
    result = analysis.analyze(table, n_boot=199)
    assert result.xs == (1.0, 3.0) and result.risk_x == 1.0 and result.edge_x == 3.0
    assert [r.x for r in result.base_condition.rois] == [1.0, 3.0]
    assert result.base_condition.importance_roi.x == 3.0
    assert analysis.analyze(table, xs=(0.5,), n_boot=199).xs == (0.5,)  # an explicit xs wins
    assert analysis.analyze(pd.DataFrame(synthetic_results()), n_boot=199).xs == (0.5, 1.0)


def test_every_interval_stays_inside_its_range():
    # Near 100 % with a few points of seed noise, a percentile of resampled means can pass 100;
    # the risks are never negative.
    table = synthetic_replicate_results()
    table["top1"] = np.clip(100.0 - (93.4 - table["top1"]) + np.random.default_rng(2).normal(0, 1.5, len(table)),
                            0.0, 100.0)
    result = analysis.analyze(table, n_boot=199)
    for c in result.conditions:
        rep = c.replicates
        assert 0.0 <= rep.best_top1.lo <= rep.best_top1.hi <= 100.0
        for i in (rep.d_mean, rep.d_std):
            assert i.lo >= 0.0
