"""The report as a reader sees it at 1400 px in headless Chromium: no condition's landscape panel is
one flat colour, the page never scrolls sideways, and no text overlaps an axis title.

Checked on the rendered layout (element rectangles of the SVG text, screenshots of the contour
panels), and shown to fail on a page built with each of those defects.
"""

import io
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import study_record, tiny_config
from test_report_browser import _need_browser, launch_chromium  # one definition of "a browser is here"

from hplandscape.store.study_store import StudyStore
from hplandscape.study.grid import make_grid

WIDTH = 1400
pytestmark = pytest.mark.browser

# Every text of every Plotly figure with its rectangle (axis titles: class xtitle, x2title, ytitle, …),
# the legend and colour-bar boxes and the plot areas; texts and boxes of zero size are hidden ones.
_LAYOUT_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(fig => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const visible = r => r[2] - r[0] > 0.5 && r[3] - r[1] > 0.5;
  const texts = Array.from(fig.querySelectorAll('svg text'))
    .filter(t => t.textContent.trim())
    .map(t => ({cls: t.getAttribute('class') || (t.parentNode.getAttribute('class') || ''), text: t.textContent,
                rect: box(t)}))
    .filter(t => visible(t.rect));
  const legends = Array.from(fig.querySelectorAll('g.legend > rect.bg')).map(box).filter(visible);
  const bars = Array.from(fig.querySelectorAll('g.colorbar rect.cbbg')).map(box).filter(visible);
  const areas = Array.from(fig.querySelectorAll('rect.nsewdrag')).map(box).filter(visible);
  return {id: fig.id, texts, legends, bars, areas};
})
"""


def _overlap(a, b, tol: float = 1.0) -> bool:
    """Rectangles ``[left, top, right, bottom]`` share more than ``tol`` px in both directions."""
    return min(a[2], b[2]) - max(a[0], b[0]) > tol and min(a[3], b[3]) - max(a[1], b[1]) > tol


def _is_axis_title(cls: str) -> bool:
    return bool(cls) and re.fullmatch(r"[xy]\d*title", cls.split()[0]) is not None


def _overlaps(figures) -> list:
    """``(figure, axis title, what covers it)`` for every text, legend, colour bar or plot area (a
    neighbour panel) over an axis title."""
    out = []
    for fig in figures:
        titles = [t for t in fig["texts"] if _is_axis_title(t["cls"])]
        for title in titles:
            for other in fig["texts"]:
                if other is not title and _overlap(title["rect"], other["rect"]):
                    out.append((fig["id"], title["text"], f"text {other['text']!r}"))
            for name, boxes in (("legend", fig["legends"]), ("colour bar", fig["bars"]), ("plot area", fig["areas"])):
                if any(_overlap(title["rect"], b) for b in boxes):
                    out.append((fig["id"], title["text"], name))
    return out


def _scale_colours(n: int = 256) -> np.ndarray:
    """``n`` colours along Plotly's Viridis (the landscapes' colour scale), as RGB rows."""
    from plotly.colors import hex_to_rgb, sequential

    stops = np.array([hex_to_rgb(c) for c in sequential.Viridis], dtype=float)
    t = np.linspace(0.0, len(stops) - 1.0, n)
    i = np.minimum(t.astype(int), len(stops) - 2)
    return stops[i] + (stops[i + 1] - stops[i]) * (t - i)[:, None]


def _flat_panels(page, figure_id: str, min_pixels: int = 30) -> list:
    """Indexes of the contour panels of ``figure_id`` that show fewer than three colours of the
    colour scale, each on at least ``min_pixels`` pixels. Pixels far from every scale colour
    (ellipses, stars, notes, their anti-aliased edges) do not count."""
    from PIL import Image

    scale = _scale_colours()
    flat = []
    layers = page.locator(f"#{figure_id} g.contourlayer")
    for i in range(layers.count()):
        layer = layers.nth(i)
        if layer.locator("path").count() == 0:  # a scatter panel's empty layer
            continue
        image = Image.open(io.BytesIO(layer.screenshot())).convert("RGB")
        colours, counts = np.unique(np.asarray(image).reshape(-1, 3), axis=0, return_counts=True)
        distance = np.linalg.norm(colours[:, None, :].astype(float) - scale[None, :, :], axis=2)
        near = distance.min(axis=1) <= 8.0
        shown = {}
        for index, count in zip(distance.argmin(axis=1)[near], counts[near]):
            shown[index] = shown.get(index, 0) + int(count)
        if sum(1 for c in shown.values() if c >= min_pixels) < 3:
            flat.append(i)
    return flat


def layout_problems(html_path: Path, screenshot: Path = None) -> dict:
    """Open ``html_path`` at 1400 px and measure: horizontal overflow, flat landscape panels, text
    over axis titles. Optionally save a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
            page.goto(html_path.as_uri(), wait_until="load", timeout=60_000)
            n = page.locator(".plotly-graph-div").count()
            page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n}",
                                   timeout=60_000)
            page.wait_for_timeout(300)  # responsive figures settle to the page width
            scroll = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            figures = page.evaluate(_LAYOUT_JS)
            flat = {f["id"]: _flat_panels(page, f["id"]) for f in figures if f["id"].startswith("landscapes")}
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"scroll": scroll, "overflow": scroll[0] > scroll[1], "flat": {k: v for k, v in flat.items() if v},
            "overlaps": _overlaps(figures), "figures": [f["id"] for f in figures]}


