"""The shift test: the optimum's peak fit and its family-wise test, the margin-weighted x-ROI
centre (the second line), its standard error, the simultaneous intervals and p-values, and the
JSON contract of ``conditions.NAME.shift``."""

import json

import numpy as np
import pytest

from hplandscape import analysis
from hplandscape.analysis.bootstrap import SeedMatrix
from hplandscape.analysis.example import synthetic_replicate_results, synthetic_results
from hplandscape.analysis.bootstrap import condition_rng
from hplandscape.analysis.optimum import PeakFinder
from hplandscape.analysis.shift import cap_centre, family_test, region_shift, shift_test, shift_tests, simultaneous_test

LR, WD = (a.ravel() for a in np.meshgrid(np.arange(-4, 5) * 0.2, np.arange(-4, 5) * 0.2, indexing="ij"))
XY = np.column_stack([WD, LR])


def _study(shift, seeds=3, seed=0, noise=0.15):
    rng = np.random.default_rng(seed)
    f = lambda s: 93 - 8 * (LR - s) ** 2 - 4 * WD ** 2  # noqa: E731
    base = SeedMatrix(f(0.0)[:, None] + rng.normal(0, noise, (81, seeds)), WD, LR)
    cond = SeedMatrix(f(shift)[:, None] + rng.normal(0, noise, (81, seeds)), WD, LR)
    return base, cond


def test_centre_weights_each_roi_point_by_its_margin_over_the_threshold():
    # best 93.0, threshold 92.5: weights 0.3, 0.5, 0 (92.4 is outside), 0.1
    means = np.array([92.8, 93.0, 92.4, 92.6])
    xy = np.array([[-4.0, -1.2], [-4.0, -1.0], [-3.8, -1.0], [-3.8, -0.8]])
    c, _ = cap_centre(means[:, None], xy, 0.5, "independent")
    assert c == pytest.approx([(-4.0 * 0.8 - 3.8 * 0.1) / 0.9, (-1.2 * 0.3 - 1.0 * 0.5 - 0.8 * 0.1) / 0.9])
    # a point on the threshold weighs 0, so the centre moves continuously as it crosses
    c2, _ = cap_centre(np.array([92.8, 93.0, 92.5 + 1e-9, 92.6])[:, None], xy, 0.5, "independent")
    assert c2 == pytest.approx(c, abs=1e-7)


def test_standard_error_is_the_delta_method_with_the_pooled_roi_variance():
    rng = np.random.default_rng(5)
    values = (93 - 8 * LR ** 2 - 4 * WD ** 2)[:, None] + rng.normal(0, 0.15, (81, 3))
    centre, se = cap_centre(values, XY, 0.5, "independent")
    means = values.mean(axis=1)
    grad = np.zeros((81, 2))
    for i in range(81):  # numerical ∂centre/∂mean
        up, down = means.copy(), means.copy()
        up[i] += 1e-7
        down[i] -= 1e-7
        grad[i] = (cap_centre(up[:, None], XY, 0.5, "independent")[0]
                   - cap_centre(down[:, None], XY, 0.5, "independent")[0]) / 2e-7
    roi = means >= means.max() - 0.5
    pooled = values[roi].var(axis=1, ddof=1).mean()
    assert se == pytest.approx(np.sqrt(pooled / 3 * (grad ** 2).sum(axis=0)), rel=1e-4)
    # common randomness: the spread of each seed's linearised contribution
    _, se_common = cap_centre(values, XY, 0.5, "common")
    contrib = values.T @ grad  # (seeds, 2)
    assert se_common == pytest.approx(contrib.std(axis=0, ddof=1) / np.sqrt(3), rel=1e-4)


