"""The appendix "At the papers' scale": its tables from the benchmark files, and the decoders' saliency."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from compnb.chapters import paper_scale
from compnb.paths import project_root


def test_gradient_checks_are_read_back_from_the_device_log(tmp_path):
    log = tmp_path / "checks.log"
    log.write_text("# measured at abc (device log): {'strategy': 'ddp', 'ranks': 2, 'sharded': False, "
                   "'max_abs_diff': 1e-07, 'relative': 3e-07}\n"
                   "# measured at abc (device log): {'strategy': 'fsdp2', 'ranks': 2, 'sharded': True, "
                   "'max_abs_diff': 2e-07, 'relative': 4e-07}\n")
    table = paper_scale.checks_from_log(log)
    assert table["strategy"].tolist() == ["ddp", "fsdp2"] and table["sharded"].tolist() == [False, True]
    assert table["relative to the largest"].tolist() == [3e-07, 4e-07]


def test_sharded_rows_keep_their_own_batch_and_the_failed_ones_their_status():
    record = {"rows": [
        {"strategy": "fsdp2", "model": "llama-2-7b", "method": "plain", "ranks": 2, "batch_per_rank": 4,
         "status": "ok", "ms_per_step": 400.0, "ratio_to_plain": 1.0, "peak_gib": 60.0, "mfu": 0.1},
        {"strategy": "fsdp2", "model": "llama-2-7b", "method": "competency-gradient", "ranks": 2,
         "batch_per_rank": 4, "status": "out of memory"}]}
    table = paper_scale.sharded_table(record)
    assert table["rows per GPU"].tolist() == [4, 4]
    assert table["status"].tolist() == ["ok", "out of memory"] and math.isnan(table["ms / step"].iloc[1])
    assert table["MFU %"].iloc[0] == pytest.approx(10.0)


def test_decoders_put_more_saliency_on_the_last_token_than_a_mean_pooled_encoder():
    table = paper_scale.last_token_concentration(rows=8, tokens=16).set_index("backbone (random weights)")
    assert table.loc["ELECTRA", "H top-5 (nats)"] > 0.9 * math.log(5)
    for decoder in ("OPT", "Llama"):
        assert table.loc[decoder, "pooling"] == "last"
        assert table.loc[decoder, "S on the last token"] > 5 * table.loc["ELECTRA", "S on the last token"]
        assert table.loc[decoder, "H top-5 (nats)"] < table.loc["ELECTRA", "H top-5 (nats)"]


def test_the_determinism_reading_follows_the_record():
    record = {"loss": "ce", "modes": [
        {"deterministic": False, "accuracy": [0.5, 0.6], "probabilities identical": False,
         "loss curves identical": False, "ms per step": [30.0, 20.0]},
        {"deterministic": True, "accuracy": [0.5, 0.5], "probabilities identical": True,
         "loss curves identical": True, "ms per step": [40.0, 30.0]}]}
    failing = {"loss": "competency", "modes": [{"deterministic": True, "error": "index_add_cuda_ does not have a "
                                                "deterministic implementation"}]}
    table = paper_scale.determinism_table([record, failing])
    text = paper_scale.determinism_sentence(table)
    assert "the deterministic mode repeated bit for bit (1 of 3 cases)" in text
    assert "index_add_cuda_" in text and "ce ×1.5" in text


def _fake_run(tree, run, probs, accuracy, **config):
    import json

    import numpy as np

    folder = tree / "results" / "full" / "runs" / run
    folder.mkdir(parents=True)
    np.save(folder / "val_probs.npy", np.asarray(probs, dtype=np.float32))
    (folder / "config.json").write_text(json.dumps({"dataset": "sst2", "seed": 0, "extra_train": None} | config))
    (folder / "metrics.json").write_text(json.dumps({"validation": {"accuracy": accuracy}, "wall_time_s": accuracy}))


def test_two_reruns_are_compared_run_by_run_and_read_back(tmp_path):
    """benchmarks/compare_reruns.py on two small trees: a run whose probabilities differ in the last bit is not
    identical, timing records are not compared, the CSV is read into the appendix's table and sentence."""
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("compare_reruns", project_root() / "benchmarks" / "compare_reruns.py")
    compare_reruns = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare_reruns)
    a, b = tmp_path / "A", tmp_path / "B"
    nudged = np.nextafter(np.float32(0.25), np.float32(1))
    for tree, last, acc in ((a, 0.25, 0.75), (b, nudged, 0.5)):
        _fake_run(tree, "sst2-ce-1", [0.5, 0.5], 0.9)
        _fake_run(tree, "sst2-competency-2", [0.75, last], acc, loss_params={"method": "mask", "form": "subtract",
                                                                             "lam": 0.5})
    frame = compare_reruns.compare(a, b, tmp_path / "none")
    by_run = frame.set_index("run")
    assert bool(by_run.loc["sst2-ce-1", "identical probabilities"])
    assert not by_run.loc["sst2-competency-2", "identical probabilities"]
    assert 0 < by_run.loc["sst2-competency-2", "max |Δp|"] < 1e-6
    assert by_run.loc["sst2-ce-1", "files compared"] == 2  # config.json and val_probs.npy, not metrics.json
    frame.insert(0, "rerun", "pair 1")
    frame.to_csv(tmp_path / "reruns.csv", index=False)
    summary = paper_scale.rerun_table(tmp_path / "reruns.csv")
    assert summary.set_index("saliency")["bit-identical"].to_dict() == {"— (ce)": 1, "mask": 0}
    assert summary.set_index("saliency")["result files compared"].to_dict() == {"— (ce)": 2, "mask": 2}
    planned = paper_scale.Planned(5, frozenset({"sst2-ce-1", "sst2-competency-2", "sst2-ce-3"}))
    text = paper_scale.rerun_sentence(summary, planned, paper_scale.latest_reruns(tmp_path / "reruns.csv"))
    assert "1 of 2 runs repeated bit for bit" in text
    assert "mask-saliency runs (1 of 1, validation accuracy apart by up to 0.2500)" in text
    assert "1 of 2 runs repeated bit for bit, and the pairs cover 2 of the 5 runs" in text
    assert "the rest were not rerun" in text and "earlier full profile" not in text
    # today's profile no longer trains the mask run's configuration: its pair counts apart
    redesigned = paper_scale.Planned(5, frozenset({"sst2-ce-1"}))
    text = paper_scale.rerun_sentence(summary, redesigned, paper_scale.latest_reruns(tmp_path / "reruns.csv"))
    assert ("cover 1 of the 5 runs that chapters 2 to 4 train at the full profile; the rest were not rerun; 1 more "
            "is a run of an earlier full profile, which today's no longer trains.") in text
    # a later pair that repeats the mask run replaces the first pair's verdict on it
    a2, b2 = tmp_path / "A2", tmp_path / "B2"
    for tree, entropy in ((a2, "{}"), (b2, "{ }")):
        _fake_run(tree, "sst2-ce-1", [0.5, 0.5], 0.9)
        _fake_run(tree, "sst2-competency-2", [0.75, 0.25], 0.75, loss_params={"method": "mask", "form": "subtract",
                                                                              "lam": 0.5})
        (tree / "results" / "full" / "runs" / "sst2-competency-2" / "competency-k5.json").write_text(entropy)
    later = compare_reruns.compare(a2, b2, tmp_path / "none")
    later.insert(0, "rerun", "pair 2")
    pd.concat([frame, later]).to_csv(tmp_path / "reruns.csv", index=False)
    latest = paper_scale.latest_reruns(tmp_path / "reruns.csv")
    assert latest.set_index("run")["rerun"].to_dict() == {"sst2-ce-1": "pair 2", "sst2-competency-2": "pair 2"}
    both = paper_scale.Planned(2, frozenset({"sst2-ce-1", "sst2-competency-2"}))
    text = paper_scale.rerun_sentence(paper_scale.rerun_table(tmp_path / "reruns.csv"), both, latest)
    assert "Then pair 2: 2 of 2 runs repeated bit for bit" in text and "not rerun" not in text
    assert paper_scale.differing_files(tmp_path / "reruns.csv").to_dict("records") == [
        {"rerun": "pair 2", "run": "sst2-competency-2", "files that differ": "competency-k5.json"}]
    outcome = paper_scale.rerun_outcome(paper_scale.rerun_table(tmp_path / "reruns.csv"), both, latest,
                                        paper_scale.differing_files(tmp_path / "reruns.csv"))
    assert outcome == ("The first pair repeated 1 of its 2 runs bit for bit; it repeated none of chapter ?'s 1 "
                       "mask-saliency runs. Taking each run's latest pair, 2 of 2 runs repeated bit for bit (2 of the 2 "
                       "runs that chapters 2 to 4 train at the full profile), and 1 of them left a measurement file "
                       "that differed in a last digit (competency-k5.json).")


