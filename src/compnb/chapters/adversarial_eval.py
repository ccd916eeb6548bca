"""Chapter 4's pipeline: the second paper's gradient-guided attack and adversarial retraining on SNLI, and
AdvGLUE scores, cached per seed.

Per seed: train (or reuse) a baseline on SNLI train (checkpoints chosen on SNLI validation); attack every
pair of the SNLI test split with it; split those pairs by premise into a *build* half and an *evaluation*
half; retrain on SNLI train plus a class-balanced draw of up to `per_class` attacked build pairs per label
(leak-free), and once more on a draw from both halves (the paper's setting, which trains on pairs it then
evaluates on: leaky), and once more on the leaky rows cut to exactly as many rows as the leak-free set holds
(`leaky (matched size)`: a draw as even across labels as the rows allow, seeded by the seed), so that the
leak is also measured at equal size: the leaky set holds every attacked pair of both halves, about twice the
leak-free set. The paper built its set from validation; here validation selects checkpoints, so
the test split, used for nothing else, is the pool, and its evaluation half is the clean test set. Every
model is scored, right after training, on the evaluation half clean and attacked, and on AdvGLUE adv-MNLI
and adv-MNLI-mismatched; probabilities are cached as `<run>/probs-<set>.npy` (with the set's sha256 in
`probs-<set>.json`, so a changed set is scored again), attacked sets as Parquet under
`results/<profile>/<chapter>/adv/`, so the chapter renders on a CPU from what a GPU produced:
`python -m compnb.chapters.adversarial_eval --profile full`.

Attacked pairs are token ids (`adversarial.attack_pairs`), and every training and evaluation set made of them
carries those ids, which training and scoring use as stored. Each such Parquet file records in its own
metadata (key `compnb`) the format (`ATTACK_FORMAT`) and what it was made from: an attacked set its baseline
run, a training set the sha256 of its attacked set. A file of another format or origin (the text-based sets
of format 1, a set attacked by another backbone's baseline) is made again, never reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from transformers import AutoTokenizer

from compnb import (adversarial, announce, atomicio, data, inference, invocations, models, parallel, preemption,
                   run_cache, run_integrity, training, tweaks)
from compnb.paths import project_root, published_results_dir
from compnb.profiles import settings

CHAPTER = "04-adversarial-eval"
TRAIN_KEYS = ("epochs", "batch_size", "lr", "max_length", "max_train_examples", "max_eval_examples")
ADVGLUE = ("adv_mnli", "adv_mnli_mismatched")
MATCHED = "leaky (matched size)"
KINDS = ("baseline", "retrained", "leaky", MATCHED)
TRAIN_FILES = {"retrained": "retrained", "leaky": "leaky", MATCHED: "leaky-matched"}  # kind → train-<name>-s<seed>
ATTACK_FORMAT = 2  # 1: attacked hypotheses as text, tokenized again downstream; 2: attacked pairs as token ids
META_KEY = b"compnb"
TRAIN_COLUMNS = ("premise", "original", "hypothesis_display", "label", *data.PRETOKENIZED, data.TOKENIZER_COLUMN)


def config(profile: str, seed: int, model: str = models.DEFAULT_BACKBONE, extra: str | None = None,
           **overrides) -> training.TrainConfig:
    """The SNLI run of one seed, plain (`extra` None) or with the adversarial rows of Parquet file `extra`."""
    train = {key: settings(CHAPTER, profile)[key] for key in TRAIN_KEYS} | overrides
    return training.TrainConfig(model=model, dataset="snli", loss="ce", seed=seed, profile=profile,
                                extra_train=extra, **train)


def adv_path(profile: str) -> Path:
    """Where the attacked and adversarial training sets live (their paths are part of the runs' configs):
    the published `results/<profile>/04-adversarial-eval/adv/`, also for a tweak that keeps the backbone once
    they are all there; else, for a tweak, its own `results/adv/`, so a tweak never writes the published ones."""
    published = published_results_dir(profile, CHAPTER) / "adv"
    tweak = tweaks.active(profile, CHAPTER)
    if tweak is None:
        return published
    seeds = settings(CHAPTER, profile)["seeds"]
    names = [f"attacked-s{s}.parquet" for s in seeds]
    names += [f"train-{name}-s{s}.parquet" for name in TRAIN_FILES.values() for s in seeds]
    if "model" not in tweak.changed and all((published / name).is_file() for name in names):
        return published
    return tweak.results / "adv"


def adv_folder(profile: str) -> Path:
    """`adv_path`, created."""
    folder = adv_path(profile)
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


def attacked_path(profile: str, seed: int) -> Path:
    return adv_folder(profile) / f"attacked-s{seed}.parquet"


def read_meta(path: Path) -> dict:
    """What a Parquet file written by `write_with_meta` records about itself; {} for a missing or older file."""
    if not path.is_file():
        return {}
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[META_KEY]) if META_KEY in meta else {}


def write_with_meta(path: Path, frame: pd.DataFrame, meta: dict) -> None:
    """`frame` as Parquet at `path` (atomically), with `meta` (JSON) in the file's own metadata, so the two
    cannot part."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta, sort_keys=True)})
    atomicio.atomic_write(path, lambda f: pq.write_table(table, f))


def _current(path: Path, key: dict) -> bool:
    """Whether `path` exists and its metadata agrees with every item of `key`."""
    meta = read_meta(path)
    return all(meta.get(k) == v for k, v in key.items())


def attack_key(profile: str, base_dir: Path, substitute: str = "mask") -> dict:
    """What an attacked set must have been made from to be reused: this format, the baseline run (its folder
    name holds the config hash: backbone, seed, profile, ...), the pool and the substitute."""
    chosen = settings(CHAPTER, profile)
    return {"format": ATTACK_FORMAT, "baseline_run": base_dir.name, "max_pool": chosen["max_pool"],
            "heldout_fraction": chosen["heldout_fraction"], "substitute": substitute}


def attacked(profile: str, seed: int, base_dir: Path, substitute: str = "mask") -> Path:
    """Parquet of every pool pair attacked with the seed's baseline in `base_dir` (cached while `attack_key`
    holds; made again otherwise), rows of `adversarial.attack_pairs` with their half in `half`."""
    path, key = attacked_path(profile, seed), attack_key(profile, base_dir, substitute)
    if _current(path, key):
        return path
    if path.is_file():
        print(f"{path.name} was made by {read_meta(path) or 'the text-based format 1'}, not {key}; attacking again")
    frame, build, held = pool(profile)
    model, tokenizer, cfg = training.load_run(base_dir)
    out = adversarial.attack_pairs(model.to(models.best_device()), tokenizer, frame["premise"].tolist(),
                                   frame["hypothesis"].tolist(), frame["label"].tolist(), max_length=cfg.max_length,
                                   batch_size=cfg.batch_size, substitute=substitute)
    out["half"] = np.where(np.isin(np.arange(len(out)), held), "evaluation", "build")
    write_with_meta(path, out, key | {"max_length": cfg.max_length, "tokenizer": data.tokenizer_fingerprint(tokenizer),
                                      "pairs": len(out)})
    return path


def read_attacked(profile: str, seed: int) -> pd.DataFrame:
    """The seed's attacked pool; a ValueError for a missing set or one of another format (`run_seed` makes it)."""
    path = attacked_path(profile, seed)
    if read_meta(path).get("format") != ATTACK_FORMAT:
        raise ValueError(f"{path} is missing or not of format {ATTACK_FORMAT} (attacked pairs as token ids); "
                         f"run `python -m compnb.chapters.adversarial_eval --profile {profile}` to attack again")
    return pd.read_parquet(path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def training_sets(profile: str, seed: int, attacked_file: Path) -> dict[str, Path]:
    """Parquet files of the class-balanced adversarial training rows (`TRAIN_COLUMNS`, token ids as attacked):
    `retrained` draws from the build half only, `leaky` from both halves, `leaky (matched size)` cuts the leaky
    rows to exactly the leak-free set's row count (`adversarial.balanced_total`, seeded by `seed`); each is
    cached while made from this very attacked file (and the matched one from these very two sets); the counts
    per label are in `<file>.json`."""
    per_class, frame = settings(CHAPTER, profile)["per_class"], pd.read_parquet(attacked_file)
    source = {"format": ATTACK_FORMAT, "attacked": attacked_file.name, "attacked_sha256": _sha256(attacked_file),
              "per_class": per_class}
    out = {}
    for kind, halves in (("retrained", ("build",)), ("leaky", ("build", "evaluation"))):
        path, key = adv_folder(profile) / f"train-{TRAIN_FILES[kind]}-s{seed}.parquet", source | {"halves": list(halves)}
        if not _current(path, key):
            rows = frame[frame["half"].isin(halves)].reset_index(drop=True)
            chosen, counts = adversarial.balanced(rows["label"].to_numpy(), per_class, seed)
            atomicio.write_json(path.with_suffix(".json"), {"per_class": per_class, "drawn": counts,
                                                            "halves": list(halves)})
            write_with_meta(path, rows.iloc[chosen][[c for c in TRAIN_COLUMNS if c in rows.columns]], key)
        out[kind] = path
    out[MATCHED] = matched_set(profile, seed, out["leaky"], out["retrained"])
    return out


def matched_set(profile: str, seed: int, leaky: Path, leak_free: Path) -> Path:
    """Parquet of the leaky training rows cut to exactly as many rows as the leak-free set `leak_free` holds,
    as even across labels as the rows allow (`adversarial.balanced_total`, seeded by `seed`); cached while made
    from these very two files."""
    path = adv_folder(profile) / f"train-{TRAIN_FILES[MATCHED]}-s{seed}.parquet"
    size = pq.read_metadata(leak_free).num_rows
    key = {"format": ATTACK_FORMAT, "leaky": leaky.name, "leaky_sha256": _sha256(leaky),
           "matched_to": leak_free.name, "matched_to_sha256": _sha256(leak_free), "rows": size, "seed": seed}
    if not _current(path, key):
        rows = pd.read_parquet(leaky)
        chosen, counts = adversarial.balanced_total(rows["label"].to_numpy(), size, seed)
        atomicio.write_json(path.with_suffix(".json"), {"per_class": None, "drawn": counts, "rows": size,
                                                        "matched_to": leak_free.name, "halves": ["build", "evaluation"]})
        write_with_meta(path, rows.iloc[chosen].reset_index(drop=True), key)
    return path


def evaluation_sets(profile: str, seed: int) -> dict[str, pd.DataFrame]:
    """The sets every model of a seed is scored on: name → frame with label and either premise and hypothesis
    (clean, AdvGLUE) or the attacked token ids (`attacked`; its `hypothesis_display` only for reading)."""
    attacked_rows = read_attacked(profile, seed)
    held = attacked_rows[attacked_rows["half"] == "evaluation"]
    sets = {"clean": held[["premise", "original", "label"]].rename(columns={"original": "hypothesis"}),
            "attacked": held[[c for c in TRAIN_COLUMNS if c in held.columns and c != "original"]]}
    for name in ADVGLUE:
        ds = data.load(name, "validation")
        sets[name] = pd.DataFrame({k: data.column(ds, k) for k in ("premise", "hypothesis", "label")})
    return {name: frame.reset_index(drop=True) for name, frame in sets.items()}


def _probs_path(folder: Path, name: str) -> Path:
    return folder / f"probs-{name}.npy"


def _set_sha256(frame: pd.DataFrame) -> str:
    """sha256 of a set's columns and rows (as JSON): what its cached probabilities were computed on."""
    return hashlib.sha256(frame.to_json(orient="split", index=False).encode()).hexdigest()


def _scored(folder: Path, name: str, frame: pd.DataFrame) -> bool:
    """Whether `folder` holds probabilities of this very set (`probs-<set>.json` records its sha256)."""
    record = _probs_path(folder, name).with_suffix(".json")
    return (_probs_path(folder, name).is_file() and record.is_file()
            and json.loads(record.read_text()).get("set_sha256") == _set_sha256(frame))


def score(folder: Path, sets: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """Probabilities (n, 3) of a finished run on every set, cached as `<run>/probs-<set>.npy` and scored again
    when the set has changed; pre-tokenized sets are scored on their stored ids."""
    todo = [name for name, frame in sets.items() if not _scored(folder, name, frame)]
    if todo:
        model, tokenizer, cfg = training.load_run(folder)
        model.to(models.best_device())
        for name in todo:
            probs = inference.predict(model, tokenizer, data.from_frame(sets[name], "snli"), ("premise", "hypothesis"),
                                     cfg.max_length, cfg.batch_size)
            atomicio.atomic_write(_probs_path(folder, name), lambda f, p=probs: np.save(f, p))
            atomicio.write_json(_probs_path(folder, name).with_suffix(".json"),
                                {"set_sha256": _set_sha256(sets[name]), "rows": len(sets[name])})
    return {name: np.load(_probs_path(folder, name)) for name in sets}


def _ready(folder: Path, sets: dict[str, pd.DataFrame] | None) -> bool:
    return (folder / run_cache.FINISHED).is_file() and sets is not None and all(
        _scored(folder, name, frame) for name, frame in sets.items())


def _train_scored(cfg: training.TrainConfig, sets: dict[str, pd.DataFrame] | None) -> Path:
    """Train (or reuse; retrain when finished elsewhere without weights and not yet scored) and score."""
    folder = run_cache.run_dir(cfg)
    if _ready(folder, sets):
        return folder
    folder = training.train_with_weights(cfg)
    if sets is not None:
        score(folder, sets)
    return folder


def run_seed(profile: str, seed: int, model: str = models.DEFAULT_BACKBONE, substitute: str = "mask") -> dict:
    """Baseline, attack, retrained, leaky and size-matched leaky runs of one seed (cached); their folders."""
    base_cfg = config(profile, seed, model)
    base_dir = run_cache.run_dir(base_cfg)
    if not _current(attacked_path(profile, seed), attack_key(profile, base_dir, substitute)):
        base_dir = _train_scored(base_cfg, None)
        attacked(profile, seed, base_dir, substitute)
    sets = evaluation_sets(profile, seed)
    base_dir = _train_scored(base_cfg, sets)
    runs = {"baseline": base_dir}
    for kind, path in training_sets(profile, seed, attacked_path(profile, seed)).items():
        runs[kind] = _train_scored(config(profile, seed, model, _relative(path)), sets)
    return {"seed": seed, "runs": {k: str(v) for k, v in runs.items()}}


def run_all(profile: str, model: str = models.DEFAULT_BACKBONE, workers: int = 1,
            substitute: str = "mask") -> list[dict]:
    """Every seed of the profile, one worker process per seed when `workers` > 1; one record per (seed, kind):
    seed, kind, run_dir, metrics, probs (set → (n, 3)), and the evaluation sets' frames."""
    seeds = tuple(settings(CHAPTER, profile)["seeds"])
    workers = min(parallel.check_workers(workers), len(seeds))
    adversarial.mask_substitute(models.load_tokenizer(model), substitute)  # a decoder's refusal before any training
    train, later, planned = to_train(profile, model, substitute)
    announce.announce(CHAPTER, profile, train, planned - len(train) - len(later), later=later)  # may stop here
    parallel.run_jobs(run_seed, [(profile, s, model, substitute) for s in seeds], workers, "adversarial retraining",
                      [f"seed {s}" for s in seeds])
    records = []
    for seed in seeds:
        sets = evaluation_sets(profile, seed)
        base_cfg = config(profile, seed, model)
        paths = training_sets(profile, seed, attacked_path(profile, seed))
        cfgs = {"baseline": base_cfg, **{k: config(profile, seed, model, _relative(p)) for k, p in paths.items()}}
        for kind, cfg in cfgs.items():
            folder = run_cache.run_dir(cfg)
            records.append({"seed": seed, "kind": kind, "config": cfg, "run_dir": folder, "sets": sets,
                            "metrics": run_integrity.read_json(folder),
                            "probs": score(folder, sets)})
    return records


def to_train(profile: str, model: str = models.DEFAULT_BACKBONE, substitute: str = "mask",
             ) -> tuple[list[training.TrainConfig], list[training.TrainConfig], int]:
    """(the runs `run_all` would train, the plain configs standing for those whose training sets are not made
    yet (`announce.announce`'s `later`), how many runs it plans), reading only what is on disk: a run trains
    when it is not finished, or when it was kept without its weights and something it is scored on (or, for
    a baseline, its attacked set) is missing. A set whose content changed is not foreseen (it is scored again
    when the weights are at hand)."""
    adv, names = adv_path(profile), ("clean", "attacked", *ADVGLUE)
    train, later, planned = [], [], 0
    for seed in settings(CHAPTER, profile)["seeds"]:
        base = config(profile, seed, model)
        attacked_file = adv / f"attacked-s{seed}.parquet"
        sets = [adv / f"train-{name}-s{seed}.parquet" for name in TRAIN_FILES.values()]
        later += [base for path in sets if not path.is_file()]
        planned += len(sets) + 1
        for cfg in [base] + [config(profile, seed, model, _relative(path)) for path in sets if path.is_file()]:
            folder = run_cache.run_dir(cfg)
            if not (folder / run_cache.FINISHED).is_file():
                train.append(cfg)
            elif not (folder / "model.safetensors").is_file():
                unscored = not all(_probs_path(folder, n).with_suffix(".json").is_file() for n in names)
                unattacked = cfg is base and not _current(attacked_file, attack_key(profile, folder, substitute))
                if unscored or unattacked:
                    train.append(cfg)
    return train, later, planned


def pending(profile: str, model: str = models.DEFAULT_BACKBONE) -> list[dict]:
    """What `run_all` would train or score now, without doing it (the attacked sets must exist): per seed and
    kind whose run is not finished and scored, its run folder and whether it is finished. Making the training
    sets it needs (CPU, seconds) is the only thing it writes."""
    todo = []
    for seed in settings(CHAPTER, profile)["seeds"]:
        sets = evaluation_sets(profile, seed)
        paths = training_sets(profile, seed, attacked_path(profile, seed))
        cfgs = {"baseline": config(profile, seed, model),
                **{k: config(profile, seed, model, _relative(p)) for k, p in paths.items()}}
        for kind, cfg in cfgs.items():
            folder = run_cache.run_dir(cfg)
            if not _ready(folder, sets):
                todo.append({"seed": seed, "kind": kind, "run": folder.name,
                             "finished": (folder / run_cache.FINISHED).is_file()})
    return todo


def roundtrip_changes(profile: str, model: str = models.DEFAULT_BACKBONE) -> pd.DataFrame:
    """Per seed of the profile: `adversarial.text_roundtrip_changes` of its attacked set, i.e. how many pairs
    the former text-based attack (format 1) would have fed the models with other ids, or another length."""
    tokenizer = AutoTokenizer.from_pretrained(models.resolve_backbone(model))
    rows = []
    for seed in settings(CHAPTER, profile)["seeds"]:
        max_length = read_meta(attacked_path(profile, seed))["max_length"]
        rows.append({"seed": seed, **adversarial.text_roundtrip_changes(tokenizer, read_attacked(profile, seed),
                                                                        max_length)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="attack, retrain and score chapter 4's SNLI models (cached)")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--model", default=models.DEFAULT_BACKBONE)
    parser.add_argument("--workers", type=int, default=1, help="parallel processes, one seed each (default 1)")
    parser.add_argument("--pending", action="store_true",
                        help="list the runs that would be trained or scored, and stop (nothing is trained)")
    parser.add_argument("--substitute", default="mask",
                        help="token replacing the attacked one: mask (default), unk, pad or a vocabulary token; "
                             "decoders, which have no mask token, need one of the others")
    args = parser.parse_args(argv)
    if args.pending:
        todo = pending(args.profile, args.model)
        print(json.dumps(todo, indent=1) if todo else "nothing to train or score")
        return
    before, start = invocations.finished_runs(args.profile), time.perf_counter()
    records = run_all(args.profile, args.model, args.workers, args.substitute)
    invocations.record(args.profile, CHAPTER, f"python -m compnb.chapters.adversarial_eval --profile {args.profile} --workers "
                       f"{args.workers}", [r["run_dir"] for r in records], before, time.perf_counter() - start)
    for r in records:
        accuracy = {name: float((p.argmax(1) == r["sets"][name]["label"].to_numpy()).mean())
                    for name, p in r["probs"].items()}
        print(r["seed"], r["kind"], {k: round(v, 3) for k, v in accuracy.items()})


if __name__ == "__main__":
    preemption.run_main(main)