def test_a_point_with_one_result_adds_its_variance_to_the_centre_s_standard_error():
    # An adaptive design (method §12) leaves ROI points with fewer seeds: their means are less
    # precise, σ²/n with n = 1, and the centre's delta-method variance carries that (it used to hold
    # single results fixed, a zero variance the bootstrap no longer gives them).
    rng = np.random.default_rng(5)
    values = (93 - 8 * LR ** 2 - 4 * WD ** 2)[:, None] + rng.normal(0, 0.15, (81, 3))
    _, se_full = cap_centre(values, XY, 1.0, "independent")
    thinned = values.copy()
    means = values.mean(axis=1)
    inside = np.flatnonzero(means >= means.max() - 1.0)
    far_inside = [i for i in inside if means[i] < means.max() - 0.3][:3]
    thinned[far_inside, 1:] = np.nan
    _, se_thin = cap_centre(thinned, XY, 1.0, "independent")
    assert len(far_inside) == 3 and np.all(se_thin > se_full * 1.01)


def test_verdict_and_p_value_are_one_procedure():
    rng = np.random.default_rng(2)
    for _ in range(200):
        est, se = rng.normal(0, 1, 2), rng.uniform(0.5, 1.5, 2)
        boot = est + rng.normal(0, 1, (1999, 2)) * rng.uniform(0.8, 1.2)
        lo, hi, p, moved = simultaneous_test(est, se, boot, np.full((1999, 2), 1.0), np.array([9.0, 9.0]))
        assert moved == bool(np.any((lo > 0) | (hi < 0))) == (p <= 0.05)
        assert np.all(lo <= est) and np.all(est <= hi)


def test_intervals_are_clipped_to_the_grid_and_unbounded_ones_span_it():
    est, se = np.array([0.1, 0.0]), np.array([1.0, 1.0])
    lo, hi, p, moved = simultaneous_test(est, se, np.zeros((99, 2)), np.zeros((99, 2)), np.array([1.6, 1.6]))
    assert list(lo) == [-1.6, -1.6] and list(hi) == [1.6, 1.6] and not moved  # every T* = inf
    # two seeds under common randomness: half the resamples repeat one seed and show no spread
    base, cond = _study(0.2, seeds=2)
    b, c = SeedMatrix(base.values, WD, LR, "common"), SeedMatrix(cond.values, WD, LR, "common")
    two = region_shift(b, c, b.resample(199, condition_rng(0, "base")), c.resample(199, condition_rng(0, "pruned")))
    assert (two.log10_lr.lo, two.log10_lr.hi) == (-1.6, 1.6) and two.verdict == "no_evidence"
    # the optimum's intervals stay inside the grid's extent too
    opt = shift_test(b, c, n_boot=199)
    assert -1.6 <= opt.log10_lr.lo <= opt.log10_lr.hi <= 1.6 and -1.6 <= opt.log10_wd.lo <= opt.log10_wd.hi <= 1.6


def test_a_real_shift_is_found_and_no_shift_is_not():
    moved = shift_test(*_study(0.3), n_boot=499)
    assert moved.verdict == "moved" and moved.p_value <= 0.05
    assert moved.log10_lr.lo < 0.3 < moved.log10_lr.hi and moved.log10_lr.lo > 0
    assert abs(moved.log10_wd.estimate) < 0.1  # wd did not move
    still = shift_test(*_study(0.0, seed=1), n_boot=499)
    assert still.verdict == "no_evidence" and still.p_value > 0.05
    assert still.log10_lr.lo < 0 < still.log10_lr.hi


def test_one_seed_gives_the_estimate_and_no_test():
    base, cond = _study(0.2, seeds=1)
    s = shift_test(base, cond)
    assert s.verdict == "single_seed" and s.p_value is None and s.n_seeds == 1
    assert s.log10_lr.ci is None and s.log10_lr.estimate == pytest.approx(0.2, abs=0.1)


def _check_interval(doc, replicated):
    assert set(doc) == {"estimate", "ci"} and isinstance(doc["estimate"], float)
    if replicated:
        lo, hi = doc["ci"]
        assert isinstance(lo, float) and isinstance(hi, float) and lo <= doc["estimate"] <= hi
    else:
        assert doc["ci"] is None


