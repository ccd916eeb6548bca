"""compnb.numbering: the book's HTML tables get their chapter's number in page order, written into the
caption; pages outside the numbered chapters count from 1; other raw HTML is left alone."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
from docutils import nodes
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Parser
from docutils.utils import new_document

from compnb import numbering
from compnb.tables import styled


def _app(secnumbers: dict) -> SimpleNamespace:
    return SimpleNamespace(env=SimpleNamespace(toc_secnumbers=secnumbers),
                           config=SimpleNamespace(numfig_format={"table": "Table %s"}))


def _page(*raws: str) -> nodes.document:
    doc = new_document("page", get_default_settings(Parser))
    for text in raws:
        doc += nodes.raw("", text, format="html")
    return doc


def test_tables_carry_the_chapter_number_in_page_order():
    table = styled(pd.DataFrame({"a": [1]}), caption="A caption", source="compnb.x.y").to_html()
    doc = _page(table, '<p class="other">not a table</p>', table + table)
    numbering._number_tables(_app({"chapters/03-x": {"": (3,), "#a": (3, 1)}}), doc, "chapters/03-x")
    texts = [raw.astext() for raw in doc.findall(nodes.raw)]
    assert '<span class="caption-number">Table 3.1 </span>A caption' in texts[0]
    assert texts[1] == '<p class="other">not a table</p>'
    assert texts[2].index("Table 3.2 ") < texts[2].index("Table 3.3 ") and "Table 3.1 " not in texts[2]


def test_an_unnumbered_page_counts_from_one():
    doc = _page('<p class="compnb-table-caption">x</p>')
    numbering._number_tables(_app({}), doc, "intro")
    assert next(doc.findall(nodes.raw)).astext() == \
        '<p class="compnb-table-caption"><span class="caption-number">Table 1 </span>x</p>'
