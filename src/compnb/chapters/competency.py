"""Chapter 3's pipeline: the competency-loss sweep, cached run by run.

Stage 1 (selection) trains (or reuses) a plain cross-entropy baseline and every (method, form, λ) of the
grid at the selection seed, the profile's first. Stage 2 (confirmation) picks, per dataset, method and form,
the λ with the best selection-seed validation accuracy (ties: the smaller λ; the inverse form, where λ only
scales the loss, takes λ = 1 without a choice) and trains it and the baseline at the confirmation seeds,
which took no part in the choice; the seed comparison uses those seeds alone. Right after training, while
the weights are at hand, each run is scored on every AdvGLUE set sharing its labels and the entropies of both saliency
distributions S are measured on validation, before (the initial model of that seed) and after training:
`<run>/competency-k<k>.json`. First-seed runs are also analysed like chapter 2's (`<run>/analysis-k<k>/`,
the paper's Figure 4; the chapter reads only its `summary.json`). Everything is cached, so the chapter renders from results on any machine once a GPU
has produced them: `python -m compnb.chapters.competency --profile full`.

`workers` > 1 trains runs in parallel processes (`compnb.parallel`; several may share one GPU); by default five
per GPU, one on a CPU (`parallel.default_workers`).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from accelerate.utils import set_seed

from compnb import (advglue, announce, atomicio, data, influence, invocations, models, parallel, preemption,
                   run_cache, run_integrity, training)
from compnb.chapters import baseline, competency_report
from compnb.losses import METHODS
from compnb.paths import results_dir
from compnb.profiles import settings
from compnb.provenance import run_record

CHAPTER = "03-modified-loss"
DATASETS = ("sst2", "snli")
ADVERSARIAL = {"sst2": "adv_sst2", "snli": "adv_mnli"}  # the AdvGLUE set of the paper's Table 3, per dataset
SCALE_ONLY_FORMS = ("inverse",)  # F = CE / (λ·H): λ multiplies the loss, which AdamW all but ignores
TRAIN_KEYS = ("epochs", "batch_size", "lr", "max_length", "max_train_examples", "max_eval_examples")
SWEEP_FILE = "sweep.json"


def lambdas(profile: str, lam: float | None = None) -> tuple[float, ...]:
    """The profile's λ grid, plus `lam` (a reader's extra column) when given; sorted, without repeats."""
    grid = [float(v) for v in settings(CHAPTER, profile)["lams"]]
    if lam is not None:
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0 <= lam < float("inf"):
            raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
        grid.append(float(lam))
    return tuple(sorted(set(grid)))


def config(profile: str, dataset: str, seed: int, params: dict | None = None,
           model: str = models.DEFAULT_BACKBONE, **overrides) -> training.TrainConfig:
    """The baseline (`params` None) or the competency run with loss `params` of one dataset and seed."""
    chosen = settings(CHAPTER, profile)
    train = {key: chosen[key] for key in TRAIN_KEYS}
    if isinstance(train["max_train_examples"], dict):
        train["max_train_examples"] = train["max_train_examples"].get(dataset)
    train.update(overrides)
    if params is None:
        return training.TrainConfig(model=model, dataset=dataset, loss="ce", seed=seed, profile=profile, **train)
    return training.TrainConfig(model=model, dataset=dataset, loss="competency", loss_params=params, seed=seed,
                                profile=profile, **train)


def grid(profile: str, seed: int, lams: Sequence[float], model: str = models.DEFAULT_BACKBONE,
         datasets: Sequence[str] = DATASETS, **overrides) -> list[training.TrainConfig]:
    """Per dataset: the baseline, then every (method, form, λ) competency run, at one seed; the forms are
    the profile's (all three at full)."""
    forms = settings(CHAPTER, profile)["forms"]
    out = []
    for name in datasets:
        out.append(config(profile, name, seed, None, model, **overrides))
        out += [config(profile, name, seed, {"method": m, "form": f, "lam": lam}, model, **overrides)
                for m, f, lam in itertools.product(METHODS, forms, lams)]
    return out


