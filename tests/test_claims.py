"""The claims ledger: verdict rules on crafted result files, families and their size, scope and family on
every row, the papers' numbers read from their data file, borderline flags, and a chapter without results
marked as not run."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from compnb import paper_numbers
from compnb.chapters import claims, claims_paper1, claims_paper2, glance


@pytest.fixture(scope="module")
def full_ledger():
    """The ledger of the committed full-profile results, computed once for the tests that read it."""
    return claims.ledger("full")


def _shares(folder, ours):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"dataset": "sst2", "examples": 100, "word types tested": 50, "share (ours)": ours}]).to_csv(
        folder / "shares.csv", index=False)


@pytest.mark.parametrize("ours, verdict", [(0.065, "reproduced"), (0.053, "reproduced"), (0.051, "inconclusive"),
                                           (0.081, "reproduced"), (0.082, "inconclusive")])
def test_an_artifact_share_is_reproduced_within_twenty_percent_of_the_papers(tmp_path, ours, verdict):
    assert paper_numbers.value(1, "§5.1", "SST2", "Share of words that are artifacts") == 6.5
    _shares(tmp_path, ours)
    assert claims_paper1._share("sst2", True)(tmp_path).verdict == verdict


def _run(root, name, dataset, seed, epochs=1, rows=1000):
    folder = root / "runs" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model": "org/tiny", "dataset": dataset, "seed": seed,
                                                    "epochs": epochs}))
    (folder / "metrics.json").write_text(json.dumps({"train_examples": rows}))


def _chapter3(root, deltas, *, sst2_f1=True):
    """runs.csv of chapter 3 at seeds 0 (selection) and 1..n: a baseline and gradient · subtract whose
    accuracy differs from the baseline's by `deltas[i]` at confirmation seed i + 1."""
    folder = root / "03-modified-loss"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in range(len(deltas) + 1):
        delta = 0.0 if seed == 0 else deltas[seed - 1]
        for config, shift in (("baseline", 0.0), ("gradient · subtract · λ=0.1", delta)):
            name = f"sst2-{'ce' if config == 'baseline' else 'competency'}-{seed}"
            _run(root, name, "sst2", seed)
            acc = 0.85 + 0.003 * seed + shift
            rows.append({"dataset": "sst2", "config": config, "run": name, "method": "gradient" if shift or config != "baseline" else "—",
                         "form": "subtract", "lam": 0.1, "seed": seed, "accuracy": acc, "macro_f1": acc,
                         "f1_binary": acc, "adv_accuracy": 0.4 + shift, "adv_macro_f1": 0.4 + shift,
                         "adv_f1_binary": 0.4 + shift, "S": "gradient", "H_topk_after": 1.5})
    pd.DataFrame(rows).to_csv(folder / "runs.csv", index=False)
    return folder


def test_comparable_is_judged_by_equivalence_not_by_a_missing_difference(tmp_path):
    measure = claims_paper1.paired("sst2", "gradient · subtract", "accuracy", False, margin="validation")
    # a small difference with a noisy spread: not significant, and not shown to be within ±0.01 either
    m = measure(_chapter3(tmp_path, [-0.012, 0.006, -0.002]))
    e = m.evidence[0]
    assert e.test.startswith("TOST") and e.margin == 0.01
    p, against = claims.verdicts.adjust([e])
    assert claims.verdicts.decide(p, against).verdict == "inconclusive"
    # tight and tiny: equivalent within the margin
    e = measure(_chapter3(tmp_path, [-0.001, 0.0005, 0.0])).evidence[0]
    p, against = claims.verdicts.adjust([e])
    assert claims.verdicts.decide(p, against).verdict == "reproduced"
    assert "seeds 1–3" in m.scope and "tiny" in m.scope and "1,000 sst2 training rows" in m.scope


def test_the_scope_follows_the_seeds_in_the_results(tmp_path):
    measure = claims_paper1.paired("sst2", "gradient · subtract", "accuracy", False, +1)
    m = measure(_chapter3(tmp_path, [0.01, 0.012, 0.011, 0.009, 0.013]))
    assert m.evidence[0].n == 5 and "seeds 1–5" in m.scope