def _quickstart_shaped(root: Path) -> Path:
    """A finished study shaped like the quickstart (5 × 5 around lr 0.1, wd 1e-4; base, uniform-0.5,
    global-0.5), global-0.5 far below the others as on the quickstart, with per-epoch histories."""
    conditions = [{"method": "none"}, {"method": "uniform", "ratio": 0.5}, {"method": "global", "ratio": 0.5}]
    config = tiny_config(conditions=conditions, seeds=[0, 1],
                         grid={"prior_lr": 0.1, "prior_wd": 1e-4, "size": [5, 5], "step": 0.5})
    store = StudyStore(root)
    store.init_study(config)
    points = {p.key: p for p in make_grid(config.grid)}
    peaks = {"base": 97.0, "uniform-0.5": 96.0, "global-0.5": 80.0}
    rng = np.random.default_rng(0)
    for run_id in store.run_ids():
        name, key, _ = run_id.split("/")
        p = points[key]
        u, v = p.log10_lr + 1.0, p.log10_wd + 4.0
        top1 = peaks[name] - (3 if name == "global-0.5" else 1.5) * (u * u + v * v + u * v) + rng.normal(0, 0.1)
        history = [{"epoch": e, "lr": p.lr, "train_loss": 2.3 / (e + 1), "train_acc": top1 * (e + 1) / 3,
                    "val_acc": top1 * (e + 1) / 3} for e in range(3)]
        store.write_record(run_id, study_record(config, run_id, top1, diverged_epoch=None, history=history))
    return root


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    _need_browser()
    from hplandscape.report.study_report import write_report

    study = _quickstart_shaped(tmp_path_factory.mktemp("layout") / "quickstart")
    reports = {}
    for scale in ("condition", "shared"):
        index = write_report(study, out_dir=study / f"report-{scale}", n_boot=199, scale=scale)
        reports[scale] = layout_problems(index)
    return reports


@pytest.mark.parametrize("scale", ["condition", "shared"])
def test_report_at_1400px_has_no_flat_panel_no_sideways_scroll_no_text_over_an_axis_title(rendered, scale):
    found = rendered[scale]
    assert {"landscapes", "risk", "panel-0", "grid-map", "curves"} <= set(found["figures"])
    assert not found["overflow"], f"the page scrolls sideways: {found['scroll'][0]} px wide at {WIDTH} px"
    assert found["flat"] == {}, f"landscape panels of one colour: {found['flat']}"
    assert found["overlaps"] == [], found["overlaps"]


def test_the_checks_fail_on_a_page_with_each_defect(tmp_path):
    """The defects the issue found: a fixed-width figure wider than the page, a panel whose values all
    lie below its colour range, a legend over the x-axis title, a y title over the next panel."""
    _need_browser()
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from hplandscape.report.page import fig_div, page

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.02)
    z = np.add.outer(np.arange(5.0), np.arange(5.0))
    for col, shift in ((1, 0.0), (2, -50.0)):  # the second panel: every value below its colour range
        fig.add_trace(go.Contour(z=z + shift, zmin=0, zmax=8, contours=dict(start=0, end=8, size=1), showscale=False,
                                 colorscale="Viridis"), 1, col)
    fig.add_trace(go.Scatter(x=[0, 4], y=[0, 4], name="a long legend entry that covers the axis title"), 1, 1)
    fig.update_xaxes(title_text="weight decay")
    fig.update_yaxes(title_text="learning rate")
    # the legend pinned in the bottom margin, where the x-axis title is (autoexpand off: as a fixed
    # margin too small for both would do)
    fig.update_layout(width=1800, height=500, margin=dict(b=90, autoexpand=False), showlegend=True,
                      legend=dict(orientation="h", x=0.15, y=-0.07, yanchor="top"))
    bad = tmp_path / "bad.html"
    bad.write_text(page("defects", [fig_div(fig, "landscapes")]), encoding="utf-8")
    found = layout_problems(bad)
    assert found["overflow"] and found["scroll"][0] >= 1800
    assert found["flat"] == {"landscapes": [1]}  # the second panel lies wholly below its range
    covered = {(title, what) for _, title, what in found["overlaps"]}
    assert ("weight decay", "legend") in covered
    assert ("learning rate", "plot area") in covered  # column 2's y title over column 1