def label(cfg: training.TrainConfig) -> str:
    """'baseline' or 'method · form · λ'."""
    if cfg.loss == "ce":
        return "baseline"
    p = cfg.loss_kwargs
    return f"{p['method']} · {p['form']} · λ={p['lam']:g}"


# --------------------------------------------------------------------------- per-run measurements


def entropies(model: models.SequenceClassifier, tokenizer, cfg: training.TrainConfig, k: int) -> dict:
    """Mean entropy (nats) of S and of S's top-k over the run's validation rows, for both saliency methods:
    {method: {"H": ..., "H_topk": ...}}. S covers the whole input (both texts of a pair), as in the loss."""
    texts, pairs, labels = baseline.validation_texts(cfg)
    out = {}
    for method in METHODS:
        table = influence.saliency_entropy(model, tokenizer, texts, labels, pairs=pairs, method=method, k=k,
                                           max_length=cfg.max_length, batch_size=2 * cfg.batch_size)
        out[method] = {"H": float(table["entropy"].mean()), "H_topk": float(table["entropy_topk"].mean())}
    return out


def _initial_key(cfg: training.TrainConfig, k: int) -> dict:
    """What the untrained model's entropies depend on: backbone, dataset, seed, pooling, evaluation setting, k."""
    return {"model": cfg.model, "dataset": cfg.dataset, "seed": cfg.seed, "pooling": cfg.pooling,
            "max_length": cfg.max_length, "max_eval_examples": cfg.max_eval_examples, "k": k}


def initial_entropies_path(cfg: training.TrainConfig, k: int) -> Path:
    """Where `initial_entropies` caches its result: `<runs>/<dataset>-init-<hash of its key>/entropy.json`."""
    digest = hashlib.sha256(json.dumps(_initial_key(cfg, k), sort_keys=True).encode()).hexdigest()[:12]
    return run_cache.run_dir(cfg).parent / f"{cfg.dataset}-init-{digest}" / "entropy.json"


def initial_entropies(cfg: training.TrainConfig, k: int) -> dict:
    """`entropies` of the untrained model of the run's seed (pretrained backbone, the head `train` draws),
    shared by every run of that dataset, seed and evaluation setting; cached beside the runs."""
    key, path = _initial_key(cfg, k), initial_entropies_path(cfg, k)
    if path.is_file():
        return json.loads(path.read_text())["entropy"]
    set_seed(cfg.seed)
    model, tokenizer = models.SequenceClassifier.from_pretrained(cfg.model, len(data.spec(cfg.dataset).label_names),
                                                                 cfg.pooling)
    result = entropies(model.to(models.best_device()).eval(), tokenizer, cfg, k)
    atomicio.write_json(path, {"key": key, "entropy": result})
    return result


def measure(folder: Path, k: int = 5) -> dict:
    """AdvGLUE metrics (every set sharing the run's labels, `advglue.evaluate_run`; the paper's set kept
    here) and S entropies before/after training of one finished run (cached, needs its weights)."""
    path = Path(folder) / f"competency-k{k}.json"
    dataset = training.TrainConfig.from_json(Path(folder) / "config.json").dataset
    if path.is_file() and advglue.evaluated(folder, dataset):  # its AdvGLUE row is a copy of the current score
        return json.loads(path.read_text())
    model, tokenizer, cfg = training.load_run(folder)
    scored = advglue.evaluate_run(folder, run=(model, tokenizer, cfg))
    adversarial = next(r for r in scored if r["dataset"] == ADVERSARIAL[cfg.dataset])
    result = {"adversarial": {key: adversarial[key] for key in ("dataset", "n", "accuracy", "macro_f1")},
              "entropy_before": initial_entropies(cfg, k),
              "entropy_after": entropies(model, tokenizer, cfg, k)}
    atomicio.write_json(path, result)
    return result