@pytest.mark.parametrize("seeds", [(0, 1, 2), (0,)])
def test_json_contract_of_shift_and_risk(seeds):
    result = analysis.analyze(synthetic_replicate_results(seeds=seeds))
    doc = json.loads(json.dumps(analysis.to_json(result), allow_nan=False))
    replicated = len(seeds) > 1
    assert "shift" not in doc["conditions"]["base"]
    for name in ("uniform-0.6", "global-0.4"):
        shift = doc["conditions"][name]["shift"]
        assert list(shift) == ["log10_lr", "log10_wd", "p_value", "p_value_single", "correction", "n_seeds", "x",
                               "verdict", "statistic", "studentized", "censored", "base_optimum", "optimum", "region_centre"]
        assert shift["statistic"] == "optimum" and shift["correction"]["family_size"] == 2
        assert shift["studentized"] is (True if replicated else None)  # a smooth synthetic landscape
        assert "max-T" in shift["correction"]["method"]
        for key in ("base_optimum", "optimum"):
            assert set(shift[key]) == {"log10_lr", "log10_wd", "censored", "censored_share"}
            _check_interval(shift[key]["log10_lr"], replicated)
        region = shift["region_centre"]
        assert set(region) == {"x", "log10_lr", "log10_wd", "p_value", "verdict"} and region["x"] == 0.5
        _check_interval(shift["log10_lr"], replicated)
        _check_interval(shift["log10_wd"], replicated)
        assert shift["n_seeds"] == len(seeds) and isinstance(shift["n_seeds"], int)
        assert shift["x"] == 0.5
        if replicated:
            assert isinstance(shift["p_value"], float) and 0 < shift["p_value"] <= 1
            assert shift["p_value_single"] <= shift["p_value"]  # the family's adjustment only raises p
            excludes = any(not (d["ci"][0] <= 0 <= d["ci"][1]) for d in (shift["log10_lr"], shift["log10_wd"]))
            if excludes:  # an axis interval excluding 0 implies "moved" (not conversely: a diagonal move)
                assert shift["verdict"] == "moved"
            assert (shift["verdict"] == "moved") == (shift["p_value"] <= 0.05)
        else:
            assert shift["p_value"] is None and shift["verdict"] == "single_seed" and shift["p_value_single"] is None
    for name, cond in doc["conditions"].items():
        risk = cond["risk"]
        _check_interval(risk["excess_over_base"], replicated)
        assert risk["excess_over_base"]["estimate"] == pytest.approx(
            risk["d_mean"] - doc["conditions"]["base"]["risk"]["d_mean"])
        for key in ("d_mean_ci", "d_std_ci"):
            assert (risk[key] is not None) == replicated
        assert (cond["best"]["top1_ci"] is not None) == replicated
        assert (cond["best"]["p_best"] is not None) == replicated
        for roi in cond["roi"].values():
            assert isinstance(roi["touches_edge"], list)
            assert (roi["ellipse_ci"] is not None) == replicated
    assert doc["bootstrap"] == {"n_boot": 1999, "seed": 20231101, "level": 0.95, "shift_x": 0.5,
                                "randomness": {"base": "independent", "uniform-0.6": "independent",
                                               "global-0.4": "independent"}}
    if replicated:  # the example's optimum moved for global-0.4 only
        assert doc["conditions"]["global-0.4"]["shift"]["verdict"] == "moved"
        assert doc["conditions"]["uniform-0.6"]["shift"]["verdict"] == "no_evidence"
        p_best = doc["conditions"]["base"]["best"]["p_best"]
        assert sum(p["p"] for p in p_best) == pytest.approx(1.0) and set(p_best[0]) == {"lr", "wd", "p"}
        ci = doc["conditions"]["base"]["roi"]["1.0"]["ellipse_ci"]
        assert set(ci) == {"centre_log10_wd", "centre_log10_lr", "length", "width", "fitted"}


