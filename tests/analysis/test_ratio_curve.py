"""acc(r) = acc_p − a·e^{b(r−1)}: the issue's check values, a recovering fit, the 1-point drop."""

import math

import numpy as np
import pytest

from hplandscape import analysis
from hplandscape.analysis.example import synthetic_ratio_results, synthetic_results
from hplandscape.analysis.ratio_curve import fit_ratio_curve, r_at_drop, ratio_curve, ratio_curve_info


def test_the_issue_check_values():
    assert ratio_curve(0.987, 0.868, 0.204, 183) == pytest.approx(0.849101, abs=5e-7)
    assert ratio_curve(0.99, 0.868, 0.204, 183) == pytest.approx(0.835276, abs=5e-7)


@pytest.mark.parametrize("acc_p, a, b", [(93.0, 1.5, 4.0), (75.4, 0.3, 12.0), (0.868, 0.204, 183.0)])
def test_fit_recovers_known_parameters(acc_p, a, b):
    r = np.array([0.0, 0.2, 0.4, 0.6, 0.8]) if b < 100 else np.array([0.0, 0.9, 0.98, 0.985, 0.99, 0.995])
    fit = fit_ratio_curve(r, ratio_curve(r, acc_p, a, b))
    assert fit[:3] == pytest.approx((acc_p, a, b), rel=1e-6)
    assert fit[3] == pytest.approx(0.0, abs=1e-8)


def test_fit_with_noise_stays_close_and_reports_its_rmse():
    rng = np.random.default_rng(0)
    r = np.linspace(0.0, 0.9, 10)
    y = ratio_curve(r, 93.0, 1.5, 4.0) + rng.normal(0, 0.02, len(r))
    acc_p, a, b, rmse = fit_ratio_curve(r, y)
    # a and b trade off against each other under noise; where the curve bends is well determined
    assert (acc_p, a, b) == pytest.approx((93.0, 1.5, 4.0), rel=0.1)
    assert r_at_drop(a, b) == pytest.approx(r_at_drop(1.5, 4.0), abs=0.01)
    assert 0.005 < rmse < 0.03


def test_drop_point_by_hand():
    # 2·e^{5(r−1)} = 1  ⇔  r = 1 − ln 2 / 5
    assert r_at_drop(2.0, 5.0) == pytest.approx(1 - math.log(2) / 5)
    assert ratio_curve(r_at_drop(2.0, 5.0), 93.0, 2.0, 5.0) == pytest.approx(92.0)
    assert r_at_drop(0.5, 5.0) is None  # never a full point below acc_p for r ≤ 1
    assert r_at_drop(0.0, float("nan")) is None


def test_a_flat_series_has_no_drop_and_too_few_ratios_no_fit():
    acc_p, a, b, rmse = fit_ratio_curve([0, 0.4, 0.8], [90.0, 90.0, 90.0])
    assert (acc_p, a, rmse) == (90.0, 0.0, 0.0) and math.isnan(b)
    info = ratio_curve_info("global", "prior", ["base", "g"], [0.0, 0.5], [90.0, 89.0])
    assert info.reason and "needs 3" in info.reason and info.r_drop is None and math.isnan(info.a)
    with pytest.raises(ValueError, match="3 distinct r"):
        fit_ratio_curve([0, 0.5, 0.5], [1, 2, 3])


def test_analyze_fits_each_method_with_enough_ratios_best_and_prior():
    result = analysis.analyze(synthetic_ratio_results())
    assert [(c.method, c.kind) for c in result.ratio_curves] == [
        ("uniform", "best"), ("uniform", "prior"), ("global", "best"), ("global", "prior")]
    for c in result.ratio_curves:
        assert c.conditions[0] == "base" and c.r[0] == 0.0 and len(c.r) == 5
        assert c.r == pytest.approx((0.0, 0.2, 0.4, 0.6, 0.8))  # from the FLOPs columns
        assert c.rmse < 0.25 and c.r_drop is not None
        assert c.value(c.r_drop) == pytest.approx(c.acc_p - 1.0)
    by = {(c.method, c.kind): c for c in result.ratio_curves}
    for method in ("uniform", "global"):  # keeping the prior bends the curve earlier
        assert by[method, "prior"].r_drop < by[method, "best"].r_drop
    doc = analysis.to_json(result)["ratio_curves"]
    assert set(doc) == {"uniform", "global"} and set(doc["uniform"]) == {"best", "prior"}
    curve = doc["global"]["best"]
    assert set(curve) == {"acc_p", "a", "b", "rmse", "r_drop", "ratio_at_drop", "drop", "reason", "points"}
    assert curve["ratio_at_drop"] == pytest.approx(1 - curve["r_drop"])
    assert [p["condition"] for p in curve["points"]] == ["base", "global-0.8", "global-0.6", "global-0.4", "global-0.2"]


def test_two_ratios_per_method_give_no_curves():
    result = analysis.analyze(synthetic_results())
    assert result.ratio_curves == () and analysis.to_json(result)["ratio_curves"] == {}