def _measured(folder: Path, k: int, analysed: bool) -> bool:
    """Whether the run in `folder` is finished and measured (AdvGLUE scores of the sets as they are now); a
    finished run whose own data or weights changed raises `run_cache.StaleRunError`."""
    if not (folder / run_cache.FINISHED).is_file():
        return False
    config = training.TrainConfig.from_json(folder / "config.json")
    run_cache.require_reusable(folder, config)
    return ((folder / f"competency-k{k}.json").is_file() and advglue.evaluated(folder, config.dataset)
            and (not analysed or (folder / f"analysis-k{k}" / "summary.json").is_file()))


MAPS_FILE = "example-maps.json"
MAP_EXAMPLES = 6  # fixed validation examples whose saliency maps every run stores (the λ explorer shows them)
MAP_MAX_WORDS = 25  # words of an example shown (both texts of a pair): short enough to read at phone width


def map_rows(texts: Sequence[str], pairs: Sequence[str] | None, labels: Sequence[int], n: int = MAP_EXAMPLES
             ) -> list[int]:
    """The validation rows whose maps are stored: per label in order, the first n / (labels) rows of at most
    `MAP_MAX_WORDS` words; the same rows for every run of a dataset and evaluation setting."""
    classes = sorted(set(labels))
    per_label, rows = n // len(classes), []
    for label in classes:
        fits = [i for i, y in enumerate(labels) if y == label
                and len(texts[i].split()) + (len(pairs[i].split()) if pairs is not None else 0) <= MAP_MAX_WORDS]
        rows += fits[:per_label]
    return rows


def example_maps(folder: Path) -> Path | None:
    """Write `<run>/example-maps.json`: the saliency maps (`influence.token_maps`, both methods) of the
    `map_rows` validation examples, with each example's label and the run's predicted probabilities; None,
    writing nothing, when the run's weights are not at hand (it is never retrained for this). Cached."""
    path = Path(folder) / MAPS_FILE
    if path.is_file():
        return path
    if not (Path(folder) / "model.safetensors").is_file():
        return None
    model, tokenizer, cfg = training.load_run(folder)
    model = model.to(models.best_device()).eval()
    texts, pairs, labels = baseline.validation_texts(cfg)
    rows = map_rows(texts, pairs, labels)
    probs = run_integrity.load_probs(Path(folder))
    chosen = dict(texts=[texts[i] for i in rows], labels=[labels[i] for i in rows],
                  pairs=None if pairs is None else [pairs[i] for i in rows], max_length=cfg.max_length)
    maps = {m: influence.token_maps(model, tokenizer, method=m, **chosen) for m in METHODS}
    names = list(data.spec(cfg.dataset).label_names)
    atomicio.write_json(path, {"rows": rows, "label_names": names, "examples": [
        {"row": i, "text": texts[i], "pair": None if pairs is None else pairs[i], "label": int(labels[i]),
         "probs": [round(float(p), 6) for p in probs[i]], "maps": {m: maps[m][j] for m in METHODS}}
        for j, i in enumerate(rows)]})
    return path


TOPK_FILE = "topk_per_sentence.csv"


def topk_per_sentence(folder: Path, k: int = 5) -> Path | None:
    """Write `<run>/analysis-k<k>/topk_per_sentence.csv` (`influence.topk_per_sentence`: per validation sentence,
    its top-k slots and the artifacts among them), so that two runs' artifact shares can be compared paired by
    sentence. From the analysis' word table (`word_saliency.csv`, left beside it by `baseline.analyse`) when it
    is there, else from a fresh gradient pass on the run's weights; None, writing nothing, when neither is at
    hand (a committed run without weights: it is never retrained for this). Cached."""
    analysis = Path(folder) / f"analysis-k{k}"
    path = analysis / TOPK_FILE
    if path.is_file():
        return path
    if (analysis / "word_saliency.csv").is_file():
        table = pd.read_csv(analysis / "word_saliency.csv")
    elif (Path(folder) / "model.safetensors").is_file():
        model, tokenizer, cfg = training.load_run(folder)
        ranked, pairs, labels = baseline.validation_texts(cfg)
        table = influence.word_saliency(model.to(models.best_device()).eval(), tokenizer, ranked, labels,
                                        baseline.artifact_words(cfg.dataset), k=k, pairs=pairs,
                                        max_length=cfg.max_length)
    else:
        return None
    atomicio.write_csv(path, influence.topk_per_sentence(table))
    return path