def test_truncated_ellipses_are_flagged_in_table_json_and_text():
    result = analysis.analyze(synthetic_results(seeds=(0,)))
    t1, _ = analysis.tables(result)
    edge = t1.set_index("condition")["roi1.0_touches_edge"]
    assert edge["global-0.4"] == "lr_high+wd_low" and edge["base"] == ""
    doc = analysis.to_json(result)
    assert doc["conditions"]["global-0.4"]["roi"]["1.0"]["touches_edge"] == ["lr_high", "wd_low"]
    text = analysis.format_tables(result)
    assert "-45.0°†" in text
    assert ("truncated ellipse: the 1.0-ROI of global-0.4 touches lr_high, wd_low, so its ellipse (length, width, "
            "centre) is cut off by the grid; run `hplandscape sweep CONFIG --extend`") in text


def test_analyze_text_states_the_verdicts_and_the_one_seed_caveat():
    text = analysis.format_tables(analysis.analyze(synthetic_replicate_results()))
    assert ("global-0.4: the optimum moved by +0.19 decades in lr (95 % CI 0.15 to 0.23, p < 0.001, family-wise "
            "over 2 pruned conditions)") in text
    assert "uniform-0.6: no evidence that the optimum moved" in text
    assert ("The centre of its 0.5-ROI (where the near-optimal settings lie, not the best one) shifted by +0.19 "
            "decades in lr (95 % CI 0.11 to 0.28)") in text
    assert "base: seed noise 0.13 points (95 % CI 0.11 to 0.16; pooled over 28 near-optimal points, 56 df)" in text
    assert "Its risk exceeds the unpruned model's own (0.26) by 0.57 points (95 % CI 0.19 to 0.84)" in text
    one = analysis.format_tables(analysis.analyze(synthetic_replicate_results(seeds=(0,))))
    assert "one seed gives no measure of seed noise, so it cannot tell a difference of this size from seed noise" in one
    assert "`seeds: [0, 1, 2]` in the study YAML, then `hplandscape sweep` again: only the new runs train" in one
    assert "Re-tune" not in one and "Re-tune" not in text


def _grid(shape="bowl", shift=0.0, asym=1.0):
    """The benchmark's landscapes on its 9×9 grid (log10 units around lr 1, wd 1)."""
    dl, dw = LR - shift, WD
    if shape == "bowl":
        return 93 - 8 * dl ** 2 - 4 * dw ** 2
    u, v = np.sqrt(0.5) * (dl + dw), np.sqrt(0.5) * (dl - dw)  # across and along the band lr·wd = const
    return 93 - np.where(u > 0, 12.0 * asym, 12.0) * u ** 2 - v ** 2


@pytest.mark.parametrize("shape", ["bowl", "ridge"])
def test_the_optimum_is_found_between_grid_points_without_noise(shape):
    for shift in (0.0, 0.07, 0.13):
        f = _grid(shape, shift)
        peak = PeakFinder(XY, fit_within=3.0).locate(f[None, :])
        assert peak.location[0] == pytest.approx([0.0, shift], abs=0.01)
        assert not peak.censored[0] and peak.degree[0] == 3


def test_a_peak_flatter_on_one_side_keeps_its_location_where_the_centre_moves():
    # The shape-only change of the issue: the band grows flatter on one side, its best setting stays.
    # lr curvature 12 below the peak, 6 above it (a smooth step of width 0.1 decades); peak at 0
    f = 93 - 12 * LR ** 2 * (1 - 0.5 / (1 + np.exp(-LR / 0.1))) - 4 * WD ** 2
    peak = PeakFinder(XY, fit_within=3.0).locate(f[None, :])
    assert peak.location[0] == pytest.approx([0.0, 0.0], abs=0.015)  # measured: lr +0.013
    centre, _ = cap_centre(f[:, None], XY, 0.5, "independent")
    assert centre[1] > 0.035  # the region's centre moves three times as far (measured: +0.041)


def test_an_optimum_beyond_the_grid_is_flagged_censored():
    f = 93 - 8 * (LR - 1.2) ** 2 - 4 * WD ** 2  # peak 0.4 decades beyond the lr edge
    peak = PeakFinder(XY, fit_within=3.0).locate(f[None, :])
    assert peak.censored[0] and peak.location[0][1] == pytest.approx(0.8)


