"""compnb.paper_numbers: the CSV against the papers' text, the lookup API, and chapters citing rather than retyping."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from compnb import paper_numbers as pn
from compnb.losses import FORMS, METHODS

PAPERS = Path(__file__).parents[2] / "shared" / "papers"
ROOT = Path(__file__).parents[1]
FILE_PREFIX = {1: "000", 2: "002", 3: "004"}
# Sources printed as tables; every other source is a number in running text.
TABLES = {(1, "Table 1"), (1, "Table 2"), (1, "Table 3"), (1, "Table 4"), (2, "§5.8"), (3, "Table 1")}


def paper_text(paper: int) -> str:
    files = sorted(PAPERS.glob(f"{FILE_PREFIX[paper]}_*.txt"))
    if not files:
        pytest.skip(f"paper {paper}'s text extraction is not in {PAPERS}")
    return files[0].read_text(encoding="utf-8")


def clean_label(label: str) -> str:
    """A printed row/column label without HTML bold or LaTeX: 'Loss( $\\lambda = 0.5$ )' → 'Loss (λ = 0.5)'."""
    label = re.sub(r"</?b>", "", label)
    label = re.sub(r"\$\s*\\lambda\s*=\s*([\d.]+)\s*\$", r"λ = \1", label)
    label = re.sub(r"\s*\(\s*", " (", re.sub(r"\s*\)", ")", label))
    return " ".join(label.split())


def csv_cells(paper: int, source: str) -> dict[tuple[str, str], str]:
    t = pn.table()
    part = t[(t["paper"] == paper) & (t["source"] == source)]
    return {(r, c): v for r, c, v in zip(part["row"], part["column"], part["value"])}


def markdown_table(text: str, caption: str) -> dict[tuple[str, str], str]:
    """The Markdown table under `caption`, as {(row label, column label): cell}, empty cells as ''."""
    after = text.split(caption, 1)[1]
    lines = [l for l in after.split("\n\n", 2)[1].splitlines() if l.startswith("|")]
    header = [clean_label(c) for c in lines[0].strip("|").split("|")]
    cells = {}
    for line in lines[2:]:  # lines[1] is the |--|---| rule
        row = [c.strip() for c in line.strip("|").split("|")]
        assert len(row) == len(header), line
        cells.update({(clean_label(row[0]), col): v for col, v in zip(header[1:], row[1:])})
    return cells


def tab_table(text: str, header: str) -> list[list[str]]:
    """The tab-separated table whose header line is `header`: its lines, split on tabs."""
    block = text.split(header + "\n", 1)[1].split("\n\n", 1)[0]
    return [line.split("\t") for line in block.splitlines()]


@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_paper1_tables_match_the_text_cell_for_cell(number):
    printed = markdown_table(paper_text(1), f"Table {number}:")
    assert printed and csv_cells(1, f"Table {number}") == printed


def test_paper3_table1_matches_the_text():
    rows = tab_table(paper_text(3), "Metric\tBaseline\tIG Variance")
    printed = {(metric, col): re.sub(r"</?b>", "", cell)
               for metric, *cells in rows for col, cell in zip(("Baseline", "IG Variance"), cells)}
    assert len(printed) == 6 and csv_cells(3, "Table 1") == printed


def test_paper2_overall_table_reads_wrapped_digits_into_the_baseline_cell():
    """§5.8's extraction reads e.g. 'Samples/Sec<TAB>68.16<TAB>1 54.043': a lone digit after the tab is the
    baseline cell's wrapped last digit (68.161); without one, the two numbers are the two cells."""
    printed = {}
    for metric, rest in (line if len(line) == 2 else [line[0], " ".join(line[1:])]
                         for line in tab_table(paper_text(2), "Metric\tBaseline Model\tFine-Tuned Model")):
        tokens = rest.split()
        base, tuned = (tokens[0] + tokens[1], tokens[2]) if len(tokens) == 3 else tokens
        printed.update({(metric, "Baseline Model"): base, (metric, "Fine-Tuned Model"): tuned})
    assert len(printed) == 8 and csv_cells(2, "§5.8") == printed


def section(text: str, source: str) -> str:
    """The text of 'Abstract' or '§2.4' up to the next heading, whitespace collapsed, stray line numbers dropped."""
    name = "Abstract" if source == "Abstract" else re.escape(source.removeprefix("§")) + r"\**\s"
    start = re.search(rf"^#+\s*\**\s*{name}", text, re.M)
    assert start, f"no heading for {source}"
    body = text[start.end():]
    end = re.search(r"^#", body, re.M)
    body = body[:end.start()] if end else body
    body = re.sub(r"^\d{3}$", "", body, flags=re.M)  # paper 2's margin line numbers
    return " ".join(body.split())