def test_error_subsets_are_judged_over_distinct_pairs_with_ties_dropped(tmp_path):
    pd.DataFrame([{"model": "leaky", "subset": "negation", "pairs": 18, "pairs net fixed": 4,
                   "pairs net introduced": 0, "pairs tied": 14, "p (sign, one-sided)": 0.0625,
                   "p (sign, two-sided)": 0.125, "seeds": 3}]).to_csv(tmp_path / "error_pairs.csv", index=False)
    pd.DataFrame({"seed": [0, 1, 2], "kind": "baseline", "set": "clean", "accuracy": 0.8}).to_csv(
        tmp_path / "scores.csv", index=False)
    (tmp_path / "run.json").write_text(json.dumps({"params": {"runs": ["snli-ce-a"]}}))
    _run(tmp_path.parent, "snli-ce-a", "snli", 0)
    m = claims_paper2.fixed_over_pairs("negation", "leaky")(tmp_path)
    e = m.evidence[0]
    assert (e.n, e.ties, e.unit) == (4, 14, "pairs") and e.p == pytest.approx(0.0625)
    assert "seeds 0–2" in m.scope and "18 negation evaluation pairs are the unit" in m.scope
    p, against = claims.verdicts.adjust([e])
    assert claims.verdicts.decide(p, against).verdict == "inconclusive"  # four pairs cannot reach α


def test_chapters_without_results_are_not_run_and_every_row_has_its_columns(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "results_dir", lambda profile, chapter: tmp_path / chapter)
    _shares(tmp_path / "01-artifact-mining", 0.065)
    table = claims.ledger("smoke")
    assert len(table) == len(claims.CLAIMS) and table["id"].is_unique
    assert list(table.columns) == claims.COLUMNS
    first = table[table["chapter"] == "01-artifact-mining"]
    assert list(first["verdict"]) == ["reproduced", "not run"]  # SST-2's share; no SNLI row in the file
    rest = table[table["chapter"] != "01-artifact-mining"]
    assert set(rest["verdict"]) == {"not run"}
    assert set(claims.verdict_counts(table).columns) <= {"paper", "borderline", *claims.VERDICTS}


def test_every_judged_row_of_the_committed_ledger_names_its_scope_and_family(full_ledger):
    table = full_ledger
    judged = table[table["verdict"].isin(["reproduced", "contradicted", "inconclusive"])]
    assert len(judged) >= 20
    assert (judged["scope"].str.len() > 0).all(), judged[judged["scope"] == ""]["id"].tolist()
    tested = judged[judged["test"] != ""]
    assert (tested["family"].str.contains(r"ch\. \d (?:claims|sanity checks): \d+ tests")).all()
    assert (tested["MDE"] != "").all() and (tested["p adjusted"] != "").all()
    untested = table[table["verdict"].isin(["not testable here", "not run"])]
    assert (untested["why"] != "").all()
    equivalence = table[(table["kind"] == "equivalence") & (table["test"] != "")]
    assert len(equivalence) and equivalence["margin"].str.startswith("±").all()


def test_no_claim_is_reproduced_on_non_significance_or_contradicted_without_a_test(full_ledger):
    table = full_ledger
    for _, row in table[table["verdict"] == "reproduced"].iterrows():
        if row["test"]:
            assert row["p adjusted"] == "< 0.001" or float(row["p adjusted"]) < 0.05, row["id"]
    for _, row in table[table["verdict"] == "contradicted"].iterrows():
        assert row["p opposite adjusted"] == "< 0.001" or float(row["p opposite adjusted"]) < 0.05, row["id"]


def test_family_size_counts_every_test_of_the_chapters_claims_and_sanity_checks_apart(full_ledger):
    table = full_ledger
    tested = table[table["test"] != ""]
    for family, rows in tested.groupby("family"):
        stated = int(re.search(r": (\d+) tests", family).group(1))
        counted = sum(len(p.split("; ")) for p in rows["p"] if p)
        untestable = sum(p.split("; ").count("untestable") for p in rows["p"] if p)
        assert stated == counted - untestable, family
    sanity = table[table["group"] == "sanity check"]
    assert sanity["family"].str.contains("sanity checks").all()
    assert not table[table["group"] != "sanity check"]["family"].str.contains("sanity").any()


def test_a_verdict_near_alpha_or_with_disagreeing_reruns_is_flagged():
    claim = next(c for c in claims.CLAIMS if c.id == "P1-val-gain-snli")
    assert "f5cb1f1" in claims._borderline(claim, 0.8)
    other = next(c for c in claims.CLAIMS if c.id not in claims.HISTORY)
    assert claims._borderline(other, 0.03).startswith("adjusted p = 0.03")
    assert claims._borderline(other, 0.001) == "" and claims._borderline(other, 0.2) == ""


