"""Seeds as replicates: resampling by design, checked on cases whose resamples can be enumerated."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from hplandscape import analysis
from hplandscape.analysis.bootstrap import (SeedMatrix, best_index, condition_rng, ellipse_samples, order_statistic,
                                            percentile_interval, replicate_means)
from hplandscape.analysis.example import synthetic_replicate_results
from hplandscape.analysis.optimum import crossfit_best
from hplandscape.analysis.regions import fit_ellipse, roi_mask
from hplandscape.errors import UserError

# Two points, two seeds, both with residuals ±√2 (rescaled: √(n/(n−1))·(y − ȳ) = √2·(±1)), so
# a pooled residual draw is ±√2 like a point's own. Resample means ȳ + mean of two draws:
#   A (90, 92):     89.586 (seed 0 twice), 91 (one of each), 92.414 (seed 1 twice)
#   B (92.2, 90.2): 92.614 (seed 0 twice), 91.2,             89.786 (seed 1 twice)
A, B = (90.0, 92.0), (92.2, 90.2)
R2 = math.sqrt(2.0)
A_HI, A_LO = 91.0 + R2, 91.0 - R2
B_HI, B_LO = 91.2 + R2, 91.2 - R2


def _two_points(randomness):
    rows = [{"condition": "base", "method": "none", "ratio": 1.0, "lr": 10 ** lr, "wd": 1e-4, "seed": s,
             "top1": v, "randomness": randomness}
            for lr, values in ((-1.0, A), (-0.8, B)) for s, v in enumerate(values)]
    return pd.DataFrame(rows)


def _crossfit_quantiles(a_draws, b_draws, level=0.95):
    """The exact percentile interval of the cross-fitted best over every equally likely resample.

    ``a_draws``/``b_draws`` list the resamples of each point's two seed slots (tuples)."""
    values = []
    for a in a_draws:
        for b in b_draws:
            v = np.array([a, b])  # (point, seed)
            values.append(float(crossfit_best(v)))
    values = np.sort(values)
    cdf = np.arange(1, len(values) + 1) / len(values)
    q = (1 - level) / 2
    return values[np.argmax(cdf >= q - 1e-12)], values[np.argmax(cdf >= 1 - q - 1e-12)]


def test_common_randomness_resamples_whole_seeds_p_best_and_best_interval_by_hand():
    # one draw for both points: seed 0 twice (1/4) → B best; seed 1 twice (1/4) → A best; one of each
    # (1/2) → B best. P(A best) = 1/4. The cross-fitted best (each seed reads the point the other
    # chose): seed 0 twice → 92.614, seed 1 twice → 92.414, one of each → (89.586 + 89.786)/2, since
    # each seed's choice is read from the other seed, which has that point low.
    # → 95 % interval [89.686, 92.614]
    result = analysis.analyze(_two_points("common"), xs=(0.5,), n_boot=19999)
    rep = result.base_condition.replicates
    p = {(q.log10_lr, q.log10_wd): q.p for q in rep.p_best}
    assert p[(-1.0, -4.0)] == pytest.approx(0.25, abs=0.01)
    assert p[(-0.8, -4.0)] == pytest.approx(0.75, abs=0.01)
    assert (rep.best_top1.lo, rep.best_top1.hi) == pytest.approx(((A_LO + B_LO) / 2, B_HI))
    assert rep.best_top1.estimate == pytest.approx(91.2)  # the best mean stays Table 4.2's number
    assert rep.best_top1_crossfit == pytest.approx((A[0] + B[1]) / 2)  # seed 1 picks A, seed 0 picks B
    assert rep.randomness == "common" and rep.n_seeds == 2


