"""Finishing executed chapters for the book, the effective book config, and the results-at-a-glance blocks."""

from __future__ import annotations

import nbformat
import pandas as pd
import yaml

from compnb import bookbuild
from compnb.chapters import glance


def _notebook() -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_markdown_cell("# Title"),
             nbformat.v4.new_code_cell('profile = "full"      # which profile\nlam = None            # extra λ',
                                       metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell('# Parameters\nprofile = "smoke"\nlam = 0.3\nworkers = 2\n',
                                       metadata={"tags": ["injected-parameters"]}),
             nbformat.v4.new_code_cell("plot()", metadata={"mystnb": {"figure": {"caption": "A caption\nover two lines.\n",
                                                                                   "name": "fig-x"}}})]
    cells[3].outputs = [nbformat.v4.new_output("display_data", {"application/vnd.jupyter.widget-view+json": {},
                                                                "text/plain": "0%|"}),
                        nbformat.v4.new_output("display_data", {"image/png": "iVBOR"})]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["widgets"] = {"state": {}}
    return nb


def test_one_parameters_cell_shows_the_values_that_ran_with_their_comments():
    nb = _notebook()
    bookbuild.finish(nb)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert params[0].source.splitlines() == ['profile = "smoke"      # which profile', "lam = 0.3            # extra λ",
                                             "workers = 2"]


def test_progress_widgets_are_dropped_and_figures_get_their_caption_as_alt_text():
    nb = _notebook()
    bookbuild.finish(nb)
    figure = nb.cells[-1]
    assert [list(o["data"]) for o in figure.outputs] == [["image/png"]] and "widgets" not in nb.metadata
    assert figure.metadata["mystnb"]["image"]["alt"] == "A caption over two lines."


def test_buttons_follow_the_one_repository_setting(tmp_path, monkeypatch):
    source = tmp_path / "_config.yml"
    source.write_text(yaml.safe_dump({"title": "t", "repository": {"url": ""}, "html": {}}))
    monkeypatch.delenv(bookbuild.REPOSITORY_ENV, raising=False)
    off = yaml.safe_load(bookbuild.effective_config(source, tmp_path / "off.yml").read_text())
    assert off["html"]["use_repository_button"] is False and "repository" not in off
    assert not off["launch_buttons"]["binderhub_url"] and not off["launch_buttons"]["colab_url"]
    monkeypatch.setenv(bookbuild.REPOSITORY_ENV, "https://github.com/someone/compnb")
    on = yaml.safe_load(bookbuild.effective_config(source, tmp_path / "on.yml").read_text())
    assert on["repository"]["url"] == "https://github.com/someone/compnb" and on["html"]["use_repository_button"]
    assert on["launch_buttons"]["colab_url"]


LEDGER = pd.DataFrame([
    {"id": "P1-a", "paper": 1, "claim": "A rises", "paper's value": "0.5 (Table 1)", "ours": "0.6 [0.5, 0.7]",
     "scope": "tiny · 1 epoch · seeds 1–3", "verdict": "reproduced", "why": "inside", "borderline": "",
     "chapter": "03-modified-loss", "group": "claim"},
    {"id": "P1-b", "paper": 1, "claim": "B <falls>", "paper's value": "0.4", "ours": "0.41", "scope": "tiny",
     "verdict": "inconclusive", "why": "neither test rejects", "borderline": "p near α", "chapter": "03-modified-loss",
     "group": "claim"},
    {"id": "P1-c", "paper": 1, "claim": "The loss does its job", "paper's value": "its aim", "ours": "9 of 9",
     "scope": "tiny · selection seed alone", "verdict": "reproduced", "why": "", "borderline": "",
     "chapter": "03-modified-loss", "group": "sanity check"},
    {"id": "P1-d", "paper": 1, "claim": "D without the leak", "paper's value": "—", "ours": "+0.01", "scope": "tiny",
     "verdict": "contradicted", "why": "the opposite test rejects", "borderline": "", "chapter": "03-modified-loss",
     "group": "beyond the paper"},
    {"id": "P2-a", "paper": 2, "claim": "C", "paper's value": "89%", "ours": "78%", "scope": "tiny",
     "verdict": "not testable here", "why": "other backbone", "borderline": "", "chapter": "04-adversarial-eval",
     "group": "claim"}])


def test_a_chapter_glance_links_each_verdict_to_its_ledger_row_and_flags_borderline_ones():
    block = glance.chapter(LEDGER, "03-modified-loss")
    assert block.startswith("```{raw} html") and "1 reproduced, 1 inconclusive (1 borderline)" in block
    assert 'href="06-claims-ledger.html#claim-P1-b"' in block and "⚑ borderline" in block
    assert "B &lt;falls&gt;" in block and "P2-a" not in block and "seeds 1–3" in block  # the scope beside ours
    claims_part, sanity_part = block.split("Sanity checks")
    assert "P1-c" in sanity_part and "P1-c" not in claims_part  # the method's own aim, shown apart
    assert "P1-d" in claims_part  # beyond the paper: shown, not counted
    assert glance.chapter(LEDGER, "01-artifact-mining") == ""


def test_the_landing_glance_shows_tested_claims_per_paper_and_why_the_rest_are_not_comparable():
    block = glance.landing(LEDGER, {"backbone": "tiny", "parameters": 22_000_000, "snli_rows": 15_000,
                                    "snli_share": 15_000 / 550_152})
    assert "chapters/06-claims-ledger.html#claim-P1-a" in block and "claim-P2-a" not in block  # untestable: counted
    assert "1 not testable here" in block and "22 M parameters" in block and "about 3% of the corpus" in block


def test_the_bottom_line_counts_the_papers_own_claims_in_at_most_three_sentences():
    line = glance.bottom_line(LEDGER, 1)
    assert line.startswith("Of 2 claims, 2 could be tested here: 1 reproduced, 0 contradicted, 1 inconclusive")
    assert "Reproduced: A rises." in line and "does its job" not in line and "leak" not in line
    assert len(line.split(". ")) <= 3
    assert "<strong>Paper 2" in glance.bottom_lines(LEDGER)


def test_claims_listed_in_one_sentence_lower_only_ordinary_first_words():
    rows = pd.DataFrame({"claim": ["The gradient loss helps.", "SST-2's share is high", "On negation it fails",
                                   "IG-variance training is slower"]})
    assert glance._listed(rows, most=4) == ("The gradient loss helps; SST-2's share is high; on negation it fails; "
                                            "IG-variance training is slower")
