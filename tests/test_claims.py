"""The claims ledger: verdict rules on crafted result files, the papers' numbers read from their data file,
borderline flags, and a chapter without results marked as not run."""

import re

import pandas as pd
import pytest

from compnb import paper_numbers
from compnb.chapters import claims


def _shares(folder, ours):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"dataset": "sst2", "examples": 100, "word types tested": 50, "share (ours)": ours}]).to_csv(
        folder / "shares.csv", index=False)


@pytest.mark.parametrize("ours, verdict", [(0.065, "reproduced"), (0.053, "reproduced"), (0.051, "not reproduced"),
                                           (0.081, "reproduced"), (0.082, "not reproduced")])
def test_an_artifact_share_is_reproduced_within_twenty_percent_of_the_papers(tmp_path, ours, verdict):
    assert paper_numbers.value(1, "§5.1", "SST2", "Share of words that are artifacts") == 6.5
    _shares(tmp_path, ours)
    assert claims._share("sst2", True)(tmp_path).verdict == verdict


def _comparison(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([{"dataset": "snli", "config": c, "seeds": "1, 2, 3", "Δ acc": d, "Δ acc 95% CI": "[.]",
                           "p (acc)": p, "p (acc, Holm)": p} for c, d, p in rows])
    frame.to_csv(folder / "seed_comparison.csv", index=False)


def test_a_loss_improves_only_with_a_positive_holm_significant_difference(tmp_path):
    measure = claims._any_gain("snli", "acc")
    _comparison(tmp_path, [("baseline", 0.0, None), ("a", 0.02, 0.2), ("b", -0.03, 0.01)])
    assert measure(tmp_path).verdict == "not reproduced"  # the significant one is worse
    _comparison(tmp_path, [("baseline", 0.0, None), ("a", 0.02, 0.04), ("b", -0.03, 0.01)])
    assert measure(tmp_path).verdict == "reproduced"
    _comparison(tmp_path, [("baseline", 0.0, None), ("a", 0.02, None)])
    assert "untestable" in measure(tmp_path).value


def test_the_papers_comparable_claim_is_judged_on_its_own_comparison(tmp_path):
    _comparison(tmp_path, [("baseline", 0.0, None), ("gradient · subtract · λ=0.1", 0.004, 0.4)])
    assert claims._no_significant_difference("snli", "gradient · subtract", "acc")(tmp_path).verdict == "reproduced"
    _comparison(tmp_path, [("baseline", 0.0, None), ("gradient · subtract · λ=0.1", 0.03, 0.01)])
    assert claims._no_significant_difference("snli", "gradient · subtract", "acc")(tmp_path).verdict == "not reproduced"


def test_a_verdict_near_alpha_or_with_disagreeing_reruns_is_flagged():
    claim = next(c for c in claims.CLAIMS if c.id == "P1-val-gain-snli")
    assert "f5cb1f1" in claims._borderline(claim, claims.Measured("", "not reproduced", "", 0.8))
    other = next(c for c in claims.CLAIMS if c.id not in claims.HISTORY)
    assert claims._borderline(other, claims.Measured("", "reproduced", "", 0.03)).startswith("p = 0.03")
    assert claims._borderline(other, claims.Measured("", "reproduced", "", 0.001)) == ""
    assert claims._borderline(other, claims.Measured("", "reproduced", "", 0.2)) == ""


def test_every_papers_value_comes_from_the_numbers_file():
    printed = set(paper_numbers.table()["value"].dropna())
    for claim in claims.CLAIMS:
        text = re.sub(r"(Tables?|Fig\.|§)\s*[\d–.]+", "", claim.paper_value().split(" (")[0])  # references
        numbers = re.findall(r"(?<![\w.])\d+(?:\.\d+)?%?(?![\w.])", text)
        assert all(n in printed for n in numbers), (claim.id, text)


def test_chapters_without_results_are_not_run(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "results_dir", lambda profile, chapter: tmp_path / chapter)
    _shares(tmp_path / "01-artifact-mining", 0.065)
    table = claims.ledger("smoke")
    assert len(table) == len(claims.CLAIMS) and table["id"].is_unique
    first = table[table["chapter"] == "01-artifact-mining"]
    assert list(first["verdict"]) == ["reproduced", "not run"]  # SST-2's share; no SNLI row in the file
    rest = table[table["chapter"] != "01-artifact-mining"]
    assert set(rest["verdict"]) == {"not run"}
    assert set(claims.verdict_counts(table).columns) <= {"paper", "borderline", *claims.VERDICTS}


def test_an_absolute_number_is_judged_only_on_the_papers_backbone_at_the_paper_profile(tmp_path):
    import json

    pd.DataFrame([{"dataset": "sst2", "source": "ours, opt-1.3b", "seeds": "0, 1, 2", "accuracy": 0.935,
                   "accuracy 95% CI": "[0.930, 0.940]"}]).to_csv(tmp_path / "accuracy.csv", index=False)
    measure = next(c for c in claims.CLAIMS if c.id == "P1-baseline-sst2").measure
    for model, profile, verdict in (("sentence-transformers/all-MiniLM-L6-v2", "full", "not testable here"),
                                    ("facebook/opt-1.3b", "full", "not testable here"),
                                    ("facebook/opt-1.3b", "paper", "reproduced")):  # the paper's 0.937 is inside
        (tmp_path / "run.json").write_text(json.dumps({"params": {"model": model, "profile": profile}}))
        assert measure(tmp_path).verdict == verdict
    pd.DataFrame([{"dataset": "sst2", "source": "ours, opt-1.3b", "seeds": "0, 1, 2", "accuracy": 0.90,
                   "accuracy 95% CI": "[0.890, 0.910]"}]).to_csv(tmp_path / "accuracy.csv", index=False)
    assert measure(tmp_path).verdict == "not reproduced"


def test_every_earlier_rerun_note_belongs_to_a_claim_of_the_ledger():
    ids = {c.id for c in claims.CLAIMS}
    assert set(claims.HISTORY) <= ids, set(claims.HISTORY) - ids