def test_independent_randomness_resamples_each_point_on_its_own_by_hand():
    # A and B drawn independently: P(A > B) = 1/4·3/4 + 1/2·1/4 + 1/4·0 = 5/16;
    # best top-1: 89.786 (1/16), 91 (2/16), 91.2 (6/16), 92.414 (3/16), 92.614 (4/16)
    result = analysis.analyze(_two_points("independent"), xs=(0.5,), n_boot=19999)
    rep = result.base_condition.replicates
    p = {(q.log10_lr, q.log10_wd): q.p for q in rep.p_best}
    assert p[(-1.0, -4.0)] == pytest.approx(5 / 16, abs=0.01)
    a_slots = [(x, y) for x in (A_LO, A_HI) for y in (A_LO, A_HI)]
    b_slots = [(x, y) for x in (B_HI, B_LO) for y in (B_HI, B_LO)]
    assert (rep.best_top1.lo, rep.best_top1.hi) == pytest.approx(_crossfit_quantiles(a_slots, b_slots))
    m = SeedMatrix(np.array([A, B]), [-4.0, -4.0], [-1.0, -0.8], "independent")
    means = replicate_means(m.resample(19999, np.random.default_rng(1)))  # both in the pool
    assert set(np.round(means[:, 0], 3)) == {round(A_LO, 3), 91.0, round(A_HI, 3)}
    assert np.mean(np.isclose(means[:, 1], 91.2)) == pytest.approx(0.5, abs=0.02)
    assert np.mean(best_index(means) == 0) == pytest.approx(5 / 16, abs=0.01)
    # nothing pooled: each point's own residuals, within the range its own runs spanned
    own = replicate_means(m.resample(19999, np.random.default_rng(1), pool_within=-1))
    assert set(np.round(own[:, 0], 3)) == {90.0, 91.0, 92.0}


def test_points_near_the_optimum_share_one_pool_of_residuals():
    # near the best: one point with spread ±1, one whose seeds agree; far below: a spread of ±20
    values = np.array([[92.0, 94.0], [93.0, 93.0], [50.0, 90.0]])
    m = SeedMatrix(values, [0.0, 0.2, 0.4], [0.0, 0.0, 0.0])
    means = replicate_means(m.resample(20000, np.random.default_rng(0)))
    pooled_var = np.var([-R2, R2, 0.0, 0.0]) / 2  # residuals of the two near points, mean of two draws
    assert means[:, 0].var() == pytest.approx(pooled_var, rel=0.05)
    assert means[:, 1].var() == pytest.approx(pooled_var, rel=0.05)  # borrows the neighbours' spread
    # keeps its own residuals, within its own runs' range (±20, not the rescaled ±28.3): the
    # variance of a plain bootstrap mean of two draws
    assert means[:, 2].var() == pytest.approx(20.0 ** 2 / 2, rel=0.05)
    own = replicate_means(m.resample(2000, np.random.default_rng(0), pool_within=-1))
    assert np.all(own[:, 1] == 93.0)


def test_rescaled_resample_mean_has_the_unbiased_variance_of_a_mean():
    values = np.array([[1.0, 2.0, 6.0], [3.0, 3.5, 5.0]])
    # common: whole seeds drawn; each point has its own unbiased variance
    m = SeedMatrix(values, [0.0, 0.2], [0.0, 0.0], "common")
    means = replicate_means(m.resample(40000, np.random.default_rng(0), pool_within=-1))
    assert means.mean(axis=0) == pytest.approx(values.mean(axis=1), abs=0.02)
    # a plain bootstrap would give (n − 1)/n of this: 2/3 with three seeds
    assert means.var(axis=0) == pytest.approx(values.var(axis=1, ddof=1) / 3, rel=0.03)
    # independent, both points in the pool: the pooled unbiased variance
    m = SeedMatrix(values, [0.0, 0.2], [0.0, 0.0], "independent")
    means = replicate_means(m.resample(40000, np.random.default_rng(0), pool_within=100.0))
    assert means.var(axis=0) == pytest.approx([values.var(axis=1, ddof=1).mean() / 3] * 2, rel=0.03)


def test_a_point_whose_seeds_split_is_not_resampled_into_the_best():
    # The quickstart's basemodel: its best point 98.1 %, and at lr 10^-0.75 one seed trained to
    # 92.7 %, the other collapsed to 30.5 %. Rescaled by √2 its residuals made runs of 105.6 %
    # (clipped to 100), and that point, which no seed found good, was the best in a quarter of
    # the resamples; within its own runs' range it never beats 92.7.
    values = np.array([[98.3, 97.9], [97.0, 97.6], [92.7, 30.5], [96.9, 95.7]])
    m = SeedMatrix(values, [-1.75, -1.25, -2.75, -2.25], [-1.75, -1.75, -0.75, -1.75], "independent")
    draws = m.resample(4000, np.random.default_rng(0))
    assert np.nanmax(draws[:, 2]) == pytest.approx(92.7) and np.nanmin(draws[:, 2]) == pytest.approx(30.5)
    assert not np.any(best_index(replicate_means(draws)) == 2)


