"""Chapter 5's pipeline: SNLI fine-tunes with and without the IG-variance penalty, cached run by run.

Per seed, three runs: `baseline` (plain cross-entropy), `detached` (the penalty through Captum-style IG,
which reaches only the word embeddings) and `differentiable` (the penalty through IG taken with a graph,
which reaches every parameter); `compnb.ig_variance` has the loss. Right after training, while the weights are
at hand, each run is measured on the SNLI test split: class probabilities (`probs-test.npy`) and, for every
pair, IG attributions of the gold label's logit with the chapter's quadrature, their variance over the pair's
tokens and the completeness gap (`ig-test-<method>-<steps>.npz`; token ids and attributions are kept for the
first seed only). The chapter renders from these files on any machine. Train them with
`python -m compnb.chapters.ig_variance_eval --profile full --workers N`, N = variants × seeds: one worker per
run, the runs sharing the GPU.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
from tqdm.auto import tqdm

from compnb import (announce, atomicio, batching, data, ig_variance, inference, invocations, measurements, models,
                   parallel, preemption, run_cache, run_integrity, training)
from compnb.profiles import settings
from compnb.saliency import IntegratedGradients

CHAPTER = "05-ig-variance"
VARIANTS = ("baseline", "detached", "differentiable")
TRAIN_KEYS = ("epochs", "batch_size", "lr", "max_length", "patience", "max_train_examples", "max_eval_examples")
LOSS_KEYS = ("lam", "alpha", "n_steps", "method")


def loss_settings(profile: str, **overrides) -> dict:
    """The profile's penalty parameters (λ, α, IG steps and quadrature) with `overrides` (None values ignored),
    checked by `compnb.ig_variance.check_params`."""
    chosen = settings(CHAPTER, profile)
    params = {key: chosen[key] for key in LOSS_KEYS} | {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(params) - set(LOSS_KEYS))
    if unknown:
        raise ValueError(f"unknown penalty parameters {unknown}; allowed: {', '.join(LOSS_KEYS)}")
    return {key: ig_variance.check_params(params)[key] for key in LOSS_KEYS}


def train_settings(profile: str, **overrides) -> dict:
    """The profile's training settings (epochs, batch size, lr, max length, patience, subsampling) with
    `overrides` (None values ignored); `TrainConfig` checks the values."""
    chosen = settings(CHAPTER, profile)
    unknown = sorted(set(overrides) - set(TRAIN_KEYS))
    if unknown:
        raise ValueError(f"unknown training settings {unknown}; allowed: {', '.join(TRAIN_KEYS)}")
    return {key: chosen[key] for key in TRAIN_KEYS} | {k: v for k, v in overrides.items() if v is not None}


def config(profile: str, variant: str, seed: int, model: str = models.DEFAULT_BACKBONE,
           train: dict | None = None, **loss) -> training.TrainConfig:
    """The SNLI run of one variant and seed; `train` overrides the profile's training settings
    (`train_settings`) and `loss` its penalty parameters (`loss_settings`)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    train = train_settings(profile, **(train or {}))
    if variant == "baseline":
        return training.TrainConfig(model=model, dataset="snli", loss="ce", seed=seed, profile=profile, **train)
    params = loss_settings(profile, **loss) | {"variant": variant}
    return training.TrainConfig(model=model, dataset="snli", loss="ig_variance", loss_params=params, seed=seed,
                                profile=profile, **train)


def test_set(cfg: training.TrainConfig) -> datasets.Dataset:
    """The SNLI test rows a run is measured on (a seed-0 subsample of at most `max_eval_examples`)."""
    return data.subsample(data.load("snli", "test"), cfg.max_eval_examples, 0)


def ig_path(folder: Path, method: str, n_steps: int) -> Path:
    return Path(folder) / f"ig-test-{method}-{n_steps}.npz"


def attribute(model: models.SequenceClassifier, tokenizer, encoded: batching.Encoded, n_steps: int, method: str,
              batch_size: int = 32) -> dict[str, np.ndarray]:
    """IG attributions (logits, fp32, zero-embedding baseline) of the gold label's logit for every pair of
    `encoded` (`batching.encode` of premise and hypothesis): flat token ids and attributions (sum of lengths,),
    `offsets` (n + 1,), and per pair the population variance of its attributions over its tokens and the
    completeness gap (n,)."""
    collate = batching.PadCollator(tokenizer.pad_token_id, tokenizer.padding_side)
    device = next(model.parameters()).device
    n = len(encoded)
    rows, attributions, variance, gap = [None] * n, [None] * n, np.zeros(n), np.zeros(n)
    ig = IntegratedGradients(model.eval())
    for batch_rows in tqdm(batching.sorted_batches(encoded.lengths, batch_size), desc="IG attributions", leave=False):
        batch = {k: v.to(device) for k, v in collate([encoded[i] for i in batch_rows]).items()}
        scores, gaps = ig.attribute(batch["input_ids"], batch["attention_mask"], batch["labels"], n_steps=n_steps,
                                    method=method, return_completeness_gap=True,
                                    token_type_ids=batch.get("token_type_ids"))
        var = ig_variance.attribution_variance(scores.detach().float(), batch["attention_mask"])
        for j, i in enumerate(batch_rows):
            length = int(batch["attention_mask"][j].sum())
            rows[i] = batch["input_ids"][j, :length].cpu().numpy()  # right padding: real tokens come first
            attributions[i] = scores[j, :length].detach().float().cpu().numpy()
            variance[i], gap[i] = float(var[j]), float(gaps[j])
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    return {"ids": np.concatenate(rows).astype(np.int32), "attributions": np.concatenate(attributions).astype(np.float32),
            "offsets": offsets.astype(np.int64), "variance": variance, "gap": gap}


