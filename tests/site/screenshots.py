"""Screenshots of the built book for looking at: every page (the landing page, the chapters, related work and
the API index) at 1400 px and 390 px wide (light mode), plus, each cropped to its element: chapter 3's seed
comparison (the first table with Holm-corrected p-values) at 1400 px, chapter 1's first table (its caption and
the visible part of its scrolling box) at 390 px, and at both widths chapter 3's first table with row groups
and its parameters cell. Usage, after `make book` or `compnb html`:

    .venv/bin/python tests/site/screenshots.py OUT_DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

HTML = Path(__file__).resolve().parents[2] / "book" / "_build" / "html"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    pages = [HTML / "intro.html", *sorted((HTML / "chapters").glob("*.html")), HTML / "related-work.html",
             HTML / "api" / "index.html"]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS, headless=True)
        for width in (1400, 390):
            page = browser.new_page(viewport={"width": width, "height": 900})
            for target in pages:
                page.goto(target.as_uri())
                page.wait_for_load_state("load")
                name = "api" if target.parent.name == "api" else target.stem
                page.screenshot(path=str(out / f"{name}-{width}.png"), full_page=True)
            page.goto((HTML / "chapters" / "03-modified-loss.html").as_uri())
            grouped = page.locator(".compnb-table", has=page.locator("tbody th[rowspan]")).first
            if grouped.count():
                grouped.screenshot(path=str(out / f"03-row-groups-{width}.png"))
            page.locator(".cell.tag_parameters").first.screenshot(path=str(out / f"03-parameters-{width}.png"))
            seed = page.locator(".compnb-table", has_text="Holm").first
            if width == 1400 and seed.count():
                seed.screenshot(path=str(out / "03-seed-table-1400.png"))
            page.goto((HTML / "chapters" / "01-artifact-mining.html").as_uri())
            first = page.locator("main .compnb-table").first
            if width == 390 and first.count():
                first.screenshot(path=str(out / "01-table1-390.png"))
            page.close()
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
