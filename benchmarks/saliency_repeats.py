"""Does a trained run's measured saliency entropy repeat bit for bit on a GPU with `COMPNB_DETERMINISTIC=1`?

    COMPNB_DETERMINISTIC=1 python benchmarks/saliency_repeats.py snli:mask:inverse:1.0:2 --repeats 3 --json OUT.json

Trains (or reuses) chapter 3's run named by DATASET:METHOD:FORM:LAM:SEED (full profile unless `--profile`), then:
(1) measures its after-training gradient-saliency entropy as chapter 3's `competency.measure` does, twice in this
process: first computing the untrained model's entropies, then reading them from their cache; (2) measures the
per-row entropy of its validation rows' gradient saliency S (`influence.saliency_entropy`) `--repeats` times under
each attention backend: PyTorch's choice (what chapter 3 measures with), then each kernel alone (flash,
memory-efficient, cuDNN, math). Per backend: the error if it refuses the inputs, else how many repeats gave per-row
entropies bit-identical to the first, how many rows ever moved, their token counts, the largest move, and the
distinct values of the mean (the number `competency-k5.json` keeps).

`--once CASE` measures once as chapter 3 does (`cached` or `computed`; `--retrain` trains from scratch first), or
only computes the untrained model's entropies (`untrained`): `benchmarks/measure_in_fresh_processes.sh` runs these
in new processes.
"""

from __future__ import annotations

import argparse
import json
import shutil
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from compnb import atomicio, determinism, influence, models, training
from compnb.chapters import baseline, competency

BACKENDS = {"chosen by PyTorch": None, "flash only": [SDPBackend.FLASH_ATTENTION],
            "memory-efficient only": [SDPBackend.EFFICIENT_ATTENTION], "cuDNN only": [SDPBackend.CUDNN_ATTENTION],
            "math only": [SDPBackend.MATH]}


def repeats(model, tokenizer, cfg: training.TrainConfig, backends: list[SDPBackend] | None, n: int) -> dict:
    """Per-row gradient-saliency entropies (rows,) of `n` measurements under `backends` (None: PyTorch's
    choice), compared with the first; {"error": ...} if no kernel of `backends` takes these inputs."""
    texts, pairs, labels = baseline.validation_texts(cfg)
    tables = []
    for _ in range(n):
        try:
            with sdpa_kernel(backends) if backends else nullcontext():
                tables.append(influence.saliency_entropy(model, tokenizer, texts, labels, pairs=pairs,
                                                         method="gradient", k=5, max_length=cfg.max_length,
                                                         batch_size=2 * cfg.batch_size))
        except RuntimeError as error:  # the kernel refuses these inputs (dtype, mask) or deterministic mode
            return {"error": str(error).splitlines()[0]}
    first = tables[0]["entropy"].to_numpy()
    moved = np.zeros(len(first), dtype=bool)
    for table in tables[1:]:
        moved |= table["entropy"].to_numpy() != first
    return {"repeats": n, "bit-identical repeats": sum(bool(np.array_equal(t["entropy"].to_numpy(), first))
                                                       for t in tables),
            "rows": len(first), "rows that moved": int(moved.sum()),
            "their token counts": sorted(int(x) for x in tables[0]["tokens"].to_numpy()[moved])[:40],
            "max |Δ entropy|": float(max(np.abs(t["entropy"].to_numpy() - first).max() for t in tables)),
            "distinct means": sorted({float(t["entropy"].mean()) for t in tables}),
            "longest row (tokens)": int(tables[0]["tokens"].max())}


CASES = {"computed": "untrained model's entropy computed first", "cached": "untrained model's entropy read from its cache"}


def as_chapter_3_measures(folder: Path, cases: list[str]) -> dict[str, float]:
    """The gradient-saliency entropy after training that `competency.measure` records for the run in `folder`,
    measured as chapter 3 measures it (weights loaded, AdvGLUE scored, entropy before training, entropy after),
    once per case in this process: "computed" deletes the untrained model's cached entropies first."""
    cfg = training.TrainConfig.from_json(folder / "config.json")
    out = {}
    for case in cases:
        if case == "computed":
            shutil.rmtree(competency.initial_entropies_path(cfg, 5).parent, ignore_errors=True)
        (folder / "competency-k5.json").unlink(missing_ok=True)
        out[CASES[case]] = competency.measure(folder)["entropy_after"]["gradient"]["H"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="DATASET:METHOD:FORM:LAM:SEED of a chapter-3 run, e.g. snli:mask:inverse:1.0:2")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--profile", default="full", help="profile of the run (default full; smoke to try it on a CPU)")
    parser.add_argument("--once", choices=[*CASES, "untrained"],
                        help="only measure once as chapter 3 does (CASES), or only compute the untrained model's entropies")
    parser.add_argument("--retrain", action="store_true", help="train the run again from scratch first")
    args = parser.parse_args()
    dataset, method, form, lam, seed = args.run.split(":")
    cfg = competency.config(args.profile, dataset, int(seed), {"method": method, "form": form, "lam": float(lam)})
    determinism.enable()
    if args.once == "untrained":
        atomicio.write_json(args.json, competency.initial_entropies(cfg, 5))
        return
    folder = training.train(cfg, force=True) if args.retrain else training.train_with_weights(cfg)
    if args.once:
        out = {"run": folder.name, "retrained": args.retrain, **as_chapter_3_measures(folder, [args.once])}
        atomicio.write_json(args.json, out)
        print(json.dumps(out))
        return
    model, tokenizer, cfg = training.load_run(folder)
    model.to(models.best_device())  # where chapter 3 measures it (its AdvGLUE scoring moves it there first)
    out = {"run": folder.name, "deterministic": torch.are_deterministic_algorithms_enabled(),
           "device": str(next(model.parameters()).device), "torch": torch.__version__,
           "as chapter 3 measures": as_chapter_3_measures(folder, ["computed", "cached"]),
           "measurements": [{"backend": name, **repeats(model, tokenizer, cfg, backends, args.repeats)}
                            for name, backends in BACKENDS.items()]}
    atomicio.write_json(args.json, out)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