def train_and_measure(cfg: training.TrainConfig, k: int = 5, analysed: bool = False) -> Path:
    """Train (or reuse) one run, then `measure` it and, if `analysed`, run chapter 2's analysis on it and keep
    its per-sentence top-k counts (`topk_per_sentence`). A run finished elsewhere whose weights were not kept
    and whose measurements are missing is retrained."""
    folder = run_cache.run_dir(cfg)
    if _measured(folder, k, analysed):
        return folder
    folder = training.train_with_weights(cfg)
    measure(folder, k)
    example_maps(folder)
    if analysed:
        baseline.analyse(folder, k)
        topk_per_sentence(folder, k)
    return folder


def _run(configs: list[training.TrainConfig], k: int, analysed_seed: int, workers: int, desc: str) -> None:
    """`train_and_measure` every config not yet measured (those that train first, the longest first), in
    `workers` parallel processes when > 1."""
    todo = [c for c in configs if not _measured(run_cache.run_dir(c), k, c.seed == analysed_seed)]
    train = announce.longest_first(announce.to_train(todo))
    todo = train + [c for c in todo if c not in train]  # then those that only need measuring
    if configs:  # may stop here, before any training of this stage
        announce.announce(CHAPTER, configs[0].profile, train, len(configs) - len(train), desc)
    if todo:
        parallel.run_jobs(train_and_measure, [(c, k, c.seed == analysed_seed) for c in todo], workers, desc,
                          [run_cache.run_dir(c).name for c in todo])


def seed_roles(profile: str, seeds: Sequence[int] | None = None) -> tuple[int, tuple[int, ...]]:
    """(selection seed, confirmation seeds): the first of `seeds` (default: the profile's) chooses λ, the
    others confirm; a ValueError if a seed repeats, so the selection seed can never confirm itself."""
    seeds = tuple(seeds) if seeds is not None else tuple(settings(CHAPTER, profile)["seeds"])
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)!r}")
    return seeds[0], seeds[1:]


def unscaled_lam(lams: Sequence[float]) -> float:
    """The λ of a scale-only form: 1 (the loss unscaled), else the grid's λ nearest to 1 on a log scale."""
    return min(lams, key=lambda lam: (abs(math.log(lam)) if lam > 0 else math.inf, lam))


def best_lams(records: list[dict], selection_seed: int | None = None) -> dict[tuple[str, str, str], float]:
    """(dataset, method, form) → the λ with the best validation accuracy at the selection seed (default: the
    smallest seed in `records`; ties: smaller λ). Forms in `SCALE_ONLY_FORMS` take `unscaled_lam` of the
    grid instead: their λ only rescales the loss, so a best λ would be chosen among noise."""
    first = min(r["config"].seed for r in records) if selection_seed is None else selection_seed
    best: dict[tuple[str, str, str], tuple[float, float]] = {}
    grids: dict[tuple[str, str, str], list[float]] = {}
    for r in records:
        c = r["config"]
        if c.loss == "ce" or c.seed != first:
            continue
        p, acc = c.loss_kwargs, r["metrics"]["validation"]["accuracy"]
        key = (c.dataset, p["method"], p["form"])
        grids.setdefault(key, []).append(p["lam"])
        if key not in best or (acc, -p["lam"]) > (best[key][1], -best[key][0]):
            best[key] = (p["lam"], acc)
    return {key: unscaled_lam(grids[key]) if key[2] in SCALE_ONLY_FORMS else lam
            for key, (lam, _) in best.items()}


def _record(cfg: training.TrainConfig, k: int, analysed: bool) -> dict:
    """A run's record; with `analysed`, the summary of its chapter-2 analysis (the per-word tables are not
    read, and are not committed for competency runs)."""
    folder = run_cache.run_dir(cfg)
    summary = folder / f"analysis-k{k}" / "summary.json"
    return {"config": cfg, "run_dir": folder, "metrics": run_integrity.read_json(folder),
            "measures": json.loads((folder / f"competency-k{k}.json").read_text()),
            "analysis": {"summary": json.loads(summary.read_text())} if analysed else None}


