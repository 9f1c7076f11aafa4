"""Exact two-way functional ANOVA: the issue's check value and hand-computed neighbourhoods."""

from fractions import Fraction

import numpy as np
import pytest

from hplandscape import analysis
from hplandscape.analysis.example import synthetic_results
from hplandscape.analysis.importance import anova2, importance_info


def _points(grid, lrs, wds):
    """Flatten a (lr rows × wd columns) array into the point lists importance_info takes."""
    lr, wd, f = [], [], []
    for i, a in enumerate(lrs):
        for j, b in enumerate(wds):
            if not np.isnan(grid[i][j]):
                lr.append(a), wd.append(b), f.append(grid[i][j])
    return lr, wd, f


def test_the_issue_check_value():
    lr, wd, inter, var = anova2([[1, 2], [3, 4]])  # rows lr, columns wd
    assert (lr, wd, inter) == pytest.approx((0.8, 0.2, 0.0), abs=1e-15)
    assert var == pytest.approx(1.25)


def test_pure_interaction_and_pure_main_effects():
    assert anova2([[1, 0], [0, 1]])[:3] == pytest.approx((0.0, 0.0, 1.0))
    assert anova2([[5, 5, 5], [7, 7, 7]])[:3] == pytest.approx((1.0, 0.0, 0.0))


def test_undefined_cases_are_errors_for_the_function_and_reasons_for_the_info():
    with pytest.raises(ValueError, match="all values are equal"):
        anova2([[3, 3], [3, 3]])
    with pytest.raises(ValueError, match="every grid cell"):
        anova2([[1, np.nan], [3, 4]])
    lrs, wds = (-2.0, -1.0), (-5.0, -4.0)
    hole = importance_info(*_points([[1, 2], [3, np.nan]], lrs, wds))
    assert hole.lr is None and hole.to_json() is None and "1 of the 4 cells" in hole.reason
    flat = importance_info(*_points([[3, 3], [3, 3]], lrs, wds))
    assert flat.to_json() is None and "same in every cell" in flat.reason


# A 5×5 grid (lr rows, wd columns) whose best point is (lr index 1, wd index 1). Around it,
# the 3×3 block [[0,1,0],[1,4,1],[0,1,0]]: μ = 8/9, row and column means (1/3, 2, 1/3), so
# V_lr = V_wd = 50/81 and the total variance = 20/9 − 64/81 = 116/81: fractions 25/58, 25/58, 4/29.
LRS = (-1.8, -1.4, -1.0, -0.6, -0.2)
WDS = (-4.8, -4.4, -4.0, -3.6, -3.2)
GRID = np.array([[0, 1, 0, -5, -6],
                 [1, 4, 1, -5, -6],
                 [0, 1, 0, -5, -7],
                 [-5, -5, -5, -5, -8],
                 [-9, -6, -6, -6, -6]], dtype=float)


def test_roi_neighbourhood_is_the_roi_bounding_grid_grown_by_one_step_and_clipped():
    info = importance_info(*_points(GRID, LRS, WDS), x=0.5)  # 0.5-ROI = the best point only
    assert info.log10_lr == (-1.8, -1.4, -1.0) and info.log10_wd == (-4.8, -4.4, -4.0)
    assert (info.lr, info.wd, info.interaction) == pytest.approx(
        (float(Fraction(25, 58)), float(Fraction(25, 58)), float(Fraction(4, 29))))
    assert info.variance == pytest.approx(116 / 81)
    assert info.x == 0.5 and info.pad == 1
    # the whole grid is another question with another answer
    whole = importance_info(*_points(GRID, LRS, WDS))
    assert whole.log10_lr == LRS and whole.lr == pytest.approx(anova2(GRID)[0])
    assert whole.lr != pytest.approx(info.lr)


def test_a_wider_roi_widens_the_neighbourhood():
    # the 3.5-ROI holds values ≥ 0.5: the four 1s and the 4 → indices 0..2 on both axes, grown to 0..3
    info = importance_info(*_points(GRID, LRS, WDS), x=3.5)
    assert info.log10_lr == LRS[:4] and info.log10_wd == WDS[:4]
    assert (info.lr, info.wd, info.interaction) == pytest.approx(anova2(GRID[:4, :4])[:3])


def test_analyze_reports_importance_per_condition_and_json_contract():
    result = analysis.analyze(synthetic_results())
    doc = analysis.to_json(result)
    for c in result.conditions:
        imp = doc["conditions"][c.name]["importance"]
        assert set(imp) == {"lr", "wd", "interaction"}
        assert sum(imp.values()) == pytest.approx(1.0)
        roi = doc["conditions"][c.name]["importance_roi"]
        assert roi["x"] == 1.0 and sum(roi[k] for k in ("lr", "wd", "interaction")) == pytest.approx(1.0)
    # the constructed landscapes are diagonal bands: the interaction dominates
    assert all(c.importance.interaction > max(c.importance.lr, c.importance.wd) for c in result.conditions)
    # global-0.4's narrow band lies at the high-lr, low-wd corner: its neighbourhood is that corner
    corner = result.condition("global-0.4").importance_roi
    assert corner.log10_lr == (-0.8, -0.6, -0.4, -0.2) and corner.log10_wd == (-4.8, -4.6, -4.4, -4.2)