def measure(folder: Path, n_steps: int, method: str, keep_attributions: bool) -> None:
    """Test-split probabilities and IG measurements of one finished run (cached; needs its weights)."""
    folder = Path(folder)
    path = ig_path(folder, method, n_steps)
    if (folder / "probs-test.npy").is_file() and path.is_file() and measurements.stale(folder, path.name) is None:
        return
    model, tokenizer, cfg = training.load_run(folder)
    model.to(models.best_device())
    ds = test_set(cfg)
    encoded = batching.encode(tokenizer, ds, ("premise", "hypothesis"), cfg.max_length)  # once, for both
    probs = inference.predict_encoded(model, tokenizer, encoded, 2 * cfg.batch_size)
    result = attribute(model, tokenizer, encoded, n_steps, method)
    if not keep_attributions:
        result = {key: result[key] for key in ("variance", "gap")}
    kept = (folder / "probs-test.npy").is_file() and not any(measurements.stale(folder, other.name) is not None
                                                             for other in folder.glob("ig-test-*.npz"))
    if not kept or path.is_file():  # a new kind of measurement (a tweak's) leaves current probabilities as they are
        atomicio.atomic_write(folder / "probs-test.npy", lambda f: np.save(f, probs))
    atomicio.atomic_write(path, lambda f: np.savez_compressed(f, **result))
    measurements.record(folder, path.name, [data.source_of(ds)], complete=cfg.profile == "paper")


def _measured(folder: Path, n_steps: int, method: str) -> bool:
    """Whether the run in `folder` is finished and measured on the test split as it is now; a finished run whose
    own data or weights changed raises `run_cache.StaleRunError`."""
    path = ig_path(folder, method, n_steps)
    if not ((folder / run_cache.FINISHED).is_file() and (folder / "probs-test.npy").is_file() and path.is_file()):
        return False
    run_cache.require_reusable(folder, training.TrainConfig.from_json(folder / "config.json"))
    why = measurements.stale(folder, path.name)
    if why is not None:
        print(f"{why}; measuring again")
    return why is None


def train_and_measure(cfg: training.TrainConfig, n_steps: int, method: str, keep_attributions: bool) -> Path:
    """Train (or reuse) one run and `measure` it; a run finished elsewhere without its weights and without
    its measurements is retrained."""
    folder = run_cache.run_dir(cfg)
    if _measured(folder, n_steps, method):
        return folder
    folder = training.train_with_weights(cfg)
    measure(folder, n_steps, method, keep_attributions)
    return folder


def run_all(profile: str, model: str = models.DEFAULT_BACKBONE, seeds: Sequence[int] | None = None,
            workers: int = 1, train: dict | None = None, **loss) -> list[dict]:
    """Every (seed, variant) run, trained and measured (cached), in `workers` processes when > 1; `train` and
    `loss` override the profile's settings (see `config`). One record per run: seed, variant, config, run_dir,
    metrics, probs (n, 3) on the test split, ig (the npz's arrays)."""
    parallel.check_workers(workers)
    seeds = tuple(seeds) if seeds is not None else tuple(settings(CHAPTER, profile)["seeds"])
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    p = loss_settings(profile, **loss)
    plan = [(seed, variant, config(profile, variant, seed, model, train, **loss))
            for seed in seeds for variant in VARIANTS]
    todo = [(cfg, p["n_steps"], p["method"], seed == seeds[0]) for seed, _, cfg in plan
            if not _measured(run_cache.run_dir(cfg), p["n_steps"], p["method"])]
    train = announce.to_train([job[0] for job in todo])
    announce.announce(CHAPTER, profile, train, len(plan) - len(train))  # may stop here, before any training
    if todo:
        parallel.run_jobs(train_and_measure, todo, workers, "IG-variance runs",
                          [run_cache.run_dir(job[0]).name for job in todo])
    records = []
    for seed, variant, cfg in plan:
        folder = run_cache.run_dir(cfg)
        with np.load(ig_path(folder, p["method"], p["n_steps"])) as ig:
            arrays = {key: ig[key] for key in ig.files}
        records.append({"seed": seed, "variant": variant, "config": cfg, "run_dir": folder,
                        "metrics": run_integrity.read_json(folder),
                        "probs": np.load(folder / "probs-test.npy"), "ig": arrays})
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="train and measure chapter 5's IG-variance runs (cached)")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--model", default=models.DEFAULT_BACKBONE)
    parser.add_argument("--workers", type=int, default=1, help="parallel training processes (default 1)")
    args = parser.parse_args(argv)
    before, start = invocations.finished_runs(args.profile), time.perf_counter()
    records = run_all(args.profile, args.model, workers=args.workers)
    invocations.record(args.profile, CHAPTER, f"python -m compnb.chapters.ig_variance_eval --profile {args.profile} --workers "
                       f"{args.workers}", [r["run_dir"] for r in records], before, time.perf_counter() - start)
    labels = None
    for r in records:
        labels = labels if labels is not None else np.asarray(data.column(test_set(r["config"]), "label"))
        m = r["metrics"]
        print(f"seed {r['seed']} {r['variant']:14s} test accuracy {(r['probs'].argmax(1) == labels).mean():.4f}  "
              f"mean Var(IG) {r['ig']['variance'].mean():.4g}  mean gap {r['ig']['gap'].mean():.4g}  "
              f"{1000 * m['train_time_s'] / max(m['steps'], 1):.1f} ms/step  {m['steps']} steps")


if __name__ == "__main__":
    preemption.run_main(main)