def test_every_number_in_running_text_is_printed_in_its_section():
    t = pn.table()
    prose = t[[(p, s) not in TABLES for p, s in zip(t["paper"], t["source"])]]
    assert set(prose["paper"]) == {1, 2, 3}
    missing = []
    for (paper, source), part in prose.groupby(["paper", "source"], sort=False):
        body = section(paper_text(paper), source)
        missing += [f"paper {paper} {source}: {v!r}" for v in part["value"]
                    if not re.search(rf"(?<![\d.,]){re.escape(v)}(?![\d]|[.,]\d)", body)]
    assert not missing


# --------------------------------------------------------------------------- the CSV itself and the API


def test_csv_keys_are_unique_and_loss_rows_use_the_library_names():
    t = pn.table()
    assert not t.duplicated(["paper", "source", "row", "column"]).any()
    loss = t[t["method"] != ""]
    assert set(loss["method"]) <= set(METHODS) and set(loss["form"]) <= set(FORMS)
    assert set(loss["lam"]) == {0.1, 0.5, 1.0}
    assert t.loc[t["value"] == "", "source"].isin(["Table 1", "Table 3"]).all()
    assert t["number"].isna().sum() == (t["value"] == "").sum()


def test_table_returns_a_copy_with_printed_strings_and_numbers():
    t = pn.table()
    t.loc[:, "value"] = "x"
    t = pn.table()
    row = t[(t["paper"] == 2) & (t["source"] == "§2") & (t["column"] == "Accuracy")].iloc[0]
    assert row["value"] == "89.89%" and row["number"] == 89.89 and row["unit"] == "percent"
    assert t["number"].dtype == float and t["lam"].dtype == float


def test_value_printed_and_cite():
    assert pn.value(1, "Table 1", "Baseline", "SST2 Accuracy") == 0.937
    assert pn.printed(1, "Table 1", "Mask Exponential Subtract Loss (λ = 1)", "SST2 Accuracy") == "0.75"
    assert pn.printed(1, "Table 1", "Gradient Exponential Subtract Loss (λ = 0.5)", "SST2 Accuracy") == "0.670"
    assert pn.printed(1, "Table 1", "Gradient Inverse Loss (λ = 0.1)", "SNLI F1") == ""
    assert pn.value(2, "§2.4", "Baseline", "Accuracy") == 53.35
    assert pn.value(2, "§3.1", "SNLI", "Labeled pairs") == 570000
    assert pn.value(3, "§2.4", "Training", "Learning rate") == pytest.approx(5e-5)
    assert pn.value(3, "Table 1", "Runtime (s)", "IG Variance") == 70.7104
    assert pn.cite(1, "Table 1", "Baseline", "SST2 Accuracy") == "0.937 (paper 1, Table 1)"
    assert pn.cite(2, "§2", "Baseline", "Accuracy") == "89.89% (paper 2, §2)"


@pytest.mark.parametrize("source, shape", [("Table 1", (19, 4)), ("Table 2", (10, 2)), ("Table 3", (19, 4)),
                                           ("Table 4", (10, 2))])
def test_grid_has_the_printed_shape(source, shape):
    g = pn.grid(1, source)
    assert g.shape == shape
    assert g.index.names == ["row", "method", "form", "lam"]
    assert g.index.get_level_values("row")[0] == "Baseline"
    assert all(dtype == float for dtype in g.dtypes)


def test_grid_values_empty_cells_and_unit_filter():
    g = pn.grid(1, "Table 1").droplevel(["method", "form", "lam"])
    assert list(g.columns) == ["SNLI F1", "SST2 F1", "SNLI Accuracy", "SST2 Accuracy"]
    assert g.loc["Baseline", "SST2 Accuracy"] == 0.937
    assert math.isnan(g.loc["Gradient Inverse Loss (λ = 0.1)", "SNLI F1"])
    keyed = pn.grid(1, "Table 1").reset_index().set_index(["method", "form", "lam"])
    assert keyed.loc[("gradient", "subtract", 0.1), "SST2 Accuracy"] == 0.948
    seconds = pn.grid(3, "Table 1", unit="seconds")
    assert seconds.shape == (1, 2) and seconds.iloc[0].tolist() == [17.9134, 70.7104]


