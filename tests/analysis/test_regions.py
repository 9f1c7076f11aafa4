"""Hand-computed cases for ROI, ellipse and risk (method §8)."""

import math

import numpy as np
import pytest

from hplandscape.analysis import confidence_level, fit_ellipse, roi_mask
from hplandscape.analysis.regions import edge_info, grid_axes, risk_info, roi_info

# Points (wd, lr) with mean 0 and sample covariance diag(0.5, 0.125): deviations ±1 on wd and
# ±0.5 on lr, divided by n − 1 = 4.
CROSS_WD = np.array([-1.0, 1.0, 0.0, 0.0, 0.0])
CROSS_LR = np.array([0.0, 0.0, -0.5, 0.5, 0.0])


def _rotate(wd, lr, deg):
    t = math.radians(deg)
    return wd * math.cos(t) - lr * math.sin(t), wd * math.sin(t) + lr * math.cos(t)


def test_known_covariance_gives_known_axes_and_angle():
    e = fit_ellipse(CROSS_WD - 3.0, CROSS_LR - 1.5, k=2.0)
    assert (e.centre_log10_wd, e.centre_log10_lr) == pytest.approx((-3.0, -1.5))
    assert e.length == pytest.approx(2 * 2 * math.sqrt(0.5))  # 2k√λ1
    assert e.width == pytest.approx(2 * 2 * math.sqrt(0.125))  # 2k√λ2
    assert e.angle_deg == pytest.approx(0.0)
    assert e.confidence == pytest.approx(0.8647, abs=1e-4)
    assert e.n == 5


@pytest.mark.parametrize("deg", [30.0, -45.0, 89.0, 90.0, -60.0])
def test_rotated_covariance_gives_rotated_major_axis(deg):
    wd, lr = _rotate(CROSS_WD, CROSS_LR, deg)
    e = fit_ellipse(wd, lr, k=1.0)
    assert e.length == pytest.approx(2 * math.sqrt(0.5))
    assert e.width == pytest.approx(2 * math.sqrt(0.125))
    assert e.angle_deg == pytest.approx(deg)
    assert -90.0 < e.angle_deg <= 90.0


def test_diagonal_band_has_negative_45_degree_orientation():
    # lr + wd = −5 on a 0.2 grid: a larger lr needs a smaller wd
    lr = np.round(np.arange(-1.8, -0.19, 0.2), 4)
    wd = -5.0 - lr
    top1 = 93.0 - 0.1 * (lr + 1.0) ** 2
    grid_lr, grid_wd = np.meshgrid(lr, wd)
    f = 80.0 - 10 * (grid_lr + grid_wd + 5.0) ** 2
    roi = roi_info(np.r_[wd, grid_wd.ravel()], np.r_[lr, grid_lr.ravel()], np.r_[top1, f.ravel()], 0.5, 2.0)
    assert roi.n == len(lr)
    assert roi.ellipse.angle_deg == pytest.approx(-45.0)
    assert roi.ellipse.width == pytest.approx(0.0, abs=1e-6)  # all on one line


def test_fewer_than_five_points_gives_no_ellipse_and_the_reason():
    roi = roi_info([-4.0, -3.8, -3.6, -3.4, -3.2], [-1.0] * 5, [90.0, 89.8, 89.6, 80.0, 70.0], 0.5, 2.0)
    assert roi.n == 3 and roi.ellipse is None
    assert "3 points" in roi.reason and "at least 5" in roi.reason


def test_roi_includes_points_exactly_on_the_threshold():
    f = np.array([93.34, 92.84, 92.83])
    assert roi_mask(f, 0.5).tolist() == [True, True, False]


def test_confidence_levels_match_table_3_5():
    # Table 3.5 lists exp(−k²/2); the confidence level is its complement
    for k, density in [(1, 0.6065), (2, 0.1353), (3, 0.0111), (4, 0.0003)]:
        assert 1 - confidence_level(k) == pytest.approx(density, abs=5e-5)


def test_risk_is_mean_and_population_std_over_theta_r():
    theta_r = [(-4.0, -1.0), (-5.0, -1.0), (-4.0, -2.0)]
    values = {(-4.0, -1.0): 87.0, (-5.0, -1.0): 87.5, (-4.0, -2.0): 86.5, (-5.0, 0.0): 88.0}
    r = risk_info("pruned", 88.0, values, theta_r)
    assert r.d == pytest.approx((1.0, 0.5, 1.5))
    assert r.d_mean == pytest.approx(1.0)
    assert r.d_std == pytest.approx(math.sqrt(0.5 / 3))  # population std
    assert r.dR_mean == pytest.approx(1.0 / 88.0)
    assert r.d_max == pytest.approx(1.5)
    assert r.n == 3 and r.missing == ()


def test_risk_reports_theta_r_points_the_condition_lacks():
    r = risk_info("pruned", 88.0, {(-4.0, -1.0): 87.0}, [(-4.0, -1.0), (-4.0, -2.0)])
    assert r.n == 1 and r.missing == ((-4.0, -2.0),)
    empty = risk_info("pruned", 88.0, {}, [(-4.0, -2.0)])
    assert empty.n == 0 and math.isnan(empty.d_mean)


def test_edge_info_names_sides_and_proposes_one_step_beyond():
    grid = grid_axes([-1.2, -1.0, -0.8], [-4.2, -4.0, -3.8])
    roi = roi_info([-4.2, -4.0, -4.0], [-0.8, -0.8, -1.0], [90, 90, 90], 1.0, 2.0)
    e = edge_info("c", roi, grid)
    assert set(e.sides) == {"lr_high", "wd_low"}
    assert e.new_log10_lr == (-0.6,) and e.new_log10_wd == (-4.4,)
    inner = edge_info("c", roi_info([-4.0], [-1.0], [90], 1.0, 2.0), grid)
    assert inner.sides == () and not inner.touches
