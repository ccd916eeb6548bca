"""Compare two from-scratch reruns of the book's chapters, run by run, and say which repeated bit for bit.

    python benchmarks/compare_reruns.py build/rerun-A build/rerun-B --label "chapters 2-4" \
        --csv results/full/paper-scale/reruns.csv

Each argument is a project tree (its `results/full`) that `benchmarks/rerun_chapters_twice.sh`,
`rerun_mask_runs_twice.sh` or `rerun_confirmations_twice.sh` filled. One row per run present in both with
validation probabilities: its chapter, dataset, loss (saliency method, form, λ), seed, whether the validation
probabilities are bit-identical, the largest probability difference, both validation accuracies, the accuracy
of the committed run of the same id (trained without the switch, for scale), and how many of its result files
(AdvGLUE scores, entropies, analyses; not the timing records `metrics.json` and `run.json`) are byte-identical,
and which are not. One more row per chapter folder counts its files (attacked sets, tables). Rows of `--label`
in the CSV are replaced.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from compnb import atomicio, run_cache
from compnb.chapters import adversarial_eval, baseline, competency

TIMING_FILES = {"metrics.json", "run.json", "invocation.json", "sweep.json"}


def chapter_of_runs() -> dict[str, str]:
    """Run id -> '2', '3' or '4' for every run the full profile plans (chapter 4's retrained runs are known by
    their extra training rows instead)."""
    out = {run_cache.run_dir(c).name: "2" for c in baseline.configs("full")}
    for seed in range(4):
        out |= {run_cache.run_dir(c).name: "3" for c in competency.grid("full", seed, (0.1, 0.5, 1.0))}
    out |= {run_cache.run_dir(adversarial_eval.config("full", s)).name: "4" for s in range(3)}
    return out


def same_files(a: Path, b: Path) -> tuple[int, int, str]:
    """(byte-identical, compared, the others' paths joined by spaces) over the files under `a` that `b` also
    has, timing records left out."""
    files = [p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name not in TIMING_FILES
             and "runs" not in p.relative_to(a).parts[:1]]
    shared = [f for f in files if (b / f).is_file()]
    differ = [str(f) for f in sorted(shared) if (a / f).read_bytes() != (b / f).read_bytes()]
    return len(shared) - len(differ), len(shared), " ".join(differ)


def compare(tree_a: Path, tree_b: Path, committed: Path) -> pd.DataFrame:
    chapters = chapter_of_runs()
    runs_a, runs_b = tree_a / "results" / "full" / "runs", tree_b / "results" / "full" / "runs"
    rows = []
    for folder in sorted(runs_a.iterdir()):
        other = runs_b / folder.name
        if not ((folder / "val_probs.npy").is_file() and (other / "val_probs.npy").is_file()):
            continue
        cfg = json.loads((folder / "config.json").read_text())
        params = cfg.get("loss_params") or {}
        pa, pb = np.load(folder / "val_probs.npy"), np.load(other / "val_probs.npy")
        acc = [json.loads((f / "metrics.json").read_text())["validation"]["accuracy"] for f in (folder, other)]
        kept = committed / folder.name / "metrics.json"
        same, shared, differ = same_files(folder, other)
        rows.append({"run": folder.name, "chapter": "4" if cfg.get("extra_train") else chapters.get(folder.name, "?"),
                     "dataset": cfg["dataset"], "saliency": params.get("method", "— (ce)"),
                     "form": params.get("form", ""), "lam": params.get("lam"), "seed": cfg["seed"],
                     "identical probabilities": bool(np.array_equal(pa, pb)),
                     "max |Δp|": float(np.abs(pa - pb).max()), "accuracy A": acc[0], "accuracy B": acc[1],
                     "accuracy committed": json.loads(kept.read_text())["validation"]["accuracy"]
                     if kept.is_file() else None,
                     "files identical": same, "files compared": shared, "files that differ": differ})
    for chapter in sorted(p.name for p in (tree_a / "results" / "full").iterdir() if p.name != "runs"):
        same, shared, differ = same_files(tree_a / "results" / "full" / chapter, tree_b / "results" / "full" / chapter)
        if shared:
            rows.append({"run": f"{chapter}/", "chapter": chapter[:2].lstrip("0"), "files identical": same,
                         "files compared": shared, "files that differ": differ})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree_a", type=Path)
    parser.add_argument("tree_b", type=Path)
    parser.add_argument("--label", required=True, help="what was rerun, e.g. 'chapters 2-4'")
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--committed", type=Path, default=Path("results/full/runs"))
    args = parser.parse_args()
    frame = compare(args.tree_a, args.tree_b, args.committed)
    frame.insert(0, "rerun", args.label)
    if args.csv.is_file():
        frame = pd.concat([pd.read_csv(args.csv).query("rerun != @args.label"), frame], ignore_index=True)
    atomicio.write_csv(args.csv, frame)
    runs = frame[(frame["rerun"] == args.label) & frame["identical probabilities"].notna()]
    print(f"{args.label}: {int(runs['identical probabilities'].sum())} of {len(runs)} runs bit-identical")


if __name__ == "__main__":
    main()
