"""Chapter 2's pipeline: baseline fine-tunes and their artifact-influence analysis, cached per run.

`run_all(profile, ...)` trains (or reuses) one baseline per dataset and seed, scores each on the AdvGLUE
sets sharing its labels (`compnb.advglue`), then analyses the first seed of each dataset on its validation
split: word-level saliency and the top-k artifact statistics, the entropy of S, a few saliency maps, and
the statistics' sensitivity to the ranked units (words or sub-word tokens, special tokens left out or
ranked; `compnb.influence.sensitivity`). Analyses live in `<run>/analysis-k<k>/` and are reused like the
runs themselves, so the chapter renders from cached results on any machine once a GPU has produced them
(`python -m compnb.chapters.baseline --profile full`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from compnb import (advglue, announce, artifacts, atomicio, data, influence, invocations, models, parallel,
                   preemption, run_cache, run_integrity, training)
from compnb.models import DEFAULT_BACKBONE
from compnb.profiles import settings

CHAPTER = "02-baseline-finetune"
DATASETS = ("sst2", "snli")
ANALYSIS_FILES = ("summary.json", "sensitivity.csv")  # written last by each part of `analyse`
EXAMPLES = 4  # example maps per dataset: the chapter's default `n_examples`


def configs(profile: str, model: str = DEFAULT_BACKBONE, seeds: tuple[int, ...] | None = None,
            **overrides) -> list[training.TrainConfig]:
    """One baseline (plain cross-entropy) config per dataset and seed, from the profile's settings."""
    chosen = settings(CHAPTER, profile)
    seeds = tuple(seeds) if seeds is not None else tuple(chosen.pop("seeds"))
    chosen.pop("seeds", None)
    chosen.update(overrides)
    return [training.TrainConfig(model=model, dataset=name, loss="ce", seed=seed, profile=profile, **chosen)
            for name in DATASETS for seed in seeds]


def artifact_words(dataset: str) -> set[str]:
    """Chapter 1's artifacts (default parameters) of the dataset's full training split."""
    table, _ = artifacts.mine_dataset(dataset, "train")
    return set(table.loc[table["artifact"], "word"])


def validation_texts(config: training.TrainConfig) -> tuple[list[str], list[str] | None, list[int]]:
    """(texts that saliency ranks, premises or None, labels) of the run's validation rows."""
    ds = training.validation_set(config)
    fields = data.spec(config.dataset).text_fields
    ranked = data.column(ds, fields[-1])
    pairs = data.column(ds, fields[0]) if len(fields) == 2 else None
    return ranked, pairs, data.column(ds, "label")


def examples_file(n_examples: int) -> str:
    """The file of an analysis' `n_examples` example maps: `examples.json` for the chapter's default
    (`EXAMPLES`), `examples-n<n>.json` for others, so a tweak never replaces the published maps."""
    return "examples.json" if n_examples == EXAMPLES else f"examples-n{n_examples}.json"


def analyse(run_dir: Path, k: int = 5, n_examples: int = EXAMPLES, force: bool = False) -> dict:
    """Word saliency, top-k artifact statistics, S entropies and example maps (`summary.json` and its
    companions), and the unit sensitivity table (`sensitivity.csv`) of one run; each part is cached and
    computed, on the run's weights, only when its file is missing (or with `force`), both from one gradient
    pass (`influence.unit_saliency`). Example maps of another `n_examples` come from the kept per-word table
    when it is there."""
    folder = Path(run_dir) / f"analysis-k{k}"
    words_missing, sensitivity_missing = (force or not (folder / name).is_file() for name in ANALYSIS_FILES)
    examples_missing = force or not (folder / examples_file(n_examples)).is_file()
    if not (words_missing or sensitivity_missing or examples_missing):
        return _read(folder, n_examples)
    if not (words_missing or sensitivity_missing):  # only other example maps: from the kept per-word table
        if not (folder / "word_saliency.csv").is_file():
            raise ValueError(f"{n_examples} example maps of run {Path(run_dir).name} need its per-word saliency "
                             f"table, which is not kept; use n_examples={EXAMPLES}, or the smoke profile")
        config = training.TrainConfig.from_json(Path(run_dir) / "config.json")
        ranked, pairs, labels = validation_texts(config)
        table, probs = pd.read_csv(folder / "word_saliency.csv"), run_integrity.load_probs(Path(run_dir))
        atomicio.write_json(folder / examples_file(n_examples),
                            _examples(table, probs, ranked, pairs, labels, k, n_examples))
        return _read(folder, n_examples)
    model, tokenizer, config = training.load_run(run_dir)
    model.to(models.best_device())
    ranked, pairs, labels = validation_texts(config)
    tables = influence.unit_saliency(model, tokenizer, ranked, labels, artifact_words(config.dataset), pairs=pairs,
                                     k=k, max_length=config.max_length)
    if words_missing or examples_missing:
        table = influence.word_saliency_of(tables)
        atomicio.write_json(folder / examples_file(n_examples), _examples(
            table, run_integrity.load_probs(Path(run_dir)), ranked, pairs, labels, k, n_examples))
    if words_missing:
        atomicio.write_csv(folder / "word_saliency.csv", table)
        entropy = influence.saliency_entropy(model, tokenizer, ranked, labels, pairs=pairs,
                                             max_length=config.max_length)
        atomicio.write_csv(folder / "entropy.csv", entropy)
        atomicio.write_json(folder / "summary.json", {"sentence": influence.sentence_level(table, k),
                                                      "dataset": influence.dataset_level(table, k)})
    if sensitivity_missing:
        atomicio.write_csv(folder / "sensitivity.csv", influence.sensitivity_of(tables, k))
    return _read(folder, n_examples)


