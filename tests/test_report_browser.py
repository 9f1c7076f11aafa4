"""Open the HTML report in headless Chromium: every plot renders, the console shows no error."""

import os
import shutil
from pathlib import Path

import pytest

from hplandscape.analysis.example import write_example_results
from hplandscape.report.study_report import write_report

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser


def launch_chromium(playwright):
    """Headless Chromium as the report tests open it: the system's, offline, no first-run work."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"), headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run"])


def error_collecting_page(browser, errors: list):
    """A 1500 × 1000 page that appends every console error and uncaught exception to ``errors``."""
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def _need_browser():
    required = os.environ.get("HPLANDSCAPE_REQUIRE_BROWSER") == "1"
    problems = []
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        problems.append(f"{CHROMIUM} is absent (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the playwright package is not installed")
    if problems:
        if required:
            pytest.fail("HPLANDSCAPE_REQUIRE_BROWSER=1 but " + "; ".join(problems))
        pytest.skip("; ".join(problems))


def test_report_renders_every_plot_without_console_errors(tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    write_example_results(tmp_path / "results.csv")
    index = write_report(tmp_path)
    errors = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = error_collecting_page(browser, errors)
            # offline: any network request would be a CDN or tracker the report must not use
            requests = []
            page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None)
            page.goto(index.as_uri(), wait_until="load", timeout=60_000)
            n_divs = page.locator(".plotly-graph-div").count()
            page.wait_for_function(
                f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n_divs}", timeout=60_000)
            rendered = page.evaluate(
                "Array.from(document.querySelectorAll('.plotly-graph-div'))"
                ".filter(d => d.classList.contains('js-plotly-plot') && d.querySelector('.main-svg')).length")
            contours = page.locator(".js-plotly-plot .contourlayer path").count()
        finally:
            browser.close()
    assert n_divs == 7  # landscapes, risk, four condition panels, the accuracy–FLOPs frontier
    assert rendered == n_divs, f"{rendered} of {n_divs} plots rendered"
    assert contours > 0  # the interpolated surfaces were drawn, not just empty axes
    assert errors == [], errors
    assert requests == [], requests
