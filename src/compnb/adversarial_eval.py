"""Chapter 4's pipeline: the second paper's gradient-guided attack and adversarial retraining on SNLI, and
AdvGLUE scores, cached per seed.

Per seed: train (or reuse) a baseline on SNLI train (checkpoints chosen on SNLI validation); attack every
pair of the SNLI test split with it; split those pairs by premise into a *build* half and an *evaluation*
half; retrain on SNLI train plus a class-balanced draw of up to `per_class` attacked build pairs per label
(leak-free), and once more on a draw from both halves (the paper's setting, which trains on pairs it then
evaluates on: leaky). The paper built its set from validation; here validation selects checkpoints, so
the test split, used for nothing else, is the pool, and its evaluation half is the clean test set. Every
model is scored, right after training, on the evaluation half clean and attacked, and on AdvGLUE adv-MNLI
and adv-MNLI-mismatched; probabilities
are cached as `<run>/probs-<set>.npy`, attacked sets as Parquet under `results/<profile>/<chapter>/adv/`,
so the chapter renders on a CPU from what a GPU produced: `python -m compnb.adversarial_eval --profile full`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from compnb import adversarial, atomicio, data, invocations, models, parallel, training
from compnb.paths import project_root, results_dir
from compnb.profiles import settings

CHAPTER = "04-adversarial-eval"
TRAIN_KEYS = ("epochs", "batch_size", "lr", "max_length", "max_train_examples", "max_eval_examples")
ADVGLUE = ("adv_mnli", "adv_mnli_mismatched")
KINDS = ("baseline", "retrained", "leaky")


def config(profile: str, seed: int, model: str = models.DEFAULT_BACKBONE, extra: str | None = None,
           **overrides) -> training.TrainConfig:
    """The SNLI run of one seed, plain (`extra` None) or with the adversarial rows of Parquet file `extra`."""
    train = {key: settings(CHAPTER, profile)[key] for key in TRAIN_KEYS} | overrides
    return training.TrainConfig(model=model, dataset="snli", loss="ce", seed=seed, profile=profile,
                                extra_train=extra, **train)


def adv_folder(profile: str) -> Path:
    folder = results_dir(profile, CHAPTER) / "adv"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pool(profile: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(SNLI test rows, build-half indices, evaluation-half indices): a premise split, fixed seed 0, of at
    most the profile's `max_pool` rows (seed-0 subsample)."""
    chosen = settings(CHAPTER, profile)
    ds = data.subsample(data.load("snli", "test"), chosen["max_pool"], 0)
    frame = pd.DataFrame({"premise": data.column(ds, "premise"), "hypothesis": data.column(ds, "hypothesis"),
                          "label": data.column(ds, "label")})
    build, held = adversarial.premise_split(frame["premise"].tolist(), chosen["heldout_fraction"], 0)
    return frame, build, held


def _relative(path: Path) -> str:
    return str(path.relative_to(project_root()))


def attacked(profile: str, seed: int, base_dir: Path) -> Path:
    """Parquet of every pool pair attacked with the seed's baseline (cached), with its half in `half`."""
    path = adv_folder(profile) / f"attacked-s{seed}.parquet"
    if path.is_file():
        return path
    frame, build, held = pool(profile)
    model, tokenizer, cfg = training.load_run(base_dir)
    out = adversarial.attack_pairs(model.to(models.best_device()), tokenizer, frame["premise"].tolist(),
                                   frame["hypothesis"].tolist(), frame["label"].tolist(), max_length=cfg.max_length,
                                   batch_size=cfg.batch_size)
    out["half"] = np.where(np.isin(np.arange(len(out)), held), "evaluation", "build")
    atomicio.atomic_write(path, lambda f: out.to_parquet(f, index=False))
    return path


def training_sets(profile: str, seed: int, attacked_path: Path) -> dict[str, Path]:
    """Parquet files of the class-balanced adversarial training rows: `retrained` draws from the build half
    only, `leaky` from both halves (cached; the counts per label are in `<file>.json`)."""
    per_class, frame = settings(CHAPTER, profile)["per_class"], pd.read_parquet(attacked_path)
    out = {}
    for kind, halves in (("retrained", ("build",)), ("leaky", ("build", "evaluation"))):
        path = adv_folder(profile) / f"train-{kind}-s{seed}.parquet"
        if not path.is_file():
            rows = frame[frame["half"].isin(halves)].reset_index(drop=True)
            chosen, counts = adversarial.balanced(rows["label"].to_numpy(), per_class, seed)
            atomicio.write_json(path.with_suffix(".json"), {"per_class": per_class, "drawn": counts,
                                                            "halves": list(halves)})
            atomicio.atomic_write(path, lambda f, r=rows.iloc[chosen]: r[["premise", "hypothesis", "label"]]
                                  .to_parquet(f, index=False))
        out[kind] = path
    return out


