"""Retrain chapter 3's runs whose per-sentence top-k counts the ledger needs (P1-topk-loss compares the
selection-seed baseline with gradient · exp_subtract at its chosen λ, paired by sentence) and that were
committed before those counts were stored: their measurements on the old weights are dropped, the run is
trained again from its own config (same folder, same hash), measured, analysed, and its
`analysis-k5/topk_per_sentence.csv` written.

    python benchmarks/retrain_for_topk_pairs.py --profile full          # the two runs the ledger pairs
    python benchmarks/retrain_for_topk_pairs.py --runs sst2-ce-966a1a349955

A GPU job (on a CPU it takes hours at the full profile). The retrained runs are new trainings of the same
configurations: without `COMPNB_DETERMINISTIC` their numbers move within GPU rerun noise, so chapter 3 is
re-executed afterwards and reads them like any other run.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from compnb import run_cache, training
from compnb.chapters import competency
from compnb.paths import results_dir


def ledger_pair(profile: str) -> list[str]:
    """The selection-seed SST-2 baseline and gradient · exp_subtract at its confirmed λ, from chapter 3's
    committed tables."""
    folder = results_dir(profile, "03-modified-loss")
    runs = pd.read_csv(folder / "runs.csv")
    chosen = next(c for c in pd.read_csv(folder / "seed_comparison.csv")["config"]
                  if c.startswith("gradient · exp_subtract"))
    first = runs[(runs["dataset"] == "sst2") & (runs["seed"] == runs["seed"].min())]
    return [first[first["config"] == name]["run"].iloc[0] for name in ("baseline", chosen)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="full")
    parser.add_argument("--runs", nargs="*", help="run folder names (default: the two the ledger pairs)")
    args = parser.parse_args()
    names = args.runs or ledger_pair(args.profile)
    timings = {}
    for name in names:
        folder = results_dir(args.profile, "runs") / name
        config = training.TrainConfig.from_json(folder / "config.json")
        run_cache.drop_measurements(folder)
        start = time.perf_counter()
        competency.train_and_measure(config, k=5, analysed=True)
        timings[name] = time.perf_counter() - start
        if not (folder / "analysis-k5" / competency.TOPK_FILE).is_file():
            raise SystemExit(f"{name}: no per-sentence top-k counts were written; see the analysis above")
    print(json.dumps({"retrained": names, "seconds": timings}))


if __name__ == "__main__":
    main()
