"""Smoke tests: both renderers produce the figures a user looks at, without global side effects."""

import matplotlib
import pytest

from hplandscape import analysis
from hplandscape.analysis.example import synthetic_results
from hplandscape.plots import mpl_backend, plotly_backend


@pytest.fixture(scope="module")
def result():
    return analysis.analyze(synthetic_results())


def test_plotly_study_figure_has_a_panel_pair_per_condition(result):
    fig = plotly_backend.landscape_figure(result)
    kinds = [t.type for t in fig.data]
    assert kinds.count("contour") == 4
    ellipses = [t for t in fig.data if t.name and t.name.endswith("ellipse")]
    assert {t.line.color for t in ellipses} == {"white", "black"}
    # one 1.0-ROI ellipse per condition, 0.5-ROI for the three that have one; on both rows
    assert len(ellipses) == 2 * (4 + 3)
    assert sum(1 for t in fig.data if t.name == "best point") == 8
    assert [a.text for a in fig.layout.annotations][:4] == [
        "base", "uniform-0.6 (uniform, 60% FLOPs)", "global-0.6 (global, 60% FLOPs)", "global-0.4 (global, 40% FLOPs)"]


def test_plotly_panel_and_risk_boxplot(result):
    panel = plotly_backend.condition_panel(result, "uniform-0.6")
    assert [t.type for t in panel.data].count("contour") == 1
    assert panel.layout.xaxis.ticktext[0] == "1.6e-5"  # one convention for lr and wd
    box = plotly_backend.risk_boxplot(result)
    assert [t.type for t in box.data] == ["box"] * 8 + ["scatter"]  # + d_mean with its interval over seeds
    assert len(box.data[0].y) == result.base_condition.risk.n
    means = box.data[-1]
    assert list(means.x) == list(result.names) and means.error_y.array is not None
    assert means.y[1] == result.condition("uniform-0.6").risk.d_mean
    # named as the text names it: the basemodel's ROI is drawn again with the seeds, so the range
    # is not a confidence interval of the risk (docs/method.md §12)
    assert means.name == "d_mean, resampled 95 % range" and "CI" not in means.hovertemplate
    legend = mpl_backend.risk_boxplot(result).axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["d_mean, resampled 95 % range"]


def test_truncated_ellipses_are_dashed_and_centres_carry_intervals(result):
    fig = plotly_backend.landscape_figure(result)
    dashed = {t.name for t in fig.data if t.name and t.name.endswith("ellipse") and t.line.dash == "dash"}
    assert dashed == {"1.0-ROI truncated ellipse"}  # global-0.4 touches the high-lr edge
    centres = [t for t in fig.data if t.name and t.name.endswith("centre, 95 % CI")]
    assert len(centres) == 2 * (4 + 3) and all(t.error_x.arrayminus is not None for t in centres)
    one_seed = analysis.analyze(synthetic_results(seeds=(0,)))
    assert not [t for t in plotly_backend.landscape_figure(one_seed).data if t.name and "95 % CI" in t.name]


def test_matplotlib_figures_render_to_png_and_pdf(result, tmp_path):
    before = dict(matplotlib.rcParams)
    for name, fig in (("land.png", mpl_backend.landscape_figure(result)),
                      ("risk.png", mpl_backend.risk_boxplot(result)),
                      ("panel.pdf", mpl_backend.condition_panel(result, "global-0.4"))):
        mpl_backend.save(fig, tmp_path / name)
        data = (tmp_path / name).read_bytes()
        assert data[:4] in (b"\x89PNG", b"%PDF") and len(data) > 10_000
    assert len(mpl_backend.landscape_figure(result).axes) == 2 * 4 + 4  # panels + a colour bar per condition
    assert len(mpl_backend.landscape_figure(result, scale="shared").axes) == 2 * 4 + 1  # one shared colour bar
    assert dict(matplotlib.rcParams) == before  # no global style change


@pytest.fixture(scope="module")
def ratios():
    from hplandscape.analysis.example import synthetic_ratio_results

    return analysis.analyze(synthetic_ratio_results())


def test_frontier_figures_in_both_back_ends(result, tmp_path):
    fig = plotly_backend.frontier_figure(result)
    fronts = [t for t in fig.data if t.name and t.name.startswith("Pareto front")]
    assert [t.line.shape for t in fronts] == ["hv", "hv"]
    points = [t for t in fig.data if t.mode and "markers" in t.mode]
    assert [len(t.x) for t in points] == [4, 4]  # every condition, re-tuned and at the prior
    assert "hypervolume" in points[0].name
    mpl_backend.save(mpl_backend.frontier_figure(result), tmp_path / "frontier.png")
    assert (tmp_path / "frontier.png").read_bytes()[:4] == b"\x89PNG"


def test_ratio_curve_figures_in_both_back_ends(ratios, tmp_path):
    fig = plotly_backend.ratio_curve_figure(ratios)
    assert [a.text for a in fig.layout.annotations][:2] == ["uniform", "global"]
    curves = [t for t in fig.data if t.mode == "lines"]
    assert len(curves) == 4 and all(len(t.x) == 200 for t in curves)
    assert len([s for s in fig.layout.shapes]) == 4  # one 1-point-drop line per fitted curve
    mfig = mpl_backend.ratio_curve_figure(ratios)
    assert len(mfig.axes) == 2
    mpl_backend.save(mfig, tmp_path / "ratio.png")
    assert (tmp_path / "ratio.png").stat().st_size > 10_000
