"""The "Try it" box each chapter opens with, as a reader sees it in headless Chromium: an admonition titled
"Try it" before the chapter's first section, holding the chapter's smoke command and the full profile's
command (each in its own code block, inside the box at phone width), a measured CPU time or the sentence
that it was not measured, and where the output goes. Needs the HTML built (`compnb html`)."""

from __future__ import annotations

import re

import pytest
from test_site import HTML, NARROW, WIDE, browser  # noqa: F401 (browser: the shared fixture)

from compnb.bookbuild import chapters
from compnb.chapters import try_it

BOX = """() => {
    const box = [...document.querySelectorAll('main .admonition')]
        .find(a => a.querySelector('.admonition-title')?.textContent.trim() === 'Try it');
    if (!box) return null;
    const section = document.querySelector('main section section');
    const inner = box.getBoundingClientRect();
    return {text: box.innerText,
            codes: [...box.querySelectorAll('pre')].map(p => p.textContent.replace(/\\s+/g, ' ').trim()),
            beforeFirstSection: !section || !!(box.compareDocumentPosition(section) & Node.DOCUMENT_POSITION_FOLLOWING),
            overflowing: [...box.querySelectorAll('pre')].filter(p => p.scrollWidth > p.clientWidth + 1
                || p.getBoundingClientRect().right > inner.right + 1).length};
}"""


@pytest.mark.parametrize("width", [WIDE, NARROW])
@pytest.mark.parametrize("chapter", chapters())
def test_each_chapter_opens_with_its_try_it_box(browser, chapter, width):  # noqa: F811
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto((HTML / "chapters" / f"{chapter}.html").as_uri())
        page.wait_for_load_state("load")
        box = page.evaluate(BOX)
    finally:
        page.close()
    assert box is not None, f"{chapter}: no admonition titled 'Try it'"
    assert box["beforeFirstSection"], f"{chapter}: the Try it box comes after the first section"
    assert box["codes"][:2] == [try_it.command(chapter), try_it.command(chapter, "full")], \
        f"{chapter}: the box's commands are {box['codes']}"
    assert re.search(r"\d+ (s|min|h)\b.* on \d+ shared CPU cores|not measured", box["text"]), \
        f"{chapter}: the box states no measured CPU time: {box['text'][:200]!r}"
    assert "build/" in box["text"], f"{chapter}: the box does not say where the output goes"
    assert box["overflowing"] == 0, f"{chapter} at {width} px: {box['overflowing']} command blocks overflow the box"
