"""Colour scales that never blank a condition, round ticks, one number convention, ties, and what a
figure says about what it does not draw (issue 15), checked through the Info objects and figures."""

import re

import numpy as np
import pandas as pd
import pytest

from hplandscape import analysis
from hplandscape.analysis.example import synthetic_results
from hplandscape.plots import mpl_backend, plotly_backend
from hplandscape.plots.figure_data import colour_range, landscape_info, panel_info
from hplandscape.report.study_report import answers

HP = re.compile(r"^\d\.\de-?\d+$")  # 3.2e-5: the one way lr and wd are written


def quickstart_like(pruned_peak=80.0, seeds=(0,)):
    """A 5 × 5 study shaped like the quickstart: base and uniform-0.5 near 97 %, global-0.5 far
    below, so every global-0.5 value lies under the thesis's shared top-15 % floor."""
    rows = []
    for name, method, ratio, peak, width in (("base", "none", 1.0, 97.0, 1.5), ("uniform-0.5", "uniform", 0.5, 96.0, 2.0),
                                             ("global-0.5", "global", 0.5, pruned_peak, 4.0)):
        for seed in seeds:
            rng = np.random.default_rng(seed)
            for i, llr in enumerate(np.linspace(-2.0, 0.0, 5)):
                for j, lwd in enumerate(np.linspace(-5.0, -3.0, 5)):
                    top1 = peak - width * ((llr + 1.0) ** 2 + (lwd + 4.0) ** 2 + 0.5 * (llr + 1) * (lwd + 4))
                    rows.append({"condition": name, "method": method, "ratio": ratio, "lr": 10 ** llr,
                                 "wd": 10 ** lwd, "seed": seed, "top1": top1 + rng.normal(0, 0.05)})
    return analysis.analyze(pd.DataFrame(rows), n_boot=99)


def _levels_used(panel) -> int:
    z = panel.mesh_z[np.isfinite(panel.mesh_z)]
    return len(np.unique(np.floor((z - panel.zmin) / panel.colours.step - 1e-9)))


def test_the_thesis_shared_floor_blanks_the_pruned_condition_but_our_scales_do_not():
    result = quickstart_like()
    floor, _ = colour_range(result)
    assert result.condition("global-0.5").arrays()[2].max() < floor  # the defect the issue reports
    # its own range resolves each condition finely; one shared range still shows every one in 3+ levels
    for scale, levels in (("condition", 5), ("shared", 3)):
        for panel in landscape_info(result, mesh=30, scale=scale).panels:
            assert _levels_used(panel) >= levels, (scale, panel.condition)
            c = result.condition(panel.condition)
            assert panel.zmin <= c.best.top1 - 2 * max(result.xs)  # the near-optimal band is inside the range


def test_colour_bar_ticks_are_round_numbers_on_the_contour_steps():
    result = quickstart_like()
    for scale in ("condition", "shared"):
        for p in landscape_info(result, mesh=10, scale=scale).panels:
            c = p.colours
            assert all(re.fullmatch(r"\d+(\.\d)?", t) for t in c.tick_text), c.tick_text  # never 98.6667
            assert all(c.zmin - 1e-9 <= t <= c.zmax + 1e-9 for t in c.ticks) and len(c.ticks) >= 3
            assert np.allclose(np.diff(c.levels), c.step) and c.levels[0] == c.zmin and c.levels[-1] == c.zmax
    fig = plotly_backend.landscape_figure(result)
    bars = [t.colorbar for t in fig.data if t.type == "contour"]
    assert [list(b.ticktext) for b in bars] == [list(p.colours.tick_text)
                                                for p in landscape_info(result, mesh=10).panels]


def test_lr_and_wd_are_written_one_way_in_ticks_hovers_and_text():
    result = analysis.analyze(synthetic_results(), n_boot=99)
    p = panel_info(result, "base", mesh=10)
    assert all(HP.match(t) for t in p.wd_ticks[1] + p.lr_ticks[1])
    fig = plotly_backend.condition_panel(result, "base")
    runs = next(t for t in fig.data if t.name == "runs (mean over seeds)")
    assert all(re.search(r"lr \d\.\de-\d+, wd \d\.\de-\d+", t) for t in runs.text)
    lines = "\n".join(analysis.warning_lines(result))
    assert "lr=1.6e-2 wd=1.6e-5" in lines and not re.search(r"lr=0\.0|e-0\d", lines)


