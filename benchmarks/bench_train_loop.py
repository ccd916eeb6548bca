"""Benchmark: the real training loop (`compnb.training.train`) with each engine, eager and captured
(`COMPNB_CUDA_GRAPHS=0` and `1`), on committed run configurations, one after the other on one GPU.

    python benchmarks/bench_train_loop.py [--runs sst2-ce-09def950bd9c sst2-competency-584a796c5752]
        [--json results/full/paper-scale/train-loop-benchmark.json]

Each configuration is trained from scratch twice into a temporary run folder (the committed runs are not
touched): training examples per second, wall seconds, the engine the run recorded and its validation accuracy.
The defaults are chapter 2's SST-2 baseline (seed 0) and chapter 3's gradient · exp_subtract run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

from compnb import atomicio, run_cache, training
from compnb.paths import results_dir
from compnb.provenance import git_state

DEFAULT_RUNS = ("sst2-ce-09def950bd9c", "sst2-competency-584a796c5752")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=list(DEFAULT_RUNS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for name in args.runs:
        config = training.TrainConfig.from_json(results_dir("full", "runs") / name / "config.json")
        for flag in ("0", "1"):
            os.environ["COMPNB_CUDA_GRAPHS"] = flag
            with tempfile.TemporaryDirectory() as root:
                folder = training.train(config, force=True, runs_root=root)
                m = json.loads((folder / run_cache.FINISHED).read_text())
            rows.append({"run": name, "loss": config.loss, "engine": m["engine"], "batch": config.batch_size,
                         "max_length": config.max_length, "train_examples": m["train_examples"],
                         "epochs": m["epochs_run"], "train_examples_per_s": m["train_examples_per_s"],
                         "train_time_s": m["train_time_s"], "wall_time_s": m["wall_time_s"],
                         "val_accuracy": m["validation"]["accuracy"]})
            print(json.dumps(rows[-1]), flush=True)
    for name in args.runs:
        eager, graph = (next(r for r in rows if r["run"] == name and r["engine"] == e) for e in ("eager", "cuda-graph"))
        print(f"{name}: captured / eager examples/s = {graph['train_examples_per_s'] / eager['train_examples_per_s']:.2f}")
    if args.json:
        atomicio.write_json(args.json, {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                                        "torch": torch.__version__, "git": git_state(), "rows": rows})


if __name__ == "__main__":
    main()