def test_loss_table_is_long_and_joins_on_the_configuration():
    long = pn.loss_table(1, "Table 3")
    assert len(long) == 76 and not long.duplicated(["dataset", "metric", "method", "form", "lam"]).any()
    base = long[long["method"] == "baseline"]
    assert set(base["form"]) == {"baseline"} and base["lam"].isna().all()
    assert set(long["trained_on"]) == {"sst2", "snli"} and set(long["metric"]) == {"accuracy", "f1"}
    ours = pd.DataFrame({"dataset": ["adv-SST2"], "metric": ["accuracy"], "method": ["gradient"],
                         "form": ["subtract"], "lam": [0.1], "ours": [0.6]})
    joined = ours.merge(long, on=["dataset", "metric", "method", "form", "lam"])
    assert joined["value"].tolist() == [0.527]
    with pytest.raises(ValueError, match="not a table of loss configurations"):
        pn.loss_table(2, "§2")


@pytest.mark.parametrize("key, bad, allowed", [
    ((4, "Table 1", "Baseline", "SST2 F1"), "4", "1"),
    ((1, "Table 5", "Baseline", "SST2 F1"), "'Table 5'", "'Table 4'"),
    ((1, "Table 1", "Gradient Subtract Loss (λ = 0.2)", "SST2 F1"), "λ = 0.2", "'Gradient Subtract Loss (λ = 0.1)'"),
    ((1, "Table 2", "Baseline", "SNLI F1"), "'SNLI F1'", "'SST2 Accuracy'"),
])
def test_unknown_keys_raise_a_key_error_naming_the_key_and_the_allowed_ones(key, bad, allowed):
    with pytest.raises(KeyError) as info:
        pn.value(*key)
    assert bad in str(info.value) and "allowed" in str(info.value) and allowed in str(info.value)


def test_empty_cells_raise_value_error():
    with pytest.raises(ValueError, match="empty"):
        pn.value(1, "Table 1", "Gradient Inverse Loss (λ = 0.1)", "SNLI F1")
    with pytest.raises(ValueError, match="empty"):
        pn.cite(1, "Table 3", "Mask Inverse Loss (λ = 1)", "MNLI Accuracy")
    with pytest.raises(KeyError):
        pn.grid(1, "Table 1", unit="seconds")


# --------------------------------------------------------------------------- chapters cite, not retype


def significant_digits(printed: str) -> int:
    """Significant digits of a plain printed number: '0.937' → 3, '6.50%' → 3, '570,000' → 2, '0.5' → 1."""
    core = printed.removesuffix("%").replace(",", "")
    digits = core.replace(".", "").lstrip("0") if "." in core else core.strip("0")
    return len(digits)


def paper_number_literals(paths: list[Path], root: Path = ROOT) -> list[str]:
    """'file:line:value' (file relative to `root`) for every standalone literal in `paths` equal to a printed
    paper number with at least 3 significant digits ('0.937'; '53.35' for '53.35%'); a longer number that
    contains it ('10.9370', '0.9371') does not count."""
    values = {v for v in pn.table()["value"] if re.fullmatch(r"\d[\d,]*(\.\d+)?%?", v) and significant_digits(v) >= 3}
    cores = sorted({v.removesuffix("%") for v in values}, key=len, reverse=True)
    pattern = re.compile(r"(?<![\d.,])(" + "|".join(map(re.escape, cores)) + r")(?![\d]|[.,]\d)")
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found += [f"{path.relative_to(root)}:{number}:{m[1]}" for m in pattern.finditer(line)]
    return found


def test_significant_digits():
    assert [significant_digits(v) for v in ("0.937", "6.50%", "570,000", "0.5", "20", "17.9134")] == [3, 3, 2, 1, 1, 6]


def test_scanner_finds_standalone_literals_only(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("OPT reaches 0.937 here\nnot 10.9370 nor 0.9371 nor 0.5\n53.35% and 0.8963.\n")
    assert paper_number_literals([page], root=tmp_path) == ["page.md:1:0.937", "page.md:3:53.35",
                                                             "page.md:3:0.8963"]


def test_chapters_cite_paper_numbers_instead_of_typing_them():
    paths = sorted((ROOT / "notebooks").glob("*.md")) + sorted(p for p in (ROOT / "src" / "compnb").rglob("*.py")
                                                         if p.name != "paper_numbers.py")  # the reader, its examples
    assert not paper_number_literals(paths)
