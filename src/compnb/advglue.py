"""AdvGLUE scores of trained runs: every AdvGLUE dev set that shares a run's labels, with bootstrap intervals.

An SST-2 model answers adv-SST2 (148 sentences); an SNLI model answers adv-MNLI (121 pairs) and
adv-MNLI-mismatched (162), MNLI's labels in SNLI's convention. `evaluate_run` scores a run with its weights at
hand and leaves `eval-<set>-validation.json` (metrics and confusion matrix) in the run folder; `scores` reads
those files back for any list of runs, so a chapter renders them without weights. The confusion matrix
holds every (label, prediction) pair, so the percentile bootstrap over a set's examples is exact from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from compnb import data, evaluation, measurements, training

SPLIT = "validation"


def sets_for(dataset: str) -> tuple[str, ...]:
    """The AdvGLUE sets whose labels are `dataset`'s, e.g. ('adv_sst2',) for 'sst2'."""
    labels = data.spec(dataset).label_names
    return tuple(name for name, s in data.DATASETS.items()
                 if name.startswith("adv_") and s.label_names == labels and name != dataset)


def eval_path(folder: str | Path, adv_set: str) -> Path:
    """Where `training.evaluate` leaves a run's metrics on one AdvGLUE set."""
    return Path(folder) / f"eval-{adv_set}-{SPLIT}.json"


def _current(path: Path, adv_set: str) -> bool:
    """Whether the cached score at `path` exists and was computed on the set `adv_set` resolves to now."""
    if not path.is_file():
        return False
    recorded = json.loads(path.read_text()).get("source", {})
    if measurements.changed(recorded, data.current_source(adv_set, SPLIT)) is None:
        return True
    print(f"{path.parent.name}: {adv_set} changed since it was scored; scoring again")
    return False


def evaluated(folder: str | Path, dataset: str) -> bool:
    """Whether the run in `folder`, trained on `dataset`, has been scored on all of its AdvGLUE sets, each as it
    is now (a score of a set that changed since is not counted)."""
    return all(_current(eval_path(folder, name), name) for name in sets_for(dataset))


def evaluate_run(folder: str | Path, run: tuple | None = None) -> list[dict]:
    """`training.evaluate` on every AdvGLUE set of the run (cached per set); needs the run's weights unless
    every set is cached. `run`: the `training.load_run` result when the caller holds it."""
    folder = Path(folder)
    config = run[2] if run is not None else training.TrainConfig.from_json(folder / "config.json")
    out = []
    for name in sets_for(config.dataset):
        path = eval_path(folder, name)
        if _current(path, name):
            out.append(json.loads(path.read_text()))
        else:
            run = run if run is not None else training.load_run(folder)
            out.append(training.evaluate(folder, name, SPLIT, run=run))
    return out


def scores(runs: Iterable[tuple[str, str | Path, str]], n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (run, AdvGLUE set) from the cached evaluations of `runs`, given as (chapter, run folder,
    configuration label): accuracy and macro F1 with 95% percentile-bootstrap intervals over the set's
    examples. A run not yet scored raises FileNotFoundError naming the pipeline that scores it."""
    rows = []
    for chapter, folder, label in runs:
        folder = Path(folder)
        config = training.TrainConfig.from_json(folder / "config.json")
        for name in sets_for(config.dataset):
            path = eval_path(folder, name)
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: run {folder.name} of chapter {chapter} has not been "
                                        f"scored on {name}; rerun that chapter's pipeline (it scores every run)")
            result = json.loads(path.read_text())
            labels, preds = evaluation.pairs_from_confusion(np.asarray(result["confusion_matrix"]))
            acc = evaluation.bootstrap_ci(labels, preds, evaluation.accuracy, n_resamples, seed)
            f1 = evaluation.bootstrap_ci(labels, preds, evaluation.macro_f1, n_resamples, seed)
            rows.append({"chapter": chapter, "trained on": config.dataset, "configuration": label,
                         "seed": config.seed, "run": folder.name, "set": name, "n": result["n"],
                         "accuracy": acc["estimate"], "accuracy low": acc["low"], "accuracy high": acc["high"],
                         "macro_f1": f1["estimate"], "macro_f1 low": f1["low"], "macro_f1 high": f1["high"]})
    return pd.DataFrame(rows)
