"""Chapters 2, 3 and 5 as lists of independent training runs, for a scheduler to execute (`compnb plan`).

`plan(chapter, profile, backbones)` lists the runs of a chapter's sweep that have not finished; `write` puts them
in a new folder as `0000.json`, `0001.json`, ... (each a TrainConfig, the JSON `compnb train --config` reads)
beside `manifest.json`, so that a Slurm job array (`sbatch --array=0-<N-1>`), a Dask cluster
(`compnb.executors.run_distributed`) or a shell loop can run them, anywhere the project folder and its
`results/` are shared. Chapter 3 has two stages: the confirmation runs take the λ chosen on the selection seed's
runs, so for each backbone a plan holds stage 1 until all of that stage has finished, and stage 2 after that.
Chapter 4 is not planned: its retraining needs the attack, which the chapter runs between two sets of runs.
Training is all a plan does: the chapter, executed afterwards, reuses the finished runs and adds its
measurements (on their weights, which each run keeps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from compnb import atomicio, models, run_cache, run_integrity, training
from compnb.chapters import baseline, competency, ig_variance_eval
from compnb.profiles import paper_backbones, settings

PLANNED = (baseline.CHAPTER, competency.CHAPTER, ig_variance_eval.CHAPTER)
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Plan:
    """The runs still to train (`todo`, each with its stage) and those already finished (`done`, run folders)."""

    chapter: str
    profile: str
    stages: dict[str, int]  # backbone → the stage its runs belong to (1, or 2 for chapter 3's confirmation)
    todo: list[tuple[int, training.TrainConfig]]
    done: list[str]


def _finished(config: training.TrainConfig) -> bool:
    return (run_cache.run_dir(config) / run_cache.FINISHED).is_file()


def stage_runs(chapter: str, profile: str, model: str) -> tuple[int, list[training.TrainConfig]]:
    """(stage, every run of that stage) of `chapter`'s sweep with backbone `model`: chapter 3's stage 1 until
    all of it has finished, then its stage 2; the one stage of chapters 2 and 5."""
    if chapter == baseline.CHAPTER:
        return 1, baseline.configs(profile, model)
    if chapter == ig_variance_eval.CHAPTER:
        return 1, [ig_variance_eval.config(profile, variant, seed, model)
                   for seed in settings(chapter, profile)["seeds"] for variant in ig_variance_eval.VARIANTS]
    if chapter == competency.CHAPTER:
        stage1, seeds = competency.plan(profile, model)
        if not all(_finished(c) for c in stage1):
            return 1, stage1
        records = [{"config": c, "metrics": run_integrity.read_json(run_cache.run_dir(c))}
                   for c in stage1]
        return 2, competency.confirmation_configs(profile, records, seeds, model)
    raise ValueError(f"chapter {chapter!r} cannot be planned; allowed: {', '.join(PLANNED)} (or their numbers)")


def resolve(name: str) -> str:
    """The planned chapter named `name` or numbered so ('03' → '03-modified-loss')."""
    matches = [c for c in PLANNED if name in (c, c.split("-", 1)[0])]
    if not matches:
        raise ValueError(f"chapter {name!r} cannot be planned; allowed: {', '.join(PLANNED)} (or their numbers)")
    return matches[0]


def plan(chapter: str, profile: str, backbones: list[str] | None = None) -> Plan:
    """The runs of `chapter` (a name or number) at `profile` for each of `backbones` (default: the papers' at the
    paper profile, else the book's stand-in), split into those to train and those finished."""
    chapter = resolve(chapter)
    backbones = list(backbones or (paper_backbones(chapter) if profile == "paper" else [models.DEFAULT_BACKBONE]))
    stages, todo, done = {}, [], []
    for model in backbones:
        stages[model], configs = stage_runs(chapter, profile, model)
        for config in configs:
            if _finished(config):
                done.append(run_cache.run_dir(config).name)
            else:
                todo.append((stages[model], config))
    return Plan(chapter, profile, stages, todo, done)


def write(planned: Plan, out: str | Path) -> Path:
    """`planned.todo` as `<out>/0000.json`, ... and `<out>/manifest.json` (what each file trains, what had
    finished, what to do next); `out` must be a new or empty folder. Returns the manifest's path."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {str(out)!r} must be a new or empty folder (a plan numbers its files from 0000)")
    number = planned.chapter.split("-", 1)[0]
    again = [m for m, stage in planned.stages.items() if planned.chapter == competency.CHAPTER and stage == 1]
    runs = []
    for i, (stage, config) in enumerate(planned.todo):
        atomicio.write_json(out / f"{i:04d}.json", config.to_dict())
        runs.append({"file": f"{i:04d}.json", "run": run_cache.run_dir(config).name, "model": config.model,
                     "dataset": config.dataset, "loss": config.loss, "seed": config.seed, "stage": stage})
    follow = (f"when these have finished, `compnb plan --chapter {number} --profile {planned.profile}` into a new "
              f"folder writes stage 2 (the confirmation seeds) of {', '.join(again)}" if again else
              f"when these have finished, `compnb chapter {number} --profile {planned.profile}` measures the runs "
              f"and renders the chapter")
    return atomicio.write_json(out / MANIFEST, {
        "chapter": planned.chapter, "profile": planned.profile, "stages": planned.stages,
        "command": "compnb train --config <folder>/<file>", "runs": runs, "finished": planned.done, "next": follow})


def read(folder: str | Path) -> list[training.TrainConfig]:
    """The configs of a plan folder written by `write`, in the order of its manifest."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{str(folder)!r} holds no {MANIFEST}; write a plan there with `compnb plan`")
    return [training.TrainConfig.from_json(folder / run["file"]) for run in json.loads(manifest.read_text())["runs"]]
