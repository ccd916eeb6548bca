"""What one run costs, read from the runs' own records: rows per finished run, medians and largest peak per kind
and engine, how many runs a GPU holds at once, and the sentence for a smaller machine."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from compnb.chapters import run_costs
from compnb.training import TrainConfig


def run(folder, name: str, loss: str = "ce", params: dict | None = None, device: str = "GPU X",
        engine: str | None = "cuda-graph", seconds: float = 10.0, rate: float = 100.0, peak_mb: float | None = 1024.0):
    path = folder / name
    path.mkdir(parents=True)
    config = TrainConfig(model="m", dataset="snli", loss=loss, loss_params=params or {}, seed=0, max_length=64)
    (path / "config.json").write_text(json.dumps(config.to_dict()))
    metrics = {"device": device, "train_examples": 1000, "train_time_s": seconds, "train_examples_per_s": rate,
               "epochs_run": 2.0}
    metrics |= {"engine": engine} if engine else {}
    metrics |= {"peak_memory_mb": peak_mb} if peak_mb is not None else {}
    (path / "metrics.json").write_text(json.dumps(metrics))


def test_runs_are_read_from_their_records_and_summarised_per_kind_and_engine(tmp_path):
    mask = {"method": "mask", "form": "subtract", "lam": 1.0}
    run(tmp_path, "a", seconds=10, rate=100, peak_mb=1024)
    run(tmp_path, "b", seconds=30, rate=300, peak_mb=3 * 1024)
    run(tmp_path, "c", loss="competency", params=mask, seconds=60, peak_mb=6 * 1024)
    run(tmp_path, "d", engine=None, peak_mb=None)  # an older run: eager, no peak recorded
    run(tmp_path, "cpu", device="CPU (2 threads)")  # as a CPU run records its device
    (tmp_path / "unfinished").mkdir()  # no metrics: skipped
    rows = run_costs.measured(tmp_path)
    assert list(rows["run"]) == ["a", "b", "c", "cpu", "d"]
    assert rows.set_index("run").loc["d", "engine"] == "eager"
    assert math.isnan(rows.set_index("run").loc["d", "peak memory (GiB)"])
    table = run_costs.summary(rows).set_index(["engine", "kind"])
    assert not run_costs.summary(rows)["device"].str.startswith("CPU").any()
    ce = table.loc[("cuda-graph", "ce")]
    assert (ce["runs"], ce["median examples/s"], ce["median training time (s)"], ce["largest peak memory (GiB)"]) \
        == (2, 200.0, 20.0, 3.0)
    assert table.loc[("cuda-graph", "competency/mask"), "largest peak memory (GiB)"] == 6.0
    text = run_costs.smaller_machine_sentence(run_costs.summary(rows))
    assert ("with the cuda-graph engine the most any run took is 6.0 GiB (competency/mask on snli, 64 tokens, "
            "GPU X), so an 80 GiB GPU holds 11 such runs at once, a 24 GiB GPU 3 and a 16 GiB GPU 2") in text
    assert "eager engine" not in text  # its only run recorded no peak
    assert run_costs.summary(rows.iloc[:0]).empty


@pytest.mark.parametrize("peak, memory, headroom, held", [(6.0, 80, 1.0, 11), (6.0, 24, 1.0, 3), (7.1, 16, 1.0, 1),
                                                          (30.0, 16, 1.0, 0), (1.0, 16, 0.0, 16)])
def test_runs_at_once_leave_headroom_per_run(peak, memory, headroom, held):
    assert run_costs.runs_at_once(peak, memory, headroom) == held


def test_runs_at_once_refuses_nonsense_sizes():
    with pytest.raises(ValueError, match="positive numbers of GiB"):
        run_costs.runs_at_once(0.0, 24)


def test_no_recorded_peak_is_said_plainly():
    table = pd.DataFrame({"engine": ["eager"], "kind": ["ce"], "largest peak memory (GiB)": [math.nan]})
    assert run_costs.smaller_machine_sentence(table).startswith("No GPU run recorded its peak memory")