def test_measurement_repeats_are_read_per_run_and_way_of_measuring(tmp_path):
    """The saliency_repeats records become one row per way of measuring, a refusing kernel marked, in-process
    ways before the fresh-process record, values at float32 precision."""
    import json

    (tmp_path / "snli_x.json").write_text(json.dumps({
        "run": "snli-competency-1", "as chapter 3 measures": {"untrained model's entropy computed first": 2.5,
                                                              "untrained model's entropy read from its cache": 2.25},
        "measurements": [{"backend": "math only", "repeats": 3, "bit-identical repeats": 3, "distinct means": [2.5]},
                         {"backend": "flash only", "error": "No available kernel."}]}))
    (tmp_path / "fresh-snli_x-1-train.json").write_text(json.dumps({
        "run": "snli-competency-1", "retrained": True, "untrained model's entropy read from its cache": 2.25}))
    table = paper_scale.measurement_repeats(tmp_path)
    assert list(table["values"]) == ["2.500000000", "—", "2.500000000", "2.250000000", "2.250000000"]
    assert table["measured"].iloc[-1].startswith("new process")
    assert pd.isna(table["identical"].iloc[1]) and "refused (No available kernel.)" in table["measured"].iloc[1]


def test_the_engine_tables_read_the_committed_benchmarks():
    import json

    scale = paper_scale.results_dir("full", "paper-scale")
    steps = paper_scale.engine_step_table(json.loads((scale / "train-step-benchmark.json").read_text()))
    assert len(steps) == 20 and set(steps["loss"]) == {"ce", "competency-gradient", "competency-mask", "ig-detached",
                                                       "ig-differentiable"}
    ce = steps[(steps["loss"] == "ce")]
    assert (ce["speed-up"] > 4).all() and (ce["max |Δw| captured vs eager"] == 0).all()
    chapters = {f"chapter {n}": {e: json.loads((scale / f"engines-chapter{n}" / f"invocation-{e}.json").read_text())
                                 for e in ("eager", "captured")} for n in (2, 5)}
    loop = paper_scale.engine_loop_table(json.loads((scale / "train-loop-benchmark.json").read_text()), chapters)
    assert len(loop) == 8 and set(loop["engine"]) == {"eager", "cuda-graph", "captured"}
    assert loop["what"].str.contains("chapter 5, 9 runs from scratch, 9 workers").sum() == 2
    cost = paper_scale.engine_cost_table(chapters)
    assert list(cost["workers"]) == [6, 9] and not cost["met"].any()
    assert (cost["captured / eager"] == cost["captured s"] / cost["eager s"]).all() and (cost["captured / eager"] < 1).all()


