"""The rendered book in headless Chromium: every chapter page loads, shows each figure its executed
notebook holds, captions every figure and table, and contains no error output. Needs the HTML built
first (`make site` does both)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from compnb.bookbuild import chapters
from compnb.paths import project_root

HTML = project_root() / "book" / "_build" / "html"
SCREENSHOTS = project_root() / "build" / "screenshots"

if not (HTML / "index.html").is_file():
    if os.environ.get("COMPNB_REQUIRE_SITE"):
        raise RuntimeError(f"no built book at {HTML}; run `make book PROFILE=smoke` first")
    pytest.skip("the book is not built (run `make site`)", allow_module_level=True)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page():
    if CHROMIUM is None:
        pytest.fail("Debian's chromium is needed for the HTML test (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser.new_page(viewport={"width": 1280, "height": 900})
        browser.close()


def _figures_in_notebook(chapter: str) -> int:
    source = project_root() / "book" / "_build" / "html" / "_sources" / "chapters" / f"{chapter}.ipynb"
    cells = json.loads(source.read_text())["cells"]
    return sum("image/png" in out.get("data", {}) for c in cells for out in c.get("outputs", []))


@pytest.mark.parametrize("chapter", chapters())
def test_chapter_page_renders_figures_and_no_errors(page, chapter):
    target = HTML / "chapters" / f"{chapter}.html"
    assert target.is_file(), f"{target} missing from the build"
    page.goto(target.as_uri())
    page.wait_for_load_state("load")
    images = page.eval_on_selector_all(
        "main .cell_output img", "els => els.map(e => ({src: e.src, ok: e.complete && e.naturalWidth > 0}))")
    expected = _figures_in_notebook(chapter)
    assert expected > 0, f"{chapter}: the executed notebook holds no figure"
    assert len(images) == expected, f"{chapter}: {len(images)} figures rendered, notebook holds {expected}"
    assert all(img["ok"] for img in images), f"{chapter}: broken images {[i['src'] for i in images if not i['ok']]}"
    errors = page.eval_on_selector_all("main .output.traceback, main .output.error", "els => els.length")
    text = page.inner_text("main")
    assert errors == 0 and "Traceback (most recent call last)" not in text, f"{chapter}: error output on the page"
    uncaptioned = page.eval_on_selector_all(
        "main .cell_output img",
        "els => els.filter(e => !(e.closest('figure')?.querySelector('figcaption')?.textContent.trim())).length")
    assert uncaptioned == 0, f"{chapter}: {uncaptioned} of {len(images)} figures without a caption"
    tables = page.eval_on_selector_all("main .cell_output table", """els => els.map(e =>
        e.closest('.compnb-table')?.querySelector('.compnb-table-caption')?.textContent.trim() || '')""")
    assert all(tables), f"{chapter}: {tables.count('')} of {len(tables)} tables without a caption"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{chapter}.png"), full_page=True)


def test_search_page_and_index_load(page):
    page.goto((HTML / "index.html").as_uri())  # redirects to the intro page
    page.wait_for_url("**/intro.html")
    assert "compnb" in page.title()
    page.goto((HTML / "search.html").as_uri() + "?q=artifact")
    page.wait_for_selector("#search-results", timeout=15000)
    page.wait_for_function("document.querySelectorAll('#search-results li').length > 0", timeout=15000)


def test_equations_typeset_without_network(page):
    """MathJax is served from the site (`compnb.mathjax_offline`): the chapter's TeX becomes MathJax output
    and no request leaves the local files."""
    remote = []
    page.on("request", lambda request: remote.append(request.url) if not request.url.startswith("file:") else None)
    page.goto((HTML / "chapters" / f"{chapters()[0]}.html").as_uri())
    page.wait_for_selector("main mjx-container", timeout=15000)
    raw = page.eval_on_selector_all("main span.math", "els => els.filter(e => !e.querySelector('mjx-container')).length")
    assert raw == 0, f"{raw} inline equations left as raw TeX"
    assert not remote, f"the page requested remote resources: {remote[:3]}"
