"""Evaluation metrics for binary and 3-class classifiers, numpy in and out.

Conventions shared by every function::

  labels  (n,) integer class ids in [0, c)
  probs   (n, c) float class probabilities, each row summing to 1 (within 1e-5; rows are then
          renormalised exactly before use)
  preds   (n,) integer predicted class ids; wherever `preds_or_probs` is accepted, a 2-D array is
          read as probs and turned into predictions by argmax (ties go to the lowest class id)

Confidence is the top-class probability; a prediction is correct when its argmax equals the label.
Scores are fractions in [0, 1] unless stated otherwise. scikit-learn computes every metric it has;
this module adds calibration (ECE, reliability table, calibration R²), seed summaries and
resampling tests. All randomness comes from `numpy.random.default_rng(seed)`, so the same seed gives
identical results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
)

PROB_SUM_TOLERANCE = 1e-5

Metric = Callable[[np.ndarray, np.ndarray], float]


# --------------------------------------------------------------------------- input checks


def _check_labels(labels: np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array of shape (n,), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    if arr.min() < 0:
        raise ValueError(f"labels must be >= 0, got {arr.min()}")
    return arr.astype(np.int64)


def _check_probs(probs: np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 2:
        raise ValueError(f"probs must have shape (n, c) = ({n}, c) with c >= 2, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"probs must be finite and in [0, 1], got values in [{arr.min()}, {arr.max()}]")
    sums = arr.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > PROB_SUM_TOLERANCE:
        raise ValueError(
            f"probs rows must sum to 1 (within {PROB_SUM_TOLERANCE}), row {worst} sums to {sums[worst]}"
        )
    return arr / sums[:, None]


def _check_label_range(labels: np.ndarray, n_classes: int) -> None:
    if labels.max() >= n_classes:
        raise ValueError(
            f"labels must be in [0, {n_classes - 1}] for {n_classes} classes, got {labels.max()}"
        )


def _labels_and_probs(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = _check_labels(labels)
    p = _check_probs(probs, len(y))
    _check_label_range(y, p.shape[1])
    return y, p


def _check_preds_or_probs(preds_or_probs: np.ndarray, labels: np.ndarray, name: str) -> np.ndarray:
    """Validated (n,) int predictions or (n, c) probabilities matching `labels`."""
    arr = np.asarray(preds_or_probs)
    if arr.ndim == 2:
        p = _check_probs(arr, len(labels))
        _check_label_range(labels, p.shape[1])
        return p
    if arr.ndim != 1 or len(arr) != len(labels):
        raise ValueError(
            f"{name} must have shape (n,) or (n, c) with n = len(labels) = {len(labels)}, "
            f"got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} as predictions must be integers, got dtype {arr.dtype}")
    if arr.min() < 0:
        raise ValueError(f"{name} must be >= 0, got {arr.min()}")
    return arr.astype(np.int64)


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(confidence)


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _hard(preds_or_probs: np.ndarray) -> np.ndarray:
    return preds_or_probs.argmax(axis=-1) if preds_or_probs.ndim == 2 else preds_or_probs


# --------------------------------------------------------------------------- point metrics


def accuracy(labels: np.ndarray, preds_or_probs: np.ndarray) -> float:
    """Fraction correct. labels (n,); preds_or_probs (n,) predictions or (n, c) probabilities."""
    y = _check_labels(labels)
    return float(accuracy_score(y, _hard(_check_preds_or_probs(preds_or_probs, y, "preds_or_probs"))))


def _macro_f1_rows(y: np.ndarray, pred: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Macro F1 of each row of y, pred (B, n) over `classes`; a class absent from both scores 0."""
    f1 = []
    for c in classes:
        is_pred, is_true = pred == c, y == c
        tp = (is_pred & is_true).sum(-1)
        wrong = (is_pred ^ is_true).sum(-1)  # false positives + false negatives
        f1.append(np.where(2 * tp + wrong > 0, 2 * tp / np.maximum(2 * tp + wrong, 1), 0.0))
    return np.mean(f1, axis=0)