def _examples(table: pd.DataFrame, probs: np.ndarray, ranked: list[str], pairs: list[str] | None,
              labels: list[int], k: int, n: int) -> list[dict]:
    """The example maps shown: the first n/2 correct and first n/2 wrong validation examples with at least
    k words (probs (N, classes)), each with its words in reading order."""
    correct = probs.argmax(1) == np.asarray(labels)
    long_enough = set(table.loc[table["n_words"] >= k, "example"])
    chosen = ([i for i in range(len(labels)) if correct[i] and i in long_enough][: n // 2]
              + [i for i in range(len(labels)) if not correct[i] and i in long_enough][: n - n // 2])
    return [{"example": i, "label": int(labels[i]), "prediction": int(probs[i].argmax()),
             "premise": pairs[i] if pairs is not None else None, "text": ranked[i],
             "words": table.loc[table["example"] == i].sort_values("position")[["word", "score", "rank", "artifact"]]
             .to_dict("records")} for i in chosen]


def _read(folder: Path, n_examples: int = EXAMPLES) -> dict:
    """What the chapters read of an analysis: its summary, the S entropies, the example maps and the unit
    sensitivity table. The per-word table `word_saliency.csv` they summarise stays beside them, uncommitted
    (about 1 MB per run)."""
    return {"summary": json.loads((folder / "summary.json").read_text()),
            "entropy": pd.read_csv(folder / "entropy.csv"),
            "examples": json.loads((folder / examples_file(n_examples)).read_text()),
            "sensitivity": pd.read_csv(folder / "sensitivity.csv")}


def _ready(folder: Path, dataset: str, k: int, analysed: bool) -> bool:
    return ((folder / run_cache.FINISHED).is_file() and advglue.evaluated(folder, dataset)
            and (not analysed or all((folder / f"analysis-k{k}" / name).is_file() for name in ANALYSIS_FILES)))


def prepare(config: training.TrainConfig, k: int = 5, n_examples: int = EXAMPLES, analysed: bool = False) -> Path:
    """Train (or reuse) one baseline, score it on its AdvGLUE sets and, if `analysed`, analyse it; all
    cached. A run finished elsewhere without its weights is retrained only when something is missing (then
    `training.train_with_weights` drops every measurement of the old weights, analyses included, and all are
    redone on the new ones)."""
    folder = run_cache.run_dir(config)
    if _ready(folder, config.dataset, k, analysed):
        return folder
    folder = training.train_with_weights(config)
    advglue.evaluate_run(folder)
    if analysed:
        analyse(folder, k, n_examples)
    return folder


def run_all(profile: str, model: str = DEFAULT_BACKBONE, seeds: tuple[int, ...] | None = None, k: int = 5,
            n_examples: int = EXAMPLES, workers: int = 1, **overrides) -> list[dict]:
    """Train or reuse every baseline run, score each on AdvGLUE and analyse the first seed of each dataset
    (in `workers` parallel processes when > 1, see `compnb.parallel`); one record per run."""
    parallel.check_workers(workers)
    planned = configs(profile, model, seeds, **overrides)
    first = {c.dataset: min(d.seed for d in planned if d.dataset == c.dataset) for c in planned}
    jobs = [(c, k, n_examples, c.seed == first[c.dataset]) for c in planned]
    todo = [job for job in jobs if not _ready(run_cache.run_dir(job[0]), job[0].dataset, k, job[3])]
    train = announce.to_train([job[0] for job in todo])
    announce.announce(CHAPTER, profile, train, len(jobs) - len(train))  # may stop here, before any training
    if todo:
        parallel.run_jobs(prepare, todo, workers, "baselines", [run_cache.run_dir(job[0]).name for job in todo])
    records = []
    for config, _, _, analysed in jobs:
        run_dir = run_cache.run_dir(config)
        records.append({"config": config, "run_dir": run_dir,
                        "metrics": run_integrity.read_json(run_dir),
                        "analysis": analyse(run_dir, k, n_examples) if analysed else None})
    return records


def sensitivity_table(records: list[dict]) -> pd.DataFrame:
    """The unit sensitivity tables (`influence.sensitivity`) of `run_all`'s analysed runs, one above the other,
    each row led by its run's dataset and seed."""
    table = pd.concat([r["analysis"]["sensitivity"].assign(dataset=r["config"].dataset, seed=r["config"].seed)
                       for r in records if r["analysis"] is not None], ignore_index=True)
    return table[["dataset", "seed", *table.columns[:-2]]]


def main() -> None:
    parser = argparse.ArgumentParser(description="train and analyse chapter 2's baselines (cached)")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--model", default=DEFAULT_BACKBONE)
    parser.add_argument("--workers", type=int, default=1, help="parallel training processes (default 1)")
    args = parser.parse_args()
    before, start = invocations.finished_runs(args.profile), time.perf_counter()
    records = run_all(args.profile, args.model, workers=args.workers)
    invocations.record(args.profile, CHAPTER, f"python -m compnb.chapters.baseline --profile {args.profile} --workers "
                       f"{args.workers}", [r["run_dir"] for r in records], before, time.perf_counter() - start)
    for record in records:
        m = record["metrics"]["validation"] if "validation" in record["metrics"] else record["metrics"]
        print(record["run_dir"].name, {key: m.get(key) for key in ("accuracy", "macro_f1")})


if __name__ == "__main__":
    preemption.run_main(main)


def sensitivity_sentences(table: pd.DataFrame, alpha: float = 0.05) -> str:
    """One Markdown line per dataset of `sensitivity_table`: in which (unit, specials) combinations artifacts are
    significantly over-represented in the top-k (ratio > 1, one-sided p < `alpha`), i.e. whether the verdict of
    the word / excluded test depends on the two choices."""
    lines = []
    for dataset, part in table.groupby("dataset", sort=False):
        over = part[(part["ratio"] > 1) & (part["p_value"] < alpha)]
        names = [f"{r['unit']}s with special tokens {r['specials']} (ratio {r['ratio']:.2f}, p = {r['p_value']:.2g})"
                 for _, r in over.iterrows()]
        lines.append(f"- **{dataset}:** " + ("artifacts are significantly over-represented only with " + "; ".join(names)
                                             + ", under-represented or not significantly over-represented otherwise: "
                                               f"the verdict depends on the choice." if names else
                                             f"no combination shows artifacts significantly over-represented "
                                             f"(ratios {part['ratio'].min():.2f}–{part['ratio'].max():.2f}): the "
                                             f"verdict does not depend on the two choices."))
    return "\n".join(lines)


def example_sentence(example: dict, label_names: list[str], k: int) -> str:
    """How to read one saliency map (as `analyse` stores it): the model's k most salient words in rank order and
    how many of them are artifacts, and whether the prediction was right."""
    top = sorted((w for w in example["words"] if w["rank"] <= k), key=lambda w: w["rank"])
    artifacts = [w["word"] for w in top if w["artifact"]]
    gold, pred = label_names[example["label"]], label_names[example["prediction"]]
    outcome = "right" if gold == pred else f"wrong ({pred} for {gold})"
    found = {0: "none of them is an artifact", 1: f"one of them is an artifact: {''.join(artifacts)}"}.get(
        len(artifacts), f"{len(artifacts)} of them are artifacts: {', '.join(artifacts)}")
    return (f"Predicted {outcome}. The {len(top)} most salient words, in order: "
            f"{', '.join(w['word'] for w in top)}; {found}.")
