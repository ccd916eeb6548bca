"""AdvGLUE scoring of trained runs: which sets a run answers, exact resampling from a confusion matrix, and
measurements dropped when a run is retrained."""


import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from compnb import advglue, atomicio, evaluation, run_cache
from compnb.chapters import competency
from compnb.training import TrainConfig


def test_each_dataset_answers_the_advglue_sets_that_share_its_labels():
    assert advglue.sets_for("sst2") == ("adv_sst2",)
    assert advglue.sets_for("snli") == ("adv_mnli", "adv_mnli_mismatched")
    with pytest.raises(ValueError, match="unknown dataset 'mnli'"):
        advglue.sets_for("mnli")


def test_pairs_from_confusion_give_back_the_matrix_and_the_metrics():
    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    matrix = confusion_matrix(y, pred, labels=[0, 1, 2])
    y2, pred2 = evaluation.pairs_from_confusion(matrix)
    assert (confusion_matrix(y2, pred2, labels=[0, 1, 2]) == matrix).all()
    assert evaluation.accuracy(y2, pred2) == evaluation.accuracy(y, pred)
    assert evaluation.macro_f1(y2, pred2) == pytest.approx(evaluation.macro_f1(y, pred), abs=1e-12)
    for bad in ([[1, 2, 3]], [[1, -1], [0, 2]], [[0.5, 1], [1, 1]]):
        with pytest.raises(ValueError, match="non-negative integer counts"):
            evaluation.pairs_from_confusion(np.asarray(bad))


def _fake_run(tmp_path, dataset: str, matrices: dict[str, list[list[int]]]):
    config = TrainConfig(dataset=dataset, seed=3, profile="smoke")
    folder = tmp_path / config.run_id()
    atomicio.write_json(folder / "config.json", config.to_dict())
    for name, matrix in matrices.items():
        atomicio.write_json(advglue.eval_path(folder, name), {"n": int(np.sum(matrix)), "confusion_matrix": matrix})
    return folder


def test_scores_read_cached_evaluations_with_intervals_around_the_estimate(tmp_path):
    folder = _fake_run(tmp_path, "sst2", {"adv_sst2": [[40, 32], [30, 46]]})
    table = advglue.scores([("02", folder, "baseline")], n_resamples=500)
    row = table.iloc[0]
    assert (row["set"], row["n"], row["seed"], row["trained on"]) == ("adv_sst2", 148, 3, "sst2")
    assert row["accuracy"] == pytest.approx(86 / 148)
    assert row["accuracy low"] < row["accuracy"] < row["accuracy high"]
    assert row["macro_f1 low"] < row["macro_f1"] < row["macro_f1 high"]
    # the interval is as wide as a binomial one of 148 draws: roughly ± 2·sqrt(p(1-p)/n)
    half = 1.96 * np.sqrt(row["accuracy"] * (1 - row["accuracy"]) / 148)
    assert row["accuracy high"] - row["accuracy low"] == pytest.approx(2 * half, rel=0.2)


def test_scores_name_the_missing_set_and_the_fix(tmp_path):
    folder = _fake_run(tmp_path, "snli", {"adv_mnli": [[40, 0, 0], [0, 40, 0], [0, 0, 41]]})
    assert not advglue.evaluated(folder, "snli")
    with pytest.raises(FileNotFoundError, match="not been scored on adv_mnli_mismatched; rerun that chapter"):
        advglue.scores([("03", folder, "baseline")])


def test_retraining_drops_what_was_measured_on_the_old_weights(tmp_path):
    folder = _fake_run(tmp_path, "snli", {"adv_mnli": [[1]]})
    for name in ("metrics.json", "competency-k5.json", "probs-clean.npy", "analysis-k5/summary.json", "val_probs.npy"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("{}")
    run_cache.drop_measurements(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "metrics.json", "val_probs.npy"]


def test_sweep_datasets_must_be_known():
    with pytest.raises(ValueError, match=r"datasets must be a non-empty selection of sst2, snli, got \['mnli'\]"):
        competency.plan("smoke", datasets=("mnli",))
    configs, _ = competency.plan("smoke", datasets=("snli",))
    assert {c.dataset for c in configs} == {"snli"}
