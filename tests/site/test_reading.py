"""How the built book reads, in headless Chromium: each row-group label stands beside the first row of its
group, chapters, sections, figures and tables carry one numbering ("3.", "3.1.", "Fig. 3.2", "Table 3.1") in
the page, the sidebar and the `<title>` (the landing page's says the book's title once), and code that
documents or runs something (the parameters cell, the prose's command blocks) wraps instead of running off
the page. Needs the HTML built (`compnb html`)."""

from __future__ import annotations

import re

import pytest
import yaml
from test_site import HTML, NARROW, PAGES, WIDE, browser  # noqa: F401 (browser: the shared fixture)

from compnb.bookbuild import chapters
from compnb.paths import project_root

CHAPTERS = chapters()
BOOK_TITLE = yaml.safe_load((project_root() / "_config.yml").read_text())["title"]


def _evaluate(browser, name: str, width: int, script: str):  # noqa: F811 (browser: the fixture)
    """Load page `name` of the build at `width` px and return what `script` (a JS function of no argument)
    gives, with the page's `<title>`."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto((HTML / f"{name}.html").as_uri())
        page.wait_for_load_state("load")
        return page.evaluate(script), page.title()
    finally:
        page.close()


ROW_GROUPS = """() => [...document.querySelectorAll('main tbody th[rowspan]')]
    .filter(th => +th.getAttribute('rowspan') > 1 && th.getBoundingClientRect().height > 0)
    .map(th => {
        const row = th.parentElement.querySelector('td') || th.parentElement.lastElementChild;
        const range = document.createRange();
        range.selectNodeContents(th);
        const label = range.getBoundingClientRect(), first = row.getBoundingClientRect();
        return {label: th.textContent.trim(), top: label.top, rowTop: first.top, rowBottom: first.bottom,
                caption: (th.closest('.compnb-table')?.querySelector('.compnb-table-caption')?.textContent
                          || '').slice(0, 50)};
    })"""


@pytest.mark.parametrize("width", [WIDE, NARROW])
@pytest.mark.parametrize("name", PAGES)
def test_row_group_labels_stand_beside_the_first_row_of_their_group(browser, name, width):  # noqa: F811
    labels, _ = _evaluate(browser, name, width, ROW_GROUPS)
    astray = [f"{g['label']!r} in {g['caption']!r}: its text at y={g['top']:.0f}, its first row at "
              f"{g['rowTop']:.0f}-{g['rowBottom']:.0f}" for g in labels
              if not g["rowTop"] - 1 <= g["top"] < g["rowBottom"] - 1]
    assert not astray, f"{name} at {width} px: row-group labels beside another row than their first: {astray}"
    if name == "chapters/03-modified-loss":  # the page that has row groups: the check above saw some
        assert len(labels) >= 2, f"{name}: expected row-group labels (chapter 3's Table 1), found {len(labels)}"


NUMBERS = """() => ({
    heading: document.querySelector('main h1 .section-number')?.textContent || '',
    sections: [...document.querySelectorAll('main section > h2')].map(h =>
        h.querySelector('.section-number')?.textContent || ''),
    figures: [...document.querySelectorAll('main figure')].map(f =>
        f.querySelector('figcaption .caption-number')?.textContent.trim() || ''),
    tables: [...document.querySelectorAll('main .compnb-table-caption')].map(c =>
        c.querySelector('.caption-number')?.textContent.trim() || ''),
    sidebar: [...document.querySelectorAll('.bd-sidebar-primary nav a.reference')].map(a =>
        [a.getAttribute('href'), a.textContent.trim()]),
})"""


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapters_sections_figures_and_tables_carry_the_chapter_number(browser, chapter):  # noqa: F811
    found, title = _evaluate(browser, f"chapters/{chapter}", WIDE, NUMBERS)
    n = int(chapter.split("-", 1)[0])
    assert found["heading"] == f"{n}. ", f"{chapter}: the title's number is {found['heading']!r}, not '{n}. '"
    assert title.startswith(f"{n}. ") and title.count(BOOK_TITLE) == 1, f"{chapter}: <title> {title!r}"
    expected_sections = [f"{n}.{i}. " for i in range(1, len(found["sections"]) + 1)]
    assert found["sections"] == expected_sections, f"{chapter}: section numbers {found['sections']}"
    for kind, labels in (("Fig.", found["figures"]), ("Table", found["tables"])):
        expected = [f"{kind} {n}.{i}" for i in range(1, len(labels) + 1)]
        assert labels == expected, f"{chapter}: {kind} labels {labels}, expected {expected}"
    sidebar = {(f"{chapter}.html" if href == "#" else href.rsplit("/", 1)[-1]): text  # '#': this page
               for href, text in found["sidebar"]}
    for other in CHAPTERS:
        number = int(other.split("-", 1)[0])
        entry = sidebar.get(f"{other}.html", "")
        assert re.match(rf"{number}\. \S", entry), f"{chapter}: the sidebar shows {other} as {entry!r}"


def test_the_landing_title_says_the_book_title_once(browser):  # noqa: F811
    _, title = _evaluate(browser, "intro", WIDE, "() => null")
    assert title == BOOK_TITLE, f"the landing page's <title> is {title!r}, not the book's title once"


WRAPPED = """() => {
    const blocks = [...document.querySelectorAll(
        'main .cell.tag_parameters .cell_input pre, main div[class*="highlight-"]:not(.cell *) pre')];
    return {count: blocks.length, overflowing: blocks.filter(p => p.scrollWidth > p.clientWidth + 1)
        .map(p => `${p.textContent.trim().split('\\n')[0].slice(0, 60)} (${p.scrollWidth} px in ${p.clientWidth})`)};
}"""


@pytest.mark.parametrize("width", [WIDE, NARROW])
@pytest.mark.parametrize("name", PAGES)
def test_parameters_and_commands_wrap_instead_of_running_off_the_page(browser, name, width):  # noqa: F811
    found, _ = _evaluate(browser, name, width, WRAPPED)
    assert found["count"] > 0, f"{name}: no parameters cell or command block found (has the markup changed?)"
    assert not found["overflowing"], f"{name} at {width} px: code running off the page: {found['overflowing']}"