def plan(profile: str, model: str = models.DEFAULT_BACKBONE, lam: float | None = None,
         seeds: Sequence[int] | None = None, datasets: Sequence[str] = DATASETS,
         **overrides) -> tuple[list[training.TrainConfig], tuple[int, ...]]:
    """(stage-1 configs at the selection seed, all seeds with the selection seed first) of the sweep."""
    selection, confirmation = seed_roles(profile, seeds)
    seeds = (selection, *confirmation)
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown or not datasets:
        raise ValueError(f"datasets must be a non-empty selection of {', '.join(DATASETS)}, got {list(datasets)!r}")
    return grid(profile, seeds[0], lambdas(profile, lam), model, datasets, **overrides), seeds


def confirmation_configs(profile: str, records: list[dict], seeds: Sequence[int],
                         model: str = models.DEFAULT_BACKBONE, **overrides) -> list[training.TrainConfig]:
    """Stage 2: per dataset of `records` (stage 1), the baseline and each (method, form) at its `best_lams`
    λ, at every seed after the first (the confirmation seeds)."""
    chosen = best_lams(records, seeds[0])
    return [config(profile, d, seed, params, model, **overrides)
            for d in dict.fromkeys(r["config"].dataset for r in records) for seed in seeds[1:]
            for params in [None] + [{"method": m, "form": f, "lam": lam_}
                                    for (d_, m, f), lam_ in chosen.items() if d_ == d]]


def run_all(profile: str, model: str = models.DEFAULT_BACKBONE, lam: float | None = None,
            seeds: Sequence[int] | None = None, k: int = 5, workers: int | None = None, read_analyses: bool = True,
            datasets: Sequence[str] = DATASETS, **overrides) -> list[dict]:
    """Both stages of the sweep over `datasets` (cached); one record per run: config, run_dir, metrics,
    measures, analysis (chapter 2's, for selection-seed runs when `read_analyses`, else None)."""
    workers = parallel.default_workers() if workers is None else parallel.check_workers(workers)  # before training
    stage1, seeds = plan(profile, model, lam, seeds, datasets, **overrides)
    _run(stage1, k, seeds[0], workers, "grid, selection seed")
    for c in stage1:  # per-sentence top-k counts and maps where the weights are at hand (never retrains)
        topk_per_sentence(run_cache.run_dir(c), k)
        example_maps(run_cache.run_dir(c))
    records = [_record(c, k, read_analyses) for c in stage1]
    stage2 = confirmation_configs(profile, records, seeds, model, **overrides)
    _run(stage2, k, seeds[0], workers, "best λ, confirmation seeds")
    for c in stage2:
        example_maps(run_cache.run_dir(c))
    return records + [_record(c, k, False) for c in stage2]


# --------------------------------------------------------------------------- tables


