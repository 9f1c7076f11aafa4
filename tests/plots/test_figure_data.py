"""The shared data layer of the plots: colour range, interpolation, ellipse colours, ticks."""

import numpy as np
import pytest

from hplandscape import analysis
from hplandscape.analysis.example import synthetic_results
from hplandscape.plots.figure_data import (colour_range, condition_range, landscape_info, panel_info, real_label,
                                           risk_plot_info, shared_range)


@pytest.fixture(scope="module")
def result():
    return analysis.analyze(synthetic_results())


def test_colour_range_covers_the_top_15_percent_of_all_conditions(result):
    zmin, zmax = colour_range(result)
    values = np.concatenate([c.arrays()[2] for c in result.conditions])
    assert zmax == values.max()
    assert np.mean(values >= zmin) == pytest.approx(0.15, abs=0.01)
    info = landscape_info(result, mesh=20, scale="shared")
    lo, hi = shared_range(result)
    assert lo <= zmin and hi == zmax  # the thesis's range, widened to every near-optimal band
    assert len({(p.zmin, p.zmax) for p in info.panels}) == 1  # shared across panels
    assert info.panels[0].zmin <= lo and info.panels[0].zmax >= hi  # snapped outwards to round steps


def test_condition_scale_gives_each_panel_its_own_range(result):
    info = landscape_info(result, mesh=20)
    assert info.scale == "condition" and len({(p.zmin, p.zmax) for p in info.panels}) > 1
    for p, c in zip(info.panels, result.conditions):
        lo, hi = condition_range(result, c.name)
        assert p.zmin <= lo < hi <= p.zmax and p.zmax - p.zmin < (hi - lo) + 2 * p.colours.step
        assert p.zmin <= c.best.top1 - 2 * max(result.xs)  # its near-optimal band is never clipped


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
    assert real_label(-4.0) == "1.0e-4" and real_label(-1.0) == "1.0e-1" and real_label(-4.5) == "3.2e-5"
    assert "1.0e-4" in p.wd_ticks[1] and "1.0e-1" in p.lr_ticks[1]
    assert p.diverged.sum() == 1  # the diverged corner of the example


def test_risk_plot_info_matches_the_analysis(result):
    info = risk_plot_info(result)
    assert info.conditions == result.names and info.base == "base"
    assert np.mean(info.d[1]) == pytest.approx(result.condition("uniform-0.6").risk.d_mean)
    # relative risk in percent, as the text and the tables give it
    assert np.mean(info.dR[1]) == pytest.approx(100 * result.condition("uniform-0.6").risk.dR_mean)


# -- whole Info objects on a hand-computed 3×3 study ---------------------------------------------

import dataclasses  # noqa: E402

import pandas as pd  # noqa: E402

from hplandscape.plots.figure_data import ColourScale, PanelInfo, RiskPlotInfo  # noqa: E402

# rows lr 10^-2, 10^-1, 10^0; columns wd 10^-5, 10^-4, 10^-3
BASE = [[80, 85, 84], [86, 90, 89.7], [70, 88, 60]]
PRUNED = [[81, 84, 83], [85, 88, 87.5], [70, 86, 61]]


def _hand_study():
    rows = []
    for name, method, ratio, values in (("base", "none", 1.0, BASE), ("uniform-0.5", "uniform", 0.5, PRUNED)):
        for i, lr in enumerate((-2, -1, 0)):
            for j, wd in enumerate((-5, -4, -3)):
                rows.append({"condition": name, "method": method, "ratio": ratio, "lr": 10.0 ** lr,
                             "wd": 10.0 ** wd, "seed": 0, "top1": float(values[i][j]), "diverged": False})
    return analysis.analyze(pd.DataFrame(rows))


def assert_info_equal(got, want, path="info"):
    """Field by field through nested dataclasses and tuples; arrays compared numerically."""
    if dataclasses.is_dataclass(want):
        assert type(got) is type(want), path
        for f in dataclasses.fields(want):
            assert_info_equal(getattr(got, f.name), getattr(want, f.name), f"{path}.{f.name}")
    elif isinstance(want, (tuple, list)) and not isinstance(want, str):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), f"{path}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_info_equal(g, w, f"{path}[{i}]")
    elif isinstance(want, np.ndarray):
        np.testing.assert_allclose(np.asarray(got, dtype=float), want.astype(float), atol=1e-9, err_msg=path)
    elif isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-9), path
    else:
        assert got == want, path


def test_panel_info_whole_on_a_hand_computed_study():
    result = _hand_study()
    # The base's own range: its top 15 % starts at the 85 % quantile of its 9 values (89.36), but the
    # range must reach 2 × the widest ROI (1.0) below its best: 90 − 2 = 88. Round steps of 0.2.
    zmin, zmax = 88.0, 90.0
    wd = np.array([-5, -4, -3] * 3, dtype=float)
    lr = np.repeat([-2.0, -1.0, 0.0], 3)
    reasons = {r.key: r.reason for r in result.condition("base").rois}
    want = PanelInfo(
        condition="base", title="base", wd=wd, lr=lr, top1=np.array(BASE, dtype=float).ravel(),
        diverged=np.zeros(9, dtype=bool), mesh_wd=np.array([-5.0, -4.0, -3.0]),
        mesh_lr=np.array([-2.0, -1.0, 0.0]),
        # mesh nodes are the grid points: the data, clipped to the shared colour range
        mesh_z=np.clip(np.array(BASE, dtype=float), zmin, zmax), zmin=zmin, zmax=zmax,
        ellipses=(), no_ellipse=(("1.0-ROI", reasons["1.0"]), ("0.5-ROI", reasons["0.5"])),
        best=(-4.0, -1.0, 90.0),
        wd_ticks=((-5.0, -4.0, -3.0), ("1.0e-5", "1.0e-4", "1.0e-3")),
        lr_ticks=((-2.0, -1.0, 0.0), ("1.0e-2", "1.0e-1", "1.0e0")),
        wd_range=(-5.5, -2.5), lr_range=(-2.5, 0.5), best_ties=((-4.0, -1.0),),
        notes=("no 1.0-ROI ellipse: 2 points in it, 5 needed", "no 0.5-ROI ellipse: 2 points in it, 5 needed"),
        colours=ColourScale(zmin=88.0, zmax=90.0, step=0.2, ticks=(88.0, 88.5, 89.0, 89.5, 90.0),
                            tick_text=("88.0", "88.5", "89.0", "89.5", "90.0"), mode="condition",
                            label="top-1 (%)"))
    assert "holds 2 points" in reasons["0.5"]
    assert_info_equal(panel_info(result, "base", mesh=3), want)
    pruned = panel_info(result, "uniform-0.5", mesh=3)
    assert pruned.title == "uniform-0.5 (uniform, 50% FLOPs)" and pruned.best == (-4.0, -1.0, 88.0)


def test_risk_plot_info_whole_on_a_hand_computed_study():
    # Θ_R = the base's 0.5-ROI: (lr 0.1, wd 1e-4) at 90 and (lr 0.1, wd 1e-3) at 89.7.
    want = RiskPlotInfo(conditions=("base", "uniform-0.5"),
                        d=(np.array([0.0, 0.3]), np.array([0.0, 0.5])),
                        dR=(np.array([0.0, 30 / 90]), np.array([0.0, 50 / 88])), base="base",  # percent
                        d_mean_ci=(None, None), metric="top-1")  # one seed: no interval of the mean
    assert_info_equal(risk_plot_info(_hand_study()), want)