def evaluation_sets(profile: str, seed: int) -> dict[str, pd.DataFrame]:
    """The sets every model of a seed is scored on: name → frame with premise, hypothesis, label."""
    attacked_rows = pd.read_parquet(adv_folder(profile) / f"attacked-s{seed}.parquet")
    held = attacked_rows[attacked_rows["half"] == "evaluation"]
    sets = {"clean": held[["premise", "original", "label"]].rename(columns={"original": "hypothesis"}),
            "attacked": held[["premise", "hypothesis", "label"]]}
    for name in ADVGLUE:
        ds = data.load(name, "validation")
        sets[name] = pd.DataFrame({k: data.column(ds, k) for k in ("premise", "hypothesis", "label")})
    return {name: frame.reset_index(drop=True) for name, frame in sets.items()}


def _probs_path(folder: Path, name: str) -> Path:
    return folder / f"probs-{name}.npy"


def score(folder: Path, sets: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """Probabilities (n, 3) of a finished run on every set, cached as `<run>/probs-<set>.npy`."""
    paths = {name: _probs_path(folder, name) for name in sets}
    if not all(p.is_file() for p in paths.values()):
        model, tokenizer, cfg = training.load_run(folder)
        model.to(models.best_device())
        for name, frame in sets.items():
            probs = training.predict(model, tokenizer, data.from_frame(frame, "snli"), ("premise", "hypothesis"),
                                     cfg.max_length, cfg.batch_size)
            atomicio.atomic_write(paths[name], lambda f, p=probs: np.save(f, p))
    return {name: np.load(path) for name, path in paths.items()}


def _ready(folder: Path, sets: dict[str, pd.DataFrame] | None) -> bool:
    return (folder / training.FINISHED).is_file() and sets is not None and all(
        _probs_path(folder, name).is_file() for name in sets)


def _train_scored(cfg: training.TrainConfig, sets: dict[str, pd.DataFrame] | None) -> Path:
    """Train (or reuse; retrain when finished elsewhere without weights and not yet scored) and score."""
    folder = training.run_dir(cfg)
    if _ready(folder, sets):
        return folder
    folder = training.train_with_weights(cfg)
    if sets is not None:
        score(folder, sets)
    return folder


def run_seed(profile: str, seed: int, model: str = models.DEFAULT_BACKBONE) -> dict:
    """Baseline, attack, retrained and leaky runs of one seed (cached); their folders and the sets' sizes."""
    base_cfg = config(profile, seed, model)
    base_dir = training.run_dir(base_cfg)
    attacked_path = adv_folder(profile) / f"attacked-s{seed}.parquet"
    if not attacked_path.is_file():
        base_dir = _train_scored(base_cfg, None)
        attacked(profile, seed, base_dir)
    sets = evaluation_sets(profile, seed)
    base_dir = _train_scored(base_cfg, sets)
    runs = {"baseline": base_dir}
    for kind, path in training_sets(profile, seed, attacked_path).items():
        runs[kind] = _train_scored(config(profile, seed, model, _relative(path)), sets)
    return {"seed": seed, "runs": {k: str(v) for k, v in runs.items()}}


def run_all(profile: str, model: str = models.DEFAULT_BACKBONE, workers: int = 1) -> list[dict]:
    """Every seed of the profile, one worker process per seed when `workers` > 1; one record per (seed, kind):
    seed, kind, run_dir, metrics, probs (set → (n, 3)), and the evaluation sets' frames."""
    seeds = tuple(settings(CHAPTER, profile)["seeds"])
    workers = min(parallel.check_workers(workers), len(seeds))
    parallel.run_jobs(run_seed, [(profile, s, model) for s in seeds], workers, "adversarial retraining",
                      [f"seed {s}" for s in seeds])
    records = []
    for seed in seeds:
        sets = evaluation_sets(profile, seed)
        base_cfg = config(profile, seed, model)
        paths = training_sets(profile, seed, adv_folder(profile) / f"attacked-s{seed}.parquet")
        cfgs = {"baseline": base_cfg, **{k: config(profile, seed, model, _relative(p)) for k, p in paths.items()}}
        for kind, cfg in cfgs.items():
            folder = training.run_dir(cfg)
            records.append({"seed": seed, "kind": kind, "config": cfg, "run_dir": folder, "sets": sets,
                            "metrics": json.loads((folder / training.FINISHED).read_text()),
                            "probs": score(folder, sets)})
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="attack, retrain and score chapter 4's SNLI models (cached)")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--model", default=models.DEFAULT_BACKBONE)
    parser.add_argument("--workers", type=int, default=1, help="parallel processes, one seed each (default 1)")
    args = parser.parse_args(argv)
    before, start = invocations.finished_runs(args.profile), time.perf_counter()
    records = run_all(args.profile, args.model, args.workers)
    invocations.record(args.profile, CHAPTER, f"python -m compnb.adversarial_eval --profile {args.profile} --workers "
                       f"{args.workers}", [r["run_dir"] for r in records], before, time.perf_counter() - start)
    for r in records:
        accuracy = {name: float((p.argmax(1) == r["sets"][name]["label"].to_numpy()).mean())
                    for name, p in r["probs"].items()}
        print(r["seed"], r["kind"], {k: round(v, 3) for k, v in accuracy.items()})


if __name__ == "__main__":
    main()