def test_missing_runs_are_not_drawn_and_a_single_result_stays_fixed():
    values = np.array([[90.0, np.nan, 92.0], [91.0, np.nan, np.nan]])
    m = SeedMatrix(values, [0.0, 0.2], [0.0, 0.0])
    assert list(m.counts) == [2, 1] and m.n_seeds == 2
    means = replicate_means(m.resample(4000, np.random.default_rng(0), pool_within=-1))
    assert set(np.round(means[:, 0], 6)) == {90.0, 91.0, 92.0}  # within the range its runs spanned
    assert np.all(means[:, 1] == 91.0)


def test_resampled_ellipses_are_the_method_ellipses_of_each_resample():
    rng = np.random.default_rng(3)
    lr, wd = (a.ravel() for a in np.meshgrid(np.arange(5) * 0.2, np.arange(5) * 0.2, indexing="ij"))
    means = 90.0 - 3 * (lr - 0.4) ** 2 - 2 * (wd - 0.4) ** 2 + rng.normal(0, 0.1, (6, 25))
    s = ellipse_samples(means, np.column_stack([wd, lr]), x=0.5, k=2.0, min_points=5)
    for b in range(6):
        mask = roi_mask(means[b], 0.5)
        if mask.sum() < 5:
            assert not s["fitted"][b] and math.isnan(s["length"][b])
            continue
        e = fit_ellipse(wd[mask], lr[mask], k=2.0)
        got = [s[k][b] for k in ("centre_log10_wd", "centre_log10_lr", "length", "width")]
        assert got == pytest.approx([e.centre_log10_wd, e.centre_log10_lr, e.length, e.width])


def test_percentile_and_order_statistic():
    assert percentile_interval([np.nan, np.nan]) == (None, None)
    # 1999 values: the 95 % critical value is the 1900th smallest
    assert order_statistic(np.arange(1, 2000)[::-1]) == 1900
    assert order_statistic(np.array([1.0, np.inf] * 50)) == np.inf


def test_analyze_is_deterministic_and_seeded_per_condition():
    table = synthetic_replicate_results()
    one = json.dumps(analysis.to_json(analysis.analyze(table)))
    assert one == json.dumps(analysis.to_json(analysis.analyze(table)))
    assert one != json.dumps(analysis.to_json(analysis.analyze(table, boot_seed=1)))
    # a condition's own intervals do not depend on which other conditions are in the table
    full = analysis.analyze(table).condition("uniform-0.6").replicates
    part = analysis.analyze(table[table["condition"] != "global-0.4"]).condition("uniform-0.6").replicates
    assert full.best_top1 == part.best_top1 and full.ellipses == part.ellipses
    assert condition_rng(0, "a").random() == condition_rng(0, "a").random() != condition_rng(0, "b").random()


def test_more_seeds_give_tighter_intervals():
    few = analysis.analyze(synthetic_replicate_results(seeds=(0, 1, 2))).condition("global-0.4")
    many = analysis.analyze(synthetic_replicate_results(seeds=tuple(range(8)))).condition("global-0.4")
    width = lambda i: i.hi - i.lo  # noqa: E731
    assert width(many.shift.log10_lr) < width(few.shift.log10_lr)
    assert width(many.replicates.d_mean) < width(few.replicates.d_mean)


def test_randomness_column_is_validated():
    table = synthetic_replicate_results()
    # a table or cell without the design predates train.randomness: those runs shared one init per
    # seed (common random numbers), as collect() reads their records
    assert analysis.load_results(table.drop(columns=["randomness"]))["randomness"].unique().tolist() == ["common"]
    blank = table.copy()
    blank["randomness"] = np.nan
    assert analysis.load_results(blank)["randomness"].unique().tolist() == ["common"]
    bad = table.copy()
    bad.loc[5, "randomness"] = "shared"
    with pytest.raises(UserError, match=r"column randomness must be one of independent, common, got 'shared' in row 6"):
        analysis.load_results(bad)
    mixed = table.copy()
    mixed.loc[0, "randomness"] = "common"
    with pytest.raises(UserError, match=r"condition 'base' has several values in column randomness"):
        analysis.load_results(mixed)
    with pytest.raises(UserError, match="n_boot"):
        analysis.analyze(table, n_boot=10)