def test_every_tied_best_point_is_drawn_and_named():
    rows = [{"condition": name, "method": method, "ratio": ratio, "lr": 10 ** a, "wd": 10 ** b, "seed": 0,
             "top1": 90.0 if (a, b) in ties else 85.0 - abs(a + 1) - abs(b + 4)}
            for name, method, ratio, ties in (("base", "none", 1.0, ((-1, -4), (-2, -5))),
                                              ("uniform-0.5", "uniform", 0.5, ((-1, -4),)))
            for a in (-2, -1, 0) for b in (-5, -4, -3)]
    result = analysis.analyze(pd.DataFrame(rows), n_boot=99)
    p = panel_info(result, "base", mesh=5)
    assert p.best_ties == ((-5.0, -2.0), (-4.0, -1.0)) and p.best_label == "best points (2 tied)"
    stars = [t for t in plotly_backend.condition_panel(result, "base").data if t.name == p.best_label]
    assert len(stars) == 2 and all(len(t.x) == 2 for t in stars)  # both panels, both points
    assert panel_info(result, "uniform-0.5", mesh=5).best_label == "best point"
    # one legend entry for panels that differ, which fits them all
    study = [t for t in plotly_backend.landscape_figure(result).data if t.legendgroup == "best"]
    assert {t.name for t in study} == {"best point (every tie starred)"} and [len(t.x) for t in study] == [2, 2, 1, 1]
    text = "\n".join(t for _, t in answers(result))
    assert "tied with 1 other point" in text


def test_a_missing_ellipse_is_explained_on_the_figure_and_not_in_the_legend():
    result = analysis.analyze(synthetic_results(), n_boot=99)
    note = "no 0.5-ROI ellipse: 3 points in it, 5 needed"
    assert panel_info(result, "global-0.4", mesh=5).notes == (note,)
    fig = plotly_backend.landscape_figure(result)
    assert [a.text for a in fig.layout.annotations].count(note) == 1
    # a study where no condition has an ellipse: the legend lists none
    rows = [{"condition": "base", "method": "none", "ratio": 1.0, "lr": 10 ** a, "wd": 10 ** b, "seed": 0,
             "top1": 90.0 - 5 * (abs(a + 1) + abs(b + 4))} for a in (-2, -1, 0) for b in (-5, -4, -3)]
    bare = analysis.analyze(pd.DataFrame(rows), n_boot=99)
    fig = plotly_backend.landscape_figure(bare)
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend and not [n for n in legend if "ellipse" in n]
    assert any("no 1.0-ROI ellipse" in a.text for a in fig.layout.annotations)
    ax = mpl_backend.condition_panel(bare, "base").axes[0]
    assert any("no 1.0-ROI ellipse" in t.get_text() for t in ax.texts)


def test_legends_show_white_and_black_samples_on_grey_below_the_axes():
    result = analysis.analyze(synthetic_results(), n_boot=99)
    fig = plotly_backend.landscape_figure(result)
    legend = fig.layout.legend
    assert legend.bgcolor == plotly_backend.LEGEND_BG and legend.yref == "container" and legend.y == 0
    assert fig.layout.width is None  # fits its container: the page never scrolls sideways
    names = [t.name for t in fig.data if t.showlegend]
    assert len(names) == len(set(names))  # every entry once
    static = mpl_backend.landscape_figure(result)
    assert len(static.legends) == 1 and static.legends[0].get_frame().get_facecolor()[:3] == pytest.approx(
        tuple(int(mpl_backend.LEGEND_BG[i:i + 2], 16) / 255 for i in (1, 3, 5)))


def test_box_plots_show_the_mean_the_text_speaks_of():
    result = analysis.analyze(synthetic_results(), n_boot=99)
    boxes = [t for t in plotly_backend.risk_boxplot(result).data if t.type == "box"]
    assert all(t.boxmean is True for t in boxes)
    ax = mpl_backend.risk_boxplot(result).axes[0]
    means = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(means) == len(result.names)
    assert means[1].get_ydata()[0] == pytest.approx(result.condition("uniform-0.6").risk.d_mean)


@pytest.mark.parametrize("fmt, magic", [("svg", b"<?xml"), ("pdf", b"%PDF"), ("png", b"\x89PNG")])
def test_static_figures_in_vector_formats_and_a_chosen_resolution(tmp_path, fmt, magic):
    result = quickstart_like()
    path = tmp_path / f"land.{fmt}"
    mpl_backend.save(mpl_backend.landscape_figure(result), path, dpi=60)
    assert path.read_bytes()[:len(magic)] == magic
    if fmt == "svg":
        assert "<text" in path.read_text() or "font" in path.read_text()  # text stays text
    if fmt == "png":
        small = path.stat().st_size
        mpl_backend.save(mpl_backend.landscape_figure(result), tmp_path / "big.png", dpi=200)
        assert (tmp_path / "big.png").stat().st_size > 2 * small
    with pytest.raises(ValueError, match="png, svg, pdf"):
        mpl_backend.save(mpl_backend.risk_boxplot(result), tmp_path / "x.jpg")