def binary_f1s(run_dir: Path, validation: dict, adv_set: str) -> tuple[float, float]:
    """(validation, AdvGLUE) positive-class F1 of one run, from the confusion matrices it stores: its validation
    metrics (`metrics.json`, the same rows and predictions as `val_probs.npy`) and `eval-<adv_set>-validation.json`;
    NaN for a task without a positive class (NLI)."""
    adv = json.loads(advglue.eval_path(run_dir, adv_set).read_text())
    return (competency_report.binary_f1(validation["confusion_matrix"], validation["label_names"]),
            competency_report.binary_f1(adv["confusion_matrix"], adv["label_names"]))


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per run: its configuration, validation and AdvGLUE scores (accuracy, macro F1 and the positive
    class's binary F1, NaN for NLI), entropies of its own S (the baseline's: gradient S) before and after
    training, and its training step time."""
    rows = []
    for r in records:
        c, m, meas = r["config"], r["metrics"], r["measures"]
        p = c.loss_kwargs
        method = p.get("method", "gradient")
        f1_binary, adv_f1_binary = binary_f1s(r["run_dir"], m["validation"], meas["adversarial"]["dataset"])
        rows.append({"dataset": c.dataset, "config": label(c), "run": r["run_dir"].name, "model": c.model, "method": p.get("method", "—"),
                     "form": p.get("form", "—"), "lam": p.get("lam", 0.0), "seed": c.seed,
                     "accuracy": m["validation"]["accuracy"], "macro_f1": m["validation"]["macro_f1"],
                     "f1_binary": f1_binary,
                     "adv_dataset": meas["adversarial"]["dataset"], "adv_n": meas["adversarial"]["n"],
                     "adv_accuracy": meas["adversarial"]["accuracy"], "adv_macro_f1": meas["adversarial"]["macro_f1"],
                     "adv_f1_binary": adv_f1_binary,
                     "S": method, "H_topk_before": meas["entropy_before"][method]["H_topk"],
                     "H_topk_after": meas["entropy_after"][method]["H_topk"],
                     "H_before": meas["entropy_before"][method]["H"], "H_after": meas["entropy_after"][method]["H"],
                     "ms_per_step": 1000 * m["train_time_s"] / max(m["steps"], 1), "wall_s": m["wall_time_s"],
                     "device": m.get("device", "")})
    frame = pd.DataFrame(rows)
    plain = frame[frame["config"] == "baseline"].set_index(["dataset", "seed"])["ms_per_step"]
    frame["step_ratio"] = frame["ms_per_step"] / plain.reindex(list(zip(frame["dataset"], frame["seed"]))).to_numpy()
    return frame


def sweep_summary(profile: str) -> dict[str, dict]:
    """The wall time and setting of the last invocation that trained something, per dataset selection
    ('sst2', 'snli' or 'snli+sst2'; no two selections share a dataset), at `profile`; empty if none did."""
    path = results_dir(profile, CHAPTER) / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="train, evaluate and analyse chapter 3's competency-loss sweep")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--model", default=models.DEFAULT_BACKBONE)
    parser.add_argument("--lam", type=float, default=None, help="an extra λ column beside the profile's grid")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel training processes (default: 5 per GPU, 1 on a CPU)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS,
                        help="sweep these datasets only (default: both)")
    args = parser.parse_args(argv)
    args.workers = parallel.default_workers() if args.workers is None else args.workers
    chosen = tuple(d for d in DATASETS if d in args.datasets)
    _, seeds = plan(args.profile, args.model, args.lam, None, chosen)
    before = invocations.finished_runs(args.profile)
    start = time.perf_counter()
    records = run_all(args.profile, args.model, args.lam, workers=args.workers, read_analyses=False, datasets=chosen)
    wall = time.perf_counter() - start
    trained = [r for r in records if before.get(r["run_dir"].name)
               != (r["run_dir"] / run_cache.FINISHED).stat().st_mtime_ns]
    if trained or invocations.piece_id():  # a piece that only measured still ends its pipeline's record
        devices = sorted({r["metrics"].get("device", "") for r in trained})
        path = results_dir(args.profile, CHAPTER) / SWEEP_FILE
        # the latest invocation stands for each dataset: records of earlier ones sharing a dataset are dropped
        summary = {key: record for key, record in sweep_summary(args.profile).items()
                   if not set(key.split("+")) & set(chosen)}
        summary["+".join(sorted(chosen))] = run_record(
            {"profile": args.profile, "model": args.model, "lam": args.lam, "workers": args.workers,
             "datasets": list(chosen), "runs": len(records), "runs_trained": len(trained), "wall_time_s": wall,
             "devices": devices, "run_names": sorted(r["run_dir"].name for r in records),
             "trained": sorted(r["run_dir"].name for r in trained), "piece": invocations.piece_id()},
            seeds[0], [data.source_of(data.load(d, "validation")) for d in chosen])
        atomicio.write_json(path, summary)
    frame = runs_frame(records)
    print(frame[["dataset", "config", "seed", "accuracy", "adv_accuracy", "H_topk_after", "step_ratio"]]
          .to_string(index=False, float_format="%.3f"))
    print(f"{len(records)} runs ({len(trained)} trained now) in {wall:.0f} s with {args.workers} worker(s)")


if __name__ == "__main__":
    preemption.run_main(main)
