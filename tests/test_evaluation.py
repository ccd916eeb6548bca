"""Known-answer and property tests for compnb.evaluation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score, roc_auc_score

from compnb.evaluation import (
    accuracy,
    bootstrap_ci,
    calibration_r2,
    classification_metrics,
    expected_calibration_error,
    holm,
    mcnemar,
    paired_bootstrap,
    reliability_table,
    seed_summary,
)

# Four binary examples with confidences 0.9 (right), 0.8 (wrong), 0.6 (right), 0.7 (wrong).
LABELS4 = np.array([1, 0, 0, 1])
PROBS4 = np.array([[0.1, 0.9], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])


def _random_three_class(n: int = 300, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probs


def _noisy_predictions(labels: np.ndarray, accuracy_target: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(labels)) > accuracy_target
    return np.where(wrong, (labels + 1) % 3, labels)


# --------------------------------------------------------------------------- point metrics


def test_binary_metrics_match_hand_computation():
    m = classification_metrics(LABELS4, PROBS4, ["neg", "pos"])
    # preds = [1, 1, 0, 0]; class 0: TP 1, FP 1, FN 1 -> P = R = F1 = 0.5; class 1 likewise.
    assert m["n"] == 4
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx(0.5)
    assert m["per_class"]["neg"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["confusion_matrix"] == [[1, 1], [1, 1]]
    # P(class 1) = [0.9, 0.8, 0.4, 0.3] for labels [1, 0, 0, 1]: pairs (pos, neg) ranked right 2 of 4.
    assert m["roc_auc"] == pytest.approx(0.5)
    assert m["ece"] == pytest.approx(expected_calibration_error(LABELS4, PROBS4))
    json.dumps(m, allow_nan=False)


def test_three_class_f1_by_hand_and_auc_equals_sklearn():
    labels = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([0, 1, 1, 1, 2, 0])
    probs = np.full((6, 3), 0.1)
    probs[np.arange(6), preds] = 0.8
    m = classification_metrics(labels, probs, ["e", "n", "c"])
    # F1 per class: e: P 1/2 R 1/2 -> 1/2; n: P 2/3 R 1 -> 4/5; c: P 1 R 1/2 -> 2/3.
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["per_class"]["n"]["precision"] == pytest.approx(2 / 3)

    labels, probs = _random_three_class()
    m = classification_metrics(labels, probs, ["e", "n", "c"])
    assert m["roc_auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert m["macro_f1"] == pytest.approx(f1_score(labels, probs.argmax(1), average="macro"))
    assert np.sum(m["confusion_matrix"]) == len(labels)
    json.dumps(m, allow_nan=False)


def test_absent_class_gives_nan_auc_without_crash():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    m = classification_metrics(labels, probs, ["e", "n", "c"])
    assert math.isnan(m["roc_auc"])
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    one_class = classification_metrics(np.array([1, 1]), np.array([[0.3, 0.7]] * 2), ["a", "b"])
    assert math.isnan(one_class["roc_auc"])


def test_accuracy_accepts_predictions_or_probabilities():
    assert accuracy(LABELS4, PROBS4) == 0.5
    assert accuracy(LABELS4, np.array([1, 0, 0, 0])) == 0.75


# --------------------------------------------------------------------------- calibration


def test_ece_hand_computed_four_examples():
    # 4 bins of width 0.25. Bin (0.5, 0.75]: conf 0.6, 0.7 -> mean 0.65, accuracy 0.5 -> |0.15| * 2/4.
    # Bin (0.75, 1]: conf 0.9, 0.8 -> mean 0.85, accuracy 0.5 -> |0.35| * 2/4. ECE = 0.075 + 0.175.
    assert expected_calibration_error(LABELS4, PROBS4, n_bins=4) == pytest.approx(0.25)
    # Perfectly confident and right: ECE 0.
    assert expected_calibration_error(np.array([0, 1]), np.eye(2)) == 0.0


def test_reliability_table_bins_and_empty_bins():
    table = reliability_table(LABELS4, PROBS4, n_bins=4)
    assert list(table.columns) == ["bin", "lower", "upper", "count", "confidence", "accuracy"]
    assert table["count"].tolist() == [0, 0, 2, 2]
    assert table["confidence"].iloc[2:].tolist() == pytest.approx([0.65, 0.85])
    assert table["accuracy"].iloc[2:].tolist() == pytest.approx([0.5, 0.5])
    assert table[["confidence", "accuracy"]].iloc[:2].isna().all().all()
    # A confidence on an edge belongs to the bin it closes: 0.5 falls in (0, 0.5].
    edge = reliability_table(np.array([0]), np.array([[0.5, 0.5]]), n_bins=2)
    assert edge["count"].tolist() == [1, 0]


def test_calibration_r2_against_identity_line():
    labels, probs = _random_three_class(n=2000, seed=3)
    table = reliability_table(labels, probs, n_bins=10)
    filled = table[table["count"] > 0]
    acc, conf, w = filled["accuracy"].to_numpy(), filled["confidence"].to_numpy(), filled["count"].to_numpy()
    unweighted = 1 - np.sum((acc - conf) ** 2) / np.sum((acc - acc.mean()) ** 2)
    mean_w = np.average(acc, weights=w)
    weighted = 1 - np.sum(w * (acc - conf) ** 2) / np.sum(w * (acc - mean_w) ** 2)
    assert calibration_r2(labels, probs, n_bins=10) == pytest.approx(unweighted)
    assert calibration_r2(labels, probs, n_bins=10, weighted=True) == pytest.approx(weighted)
    # Bin accuracies that do not vary (both filled bins at 0.5): R² undefined.
    assert math.isnan(calibration_r2(LABELS4, PROBS4, n_bins=4))


# --------------------------------------------------------------------------- seeds


def test_seed_summary_matches_scipy_t_interval():
    values = [0.81, 0.84, 0.79, 0.86, 0.83]
    s = seed_summary(values)
    low, high = stats.t.interval(0.95, df=4, loc=np.mean(values), scale=stats.sem(values))
    assert s["n"] == 5
    assert s["mean"] == pytest.approx(np.mean(values))
    assert s["std"] == pytest.approx(np.std(values, ddof=1))
    assert (s["low"], s["high"]) == pytest.approx((low, high))
    s90 = seed_summary(values, confidence=0.9)
    assert s90["high"] - s90["low"] < s["high"] - s["low"]


def test_seed_summary_single_seed_and_no_spread():
    one = seed_summary([0.8])
    assert one["mean"] == 0.8 and one["n"] == 1
    assert math.isnan(one["std"]) and math.isnan(one["low"]) and math.isnan(one["high"])
    flat = seed_summary([0.7, 0.7, 0.7])
    assert (flat["low"], flat["high"]) == pytest.approx((0.7, 0.7))


# --------------------------------------------------------------------------- resampling


def test_bootstrap_ci_deterministic_and_contains_estimate():
    labels, probs = _random_three_class()
    first = bootstrap_ci(labels, probs, accuracy, n_resamples=500, seed=7)
    assert first == bootstrap_ci(labels, probs, accuracy, n_resamples=500, seed=7)
    assert first != bootstrap_ci(labels, probs, accuracy, n_resamples=500, seed=8)
    assert first["estimate"] == pytest.approx(accuracy(labels, probs))
    assert first["low"] < first["estimate"] < first["high"]


def test_bootstrap_ci_generic_metric_matches_batched_accuracy():
    labels, probs = _random_three_class()
    preds = probs.argmax(1)
    batched = bootstrap_ci(labels, preds, accuracy, n_resamples=200, seed=3)
    looped = bootstrap_ci(labels, preds, lambda y, p: float(np.mean(y == p)), n_resamples=200, seed=3)
    assert batched == pytest.approx(looped)
    ece = bootstrap_ci(labels, probs, expected_calibration_error, n_resamples=100, seed=0)
    assert ece["low"] <= ece["high"]


def test_paired_bootstrap_identical_models():
    labels, probs = _random_three_class()
    result = paired_bootstrap(labels, probs, probs, n_resamples=300, seed=0)
    assert result == {"delta": 0.0, "low": 0.0, "high": 0.0, "p_value": 1.0}


def test_paired_bootstrap_detects_clearly_better_model():
    labels = np.random.default_rng(0).integers(0, 3, size=400)
    weak = _noisy_predictions(labels, 0.6, seed=1)
    strong = _noisy_predictions(labels, 0.9, seed=2)
    result = paired_bootstrap(labels, weak, strong, n_resamples=1000, seed=0)
    assert result["delta"] == pytest.approx(accuracy(labels, strong) - accuracy(labels, weak))
    assert result["low"] > 0 and result["p_value"] < 0.05
    assert result == paired_bootstrap(labels, weak, strong, n_resamples=1000, seed=0)
    flipped = paired_bootstrap(labels, strong, weak, n_resamples=1000, seed=0)
    assert flipped["delta"] == pytest.approx(-result["delta"]) and flipped["p_value"] == result["p_value"]


def test_mcnemar_exact_binomial():
    labels = np.zeros(20, dtype=int)
    pred_a = np.zeros(20, dtype=int)
    pred_b = np.zeros(20, dtype=int)
    pred_a[:8] = 1  # a wrong on 8 that b gets right
    pred_b[8:10] = 1  # b wrong on 2 that a gets right
    result = mcnemar(labels, pred_a, pred_b)
    assert (result["a_only"], result["b_only"]) == (2, 8)
    assert result["p_value"] == pytest.approx(stats.binomtest(8, 10, 0.5).pvalue)
    assert mcnemar(labels, pred_a, pred_a)["p_value"] == 1.0


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: accuracy(np.array([0, 1, 1]), np.array([0, 1])), "(2,)"),
        (lambda: expected_calibration_error(np.array([0, 1]), np.array([0.3, 0.7])), "(2,)"),
        (lambda: expected_calibration_error(LABELS4, PROBS4[:, :1]), "(4, 1)"),
        (lambda: expected_calibration_error(np.array([0, 3]), np.eye(3)[:2]), "got 3"),
        (lambda: expected_calibration_error(np.array([0, -1]), np.eye(2)), "got -1"),
        (lambda: expected_calibration_error(np.array([0, 1]), np.array([[0.5, 0.9], [0.5, 0.5]])), "1.4"),
        (lambda: expected_calibration_error(np.array([0.0, 1.0]), np.eye(2)), "float64"),
        (lambda: expected_calibration_error(LABELS4, PROBS4, n_bins=0), "0"),
        (lambda: classification_metrics(LABELS4, PROBS4, ["a", "b", "c"]), "['a', 'b', 'c']"),
        (lambda: seed_summary([0.8, 0.9], confidence=1.5), "1.5"),
        (lambda: seed_summary([], confidence=0.95), "[]"),
        (lambda: bootstrap_ci(LABELS4, PROBS4, accuracy, confidence=0.0), "0.0"),
        (lambda: bootstrap_ci(LABELS4, PROBS4, accuracy, n_resamples=-5), "-5"),
        (lambda: paired_bootstrap(LABELS4, PROBS4, PROBS4[:3]), "(3, 2)"),
        (lambda: paired_bootstrap(LABELS4, PROBS4, PROBS4, confidence=95), "95"),
        (lambda: mcnemar(LABELS4, np.array([0, 1, 1, 0]), np.array([0, 1])), "(2,)"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_value(call, needle):
    with pytest.raises(ValueError) as info:
        call()
    assert needle in str(info.value)


def test_macro_f1_matches_sklearn_and_its_batched_bootstrap_matches_a_loop():
    from sklearn.metrics import f1_score

    from compnb.evaluation import _draw_indices, bootstrap_ci, macro_f1

    rng = np.random.default_rng(3)
    for _ in range(100):
        n = int(rng.integers(1, 40))
        y, p = rng.integers(0, 3, n), rng.integers(0, 3, n)
        assert macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro", zero_division=0.0))
    y, probs = rng.integers(0, 3, 60), rng.dirichlet(np.ones(3), 60)
    result = bootstrap_ci(y, probs, macro_f1, n_resamples=300, seed=5)
    idx = _draw_indices(60, 300, 5)
    classes = np.union1d(y, probs.argmax(1))
    loop = [f1_score(y[r], probs.argmax(1)[r], labels=classes, average="macro", zero_division=0.0) for r in idx]
    low, high = np.quantile(loop, [0.025, 0.975])
    assert (result["low"], result["high"]) == (pytest.approx(low), pytest.approx(high))


def test_paired_t_p_matches_scipy_and_handles_no_spread():
    from scipy import stats

    from compnb.evaluation import paired_t_p

    assert paired_t_p([0.01, -0.02, 0.0]) == pytest.approx(stats.ttest_1samp([0.01, -0.02, 0.0], 0).pvalue)
    assert paired_t_p([0.0, 0.0, 0.0]) == 1.0
    assert np.isnan(paired_t_p([0.01, 0.01, 0.01]))  # untestable, not significant
    assert np.isnan(paired_t_p([0.3]))
    with pytest.raises(ValueError, match="deltas must be a non-empty 1-D array"):
        paired_t_p([])


def test_holm_adjusts_by_rank_keeps_order_and_skips_nan():
    adjusted = holm([0.01, 0.04, 0.03, np.nan, 0.005])
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → monotone: 0.06
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, np.nan, 0.02])
    assert (holm([0.5, 0.9]) == [1.0, 1.0]).all()
    with pytest.raises(ValueError, match="numbers in \\[0, 1\\]"):
        holm([0.2, 1.5])
