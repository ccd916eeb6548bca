"""Book tables: every one carries its caption above it, escaped, and the requested number formats."""

from __future__ import annotations

import pandas as pd
import pytest

from compnb import reporting
from compnb.chapters import competency_report


def test_styled_table_has_escaped_caption_and_formats():
    table = pd.DataFrame({"config": ["a<b"], "accuracy": [0.123456], "p": [0.000123]})
    page = reporting.styled(table, caption="Accuracy & p <by seed>", formats={"p": "{:.2g}"}).to_html()
    assert '">Accuracy &amp; p &lt;by seed&gt;</p>' in page
    assert page.index("compnb-table-caption") < page.index("<table")  # above the table, outside it
    assert "0.123<" in page and "0.00012<" in page


@pytest.mark.parametrize("caption", ["", "   "])
def test_a_table_without_caption_is_refused(caption):
    with pytest.raises(ValueError, match="caption"):
        reporting.styled(pd.DataFrame({"a": [1]}), caption=caption)


def test_grid_keeps_its_index_and_bolds_the_best_cell_under_the_caption():
    columns = pd.MultiIndex.from_tuples([(0.1, "accuracy"), (0.5, "accuracy"), (0.1, "macro_f1")])
    grid = pd.DataFrame([[0.80, 0.90, 0.95]], index=["gradient · subtract"], columns=columns)
    page = competency_report.style_grid(grid, caption="Validation accuracy").to_html()
    assert '">Validation accuracy</p>' in page
    assert "gradient · subtract" in page
    assert page.count("font-weight: bold") == 1  # the best accuracy, not the larger macro F1