def test_the_busy_table_bounds_each_speed_up():
    import json

    record = json.loads((paper_scale.results_dir("full", "paper-scale") / "train-step-benchmark.json").read_text())
    busy = paper_scale.busy_table(record)
    assert record["complete"] and len(busy) == 20 and busy["batch × tokens"].iloc[0] == "32 × 64"
    assert ((busy["eager busy ms"] <= busy["eager ms"]) & (busy["captured busy ms"] <= busy["captured ms"] * 1.01)).all()
    assert (abs(busy["speed-up bound"] - busy["eager ms"] / busy["eager busy ms"]) < 1e-9).all()
    assert (busy["speed-up"] <= busy["speed-up bound"] * 1.05).all()  # a replay removes idle time, no more
    ig = busy[(busy["loss"] == "ig-differentiable") & (busy["backbone"] == "all-MiniLM-L6-v2")]
    assert (ig["speed-up bound"] < 2).all()  # the 2x is out of capture's reach for MiniLM's IG penalty


def test_a_row_that_could_not_be_captured_has_no_busy_row():
    record = {"rows": [{"backbone": "b", "batch": 2, "tokens": 8, "loss": "ce", "eager ms": 10.0, "captured ms": 2.0,
                        "speed-up": 5.0, "eager GPU-busy ms": 1.0, "captured GPU-busy ms": 1.5},
                       {"backbone": "b", "batch": 2, "tokens": 8, "loss": "x", "error": "RuntimeError: no"}]}
    busy = paper_scale.busy_table(record)
    assert list(busy["loss"]) == ["ce"] and busy["eager busy share"].iloc[0] == 0.1
    assert busy["speed-up bound"].iloc[0] == 10.0


def test_the_workers_table_reads_the_committed_benchmark():
    import json

    record = json.loads((paper_scale.results_dir("full", "paper-scale") / "workers-benchmark.json").read_text())
    table = paper_scale.workers_table(record)
    assert list(table["workers"]) == [1, 2, 5] and (table["runs"] == 7).all()
    assert table["speed over 1 worker"].iloc[0] == 1 and record["fastest"] == int(table.loc[table["wall s"].idxmin(), "workers"])


def test_gpu_test_outcomes_reads_the_short_summary_of_a_pytest_log():
    log = ("..s.E\nPASSED tests/test_captured.py::test_a[ce-]\nSKIPPED [1] tests/test_captured.py:48: has a GPU\n"
           "ERROR tests/test_maps.py::test_b - ValueError: no\nFAILED tests/test_x.py::test_c\nPASSED not a test line\n")
    table = paper_scale.gpu_test_outcomes(log)
    assert table.to_dict("records") == [
        {"file": "tests/test_captured.py", "test": "test_a[ce-]", "outcome": "PASSED"},
        {"file": "tests/test_captured.py", "test": "", "outcome": "SKIPPED"},
        {"file": "tests/test_maps.py", "test": "test_b", "outcome": "ERROR"},
        {"file": "tests/test_x.py", "test": "test_c", "outcome": "FAILED"}]
    committed = (paper_scale.results_dir("full", "paper-scale") / "test-captured-gpu.log").read_text()
    equivalence = paper_scale.gpu_test_outcomes(committed)
    equivalence = equivalence[equivalence["test"].str.startswith("test_captured_steps_give_the_weights_of_eager_steps")]
    assert len(equivalence) == 5 and (equivalence["outcome"] == "PASSED").all()  # every registered loss, on a GPU


def test_planned_runs_name_every_run_of_the_committed_full_profile():
    """Every run today's full profile trains in chapters 2 to 4 is named, and each name is a committed run folder."""
    from compnb.paths import project_root

    planned = paper_scale.planned_runs("full")
    assert len(planned.names) == planned.count
    runs = project_root() / "results" / "full" / "runs"
    assert all((runs / name / "config.json").is_file() for name in planned.names)
