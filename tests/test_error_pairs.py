"""Chapter 4's per-pair sign test (seeds are replicates of the same evaluation pairs, so each pair counts once)
and its size-matched leaky arm (exactly as many attacked rows as the leak-free arm)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from compnb import adversarial, run_cache
from compnb.chapters import adversarial_eval, adversarial_report



def test_a_pair_fixed_at_every_seed_counts_once_and_ties_are_dropped_and_counted():
    # 3 seeds x 6 pairs. Pair 0: fixed at all 3 seeds (one positive pair, not three). Pair 1: fixed at one
    # seed, introduced at another (sum 0: a tie). Pair 2: introduced at two seeds (negative). Pair 3: fixed
    # once (positive). Pairs 4, 5: never changed (ties).
    fixed = np.zeros((3, 6), bool)
    introduced = np.zeros((3, 6), bool)
    fixed[:, 0] = True
    fixed[0, 1], introduced[2, 1] = True, True
    introduced[0, 2], introduced[1, 2] = True, True
    fixed[1, 3] = True
    out = adversarial.sign_test_pairs(fixed, introduced)
    assert (out["pairs"], out["pairs net fixed"], out["pairs net introduced"], out["pairs tied"], out["seeds"]) == \
        (6, 2, 1, 3, 3)
    assert out["p (sign, one-sided)"] == pytest.approx(stats.binomtest(2, 3, 0.5, alternative="greater").pvalue)
    assert out["p (sign, two-sided)"] == pytest.approx(stats.binomtest(2, 3, 0.5).pvalue)
    assert out["p (sign, one-sided)"] == pytest.approx(0.5)  # P(X >= 2 | n 3) = 4/8


def test_four_of_four_pairs_net_fixed_give_the_exact_sign_test_p():
    fixed = np.zeros((3, 18), bool)
    fixed[:, :4] = True  # 4 distinct pairs fixed at every seed: 12 pair-seeds, but 4 pairs
    out = adversarial.sign_test_pairs(fixed, np.zeros_like(fixed))
    assert out["pairs net fixed"] == 4 and out["pairs tied"] == 14
    assert out["p (sign, one-sided)"] == pytest.approx(1 / 16) and out["p (sign, two-sided)"] == pytest.approx(1 / 8)
    pooled = stats.binomtest(12, 12).pvalue  # the pseudo-replicated test this replaces
    assert pooled < 0.001 < out["p (sign, two-sided)"]


def test_no_changed_pair_gives_no_p_and_a_pair_cannot_be_both():
    out = adversarial.sign_test_pairs(np.zeros((2, 3), bool), np.zeros((2, 3), bool))
    assert out["pairs tied"] == 3 and np.isnan(out["p (sign, one-sided)"])
    with pytest.raises(ValueError, match="both"):
        adversarial.sign_test_pairs(np.ones((1, 2), bool), np.ones((1, 2), bool))


def _record(seed, kind, frame, pred):
    probs = np.eye(3)[pred]
    return {"seed": seed, "kind": kind, "sets": {"clean": frame}, "probs": {"clean": probs}}


def test_error_pairs_over_records_agrees_with_a_hand_count():
    frame = pd.DataFrame({"premise": ["a man", "a dog", "a cat", "two kids"],
                          "hypothesis": ["he is not here", "it runs", "it might sleep", "they play"],
                          "label": [0, 1, 2, 0]})
    y = frame["label"].to_numpy()
    records = []
    for seed in (0, 1, 2):
        base = np.array([1, 1, 2, 0])            # wrong on pair 0 and 1
        after = np.array([0, 1, 2, 0]) if seed < 2 else np.array([0, 1, 1, 1])  # pair 0 fixed; seed 2 breaks 2, 3
        records += [_record(seed, "baseline", frame, base), _record(seed, "leaky", frame, after)]
    table = adversarial_report.error_pairs(records, ["not"], ["might"], 20)
    assert list(table.columns) == list(adversarial_report.ERROR_PAIR_COLUMNS)
    assert set(table["model"]) == {"leaky"}  # the arms not run are left out
    row = table[table["subset"] == "all"].iloc[0]
    # pair 0: +3; pair 1: 0; pairs 2 and 3: -1 each
    assert (row["pairs"], row["pairs net fixed"], row["pairs net introduced"], row["pairs tied"]) == (4, 1, 2, 1)
    assert row["p (sign, one-sided)"] == pytest.approx(stats.binomtest(1, 3, 0.5, alternative="greater").pvalue)
    negation = table[table["subset"] == "negation"].iloc[0]
    assert (negation["pairs"], negation["pairs net fixed"]) == (1, 1)
    assert y.tolist() == [0, 1, 2, 0]
    other = [dict(r, sets={"clean": frame.assign(premise="x")}) if r["seed"] == 1 else r for r in records]
    with pytest.raises(ValueError, match="same pairs"):
        adversarial_report.error_pairs(other, ["not"], ["might"], 20)


def test_balanced_total_draws_exactly_total_as_evenly_as_the_rows_allow():
    labels = np.array([0] * 10 + [1] * 50 + [2] * 50)
    rows, counts = adversarial.balanced_total(labels, 61, 3)
    assert len(rows) == 61 == len(set(rows.tolist())) and counts == {0: 10, 1: 26, 2: 25}
    assert np.bincount(labels[rows]).tolist() == [10, 26, 25]
    again, _ = adversarial.balanced_total(labels, 61, 3)
    assert np.array_equal(rows, again)
    with pytest.raises(ValueError):
        adversarial.balanced_total(labels, 111, 0)


def test_the_matched_arm_has_exactly_the_leak_free_arms_attacked_rows(project, monkeypatch):
    # smoke-sized pool (60 attacked pairs), with a per-class cap larger than either half, as at full: the
    # leak-free draw takes every build-half pair, the leaky one every pair, so the two sizes differ
    rng = np.random.default_rng(1)
    n = 60
    premises = [f"premise {i}" for i in rng.integers(0, 25, size=n)]
    build, held = adversarial.premise_split(premises, 0.5, 0)
    attacked = pd.DataFrame({"premise": premises, "original": [f"h {i} x" for i in range(n)],
                             "hypothesis_display": [f"h {i} [MASK]" for i in range(n)],
                             "label": rng.integers(0, 3, n), "input_ids": [[101, i, 103, 102] for i in range(n)],
                             "token_type_ids": [[0, 1, 1, 1]] * n, "tokenizer": "vocab 30522 f",
                             "half": np.where(np.isin(np.arange(n), held), "evaluation", "build")})
    real = adversarial_eval.settings
    monkeypatch.setattr(adversarial_eval, "settings", lambda ch, profile: {**real(ch, profile), "per_class": 5000})
    path = adversarial_eval.attacked_path("smoke", 0)
    attacked.to_parquet(path)
    sets = adversarial_eval.training_sets("smoke", 0, path)
    leak_free, leaky, matched = (pd.read_parquet(sets[k]) for k in ("retrained", "leaky", adversarial_eval.MATCHED))
    assert len(leak_free) == len(build) and len(leaky) == n and len(leak_free) != len(leaky)
    assert len(matched) == len(leak_free)
    assert set(matched["original"]) <= set(leaky["original"])  # drawn from the leaky rows
    assert np.bincount(matched["label"], minlength=3).max() - np.bincount(matched["label"], minlength=3).min() <= 1
    assert list(matched.columns) == list(leaky.columns)
    meta = adversarial_eval.read_meta(sets[adversarial_eval.MATCHED])
    assert meta["rows"] == len(leak_free) and meta["matched_to"] == sets["retrained"].name
    runs = {run_cache.run_dir(adversarial_eval.config("smoke", 0, extra=adversarial_eval._relative(p))).name
            for p in sets.values()}
    assert len(runs) == 3  # three arms, three runs


def test_pair_outcomes_average_each_pairs_seeds_so_a_pair_counts_once():
    frame = pd.DataFrame({"premise": ["a man", "a dog", "a cat"], "hypothesis": ["he is not here", "it runs", "it naps"],
                          "label": [1, 1, 2]})
    records = []
    for seed, base in ((0, [1, 0, 2]), (1, [1, 1, 2]), (2, [0, 0, 2])):
        records.append(_record(seed, "baseline", frame, np.array(base)))
    table = adversarial_report.pair_outcomes(records, ["not"], ["might"], 20)
    neutral = table[(table["model"] == "baseline") & (table["subset"] == "all") & (table["class"] == "neutral")]
    assert neutral["pair"].tolist() == [0, 1] and neutral["correct share"].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert (neutral["seeds"] == 3).all()
    negation = table[(table["subset"] == "negation")]
    assert negation["pair"].tolist() == [0]  # the subset keeps its own pairs, once each
