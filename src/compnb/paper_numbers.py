"""Every number the three papers print, read from `paper_numbers.csv`, so chapters cite them instead of retyping.

The CSV holds one row per printed number, or per table cell the paper left empty: `paper` (1, 2 or 3), `source`
("Table 1", "§2.4", "Abstract"), `backbone`, `dataset`, the `row` and `column` labels as printed (LaTeX cleaned,
so "λ = 0.1"), paper 1's loss configuration (`method` gradient | mask, `form` exp_subtract | inverse | subtract,
`lam`; empty for baselines and non-loss rows), `value` exactly as printed ("0.670", "89.89%", "570,000"; empty
for an empty cell), its `unit` (accuracy, f1, loss, percent, seconds, ...) and a `note` where reading the number
took judgement. A number is addressed by (paper, source, row, column), which is unique.
"""

from __future__ import annotations

import io
import re
from functools import lru_cache
from importlib import resources

import pandas as pd

_CSV = "paper_numbers.csv"
# Paper 1's evaluation sets → the training set (the library's dataset key) of the model evaluated on them.
_TRAINED_ON = {"SST-2": "sst2", "adv-SST2": "sst2", "SNLI": "snli", "adv-MNLI": "snli"}


def _number(printed: str) -> float:
    """The printed number as a float, units kept: '0.937' → 0.937, '89.89%' → 89.89, '570,000' → 570000.0,
    '5 \\times 10^{-5}' → 5e-05; '' (an empty cell) → NaN."""
    if not printed:
        return float("nan")
    power = re.fullmatch(r"(\S+)\s*\\times\s*10\^\{(-?\d+)\}", printed)
    if power:
        return float(power[1]) * 10.0 ** int(power[2])
    return float(printed.removesuffix("%").replace(",", ""))


@lru_cache(maxsize=1)
def _load() -> pd.DataFrame:
    text = resources.files("compnb").joinpath(_CSV).read_text(encoding="utf-8")
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    frame["paper"] = frame["paper"].astype(int)
    frame["lam"] = pd.to_numeric(frame["lam"].replace("", None)).astype(float)
    frame["number"] = frame["value"].map(_number).astype(float)
    return frame


def table() -> pd.DataFrame:
    """The whole CSV in paper order, one row per number: `value` the printed string (str, '' for an empty
    cell), `number` its float (percent stays percent: '89.89%' → 89.89; NaN when empty), `lam` float (NaN when
    not a loss row), `paper` int, the other columns str. A fresh copy on every call."""
    return _load().copy()


def _allowed(values: pd.Series) -> str:
    return ", ".join(repr(v) for v in dict.fromkeys(values))


def _rows(paper: int, source: str) -> pd.DataFrame:
    """The rows of one paper's table or section; KeyError naming the bad key and the allowed ones."""
    frame = _load()
    part = frame[frame["paper"] == paper]
    if part.empty:
        raise KeyError(f"no paper {paper!r}; allowed: {_allowed(frame['paper'])}")
    rows = part[part["source"] == source]
    if rows.empty:
        raise KeyError(f"paper {paper} has no source {source!r}; allowed: {_allowed(part['source'])}")
    return rows


def _cell(paper: int, source: str, row: str, column: str) -> pd.Series:
    rows = _rows(paper, source)
    cells = rows[rows["row"] == row]
    if cells.empty:
        raise KeyError(f"paper {paper}, {source} has no row {row!r}; allowed: {_allowed(rows['row'])}")
    cell = cells[cells["column"] == column]
    if cell.empty:
        raise KeyError(f"paper {paper}, {source}, row {row!r} has no column {column!r}; "
                       f"allowed: {_allowed(cells['column'])}")
    return cell.iloc[0]


def _filled(paper: int, source: str, row: str, column: str) -> pd.Series:
    cell = _cell(paper, source, row, column)
    if not cell["value"]:
        raise ValueError(f"paper {paper}, {source} leaves row {row!r}, column {column!r} empty")
    return cell


def printed(paper: int, source: str, row: str, column: str) -> str:
    """The number exactly as the paper prints it ('0.670', '89.89%'); '' where the paper left the cell empty."""
    return _cell(paper, source, row, column)["value"]


def value(paper: int, source: str, row: str, column: str) -> float:
    """The number as a float in its printed unit ('89.89%' → 89.89); ValueError where the paper left the cell
    empty, KeyError for an unknown paper, source, row or column."""
    return float(_filled(paper, source, row, column)["number"])


def cite(paper: int, source: str, row: str, column: str) -> str:
    """The printed number with where it is printed, for prose: '0.937 (paper 1, Table 1)'; ValueError for an
    empty cell."""
    return f"{_filled(paper, source, row, column)['value']} (paper {paper}, {source})"


def grid(paper: int, source: str, unit: str | None = None) -> pd.DataFrame:
    """A table or section in its printed shape: one row per row label in paper order, one float column per
    column label (NaN where empty); Table 1 of paper 1 is 19 × 4. The index is (row, method, form, lam) so
    `reset_index()` joins on paper 1's loss configuration (baselines and non-loss rows: method and form '', lam
    NaN); `droplevel(["method", "form", "lam"])` leaves the row labels. `unit` keeps only numbers of that unit."""
    rows = _rows(paper, source)
    if unit is not None:
        kept = rows[rows["unit"] == unit]
        if kept.empty:
            raise KeyError(f"paper {paper}, {source} has no unit {unit!r}; allowed: {_allowed(rows['unit'])}")
        rows = kept
    labels = list(dict.fromkeys(rows["row"]))
    wide = rows.pivot(index="row", columns="column", values="number").reindex(
        index=labels, columns=list(dict.fromkeys(rows["column"])))
    keys = rows.drop_duplicates("row").set_index("row").loc[labels, ["method", "form", "lam"]].reset_index()
    wide.index = pd.MultiIndex.from_frame(keys)
    wide.columns.name = None
    return wide


def loss_table(paper: int = 1, source: str = "Table 1") -> pd.DataFrame:
    """A loss table in long format, one row per cell in paper order: backbone, dataset (as printed, e.g.
    'adv-MNLI'), trained_on (the evaluated model's training set, library key 'sst2' | 'snli'), metric
    ('accuracy' | 'f1'), method, form ('baseline' for the baseline row), lam (float, NaN for the baseline),
    value (float, NaN where empty) and printed (str). Keys (dataset, metric, method, form, lam) are unique."""
    rows = _rows(paper, source)
    if not rows["method"].any():
        raise ValueError(f"paper {paper}, {source} is not a table of loss configurations")
    out = pd.DataFrame({
        "backbone": rows["backbone"], "dataset": rows["dataset"], "trained_on": rows["dataset"].map(_TRAINED_ON),
        "metric": rows["unit"], "method": rows["method"].replace("", "baseline"),
        "form": rows["form"].replace("", "baseline"), "lam": rows["lam"], "value": rows["number"],
        "printed": rows["value"]})
    return out.reset_index(drop=True)
