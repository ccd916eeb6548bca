"""Chapter 4's readings follow its results and its settings: the number of seeds, the leak at equal size, the
per-pair sign tests, the baseline's neutral pattern, the two runs of the attack fix, the earlier chapters' recipes
and adv-SST2 against chance; each reading's wording turns with the numbers."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from compnb.chapters import adversarial_report

MATCHED = adversarial_report.MATCHED
LEAK, EQUAL = "leaky − retrained (the leak)", f"{MATCHED} − retrained (the leak at equal size)"


def _gains(leak: tuple[float, str], equal: tuple[float, str], seeds: int = 3) -> pd.DataFrame:
    rows = [{"set": name, "difference": label, "Δ accuracy": delta, "95% CI": ci, "p (paired t)": 0.04, "seeds": seeds}
            for name in ("clean", "attacked") for label, (delta, ci) in ((LEAK, leak), (EQUAL, equal))]
    return pd.DataFrame(rows)


def test_leak_reading_states_what_is_left_at_equal_size_without_crediting_size_alone():
    text = adversarial_report.leak_reading(_gains((0.017, "[+0.013, +0.021]"), (-0.002, "[-0.009, +0.005]")),
                                           {"leaky": 1.0, MATCHED: 0.49})
    assert "not measurably different from the leak-free one." in text and "larger training set" not in text
    assert "of the leak as first measured" not in text  # a negative mean keeps no share of the leak
    assert ("The leaky model's training data held the attacked copies of 100% of the evaluation pairs, the "
            f"{MATCHED} model's of 49%: the matched arm differs from the leaky one in the leaked share as well as in "
            "size") in text
    assert "Three seeds give the paired t-test two degrees of freedom" in text and "± 4.30" in text
    assert "coarse" in text
    # an unresolved equal-size difference that keeps most of the leak's mean is not said to 'remain'
    kept = adversarial_report.leak_reading(_gains((0.02, "[+0.010, +0.030]"), (0.015, "[-0.002, +0.032]")))
    assert "not measurably different from the leak-free one, its mean difference is 75% of the leak" in kept
    assert "remain" not in kept


def test_leak_reading_with_eight_seeds_mixed_seeds_and_none_recorded():
    text = adversarial_report.leak_reading(_gains((0.02, "[+0.010, +0.030]"), (0.015, "[+0.005, +0.025]"), seeds=8))
    assert "at equal size the leaky model is better than the leak-free one" in text
    assert "its mean difference is 75% of the leak as first measured" in text
    assert "Eight seeds give the paired t-test seven degrees of freedom" in text and "coarse" not in text
    unresolved = adversarial_report.leak_reading(_gains((0.01, "[-0.010, +0.030]"), (-0.01, "[-0.030, -0.002]")))
    assert "worse than the leak-free one" in unresolved and "not resolved from 0 there either" in unresolved
    mixed = _gains((0.02, "[+0.010, +0.030]"), (0.015, "[+0.005, +0.025]"), seeds=8)
    mixed.loc[0, "seeds"] = 3
    assert "At least three seeds give the paired t-test at least two degrees of freedom" in \
        adversarial_report.leak_reading(mixed) and "± at most 4.30" in adversarial_report.leak_reading(mixed)
    unknown = adversarial_report.leak_reading(mixed.drop(columns="seeds"))
    assert unknown.endswith("The number of seeds behind these differences is not recorded.")


def test_leaked_shares_are_per_arm_means_over_seeds():
    arms = pd.DataFrame({"arm": ["retrained", "leaky", MATCHED, MATCHED], "from the evaluation half": [0, 10, 4, 6]})
    assert adversarial_report.leaked_shares(arms, 10) == {"leaky": 1.0, MATCHED: 0.5}


def _pairs(rows: list[tuple[str, str, int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "subset": s, "pairs": n, "pairs net fixed": f, "pairs net introduced": i,
                          "pairs tied": n - f - i, "seeds": 3} for m, s, n, f, i in rows])


def test_pairs_reading_counts_leans_and_the_smallest_sign_test_p_of_small_subsets():
    text = adversarial_report.pairs_reading(_pairs([
        ("leak-free", "all", 1003, 74, 49), ("leaky", "all", 1003, 93, 44),
        ("leak-free", "negation", 18, 3, 1), ("leaky", "negation", 18, 4, 0),
        ("leak-free", "long", 109, 13, 4), ("leaky", "long", 109, 15, 4)]))
    assert "every retrained model leans to fixing (more pairs net fixed than net introduced), the leak-free one too" in text
    assert "The negation subset holds 18 distinct pairs, of which at most 4 change on balance" in text
    assert "4 of 4 pairs net fixed give one-sided p = 1/16" in text and "long" not in text
    assert "1,003-pair evaluation half" in text


def test_pairs_reading_names_a_model_that_leans_to_introducing_and_subsets_large_enough_to_test():
    text = adversarial_report.pairs_reading(_pairs([
        ("leak-free", "all", 500, 40, 60), ("leaky", "all", 500, 60, 40), ("leak-free", "long", 100, 9, 3)]))
    assert "the leak-free model leans to introducing; the leaky model leans to fixing" in text
    assert "every retrained model" not in text and "Every subset has enough changed pairs" in text


def _classes(recalls: dict[tuple[str, str], list[tuple[float, float, float]]], pairs: int = 100) -> pd.DataFrame:
    """Per (set, subset), per seed: (recall, precision) of entailment, neutral, contradiction, flattened."""
    rows = []
    for (name, subset), per_seed in recalls.items():
        for seed, values in enumerate(per_seed):
            for c, label in enumerate(adversarial_report.LABELS):
                rows.append({"seed": seed, "set": name, "subset": subset, "pairs": pairs, "model": "baseline",
                             "class": label, "recall": values[2 * c], "precision": values[2 * c + 1]})
    return pd.DataFrame(rows)


def test_neutral_reading_tells_a_neutral_default_from_none_and_counts_seeds():
    no = (0.87, 0.8, 0.65, 0.73, 0.83, 0.8)   # neutral recall lowest, precision above it
    yes = (0.12, 0.7, 0.88, 0.37, 0.44, 0.8)  # neutral recall highest, precision below it
    text = adversarial_report.neutral_reading(_classes({("clean", "all"): [no, no], ("attacked", "all"): [yes, yes],
                                                        ("attacked", "negation"): [yes, no]}))
    assert text.startswith("Our clean baseline does not default to neutral")
    assert "0.65 on average over the seeds (against 0.87 entailment and 0.83 contradiction), is the lowest" in text
    assert "at every seed on attacked all (100 pairs)" in text
    assert "at some seeds on attacked negation (100 pairs, 1 of 2 seeds)" in text
    assert "at no seed on clean all" in text and "calls many pairs neutral at every seed" in text
    flipped = adversarial_report.neutral_reading(_classes({("clean", "all"): [yes], ("attacked", "all"): [no]}, 18))
    assert flipped.startswith("Our clean baseline defaults to neutral") and "is the highest" in flipped
    assert "too few to say much either way" in flipped and "calls many pairs neutral" not in flipped


@pytest.mark.parametrize("seeds, text", [(3, "pool the three seeds"), (8, "counts eight times"),
                                         (2, "counts twice"), (1, "come from one seed")])
def test_pooling_note_follows_the_number_of_seeds(seeds, text):
    assert text in adversarial_report.pooling_note(seeds)


def test_fix_comparison_keeps_each_sides_seeds_and_the_caption_warns_when_they_differ():
    def side(seeds):
        return pd.DataFrame({"set": ["clean"], "difference": [LEAK], "Δ accuracy": [0.02], "95% CI": ["[+0.01, +0.03]"],
                             "p (paired t)": [0.04], "seeds": [seeds]})
    same = adversarial_report.fix_comparison(side(3), side(3))
    assert list(same[["seeds (text attack)", "seeds (token-id attack)"]].iloc[0]) == [3, 3]
    assert "means over 3 seeds, the same on both sides" in adversarial_report.fix_comparison_caption(same)
    ranged = pd.concat([same, same.assign(**{"seeds (text attack)": 8, "seeds (token-id attack)": 8})])
    assert "means over 3–8 seeds, the same on both sides of each row" in \
        adversarial_report.fix_comparison_caption(ranged)  # equal per row, though not across rows
    differ = adversarial_report.fix_comparison_caption(adversarial_report.fix_comparison(side(3), side(8)))
    assert "(means over 3 seeds)" in differ and "(means over 8 seeds)" in differ and "different designs" in differ
    unknown = adversarial_report.fix_comparison(side(3).drop(columns="seeds"), side(8))
    assert "each run's seeds" in adversarial_report.fix_comparison_caption(unknown)
    assert not any(c.startswith("seeds") for c in adversarial_report.fix_comparison_shown(same))
    assert list(adversarial_report.fix_comparison_shown(unknown).columns) == \
        [c for c in unknown if c != "seeds (token-id attack)"]


def test_training_recipes_come_from_the_runs_configurations(tmp_path):
    runs = []
    for i, (chapter, dataset, epochs, examples) in enumerate([("02-baseline-finetune", "sst2", 2, 67349),
                                                              ("03-modified-loss", "sst2", 1, 16000),
                                                              ("03-modified-loss", "sst2", 1, 16000),
                                                              ("03-modified-loss", "snli", 1, 15932)]):
        folder = tmp_path / str(i)
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"dataset": dataset, "epochs": epochs}))
        (folder / "metrics.json").write_text(json.dumps({"train_examples": examples}))
        runs.append((chapter, folder, "label"))
    text = adversarial_report.training_recipes(runs)
    assert "chapter 2 trained SST-2 for 2 epochs on 67,349 examples" in text
    assert "chapter 3 trained SST-2 for 1 epoch on 16,000 examples and SNLI for 1 epoch on 15,932 examples" in text
    assert adversarial_report.training_recipes([]) == ""


def _advglue(accuracy: list[float], high: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"set": "adv_sst2", "accuracy": accuracy, "accuracy high": high})


@pytest.mark.parametrize("accuracy, high, chance, weakness", [
    ([0.3, 0.35], [0.4, 0.45], "2 of 2 models have their whole interval *below* chance", "not noise"),
    ([0.45, 0.55], [0.55, 0.65], "1 of 2 models score below chance (0.5), though no model's", "from noise"),
    ([0.55, 0.6], [0.65, 0.7], "no model scores below chance", "do not show that weakness")])
def test_adv_sst2_sentences_follow_whether_any_model_is_below_chance(accuracy, high, chance, weakness):
    table = _advglue(accuracy, high)
    assert chance in adversarial_report.adv_sst2_chance_sentence(table)
    assert weakness in adversarial_report.shared_weakness_sentence(table)


def _bias(aucs: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"configuration": "ch. 2 · baseline", "seed": range(len(aucs)), "negative": 72,
                         "positive": 76, "accuracy": 0.4, "predicted negative": 0.6, "recall negative": 0.45,
                         "recall positive": 0.3, "ROC AUC": aucs, "clean accuracy": 0.88})


def test_below_chance_heading_and_the_auc_sentence_follow_the_numbers():
    below = adversarial_report.below_chance_sentences(_bias([0.2, 0.3, 0.6]), _advglue([0.3] * 3, [0.45] * 3))
    assert below.startswith("**Why below chance on adv-SST2.**")
    assert "Their scores point the wrong way: the ROC AUC, which ignores the threshold, is 0.20–0.60 and below " \
           "0.5 for 2 of 3 models" in below
    above = adversarial_report.below_chance_sentences(_bias([0.2, 0.6, 0.7]), _advglue([0.48] * 3, [0.6] * 3))
    assert above.startswith("**adv-SST2 against chance.**") and "Why below chance" not in above
    assert "do not point the wrong way for most models" in above and "below 0.5 for 1 of 3 models" in above