def macro_f1(labels: np.ndarray, preds_or_probs: np.ndarray) -> float:
    """Unweighted mean of per-class F1 over the classes of `labels` and of the predictions (sklearn's
    `f1_score(average="macro", zero_division=0)`); labels (n,), preds_or_probs (n,) or (n, c)."""
    y = _check_labels(labels)
    pred = _hard(_check_preds_or_probs(preds_or_probs, y, "preds_or_probs"))
    return float(_macro_f1_rows(y[None], pred[None], np.union1d(y, pred))[0])


def _bin_stats(labels: np.ndarray, probs: np.ndarray, n_bins: int) -> tuple[np.ndarray, ...]:
    """Per-bin (edges, count, mean confidence, accuracy) for validated inputs; empty bins give NaN."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin b holds confidences in (edges[b], edges[b + 1]]; the first bin also takes 0.
    bins = np.searchsorted(edges[1:-1], conf, side="left")
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bins, weights=conf, minlength=n_bins) / count
        acc = np.bincount(bins, weights=correct, minlength=n_bins) / count
    return edges, count, mean_conf, acc


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """ECE: sum over equal-width confidence bins of (bin count / n) · abs(accuracy − mean confidence).

    labels (n,), probs (n, c). Bin b covers top-class confidence in (b/n_bins, (b+1)/n_bins].
    Returns a fraction in [0, 1] (multiply by 100 for the percentage papers often print).
    """
    y, p = _labels_and_probs(labels, probs)
    _, count, mean_conf, acc = _bin_stats(y, p, _check_positive_int(n_bins, "n_bins"))
    filled = count > 0
    return float(np.sum(count[filled] / len(y) * np.abs(acc[filled] - mean_conf[filled])))


def reliability_table(labels: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> pd.DataFrame:
    """One row per equal-width confidence bin, for reliability diagrams.

    labels (n,), probs (n, c). Columns: bin (0..n_bins-1), lower, upper (bin covers (lower, upper]),
    count (examples in the bin), confidence (their mean top-class probability) and accuracy (their
    fraction correct); confidence and accuracy are NaN in empty bins.
    """
    y, p = _labels_and_probs(labels, probs)
    n_bins = _check_positive_int(n_bins, "n_bins")
    edges, count, mean_conf, acc = _bin_stats(y, p, n_bins)
    return pd.DataFrame({
        "bin": np.arange(n_bins),
        "lower": edges[:-1],
        "upper": edges[1:],
        "count": count,
        "confidence": mean_conf,
        "accuracy": acc,
    })


def calibration_r2(labels: np.ndarray, probs: np.ndarray, n_bins: int = 15, weighted: bool = False) -> float:
    """R² of per-bin accuracy against the identity line accuracy = mean confidence.

    labels (n,), probs (n, c). Over the non-empty bins of `reliability_table`, this is
    sklearn's `r2_score(accuracy, confidence)`: 1 - sum (acc - conf)² / sum (acc - mean acc)², so 1
    means every bin lies on the diagonal of the reliability diagram, and it can be negative. Each
    non-empty bin counts once by default (the points as drawn); `weighted=True` weights bins by their
    example count. NaN when fewer than two bins are non-empty or bin accuracies do not vary.
    """
    y, p = _labels_and_probs(labels, probs)
    _, count, mean_conf, acc = _bin_stats(y, p, _check_positive_int(n_bins, "n_bins"))
    filled = count > 0
    if filled.sum() < 2 or np.ptp(acc[filled]) == 0:
        return math.nan
    weights = count[filled] if weighted else None
    return float(r2_score(acc[filled], mean_conf[filled], sample_weight=weights))


def _roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    n_classes = probs.shape[1]
    if len(np.unique(labels)) < n_classes:
        return math.nan
    if n_classes == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    return float(
        roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=np.arange(n_classes))
    )


def classification_metrics(labels: np.ndarray, probs: np.ndarray, label_names: Sequence[str]) -> dict:
    """Headline metrics of one classifier on one split, as plain JSON-serialisable values.

    labels (n,), probs (n, c) with c = len(label_names). Returns n, accuracy, macro_f1, roc_auc,
    ece (15 bins), label_names, per_class {name: {precision, recall, f1, support}} and
    confusion_matrix (rows true, columns predicted, nested lists of ints). Classes that are never
    predicted or absent get precision/recall/F1 0 (sklearn's zero_division=0) and still count in
    macro F1. roc_auc uses P(class 1) for two classes and one-vs-rest macro AUC for more; it is NaN
    (which `json.dumps` writes as NaN) when a class is absent from `labels`.
    """
    y, p = _labels_and_probs(labels, probs)
    names = [str(name) for name in label_names]
    n_classes = p.shape[1]
    if len(names) != n_classes:
        raise ValueError(f"label_names must name the {n_classes} classes of probs, got {len(names)}: {names}")
    classes = np.arange(n_classes)
    preds = p.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, preds, labels=classes, zero_division=0.0
    )
    return {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, preds)),
        "macro_f1": float(f1_score(y, preds, labels=classes, average="macro", zero_division=0.0)),
        "roc_auc": _roc_auc(y, p),
        "ece": expected_calibration_error(y, p),
        "label_names": names,
        "per_class": {
            name: {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
            }
            for k, name in enumerate(names)
        },
        "confusion_matrix": confusion_matrix(y, preds, labels=classes).tolist(),
    }


def pairs_from_confusion(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, preds), each (n,), holding every (label, prediction) pair that a confusion matrix counts:
    matrix (c, c) of non-negative integer counts, rows the labels and columns the predictions (sklearn's
    layout), so that metrics of hard predictions and their resampling need only the matrix."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.size == 0 or not np.issubdtype(m.dtype, np.integer) or (m < 0).any():
        raise ValueError(f"matrix must be a square (c, c) array of non-negative integer counts, got {matrix!r}")
    rows, cols = np.indices(m.shape)
    counts = m.ravel()
    return np.repeat(rows.ravel(), counts), np.repeat(cols.ravel(), counts)


# --------------------------------------------------------------------------- across seeds


def seed_summary(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean, sample std (ddof=1) and Student-t interval of one metric over n seeds.

    values (n,) one score per seed. The interval is mean ± t_{n-1, (1+confidence)/2} * std / sqrt(n),
    i.e. `scipy.stats.t.interval`; with n = 1 the std and the interval (low, high) are NaN, and with
    zero spread the interval collapses to the mean.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"values must be a non-empty 1-D array of finite numbers, got {values!r}")
    confidence = _check_confidence(confidence)
    n = len(arr)
    mean = float(arr.mean())
    if n == 1:
        return {"mean": mean, "std": math.nan, "n": 1, "low": math.nan, "high": math.nan}
    std = float(arr.std(ddof=1))
    half = float(stats.t.ppf((1.0 + confidence) / 2.0, df=n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "low": mean - half, "high": mean + half}


def paired_t_p(deltas: Sequence[float]) -> float:
    """Two-sided p-value of a paired t-test from the per-pair differences (n,), e.g. model b − model a per
    seed (`scipy.stats.ttest_1samp(deltas, 0)`). Without spread (up to rounding) the statistic is undefined:
    p = 1 when all differences are 0; NaN when they are equal and not 0 (a t-test cannot weigh the same
    difference seen n times: report it as untestable, not as significant); with one difference, NaN."""
    arr = np.asarray(deltas, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"deltas must be a non-empty 1-D array of finite numbers, got {deltas!r}")
    if arr.size == 1:
        return math.nan
    if np.ptp(arr) < 1e-12:
        return 1.0 if abs(arr[0]) < 1e-12 else math.nan
    return float(stats.ttest_1samp(arr, 0.0).pvalue)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (m,), in the input's order, for m tests of one family: the i-th
    smallest p becomes max over j ≤ i of min(1, (m − j + 1)·p_(j)). NaN entries are left out of the family
    and stay NaN. Rejecting where adjusted p < α controls the family-wise error rate at α."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p_values must be a 1-D array of numbers in [0, 1] (or NaN), got {p_values!r}")
    out = np.full_like(p, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


# --------------------------------------------------------------------------- resampling


def _resample_scores(metric: Metric, labels: np.ndarray, outputs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """metric on every resample; idx (B, n) row indices drawn once. `accuracy` and `macro_f1` run batched
    (`macro_f1` over the classes of the full data, as a resample may miss one)."""
    if metric is accuracy:
        return (_hard(outputs)[idx] == labels[idx]).mean(axis=1)
    if metric is macro_f1:
        pred = _hard(outputs)
        return _macro_f1_rows(labels[idx], pred[idx], np.union1d(labels, pred))
    return np.array([metric(labels[rows], outputs[rows]) for rows in idx], dtype=np.float64)


def _draw_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    n_resamples = _check_positive_int(n_resamples, "n_resamples")
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def bootstrap_ci(
    labels: np.ndarray,
    preds_or_probs: np.ndarray,
    metric: Metric,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Percentile bootstrap interval of `metric(labels, preds_or_probs) -> float` for one model.

    labels (n,), preds_or_probs (n,) or (n, c). The (n_resamples, n) index matrix is drawn once from
    `default_rng(seed)`; `accuracy` is evaluated on all resamples at once, any other metric once per
    resample. Returns estimate (metric on the full data), low and high (the (1-confidence)/2 and
    (1+confidence)/2 quantiles of the resampled metric).
    """
    y = _check_labels(labels)
    outputs = _check_preds_or_probs(preds_or_probs, y, "preds_or_probs")
    confidence = _check_confidence(confidence)
    scores = _resample_scores(metric, y, outputs, _draw_indices(len(y), n_resamples, seed))
    low, high = np.quantile(scores, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return {"estimate": float(metric(y, outputs)), "low": float(low), "high": float(high)}


def paired_bootstrap(
    labels: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    metric: Metric = accuracy,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Paired bootstrap of delta = metric(b) - metric(a) on the same examples.

    labels (n,); pred_a, pred_b (n,) predictions or (n, c) probabilities. Both models are scored on
    the same resampled rows (one (n_resamples, n) index matrix from `default_rng(seed)`). Returns
    delta on the full data, its percentile interval (low, high), and a two-sided p-value for
    delta = 0: p = min(1, 2 * (k + 1) / (n_resamples + 1)), where k = min(#{delta_r <= 0},
    #{delta_r >= 0}) counts resamples on the far side of zero. Identical models give p = 1; the
    smallest attainable p is 2 / (n_resamples + 1).
    """
    y = _check_labels(labels)
    a = _check_preds_or_probs(pred_a, y, "pred_a")
    b = _check_preds_or_probs(pred_b, y, "pred_b")
    confidence = _check_confidence(confidence)
    idx = _draw_indices(len(y), n_resamples, seed)
    deltas = _resample_scores(metric, y, b, idx) - _resample_scores(metric, y, a, idx)
    low, high = np.quantile(deltas, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    far_side = min(int(np.sum(deltas <= 0)), int(np.sum(deltas >= 0)))
    p_value = min(1.0, 2.0 * (far_side + 1) / (len(deltas) + 1))
    return {
        "delta": float(metric(y, b) - metric(y, a)),
        "low": float(low),
        "high": float(high),
        "p_value": p_value,
    }


def mcnemar(labels: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """Exact (binomial) McNemar test that models a and b have the same accuracy.

    labels (n,); pred_a, pred_b (n,) predictions or (n, c) probabilities. Returns a_only (examples
    only a gets right), b_only (only b gets right) and the two-sided p-value of
    `scipy.stats.binomtest(b_only, a_only + b_only, 0.5)`; p = 1 when the models never disagree on
    correctness.
    """
    y = _check_labels(labels)
    correct_a = _hard(_check_preds_or_probs(pred_a, y, "pred_a")) == y
    correct_b = _hard(_check_preds_or_probs(pred_b, y, "pred_b")) == y
    a_only = int(np.sum(correct_a & ~correct_b))
    b_only = int(np.sum(correct_b & ~correct_a))
    discordant = a_only + b_only
    p_value = 1.0 if discordant == 0 else float(stats.binomtest(b_only, discordant, 0.5).pvalue)
    return {"a_only": a_only, "b_only": b_only, "p_value": p_value}
