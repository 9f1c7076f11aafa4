"""Screenshots of a report as a reader sees it at 1400 px, in headless Chromium (docs/report.md).

    python docs/screenshots/take_screenshots.py STUDY/report/index.html docs/screenshots

Needs Playwright (``pip install playwright``) and Chromium at /usr/bin/chromium (never
``playwright install``). Each PNG is one part of the page, reduced to 256 colours to stay small.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

WIDTH = 1400
# file name → the element shown (a CSS selector; its section heading is included above it)
PARTS = {"01_answers.png": "h1", "02_landscapes.png": "#landscapes", "03_risk.png": "#risk",
         "04_panel_global.png": "global", "05_grid_map.png": "#grid-map", "06_training_curves.png": "#curves",
         "07_widths.png": "#widths", "10_noise_and_shift.png": "Seed noise|Warnings"}
# a bare word: the per-condition panel under the first heading that starts with it
_PANEL = ("word => { for (const h of document.querySelectorAll('h3')) { if (h.textContent.startsWith(word)) {"
          " let e = h.nextElementSibling; const d = e && e.querySelector('.plotly-graph-div');"
          " if (d) return '#' + d.id; } } return null; }")


# the page between the h2 that starts with one text and the h2 that starts with another
_BETWEEN = ("([a, b]) => { const hs = [...document.querySelectorAll('h2')];"
            " const s = hs.find(h => h.textContent.startsWith(a)), e = hs.find(h => h.textContent.startsWith(b));"
            " if (!s || !e) return null; const top = s.getBoundingClientRect().top + window.scrollY;"
            " return {x: 0, y: top - 8, width: document.documentElement.clientWidth,"
            "         height: e.getBoundingClientRect().top + window.scrollY - top}; }")


def _small(png: bytes) -> bytes:
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def main(index: str, folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
        page.goto(Path(index).resolve().as_uri(), wait_until="load")
        n = page.locator(".plotly-graph-div").count()
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n}")
        page.wait_for_timeout(500)
        for name, selector in PARTS.items():
            if "|" in selector:  # from one h2 to the next named one: sections without a figure
                first, last = selector.split("|")
                box = page.evaluate(_BETWEEN, [first, last])
                if box is None:
                    print(f"{name}: no '{first}' section in this report, skipped")
                    continue
                (out / name).write_bytes(_small(page.screenshot(clip=box, full_page=True)))
                print(f"{out / name}: {(out / name).stat().st_size // 1024} KiB")
                continue
            if not selector.startswith(("#", "h1")):
                selector = page.evaluate(_PANEL, selector) or "#none"
            if page.locator(selector).count() == 0:
                print(f"{name}: no {selector} in this report, skipped")
                continue
            if selector == "h1":  # the top of the page: the question and its answers
                png = page.screenshot(clip={"x": 0, "y": 0, "width": WIDTH, "height": 1000})
            else:  # the element with its heading (the preceding h2/h3 and caption)
                box = page.evaluate(
                    "sel => { const e = document.querySelector(sel); let h = e.previousElementSibling;"
                    " while (h && !/^H[23]$/.test(h.tagName)) h = h.previousElementSibling;"
                    " const top = (h || e).getBoundingClientRect().top + window.scrollY;"
                    " const r = e.getBoundingClientRect();"
                    " return {x: 0, y: top - 8, width: document.documentElement.clientWidth,"
                    "         height: r.bottom + window.scrollY - top + 16}; }", selector)
                png = page.screenshot(clip=box, full_page=True)
            (out / name).write_bytes(_small(png))
            print(f"{out / name}: {(out / name).stat().st_size // 1024} KiB")
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
