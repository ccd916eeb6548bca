"""The book's tables: a formatted pandas Styler with its caption above it, a CSV download of the unformatted
values, and the `compnb` function that computed it.

In HTML a table is `<div class="compnb-table">` holding the caption (`.compnb-table-caption`, numbered
"Table N." by the book's stylesheet, `book/_static/compnb.css`), a line naming the function and linking the
CSV (`.compnb-table-meta`; the CSV is embedded as a data URI, so the static site needs no extra files), and
the table in a box that scrolls sideways on a narrow screen with its first column pinned. Key columns
(`key=`, say a verdict) move right after the first column so that they stay on screen at phone width;
`data-key-columns` tells the site test how many leading columns must be visible there.
"""

from __future__ import annotations

import ast
import base64
import dataclasses
import html
import inspect
import re
from dataclasses import dataclass
from types import FrameType, ModuleType

import pandas as pd
from pandas.io.formats.style import Styler

CELL_PADDING = [{"selector": "td, th", "props": "padding: 0.15em 0.6em"},
                {"selector": "", "props": "margin: 0"}]  # left-aligned under its caption, like the prose
# compnb calls in a cell that only format or write, never the function that computed a table
NOT_A_SOURCE = {"compnb.tables", "compnb.atomicio", "compnb.provenance", "compnb.plots", "compnb.paths"}


@dataclass(frozen=True)
class BookTable:
    """A formatted table, its caption, the function that made it (`module.function`, or None) and the raw
    values for the CSV download."""

    style: Styler
    caption: str
    source: str | None = None
    anchors: str | None = None
    key_columns: int = 1

    def csv_link(self) -> str:
        """An `<a download>` with the table's unformatted values as a CSV data URI."""
        data = self.style.data
        csv = data.to_csv(index=not self._index_hidden()).encode()
        name = re.sub(r"[^a-z0-9]+", "-", " ".join(self.caption.lower().split()[:6])).strip("-") or "table"
        return (f'<a class="compnb-csv" download="{name}.csv" '
                f'href="data:text/csv;charset=utf-8;base64,{base64.b64encode(csv).decode()}">CSV</a>')

    def _index_hidden(self) -> bool:
        return bool(getattr(self.style, "hide_index_", [False])[0])

    def to_html(self) -> str:
        made_by = (f"made by <code>{html.escape(self.source)}</code>" if self.source
                   else "made in the cell above")
        body = self.style.to_html()
        if self.anchors:  # each first-column cell becomes a link target: <anchors><its text>
            body = re.sub(r'(class="data row\d+ col0" >)([^<]*)</td>',
                          lambda m: f'{m[1]}<span id="{self.anchors}{html.unescape(m[2]).strip()}">{m[2]}</span></td>', body)
        return (f'<div class="compnb-table" data-key-columns="{self.key_columns}">'
                f'<p class="compnb-table-caption">{html.escape(self.caption)}</p>'
                f'<p class="compnb-table-meta">{made_by} · {self.csv_link()}</p>'
                f'<div class="compnb-table-scroll">{body}</div></div>')

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return f"{self.caption}\n{self.style.data.to_string()}"


def styled(table: pd.DataFrame, *, caption: str, precision: int = 3, formats: dict | str | None = None,
           hide_index: bool = True, key: list[str] | tuple[str, ...] = (), source: str | None = None,
           anchors: str | None = None) -> BookTable:
    """A table for the book: a caption above it (plain text, HTML-escaped; every table has one), `precision`
    decimals for floats (`formats`, one format string or a column → format dict, overrides), padded cells,
    blanks for missing values, no index unless asked; `key` columns moved right after the first one; `source`
    the function that computed it (default: found in the calling notebook cell, `table_source`); `anchors`, a
    prefix that makes each first-column cell a link target `#<prefix><its text>`."""
    missing = [c for c in key if c not in table.columns]
    if missing:
        raise ValueError(f"key columns {missing} are not in the table; its columns: {list(table.columns)}")
    if key:
        first = [table.columns[0]] if table.columns[0] not in key else []
        table = table[first + list(key) + [c for c in table.columns if c not in key and c not in first]]
    source = source or table_source(inspect.currentframe().f_back)
    book = captioned(table.style.format(formats, precision=precision, na_rep=""), caption, hide_index, source, anchors)
    return dataclasses.replace(book, key_columns=1 + len([c for c in key if c != table.columns[0]]))


def captioned(style: Styler, caption: str, hide_index: bool = True, source: str | None = None,
              anchors: str | None = None) -> BookTable:
    """Finish a formatted pandas Styler for the book: padded cells, the caption above the table."""
    if not caption.strip():
        raise ValueError("every table in the book needs a caption; got an empty one")
    style = style.set_table_styles(CELL_PADDING)
    return BookTable(style.hide() if hide_index else style, caption.strip(), source, anchors)


def show_each(tables: list[BookTable]) -> None:
    """Display several book tables from one cell, each with its own caption (a wide comparison split into
    parts that fit the page)."""
    from IPython.display import display

    for table in tables:
        display(table)


def table_source(frame: FrameType | None) -> str | None:
    """The first `module.function(...)` call in the calling code (a notebook cell, or a function) whose
    module is a `compnb` module other than those that only format or write (`NOT_A_SOURCE`), as
    'compnb.x.function'; None when there is none or the source is not available."""
    if frame is None:
        return None
    try:
        tree = ast.parse(inspect.getsource(frame.f_code) if frame.f_code.co_name != "<module>"
                         else "".join(inspect.getsourcelines(frame.f_code)[0]))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    calls = sorted((node.lineno, node.col_offset, node.func) for node in ast.walk(tree)
                   if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                   and isinstance(node.func.value, ast.Name))
    for _, _, func in calls:
        module = frame.f_globals.get(func.value.id) or frame.f_locals.get(func.value.id)
        if isinstance(module, ModuleType) and module.__name__.startswith("compnb") and module.__name__ not in NOT_A_SOURCE:
            return f"{module.__name__}.{func.attr}"
    if frame.f_code.co_name != "<module>":  # called from a library function: that function made the table
        module = inspect.getmodule(frame)
        if module is not None and module.__name__.startswith("compnb"):
            return f"{module.__name__}.{frame.f_code.co_name}"
    return None
