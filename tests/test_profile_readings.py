"""Readings that used to be fixed prose and now follow the results and the profile (issue 25 changes the full
profile's seeds, epochs, data and λ grid): chapter 3's recipe, collapse, λ-sensitivity and sharing readings,
and chapter 6's SNLI-baseline and tested-claims readings. Each wording branch is exercised."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from compnb.chapters import claims, competency_report
from compnb.training import TrainConfig


def side_by_side(paper_sst2: dict[str, float], ours_sst2: dict[str, float]) -> pd.DataFrame:
    """A `side_by_side`-shaped table: SST-2 for two backbones (ours beside the first only) and SNLI."""
    configs = list(dict.fromkeys([*paper_sst2, *ours_sst2]))
    columns = {}
    for group, paper, ours in (("SST-2, OPT-1.3B", paper_sst2, ours_sst2), ("SST-2, Llama-2-7B", paper_sst2, {}),
                               ("SNLI, OPT-1.3B", {c: 0.88 for c in configs}, {c: 0.74 for c in configs})):
        columns[(group, "acc", "paper")] = [paper.get(c, np.nan) for c in configs]
        columns[(group, "acc", "ours (all-MiniLM-L6-v2)")] = [ours.get(c, np.nan) for c in configs]
    table = pd.DataFrame(columns, index=configs)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def test_the_collapse_reading_names_the_papers_rows_near_chance_and_ours_beside_them():
    table = side_by_side({"baseline": 0.937, "mask · subtract · λ=1": 0.365, "gradient · inverse · λ=1": 0.86},
                         {"baseline": 0.869, "mask · subtract · λ=1": 0.85, "gradient · inverse · λ=1": 0.87})
    text = competency_report.collapse_reading(table)
    assert "on SST-2 (chance 0.50), mask · subtract · λ=1 (OPT-1.3B 0.365, Llama-2-7B 0.365)" in text
    assert "ours, at the selection seed, 0.850 in the same configuration, against our baseline's 0.869" in text
    assert "gradient · inverse" not in text and "SNLI" not in text  # 0.86 and SNLI's 0.88 are far from chance
    calm = side_by_side({"baseline": 0.937, "x": 0.9}, {"baseline": 0.869, "x": 0.86})
    assert competency_report.collapse_reading(calm).startswith("None of the paper's printed accuracies is below chance + 0.1")


def test_the_recipe_reading_lists_what_differs_from_chapter_2(monkeypatch):
    from compnb import profiles

    text = competency_report.recipe_against_chapter2("smoke")
    assert text.startswith("Chapter 3's recipe differs from chapter 2's in batch size (8 here, 16 in chapter 2)")
    assert "SST-2 training sentences (48 here, 800 in chapter 2)" in text and "epochs" not in text  # both: one
    assert "SNLI training pairs (48 here, 800 in chapter 2)" in text  # one cap for both datasets
    same = dict(profiles.CHAPTER_SETTINGS["02-baseline-finetune"]["smoke"])
    monkeypatch.setitem(profiles.CHAPTER_SETTINGS["03-modified-loss"], "smoke",
                        same | {"lams": (0.5,), "forms": ("subtract",)})
    assert competency_report.recipe_against_chapter2("smoke").startswith("Chapter 3 trains with chapter 2's recipe")


def record(tmp_path, form: str, lam: float, labels: list[int], accuracy: float) -> dict:
    folder = tmp_path / f"{form}-{lam}"
    folder.mkdir()
    probs = np.eye(2)[labels] * 0.8 + 0.1
    np.save(folder / "val_probs.npy", probs)
    config = TrainConfig(model="m", dataset="sst2", loss="competency", seed=0,
                         loss_params={"method": "gradient", "form": form, "lam": lam})
    return {"config": config, "run_dir": folder, "metrics": {"validation": {"accuracy": accuracy}}}


def test_lambda_sensitivity_summarises_every_pair_and_its_reading_follows_it(tmp_path, monkeypatch):
    from compnb import run_integrity

    monkeypatch.setattr(run_integrity, "load_probs", lambda folder: np.load(folder / "val_probs.npy"))
    base = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    flip = lambda n: [1 - y if i < n else y for i, y in enumerate(base)]  # noqa: E731
    records = [record(tmp_path, "inverse", lam, base, 0.8) for lam in (0.1, 1.0, 3.0)]
    records += [record(tmp_path, "subtract", lam, flip(n), 0.8 - n / 100) for lam, n in ((0.1, 0), (1.0, 2), (3.0, 4))]
    table = competency_report.lambda_sensitivity(records)
    inverse, subtract = table.set_index("form").loc["inverse"], table.set_index("form").loc["subtract"]
    assert inverse["same label, mean"] == 1.0 and np.isnan(inverse["ρ(agreement, λ distance)"])  # constant: no ρ
    shares = np.array([0.8, 0.6, 0.8])  # pairs (0.1, 1), (0.1, 3), (1, 3): 2, 4 and 2 labels differ
    assert subtract["same label, mean"] == pytest.approx(shares.mean()) and subtract["lowest at λ"] == "0.1 vs 3"
    distance = np.abs(np.log([1 / 0.1, 3 / 0.1, 3 / 1]))
    assert subtract["ρ(agreement, λ distance)"] == pytest.approx(stats.spearmanr(distance, shares).statistic)
    assert subtract["accuracy range"] == pytest.approx(0.04)
    text = competency_report.sensitivity_reading(table)
    assert "- **sst2, gradient saliency:** mean label agreement across λ pairs: inverse 1.000, subtract 0.733." in text
    assert "has the highest agreement of the forms in 1 of 1 dataset and method pair." in text
    assert "in 1 of the 1 row where λ weighs the entropy against cross-entropy." in text
    assert "of the inverse form" not in text  # its ρ is undefined: every pair agrees fully
    # a λ = 0 column (a reader's extra λ) joins the agreement and |Δp|, not the log-distance ρ
    zero = competency_report.lambda_sensitivity(records + [record(tmp_path, "subtract", 0.0, flip(10), 0.1)])
    row = zero.set_index("form").loc["subtract"]
    assert row["λ pairs"] == 6 and row["same label, lowest"] == 0.0 and row["lowest at λ"] == "0 vs 0.1"
    assert row["ρ(agreement, λ distance)"] == pytest.approx(subtract["ρ(agreement, λ distance)"])
    assert competency_report.sensitivity_reading(pd.DataFrame()).startswith("No form was trained at two")


@pytest.mark.parametrize("settings, expected", [
    ([(5, ["H200"])], "**The sweep's last recorded invocations ran 5 processes on 1 device** (H200), so runs shared"),
    ([(2, ["H200", "H200"])], "ran 2 processes on 2 devices (H200): at most one run per device, so these step times"),
    ([(1, ["H200"]), (5, ["H200"])], "ran 1 process on 1 device or 5 processes on 1 device")])
def test_the_sharing_sentence_reads_the_recorded_workers_and_devices(settings, expected):
    summary = {f"d{i}": {"params": {"workers": w, "devices": d}} for i, (w, d) in enumerate(settings)}
    assert expected in competency_report.sharing_sentence(summary)
    assert "unknown" in competency_report.sharing_sentence({})


def test_snli_recipes_are_read_from_the_profiles():
    assert claims.recipe("02-baseline-finetune", "full") == "2 epochs, batch 32, lr 5e-05, 128 tokens, all training pairs"
    assert claims.recipe("05-ig-variance", "smoke").startswith("up to 1 epoch with early stopping, batch 8")
    assert claims.recipe("03-modified-loss", "smoke").endswith("48 training pairs")


def test_the_baselines_reading_ranks_the_chapters():
    table = pd.DataFrame({"chapter": ["2", "3", "5"], "recipe": ["r2", "r3", "r5"],
                          "accuracy (95% CI over seeds)": ["0.773 [0.771, 0.775]", "0.745 [0.7, 0.8]", "0.803 [0.8, 0.81]"]})
    text = claims.baselines_reading(table.assign(**{"scored on": ["validation", "validation", "test"]}))
    assert text.startswith("Chapter 3's baseline is the weakest (0.745; r3) and chapter 5's the strongest (0.803; r5)")
    assert "The recipes and the splits they are scored on differ, so their levels differ for both reasons" in text
    alike = claims.baselines_reading(table.assign(recipe="r", **{"scored on": "test"}))
    assert alike.endswith("the strongest (0.803; r). Each is compared only with its own paper.")
    tie = table.assign(**{"accuracy (95% CI over seeds)": "0.800 [0.79, 0.81]", "scored on": "test"})
    assert claims.baselines_reading(tie) == "Every chapter's SNLI baseline reaches the same mean accuracy, 0.800."
    assert claims.baselines_reading(table.iloc[:1]).startswith("Fewer than two chapters")


def test_the_tested_reading_counts_only_the_papers_testable_claims():
    ledger = pd.DataFrame({"group": ["claim"] * 4 + ["sanity check"],
                           "verdict": ["reproduced", "inconclusive", "not testable here", "contradicted", "inconclusive"]})
    text = claims.tested_reading(ledger)
    assert text.startswith("Of the 3 claims this book can test, the design decided 2 and left 1 inconclusive.")
    assert "power column" in text and "contradicted rows" in text
    decided = ledger.assign(verdict=["reproduced", "reproduced", "not run", "reproduced", "inconclusive"])
    text = claims.tested_reading(decided)
    assert "left 0 inconclusive" in text and "power column" not in text and "contradicted" not in text