@pytest.mark.parametrize("shape", ["bowl", "ridge"])
def test_the_delta_method_covariance_of_the_optimum_matches_its_spread_over_noise(shape):
    # 400 noisy copies of one landscape (3 seeds, σ = 0.15): the peaks' covariance between copies
    # against the mean of each copy's own delta-method estimate (measured: ratios 0.96–0.98 on
    # the bowl, 1.08–1.09 along the ridge's flat band)
    rng = np.random.default_rng(1)
    means = _grid(shape)[None, :] + rng.normal(0, 0.15 / np.sqrt(3), (400, 81))
    peaks = PeakFinder(XY, fit_within=3.0).locate(means, np.full(81, 0.15 ** 2 / 3))
    assert np.isfinite(peaks.cov).all()
    between = np.cov(peaks.location, rowvar=False)
    own = peaks.cov.mean(axis=0)
    assert np.diag(own) / np.diag(between) == pytest.approx([1.0, 1.0], rel=0.2)
    assert own[0, 1] / np.sqrt(own[0, 0] * own[1, 1]) == pytest.approx(
        between[0, 1] / np.sqrt(between[0, 0] * between[1, 1]), abs=0.1)  # the ridge's −0.92 too
    # no noise given: no covariance; a peak on the grid's edge has none either
    assert PeakFinder(XY, fit_within=3.0).locate(means[:1]).cov is None
    edge = PeakFinder(XY, fit_within=3.0).locate((93 - 8 * (LR - 1.2) ** 2 - 4 * WD ** 2)[None], np.full(81, 0.01))
    assert np.isnan(edge.cov).all()


def test_the_studentized_family_test_is_the_plain_one_when_every_resample_has_its_covariance():
    rng = np.random.default_rng(5)
    est = {"a": np.array([0.02, 0.12]), "b": np.array([0.0, 0.01])}
    boots = {n: e + rng.normal(0, 0.05, (999, 2)) for n, e in est.items()}
    plain = family_test(est, boots, span=[1.6, 1.6])
    # the resamples' own covariance at any scale (it is put on the resamples' scale): the plain test
    S = {n: 7.0 * np.cov(b - est[n], rowvar=False) for n, b in boots.items()}
    same = family_test(est, boots, span=[1.6, 1.6], covs=S,
                       boot_covs={n: np.broadcast_to(S[n], (999, 2, 2)) for n in est})
    for n in est:
        assert same[n].p_family == plain[n].p_family and same[n].moved == plain[n].moved
        np.testing.assert_allclose(same[n].lo, plain[n].lo, atol=1e-5)  # the 1e-3 floor enters once
        np.testing.assert_allclose(same[n].hi, plain[n].hi, atol=1e-5)


def test_the_studentized_test_scales_each_resample_by_its_own_size_keeping_the_common_shape():
    # Resamples whose own covariance says "imprecise" count less: a shift the plain test calls
    # "no evidence" because the sharp and the flat resamples were scaled alike is judged by each
    # resample's own size.
    rng = np.random.default_rng(2)
    n = 1999
    sd = np.where(rng.random(n) < 0.5, 0.02, 0.08)  # two kinds of resample: sharp and flat crests
    E = rng.normal(0, 1, (n, 2)) * sd[:, None]
    own = sd[:, None, None] ** 2 * np.eye(2)
    d = np.array([0.0, 0.11])
    plain = family_test({"c": d}, {"c": d + E}, span=[1.6, 1.6])["c"]
    stud = family_test({"c": d}, {"c": d + E}, span=[1.6, 1.6], covs={"c": 0.02 ** 2 * np.eye(2)},
                       boot_covs={"c": own})["c"]
    # the data's own covariance says "sharp": t is large, and the studentized reference
    # distribution (a mixture of equally scaled resamples) is chi-square-like
    assert stud.p_single < plain.p_single
    assert stud.moved and not plain.moved
    # only the size counts: covariances of another shape but the same size in S's metric give the
    # plain test (the shape is the resamples': one fit's covariance misses the wandering along a
    # bent crest)
    S = np.cov(E, rowvar=False)
    other = np.linalg.cholesky(S) @ np.diag([1.9, 0.1]) @ np.linalg.cholesky(S).T  # tr(S⁻¹·other)/2 = 1
    same = family_test({"c": d}, {"c": d + E}, span=[1.6, 1.6], covs={"c": other},
                       boot_covs={"c": np.broadcast_to(other, (n, 2, 2))})["c"]
    assert same.p_single == plain.p_single and same.moved == plain.moved


