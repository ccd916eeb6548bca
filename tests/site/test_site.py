"""The rendered book in headless Chromium: every chapter page loads, shows each figure its executed
notebook holds, captions every figure and table, and contains no error output. Needs the HTML built
first (`make site` does both)."""

from __future__ import annotations

import json
import os
import re
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
TABLES_ONLY = {"09-lab-notes"}  # the lab notes hold forensics tables and no figure
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("Debian's chromium is needed for the HTML test (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(browser):
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    yield opened
    opened.close()


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
    assert expected > 0 or chapter in TABLES_ONLY, f"{chapter}: the executed notebook holds no figure"
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
    assert tables or chapter not in TABLES_ONLY, f"{chapter}: a page of tables shows none"
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


# ------------------------------------------------------------------ what a reader takes in at a glance

WIDE, NARROW = 1400, 390
PAGES = ["intro", *(f"chapters/{c}" for c in chapters())]
CSS_PX_PER_PT = 96 / 72


def _query(browser, name: str, width: int, selector: str, script: str, arg=None):
    """Load page `name` at `width` px from the build, save its screenshot, and return what `script` gives for
    the elements matching `selector`, with the URLs the page requested outside the site."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    remote: list[str] = []
    page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
    page.goto((HTML / f"{name}.html").as_uri())
    page.wait_for_load_state("load")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name.split('/')[-1]}-{width}.png"), full_page=True)
    found = page.eval_on_selector_all(selector, script, arg)
    page.close()
    return found, remote


@pytest.mark.parametrize("name", PAGES)
def test_no_table_hides_a_column_at_1400px_and_nothing_loads_from_outside(browser, name):
    overflowing, remote = _query(browser, name, WIDE, ".compnb-table-scroll, .compnb-glance", """els => els
        .filter(e => e.querySelector('table').scrollWidth > e.clientWidth + 1)
        .map(e => (e.closest('.compnb-table')?.querySelector('.compnb-table-caption')?.textContent || 'glance')
             .slice(0, 60) + ` (${e.querySelector('table').scrollWidth} px in ${e.clientWidth})`)""")
    assert not overflowing, f"{name}: tables wider than their box at {WIDE} px: {overflowing}"
    assert not remote, f"{name}: requests outside the site: {remote[:3]}"


@pytest.mark.parametrize("name", PAGES)
def test_key_columns_stay_on_screen_at_390px(browser, name):
    hidden, remote = _query(browser, name, NARROW, "[data-key-columns]", """(els, width) => els.flatMap(e => {
        const n = +e.dataset.keyColumns, row = e.querySelector('thead tr:last-child') || e.querySelector('tr');
        if (!row) return [];  // an empty table (a smoke run can have no rows to show)
        const cells = [...row.children].slice(0, n);
        return cells.filter(c => c.getBoundingClientRect().right > width + 1 || c.getBoundingClientRect().left < 0)
            .map(c => `${c.textContent.trim().slice(0, 30)} (right edge ${Math.round(c.getBoundingClientRect().right)})`);
    })""", NARROW)
    assert not hidden, f"{name}: key columns off-screen at {NARROW} px: {hidden}"
    assert not remote, f"{name}: requests outside the site: {remote[:3]}"


@pytest.mark.parametrize("name", PAGES)
def test_figures_have_captions_for_alt_text_and_readable_text(browser, name):
    from PIL import Image

    from compnb.plots import MIN_FONT_PT

    images, _ = _query(browser, name, WIDE, "main .cell_output img", """els => els.map(e => ({
        src: e.src, alt: e.alt, natural: e.naturalWidth, shown: e.getBoundingClientRect().width}))""")
    for img in images:
        file = img["src"].removeprefix("file://")
        assert img["alt"].strip() and not re.search(r"\.(png|jpe?g|svg)$|^[0-9a-f]{16,}", img["alt"]), \
            f"{name}: alt text {img['alt']!r} is a file name"
        dpi = Image.open(file).info.get("dpi", (72, 72))[0]
        smallest_px = MIN_FONT_PT / 72 * dpi * img["shown"] / img["natural"]
        assert smallest_px >= 9 * CSS_PX_PER_PT - 0.05, (
            f"{name}: {file.rsplit('/', 1)[-1]} shows its smallest text ({MIN_FONT_PT} pt at {dpi:.0f} dpi) at "
            f"{smallest_px:.1f} px, under 9 pt ({9 * CSS_PX_PER_PT:.1f} px): the image is {img['natural']} px wide, "
            f"shown {img['shown']:.0f} px")


@pytest.mark.parametrize("name", [f"chapters/{c}" for c in chapters()])
def test_one_parameters_cell_with_the_values_that_ran(browser, name):
    counts, _ = _query(browser, name, WIDE, ".cell.tag_parameters, .cell.tag_injected-parameters", """els => [
        els.filter(e => e.classList.contains('tag_parameters')).length,
        els.filter(e => e.classList.contains('tag_injected-parameters')).length]""")
    shown, injected = counts
    assert (shown, injected) == (1, 0), f"{name}: {shown} parameters cells and {injected} injected ones"
