"""Book tables: every one carries its caption above it, escaped, the requested number formats, a CSV download of
its unformatted values, the function that computed it, and its key columns up front."""

from __future__ import annotations

import pandas as pd
import pytest

import base64
import linecache

from compnb import reporting, tables
from compnb.chapters import competency_report


def test_styled_table_has_escaped_caption_and_formats():
    table = pd.DataFrame({"config": ["a<b"], "accuracy": [0.123456], "p": [0.000123]})
    page = tables.styled(table, caption="Accuracy & p <by seed>", formats={"p": "{:.2g}"}).to_html()
    assert '>Accuracy &amp; p &lt;by seed&gt;</p>' in page
    assert page.index("compnb-table-caption") < page.index("<table")  # above the table, outside it
    assert "0.123<" in page and "0.00012<" in page


@pytest.mark.parametrize("caption", ["", "   "])
def test_a_table_without_caption_is_refused(caption):
    with pytest.raises(ValueError, match="caption"):
        tables.styled(pd.DataFrame({"a": [1]}), caption=caption)


def test_grid_keeps_its_index_and_bolds_the_best_cell_under_the_caption():
    columns = pd.MultiIndex.from_tuples([(0.1, "accuracy"), (0.5, "accuracy"), (0.1, "macro_f1")])
    grid = pd.DataFrame([[0.80, 0.90, 0.95]], index=["gradient · subtract"], columns=columns)
    page = competency_report.style_grid(grid, caption="Validation accuracy").to_html()
    assert '>Validation accuracy</p>' in page
    assert "gradient · subtract" in page
    assert page.count("font-weight: bold") == 1  # the best accuracy, not the larger macro F1


def test_the_csv_download_holds_the_unformatted_values():
    table = pd.DataFrame({"config": ["a", "b"], "accuracy": [0.123456, 0.5]})
    page = tables.styled(table, caption="Accuracy by config", precision=1).to_html()
    encoded = page.split("base64,", 1)[1].split('"', 1)[0]
    assert base64.b64decode(encoded).decode() == "config,accuracy\na,0.123456\nb,0.5\n"
    assert 'download="accuracy-by-config.csv"' in page


def test_key_columns_come_right_after_the_first_and_unknown_ones_are_refused():
    table = pd.DataFrame({"claim": ["c1"], "detail": ["d"], "p": [0.1], "verdict": ["reproduced"]})
    shown = tables.styled(table, caption="Ledger", key=["verdict", "p"]).style.data
    assert list(shown.columns) == ["claim", "verdict", "p", "detail"]
    with pytest.raises(ValueError, match="not in the table"):
        tables.styled(table, caption="Ledger", key=["verdict!"])


def make_table_in_a_library_function():
    return tables.styled(pd.DataFrame({"a": [1]}), caption="made here")


def test_the_source_is_the_compnb_call_in_the_cell_or_the_calling_function():
    assert make_table_in_a_library_function().source is None  # tests are not compnb modules
    cell = "frame = reporting.paper_baselines()\nbook = tables.styled(pd.DataFrame(frame), caption='x')\n"
    name = "<notebook-cell-1>"
    linecache.cache[name] = (len(cell), None, cell.splitlines(True), name)
    from compnb import reporting
    scope = {"reporting": reporting, "tables": tables, "pd": pd}
    exec(compile(cell, name, "exec"), scope)
    assert scope["book"].source == "compnb.reporting.paper_baselines"
    assert "made by <code>compnb.reporting.paper_baselines</code>" in scope["book"].to_html()


def test_the_run_record_reads_as_a_definition_list_with_short_hashes(tmp_path):
    from compnb import reporting

    digest = "ab" * 32
    run = tmp_path / "run-a"
    run.mkdir()
    (run / "run.json").write_text('{"weights": "sha256:' + "cd" * 32 + '"}')
    record = {"params": {"profile": "smoke", "lam": None, "runs": [f"r{i}" for i in range(6)]}, "seed": None,
              "git": {"commit": "f" * 40, "dirty": True}, "created": "2026-01-01T00:00:00+00:00",
              "python": "3.12.3", "platform": "Linux", "packages": {"torch": "2.13.0", "captum": None},
              "data_sources": [{"dataset": "sst2", "split": "validation", "rows": 872, "origin": "local",
                                "note": "", "sha256": digest}]}
    page = reporting.record_html(record, [run])
    assert page.startswith('<dl class="compnb-record">') and "<dt>parameters</dt>" in page
    assert "<code>lam</code> = <code>None</code>" in page and "6 entries" in page
    assert f"<code>{digest[:12]}…</code>" in page and digest in page  # short in sight, full one click away
    assert "sha256:" + "cd" * 6 + "…" in page and "(1 run)" in page
    assert "(uncommitted changes)" in page and "torch 2.13.0" in page and "captum" not in page
    assert "872 rows" in page and "{" not in page  # no raw dict left


def test_the_scatter_reading_counts_the_artifacts_and_names_the_most_frequent():
    table = pd.DataFrame({"word": ["great", "the", "bad"], "label": [1, 0, 0], "n": [40, 900, 30],
                          "p_hat": [0.9, 0.55, 0.8], "artifact": [True, True, False]})
    table.attrs["num_labels"] = 2
    line = reporting.scatter_reading(table, "sst2")
    assert line.startswith("2 of the 3 word–label points of sst2 lie above the boundary")
    assert "*the* (900 examples), points to 0" in line and line.endswith("makes significant.")
    assert reporting.scatter_reading(table.iloc[[2]], "snli") == \
        "No word–label point of snli clears the boundary at this profile."
