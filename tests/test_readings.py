"""The prose the chapters print next to their figures and tables, the "Try it" box, and the formats of issue 24:
readings built from the numbers, integer epoch counts, no powers of ten for tiny differences of bounded
metrics, an R² interval over seeds called undetermined rather than printed clipped, singular and plural."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from compnb.chapters import adversarial_report, baseline, competency_report, ig_variance_report, try_it


def test_try_it_box_has_the_commands_their_times_and_the_parameters():
    times = {"machine": {"nproc": 2, "cpu": "Test CPU"},
             "chapters": {"03-modified-loss": {"wall_s": 239.4, "rc": 0, "load_average_at_start": [1.0, 1.0, 1.0]}}}
    box = try_it.box("03-modified-loss", times)
    assert box.startswith(":::{admonition} Try it\n:class: tip\n") and box.rstrip().endswith(":::")
    assert '```bash\nmake chapter CH=03 PROFILE=smoke PARAMS="-p lam 0.2"\n```' in box
    assert "3 min 59 s on 2 shared CPU cores (Test CPU; load 1.0 at the start)" in box
    assert 'PROFILE=full PARAMS="-p lam 0.2"' in box and "GPU" in box
    assert "`lam` = `None`\n: an extra λ column" in box and "`profile`" not in box
    assert box.count("```bash") == 2


def test_try_it_without_a_measurement_says_so_and_a_chapter_without_training_needs_no_gpu():
    box = try_it.box("01-artifact-mining", {})
    assert "not measured yet" in box and "**The full profile** trains nothing and needs no GPU" in box
    assert "never into the published book" in box  # a tweak
    ledger = try_it.box("06-claims-ledger", {})  # no tweak: the full command republishes, and says so
    assert "re-executes the published chapter" in ledger and "never into the published book" not in ledger
    assert try_it.gpu_time("01-artifact-mining") is None
    assert try_it.command("06-claims-ledger") == "make chapter CH=06 PROFILE=smoke"


@pytest.mark.parametrize("seconds, text", [(42.4, "42 s"), (239.4, "3 min 59 s"), (3725, "1 h 2 min")])
def test_durations(seconds, text):
    assert try_it.duration(seconds) == text


def test_try_it_files_are_written_for_each_chapter(tmp_path):
    try_it.write_all(tmp_path, ["01-artifact-mining", "07-reliability"])
    assert (tmp_path / "_generated" / "try-it-07-reliability.md").read_text().startswith(":::{admonition} Try it")


def test_a_calibration_r2_interval_past_both_ends_is_undetermined():
    values = np.array([0.56, -0.89, 0.53])
    text = ig_variance_report.seed_interval("calibration_r2", values, {"low": -2.0, "high": 2.13})
    assert text == "undetermined (3 seeds span -0.89 to 0.56)"
    assert ig_variance_report.seed_interval("accuracy", values, {"low": 0.79, "high": 0.81}) == "[0.790, 0.810]"


@pytest.mark.parametrize("x, text", [(9.42e-7, "0.0000"), (-3.4e-4, "-0.0003"), (0.0123, "+0.0123")])
def test_differences_of_bounded_metrics_are_fixed_notation(x, text):
    assert ig_variance_report.delta_text(x) == text


def test_epochs_run_is_a_count():
    runs = pd.DataFrame({"variant": ["baseline"] * 2 + ["detached"] * 2, "seed": [0, 1, 0, 1],
                         "ms_per_step": [1.0, 1.0, 2.0, 2.0], "epochs": [3.0, 3.0, 2.0, 3.0],
                         "train_s": [1.0] * 4, "device": ["cpu"] * 4, "engine": ["eager"] * 4})
    assert list(ig_variance_report.cost_table(runs)["epochs run"]) == ["3", "2–3"]


def test_runs_of_two_engines_are_counted_and_compared_within_their_seed():
    """Seeds 0-2 eager at 100/200 ms, seeds 3-7 captured at 20/60 ms: the ratio is each seed's own (mean of 2.0
    and 3.0), the engines are counted per variant, and the sentence says how many runs each engine trained."""
    seeds = list(range(8))
    engine = ["eager"] * 3 + ["cuda-graph"] * 5
    runs = pd.DataFrame({"variant": ["baseline"] * 8 + ["detached"] * 8, "seed": seeds * 2,
                         "ms_per_step": [100.0] * 3 + [20.0] * 5 + [200.0] * 3 + [60.0] * 5,
                         "epochs": [3.0] * 16, "train_s": [1.0] * 16, "device": ["H100"] * 16, "engine": engine * 2})
    table = ig_variance_report.cost_table(runs).set_index("variant")
    assert table.loc["detached", "× baseline step"] == pytest.approx((3 * 2.0 + 5 * 3.0) / 8)
    assert table.loc["detached", "engines (seeds)"] == "cuda-graph × 5, eager × 3"
    assert table.loc["baseline", "devices (seeds)"] == "H100 × 8"
    record = {"command": "python -m compnb.chapters.ig_variance_eval", "devices": ["H100"]}
    assert ig_variance_report.training_sentence(runs, record).startswith(
        "Of the 16 runs, 10 were trained with the captured (CUDA graph) engine on H100 and 6 with the eager engine "
        "on H100; the latest training record is `python -m compnb.chapters.ig_variance_eval`.")
    assert ig_variance_report.training_sentence(runs.iloc[:3], record).startswith(
        "All 3 runs were trained with the eager engine on H100;")
    assert "each seed's variants were trained by one engine" in ig_variance_report.training_sentence(runs, record)
    runs.loc[(runs["variant"] == "detached") & (runs["seed"] == 0), "engine"] = "cuda-graph"
    assert ig_variance_report.training_sentence(runs, record).endswith(
        "at 1 seed the variants were trained by different engines, so those seeds' ratios mix the engines' speeds.")
    assert ig_variance_report.training_sentence(runs, None).startswith("No record")


def test_a_pair_that_repeats_its_premise_under_contradiction_is_called_mislabelled():
    premises = ["A dog runs.", "A cat sits."]
    hypotheses = ["A dog runs.", "A cat sleeps."]
    labels = np.array([2, 2])
    records = [{"variant": v, "seed": 0, "probs": np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])}
               for v in ("baseline", "detached", "differentiable")]
    note = ig_variance_report.label_note(premises, hypotheses, labels, records, 0, 0)
    assert "Test pair 0 is mislabelled" in note and "contradiction" in note and "1 of the 2 test pairs" in note
    assert "baseline entailment (0.90)" in note
    assert ig_variance_report.label_note(premises, hypotheses, labels, records, 1, 0) == ""


def _adv_run(folder, confusion, seed=0):
    folder.mkdir()
    (folder / "eval-adv_sst2-validation.json").write_text(json.dumps(
        {"confusion_matrix": confusion, "accuracy": np.trace(confusion) / np.sum(confusion), "roc_auc": 0.25}))
    (folder / "metrics.json").write_text(json.dumps({"validation": {"accuracy": 0.87}}))
    (folder / "config.json").write_text(json.dumps({"dataset": "sst2", "seed": seed}))
    return folder


def test_below_chance_reading_counts_balance_both_classes_and_the_auc(tmp_path, monkeypatch):
    monkeypatch.setattr(adversarial_report.TrainConfig, "from_json",
                        staticmethod(lambda path: type("C", (), json.loads(path.read_text()))))
    runs = [("02", _adv_run(tmp_path / "a", [[38, 34], [65, 11]]), "ch. 2 · baseline")]
    bias = adversarial_report.label_bias(runs)
    assert bias.loc[0, "positive"] == 76 and bias.loc[0, "negative"] == 72
    assert bias.loc[0, "predicted negative"] == pytest.approx(103 / 148)
    table = pd.DataFrame({"set": ["adv_sst2"], "accuracy high": [0.40]})
    text = adversarial_report.below_chance_sentences(bias, table)
    assert "76 positive, 72 negative" in text and "1 of 1 models have their whole interval below 0.5" in text
    assert "0 of 1 miss more than half of *both* classes" in text and "is 0.25 and below 0.5 for 1 of 1 models" in text


def test_readings_of_the_scores_and_error_share_figures():
    scores = pd.DataFrame({"seed": 0, "kind": ["baseline", "retrained"] * 2, "set": ["clean"] * 2 + ["adv_mnli"] * 2,
                           "accuracy": [0.78, 0.80, 0.30, 0.34], "acc low": [0.75, 0.77, 0.22, 0.26]})
    text = adversarial_report.scores_reading(scores, 0)
    assert "clean 0.78 (baseline) to 0.80 (retrained)" in text and "On adv_mnli every model's interval" in text
    shares = pd.DataFrame({"model": ["leaky"] * 2, "subset": ["all", "long"], "fixed share": [0.2, 0.1],
                           "introduced share": [0.1, 0.1], "remaining share": [0.7, 0.8]})
    text = adversarial_report.error_shares_reading(shares)
    assert "leaky fixes 20% and introduces 10%" in text and "more than half of every bar" in text
    assert "long pairs for leaky (80%)" in text


@pytest.mark.parametrize("flags, text", [((True,), "one of them is an artifact: w0"),
                                         ((False,), "none of them is an artifact"),
                                         ((True, True), "2 of them are artifacts: w0, w1")])
def test_saliency_example_sentences_agree_in_number(flags, text):
    example = {"label": 0, "prediction": 0,
               "words": [{"word": f"w{i}", "rank": i + 1, "artifact": a} for i, a in enumerate(flags)]}
    assert text in baseline.example_sentence(example, ["negative", "positive"], 5)


def test_sweep_reading_prints_one_number_when_a_range_collapses():
    runs = pd.DataFrame({"dataset": "sst2", "seed": 0, "config": ["baseline", "a", "b"],
                         "method": ["—", "mask", "mask"], "accuracy": [0.87, 0.868, 0.878],
                         "H_topk_after": [1.42, 1.601, 1.602]})
    text = competency_report.sweep_reading(runs)
    assert "mask accuracy 0.868–0.878, entropy 1.60" in text and "1.60–1.60" not in text


def test_calibration_reading_names_each_variant_and_its_direction():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    probs = np.full((300, 3), 0.05)
    probs[np.arange(300), labels] = 0.9  # right every time at 90%: underconfident
    records = [{"variant": v, "seed": 0, "probs": probs} for v in ("baseline", "detached", "differentiable")]
    text = ig_variance_report.calibration_reading(records, labels)
    assert text.count("underconfident by 0.100") == 3 and "Baseline puts 100% of its predictions" in text