def test_every_papers_value_comes_from_the_numbers_file():
    printed = set(paper_numbers.table()["value"].dropna())
    for claim in claims.CLAIMS:
        text = re.sub(r"(Tables?|Fig\.|§)\s*[\d–.]+", "", claim.paper_value().split(" (")[0])  # references
        numbers = re.findall(r"(?<![\w.])\d+(?:\.\d+)?%?(?![\w.])", text)
        assert all(n in printed for n in numbers), (claim.id, text)


def test_an_absolute_number_is_judged_only_on_the_papers_backbone_at_the_paper_profile(tmp_path):
    values = lambda folder: (np.array([0.936, 0.938, 0.937]), "0.937", "scope")  # noqa: E731
    measure = claims_paper1.absolute(values, "OPT-1.3B", (1, "Table 1", "Baseline", "SST2 Accuracy"))
    for model, profile, verdict in (("sentence-transformers/all-MiniLM-L6-v2", "full", "not testable here"),
                                    ("facebook/opt-1.3b", "full", "not testable here")):
        (tmp_path / "run.json").write_text(json.dumps({"params": {"model": model, "profile": profile}}))
        assert measure(tmp_path).verdict == verdict
    (tmp_path / "run.json").write_text(json.dumps({"params": {"model": "facebook/opt-1.3b", "profile": "paper"}}))
    e = measure(tmp_path).evidence[0]
    assert e.test.startswith("TOST") and e.margin == 0.01  # equivalence to the paper's 0.937, not inclusion


def test_the_removed_and_added_claims():
    ids = {c.id for c in claims.CLAIMS}
    assert "P1-adv-gain-mnli" not in ids  # paper 1 does not claim it (Table 3: most rows below the baseline)
    assert {"P1-low-entropy", "P2-neutral-recall", "P3-length", "P3-every-class", "P1-adv-most-below-mnli"} <= ids
    assert set(claims.HISTORY) <= ids, set(claims.HISTORY) - ids


def test_the_bottom_line_is_at_most_three_sentences_per_paper(full_ledger):
    table = full_ledger
    for paper in (1, 2, 3):
        line = glance.bottom_line(table, paper)
        assert line.startswith("Of ") and 1 <= len(re.findall(r"[.](?=\s|$)", line)) <= 3, line


def test_every_snli_baseline_of_the_book_is_read_from_its_chapter():
    table = claims.snli_baselines("full")
    assert table["chapter"].tolist() == ["2", "3", "4", "5"]
    assert table["accuracy (95% CI over seeds)"].str.match(r"0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]").all()


def test_a_claim_of_unknown_kind_or_an_equivalence_without_margin_is_refused():
    from compnb.chapters.claim_base import Claim

    args = dict(id="X", paper=1, source="§1", claim="c", metric="m", paper_value=lambda: "", chapter="03",
                recipe="r", rule="r", measure=lambda folder: None)
    with pytest.raises(ValueError, match="kind 'vibes'"):
        Claim(kind="vibes", **args)
    with pytest.raises(ValueError, match="needs a margin"):
        Claim(kind="equivalence", **args)
    assert Claim(kind="equivalence", margin="validation", **args).margin == "validation"


def test_an_undefined_measurement_makes_its_claim_not_run_with_the_reason():
    from dataclasses import replace

    def nan_calibration(folder):
        return claims.verdicts.paired_direction([float("nan"), 0.5], [0.4, 0.4], +1)

    claim = replace(next(c for c in claims.CLAIMS if c.id == "P3-calibration"), measure=nan_calibration)
    m = claims._measure(claim, "smoke")
    assert m.verdict == "not run" and "undefined" in m.why and "nan" in m.why


def test_the_ledger_table_holds_each_verdicts_rule_scope_and_test_with_its_anchor(full_ledger):
    shown = full_ledger[full_ledger["group"] != "sanity check"]
    reading = claims.for_reading(shown)
    page = claims.ledger_table(reading, caption="the ledger").to_html()
    assert list(reading.columns) == ["claim", "verdict", "the paper claims", "we found (scope)", "rule and why"]
    for _, row in shown.iterrows():  # the glance boxes link to #claim-<id>
        assert f'<span id="claim-{row["id"]}">' in page, row["id"]
    assert page.count("<strong>rule</strong>") == len(shown) and page.count("<details") == len(shown)
    tested = shown[shown["test"] != ""].iloc[0]
    row = reading[reading["claim"] == tested["id"]].iloc[0]
    assert f"scope: {tested['scope']}" in row["we found (scope)"]
    assert f"rule: {tested['rule']}" in row["rule and why"] and f"test: {tested['test']}" in row["rule and why"]
