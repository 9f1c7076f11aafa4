"""Screenshots of a live report (``report --watch``) at moments of a running study, in headless Chromium.

    hplandscape sweep --study-dir /tmp/qs --no-report &          # the study runs
    hplandscape report /tmp/qs --watch 5 &                        # the live report follows it
    python docs/screenshots/take_live_screenshots.py /tmp/qs/report/index.html docs/screenshots 0.3 0.7

For each fraction of the runs recorded it waits until the page says the study has reached it,
then takes the "Study in progress" box and the landscapes (pending grid points as open circles):
``11_live_<percent>_status.png`` and ``12_live_<percent>_landscapes.png``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright
from take_screenshots import WIDTH, _small


def _element(page, selector: str):
    return page.evaluate(
        "sel => { const e = document.querySelector(sel); if (!e) return null; let h = e.previousElementSibling;"
        " while (h && !/^H[23]$/.test(h.tagName)) h = h.previousElementSibling;"
        " const top = (h || e).getBoundingClientRect().top + window.scrollY; const r = e.getBoundingClientRect();"
        " return {x: 0, y: top - 8, width: document.documentElement.clientWidth,"
        "         height: r.bottom + window.scrollY - top + 16}; }", selector)


def main(index: str, folder: str, *fractions: str) -> None:
    out = Path(folder)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
        for fraction in map(float, fractions):
            while True:
                page.goto(Path(index).resolve().as_uri(), wait_until="load")
                text = page.inner_text("body")
                if "This study is still running: " in text:
                    done, total = text.split("This study is still running: ")[1].split(" runs recorded")[0].split(" of ")
                    if int(done) >= fraction * int(total) and page.locator("#landscapes").count():
                        break
                elif page.locator("#section-live").count() == 0 and "Landscapes" in text:
                    print("the study finished before", fraction)
                    return
                time.sleep(2)
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= "
                                   "document.querySelectorAll('.plotly-graph-div').length")
            percent = round(100 * int(done) / int(total))
            for name, selector in ((f"11_live_{percent}_status.png", ".live"),
                                   (f"12_live_{percent}_landscapes.png", "#landscapes")):
                box = _element(page, selector)
                (out / name).write_bytes(_small(page.screenshot(clip=box, full_page=True)))
                print(f"{out / name}: {done}/{total} runs, {(out / name).stat().st_size // 1024} KiB")
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
