"""Sphinx extension: the book's tables carry their chapter's number, as its figures do.

Figures are numbered by Sphinx (`numfig`: "Fig. 3.2", the second figure of chapter 3). The book's tables
are HTML outputs of `compnb.tables` (`<p class="compnb-table-caption">`), which Sphinx does not see as
tables; this extension numbers them the same way, in page order, and writes the number into the caption
itself (`<span class="caption-number">Table 3.1 </span>`), so that it is part of the text a reader
searches, copies or hears. Pages outside the numbered chapters (the landing page, related work) number
their tables 1, 2, ...
"""

from __future__ import annotations

import re

from docutils import nodes
from sphinx.application import Sphinx

CAPTION = re.compile(r'(<p class="compnb-table-caption">)')


def chapter_number(app: Sphinx, docname: str) -> str:
    """The section number of page `docname` ('3' for chapter 3), or '' when the page is not numbered."""
    number = app.env.toc_secnumbers.get(docname, {}).get("")
    return ".".join(map(str, number)) if number else ""


def table_label(app: Sphinx, chapter: str, index: int) -> str:
    """The label of the `index`-th table (from 1) of a chapter: 'Table 3.1' (the `numfig_format` of tables)."""
    return app.config.numfig_format["table"] % (f"{chapter}.{index}" if chapter else str(index))


def _number_tables(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    chapter, count = chapter_number(app, docname), 0

    def label(match: re.Match) -> str:
        nonlocal count
        count += 1
        return f'{match[1]}<span class="caption-number">{table_label(app, chapter, count)} </span>'

    for raw in doctree.findall(nodes.raw):
        if raw.get("format") == "html" and CAPTION.search(raw.astext()):
            text = CAPTION.sub(label, raw.astext())
            raw.replace(raw.children[0], nodes.Text(text))


def setup(app: Sphinx) -> dict:
    app.connect("doctree-resolved", _number_tables)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
