"""The shared data layer of the plots: colour range, interpolation, ellipse colours, ticks."""

import numpy as np
import pytest

from hplandscape import analysis
from hplandscape.analysis.example import synthetic_results
from hplandscape.plots.info import colour_range, landscape_info, panel_info, real_label, risk_plot_info


@pytest.fixture(scope="module")
def result():
    return analysis.analyze(synthetic_results())


def test_colour_range_covers_the_top_15_percent_of_all_conditions(result):
    zmin, zmax = colour_range(result)
    values = np.concatenate([c.arrays()[2] for c in result.conditions])
    assert zmax == values.max()
    assert np.mean(values >= zmin) == pytest.approx(0.15, abs=0.01)
    info = landscape_info(result, mesh=20)
    assert {(p.zmin, p.zmax) for p in info.panels} == {(zmin, zmax)}  # shared across panels


def test_contour_interpolates_the_data_and_stays_in_range(result):
    p = panel_info(result, "base", mesh=33)  # 33 = 4·8 + 1: every grid point is a mesh node
    assert p.mesh_z.shape == (33, 33)
    finite = p.mesh_z[np.isfinite(p.mesh_z)]
    assert finite.min() >= p.zmin and finite.max() <= p.zmax
    i_lr = int(np.argmin(abs(p.mesh_lr - result.base_condition.best.log10_lr)))
    i_wd = int(np.argmin(abs(p.mesh_wd - result.base_condition.best.log10_wd)))
    assert p.mesh_z[i_lr, i_wd] == pytest.approx(result.base_condition.best.top1)


def test_ellipses_white_for_1_0_black_for_0_5_drawn_smallest_last(result):
    p = panel_info(result, "base")
    assert [(e.label, e.colour) for e in p.ellipses] == [("1.0-ROI", "white"), ("0.5-ROI", "black")]
    narrow = panel_info(result, "global-0.4")
    assert [e.label for e in narrow.ellipses] == ["1.0-ROI"]
    assert narrow.no_ellipse[0][0] == "0.5-ROI" and "at least 5" in narrow.no_ellipse[0][1]


def test_ticks_are_labelled_in_real_values(result):
    p = panel_info(result, "base")
    assert real_label(-4.0) == "0.0001" and real_label(-1.0) == "0.1"
    assert "0.0001" in p.wd_ticks[1] and "0.1" in p.lr_ticks[1]
    assert p.diverged.sum() == 1  # the diverged corner of the example


def test_risk_plot_info_matches_the_analysis(result):
    info = risk_plot_info(result)
    assert info.conditions == result.names and info.base == "base"
    assert np.mean(info.d[1]) == pytest.approx(result.condition("uniform-0.6").risk.d_mean)
