"""Chapter 3's F1 definitions (binary = the positive class's, macro, weighted) against scikit-learn, from
labels and from a confusion matrix; which definitions fit a printed (accuracy, F1) pair; the gradient-vs-mask
sign test without ties; the binary F1 columns of `runs_frame` and `seed_comparison`."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import confusion_matrix, f1_score

from compnb.chapters import competency, competency_report as cr
from compnb.evaluation import classification_metrics


@pytest.fixture
def made_up():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    pred = np.where(rng.random(200) < 0.7, y, 1 - y)
    pred[:40] = 1  # lean positive, so that binary and macro F1 differ
    return y, pred


def test_binary_f1_is_the_positive_class_f1_of_sklearn_and_differs_from_macro(made_up):
    y, pred = made_up
    matrix = confusion_matrix(y, pred)
    assert cr.f1_from_confusion(matrix, "binary", 1) == pytest.approx(f1_score(y, pred))
    assert cr.f1_from_confusion(matrix, "binary", 0) == pytest.approx(f1_score(y, pred, pos_label=0))
    assert cr.f1_from_confusion(matrix, "macro") == pytest.approx(f1_score(y, pred, average="macro"))
    assert cr.f1_from_confusion(matrix, "weighted") == pytest.approx(f1_score(y, pred, average="weighted"))
    assert abs(f1_score(y, pred) - f1_score(y, pred, average="macro")) > 0.01
    assert cr.binary_f1(matrix, ["negative", "positive"]) == pytest.approx(f1_score(y, pred))
    assert cr.binary_f1(matrix, ["positive", "negative"]) == pytest.approx(f1_score(y, pred, pos_label=0))


def test_f1_from_the_stored_confusion_matrix_equals_f1_from_the_labels():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    probs = rng.dirichlet(np.ones(3), 300)
    stored = classification_metrics(y, probs, ["entailment", "neutral", "contradiction"])
    pred = probs.argmax(1)
    assert cr.f1_from_confusion(stored["confusion_matrix"], "macro") == pytest.approx(f1_score(y, pred, average="macro"))
    assert cr.f1_from_confusion(stored["confusion_matrix"], "macro") == pytest.approx(stored["macro_f1"])
    assert np.isnan(cr.binary_f1(stored["confusion_matrix"], stored["label_names"]))  # no binary F1 for 3 classes
    with pytest.raises(ValueError, match="binary F1 needs two classes"):
        cr.f1_from_confusion(stored["confusion_matrix"], "binary")


def test_a_class_never_true_nor_predicted_leaves_macro_f1_as_sklearn_has_it():
    y, pred = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    matrix = confusion_matrix(y, pred, labels=[0, 1, 2])
    assert cr.f1_from_confusion(matrix, "macro") == pytest.approx(f1_score(y, pred, average="macro"))


def test_f1_consistency_finds_the_definition_that_made_a_pair():
    matrix = np.array([[50, 22], [30, 46]])  # adv-SST2's class sizes, 72 and 76
    acc = round(np.trace(matrix) / matrix.sum(), 3)
    binary, macro = round(cr.f1_from_confusion(matrix, "binary"), 3), round(cr.f1_from_confusion(matrix, "macro"), 3)
    assert cr.f1_consistency(acc, binary, (72, 76))["binary"]
    assert cr.f1_consistency(acc, macro, (72, 76))["macro"]
    # binary macro F1 never exceeds accuracy: the paper's 0.527 / 0.670 on adv-SST2 can only be a binary F1
    fits = cr.f1_consistency(0.527, 0.670, (72, 76))
    assert fits["binary"] and not fits["macro"] and not fits["weighted"] and not fits["micro"]
    assert cr.f1_consistency(0.5, 0.5, (4, 4))["micro"]
    three = np.array([[5, 1, 2], [0, 6, 1], [3, 0, 4]])
    acc3 = round(np.trace(three) / three.sum(), 3)
    assert cr.f1_consistency(acc3, round(cr.f1_from_confusion(three, "weighted"), 3), (8, 7, 7))["weighted"]


def test_sign_test_drops_ties_and_counts_them():
    assert cr.sign_counts([0.1, -0.2, 0.0, 0.0, 0.3]) == (2, 1, 2)
    assert cr.sign_test_p(2, 1) == pytest.approx(stats.binomtest(2, 3).pvalue)
    assert np.isnan(cr.sign_test_p(0, 0))
    gradient = [0.8, 0.7, 0.9, 0.6, 0.85, 0.6, 0.6, 0.5]
    mask = [0.7, 0.6, 0.8, 0.5, 0.80, 0.6, 0.6, 0.5]  # gradient wins 5 cells, ties 3, loses none
    frame = pd.DataFrame({
        "dataset": "sst2", "seed": 0, "config": ["baseline"] + [f"c{i}" for i in range(16)],
        "method": ["—"] + ["gradient"] * 8 + ["mask"] * 8, "form": ["—"] + [f"f{i}" for i in range(8)] * 2,
        "lam": [0.0] + [0.1] * 16, "accuracy": [0.5] + gradient + mask})
    row = cr.gradient_vs_mask(frame, ["accuracy"]).iloc[0]
    assert (row["gradient wins"], row["mask wins"], row["ties"], row["cells"]) == (5, 0, 3, 8)
    assert row["p (sign test, ties dropped)"] == pytest.approx(stats.binomtest(5, 5).pvalue)
    assert row["p (sign test, ties dropped)"] < 0.1 < stats.binomtest(5, 8).pvalue  # ties counted as losses: 0.73


def _run_folder(tmp_path, name, validation, adv_set, adv):
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"eval-{adv_set}-validation.json").write_text(json.dumps(adv))
    return folder


def test_binary_f1s_read_the_runs_stored_confusion_matrices(tmp_path, made_up):
    y, pred = made_up
    rng = np.random.default_rng(0)
    validation = classification_metrics(y, np.eye(2)[pred], ["negative", "positive"])
    ya, pa = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    adv = classification_metrics(ya, np.eye(2)[pa], ["negative", "positive"])
    folder = _run_folder(tmp_path, "sst2-run", validation, "adv_sst2", adv)
    assert competency.binary_f1s(folder, validation, "adv_sst2") == pytest.approx((f1_score(y, pred), f1_score(ya, pa)))
    nli = classification_metrics(ya % 3, np.eye(3)[pa], ["entailment", "neutral", "contradiction"])
    folder = _run_folder(tmp_path, "snli-run", nli, "adv_mnli", nli)
    assert all(np.isnan(competency.binary_f1s(folder, nli, "adv_mnli")))


def test_seed_comparison_pairs_binary_f1_and_leaves_it_blank_for_nli():
    rows = []
    rng = np.random.default_rng(2)
    for dataset in ("sst2", "snli"):
        for config in ("baseline", "mask · subtract · λ=0.5"):
            for seed in (0, 1, 2, 3):
                rows.append({"dataset": dataset, "config": config, "seed": seed, "accuracy": rng.uniform(0.8, 0.9),
                             "macro_f1": rng.uniform(0.8, 0.9), "adv_accuracy": rng.uniform(0.3, 0.5),
                             "adv_macro_f1": rng.uniform(0.3, 0.5),
                             "f1_binary": rng.uniform(0.8, 0.9) if dataset == "sst2" else np.nan,
                             "adv_f1_binary": rng.uniform(0.3, 0.5) if dataset == "sst2" else np.nan})
    frame = pd.DataFrame(rows)
    table = cr.seed_comparison(frame).set_index(["dataset", "config"])
    confirm = frame[frame["seed"] > 0].set_index(["dataset", "config", "seed"])["adv_f1_binary"]
    delta = (confirm.loc["sst2", "mask · subtract · λ=0.5"] - confirm.loc["sst2", "baseline"]).to_numpy()
    row = table.loc[("sst2", "mask · subtract · λ=0.5")]
    assert row["Δ adv binary F1"] == pytest.approx(delta.mean())
    assert row["p (adv binary F1)"] == pytest.approx(stats.ttest_1samp(delta, 0).pvalue)
    assert np.isnan(table.loc[("snli", "mask · subtract · λ=0.5"), "Δ binary F1"])
    assert table.loc[("snli", "mask · subtract · λ=0.5"), "Δ binary F1 95% CI"] == ""
    assert not np.isnan(table.loc[("snli", "mask · subtract · λ=0.5"), "Δ macro F1"])
    assert cr.confirmation_seeds(table.reset_index()) == "1, 2, 3"
    shown = cr.style_comparison(table.reset_index(), "F1.", ("binary F1", "adv binary F1"), corrected=False)
    assert shown is not None
