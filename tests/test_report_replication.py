"""The report of an adaptive design: a "Seeds per point" section with the runs it saved and a map
per condition; a full design's report has none. The page renders in headless Chromium."""

import re

import pytest

from hplandscape.analysis.example import synthetic_adaptive_results, synthetic_replicate_results
from hplandscape.report.study_report import make_report

N_BOOT = 99  # the intervals are not under test here


@pytest.fixture(scope="module")
def adaptive(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adaptive")
    table = synthetic_adaptive_results()
    table.to_csv(folder / "results.csv", index=False)
    return table, make_report(folder / "results.csv", n_boot=N_BOOT)


def test_an_adaptive_report_says_how_many_runs_it_saved(adaptive):
    table, report = adaptive
    used, full = len(table), 3 * 81 * 3
    sentence = (f"The adaptive design ran {used} of {full} runs ({100 * used / full:.1f} % of the full design; "
                f"{full - used} saved) in 3 rounds.")
    summary = report.summary.read_text(encoding="utf-8")
    page = report.index.read_text(encoding="utf-8")
    assert "## Seeds per point" in summary and sentence in summary
    assert '<section id="section-replication">' in page and sentence in page
    # right after the seed noise, before the shift of the optimum
    anchors = re.findall(r'<section id="section-([a-z0-9-]+)">', page)
    assert anchors[:4] == ["answers", "noise", "replication", "shift"]
    assert report.index.parent / "figures" / "seeds_per_point.png" in report.figures
    assert 'id="seeds-per-point"' in page
    # per condition: its runs against its full design's, and the fewest and most seeds at a point
    for name in ("base", "uniform-0.6", "global-0.4"):
        n = int((table["condition"] == name).sum())
        assert f"| {name} | {n} | 243 | {100 * n / 243:.1f} % | 1–3 | 3 |" in summary
    # the text does not claim every point has every seed, and no absent seed is a missing run
    assert "3 seeds as replicates where the adaptive design ran them (1 to 3 per grid point)" in summary
    assert "| base | 3 (per point 1–3) |" in summary
    assert "missing or failed" not in summary


def test_a_full_design_report_has_no_seed_map(tmp_path):
    table = synthetic_replicate_results()
    table.to_csv(tmp_path / "results.csv", index=False)
    report = make_report(tmp_path / "results.csv", n_boot=N_BOOT)
    summary = report.summary.read_text(encoding="utf-8")
    assert "Seeds per point" not in summary and "seeds-per-point" not in report.index.read_text(encoding="utf-8")
    assert not any(p.stem == "seeds_per_point" for p in report.figures)
    assert "3 seeds as replicates:" in summary
    assert report.result.replication.design == "full" and report.result.replication.saved == 0


@pytest.mark.browser
def test_the_adaptive_report_renders_in_chromium(adaptive):
    from test_report_browser import _need_browser, error_collecting_page, launch_chromium

    _need_browser()

    from playwright.sync_api import sync_playwright

    index = adaptive[1].index
    errors = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = error_collecting_page(browser, errors)
            page.goto(index.as_uri(), wait_until="load", timeout=60_000)
            n_divs = page.locator(".plotly-graph-div").count()
            page.wait_for_function(
                f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n_divs}", timeout=60_000)
            # the seed map drew its cells and wrote a count in each (3 conditions × 81 points)
            cells = page.locator("#seeds-per-point .heatmaplayer image, #seeds-per-point .heatmaplayer path").count()
            counts = page.locator("#seeds-per-point .heatmaplayer text").count()
        finally:
            browser.close()
    assert errors == [], errors
    assert cells > 0 and counts == 3 * 81