def test_an_irregular_landscape_is_tested_with_the_resamples_common_covariance():
    # The quickstart's shape: a 5 × 5 grid of step 0.5, a plateau 2 points lower at low wd, a cliff
    # where lr·wd is too large, 2 seeds of σ 1.2: the cubic's own covariance is erratic there (a
    # peak on its search box, a surface not concave), so the test falls back to the plain one.
    lrs = np.arange(5) * 0.5 - 2.75
    lr, wd = (a.ravel() for a in np.meshgrid(lrs, lrs, indexing="ij"))
    f = np.where(lr + wd > -3.6, 30.0, 96.0 - 2.0 * (wd < -2) - 20.0 * (lr < -2.5))
    rng = np.random.default_rng(0)
    mats = {n: SeedMatrix(f[:, None] + rng.normal(0, 1.2, (25, 2)), wd, lr) for n in ("base", "p1", "p2")}
    draws = {n: m.resample(999, condition_rng(0, n), 4.0) for n, m in mats.items()}
    out = shift_tests(mats, "base", draws, (2.5, 4.0))
    assert [out[n].studentized for n in ("p1", "p2")] == [False, False]
    # the smooth ridge of the calibration is studentized
    rng = np.random.default_rng(0)
    mats = {n: SeedMatrix(_grid("ridge")[:, None] + rng.normal(0, 0.15, (81, 3)), WD, LR) for n in ("base", "p")}
    draws = {n: m.resample(999, condition_rng(0, n)) for n, m in mats.items()}
    assert shift_tests(mats, "base", draws)["p"].studentized is True


def test_the_family_test_controls_the_error_over_conditions_sharing_the_basemodel():
    # Four null conditions: each condition's own p can fall below 0.05 while the family's stays above.
    rng = np.random.default_rng(3)
    base_boot = rng.normal(0, 0.05, (1999, 2))
    est = {f"c{i}": np.array([0.0, 0.075 if i == 0 else 0.0]) for i in range(4)}
    boots = {n: base_boot + rng.normal(0, 0.03, (1999, 2)) + e for n, e in est.items()}
    out = family_test(est, {n: b - base_boot for n, b in boots.items()}, span=[1.6, 1.6])
    assert out["c0"].p_single < 0.05 < out["c0"].p_family
    assert all(o.p_family >= o.p_single for o in out.values())
    assert all(not o.moved for o in out.values())
    with_single = family_test({"c0": est["c0"]}, {"c0": boots["c0"] - base_boot}, span=[1.6, 1.6])["c0"]
    assert with_single.p_family == with_single.p_single < 0.05 and with_single.moved


def test_a_shift_across_a_diagonal_band_is_found_with_the_precision_across_it():
    rng = np.random.default_rng(0)
    mats = {"base": SeedMatrix(_grid("ridge")[:, None] + rng.normal(0, 0.15, (81, 3)), WD, LR),
            "pruned": SeedMatrix(_grid("ridge", 0.1)[:, None] + rng.normal(0, 0.15, (81, 3)), WD, LR)}
    draws = {n: m.resample(999, condition_rng(1, n)) for n, m in mats.items()}
    s = shift_tests(mats, "base", draws)["pruned"]
    assert s.verdict == "moved" and s.p_value < 0.01
    assert s.log10_lr.lo < 0.1 < s.log10_lr.hi and s.log10_wd.lo < 0 < s.log10_wd.hi
    assert s.optimum.log10_lr.ci is not None and not s.censored