def test_old_records_without_a_design_are_read_as_common_on_every_path(tmp_path):
    # Records written before train.randomness existed seeded the He init by the seed alone: common
    # random numbers. The records path (store/results.py) and the table path (analysis/results_io.py, a results
    # CSV of that time had no randomness column) must resample them the same way.
    from hplandscape.store.results import records_table

    records = [{"condition": "base", "method": "none", "ratio": 1.0, "lr": 10 ** lr, "wd": 1e-4, "log10_lr": lr,
                "log10_wd": -4.0, "seed": s, "top1": 90.0 + s + lr, "diverged": False}
               for lr in (-1.0, -0.8) for s in (0, 1)]
    via_records = analysis.load_results(records_table(records))
    old_csv = tmp_path / "results.csv"
    records_table(records).drop(columns=["randomness"]).to_csv(old_csv, index=False)
    via_csv = analysis.load_results(old_csv)
    assert via_records["randomness"].unique().tolist() == via_csv["randomness"].unique().tolist() == ["common"]
    a = analysis.analyze(via_records, xs=(0.5,), n_boot=199).base_condition.replicates
    b = analysis.analyze(via_csv, xs=(0.5,), n_boot=199).base_condition.replicates
    assert a.randomness == b.randomness == "common" and a.best_top1 == b.best_top1


@pytest.mark.parametrize("randomness", ["independent", "common"])
def test_resampled_runs_stay_inside_the_accuracy_range(randomness):
    # one seed trained (99.5 %), the other collapsed (20 %): rescaled residuals of ±56 points would
    # put resampled runs at 116 % and −16 % without the clip
    values = np.array([[99.5, 20.0], [99.0, 98.6], [98.8, 99.4]])
    draws = SeedMatrix(values, [0.0, 0.2, 0.4], [0.0, 0.0, 0.0], randomness).resample(999, np.random.default_rng(0))
    assert np.nanmin(draws) >= 0.0 and np.nanmax(draws) <= 100.0
    if randomness == "common":
        assert np.nanmax(draws) == 100.0  # the clip did act
    else:  # outside the pool the point stays within its own runs' range, inside [0, 100] anyway
        assert (np.nanmin(draws[:, 0]), np.nanmax(draws[:, 0])) == (20.0, 99.5)


@pytest.mark.parametrize("column, value, words", [
    ("top1", 250.0, "column top1 must be a percentage in [0, 100] (or empty for a failed run), got 250.0 in row 3"),
    ("top1", -5.0, "column top1 must be a percentage in [0, 100] (or empty for a failed run), got -5.0 in row 3"),
    ("top1", float("inf"), "column top1 must be a percentage in [0, 100] (or empty for a failed run), got inf in row 3"),
    ("ratio", 5.0, "column ratio must be a fraction in (0, 1], got 5.0 in row 3"),
    ("method", "bogus", "column method must be one of none, uniform, global, magnitude"),
])
def test_the_results_loader_applies_the_record_checker_s_rules(column, value, words):
    # a results CSV is held to the rules a run record is checked by (record.record_problem)
    table = synthetic_replicate_results()
    table[column] = table[column].astype(object)
    table.loc[2, column] = value
    with pytest.raises(UserError) as e:
        analysis.load_results(table)
    assert words in str(e.value), str(e.value)


def test_the_loader_knows_the_config_s_methods():
    from hplandscape.analysis.results_io import METHODS
    from hplandscape.study.config import METHODS as CONFIG_METHODS
    assert METHODS == CONFIG_METHODS


@pytest.mark.parametrize("name", ["base\n## injected heading", '=HYPERLINK("http://x","click")',
                                  '<a href="http://x">x</a>', "two words"])
def test_condition_names_from_a_table_follow_the_config_s_rule(name):
    # issue 29: a newline injected Markdown into summary.md, a formula reached the report's CSVs
    # and markup became a link in the figures; names are held to the config's rule instead
    table = synthetic_replicate_results()
    table.loc[table["condition"] == "uniform-0.6", "condition"] = name
    with pytest.raises(UserError, match="column condition must hold names of letters, digits"):
        analysis.load_results(table)


def test_an_absurd_number_of_resamples_is_refused_before_any_memory_is_taken():
    table = synthetic_replicate_results()
    with pytest.raises(UserError, match=r"n_boot \(bootstrap resamples\) must be an integer from 99 to 100,000"):
        analysis.analyze(table, n_boot=100_000_000)
