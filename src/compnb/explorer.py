"""The λ explorer's data: chapter 3's committed results per dataset, saliency method, form and λ, read from
its `runs.csv` and the run folders, never from weights (nothing is trained or loaded here).

For each (dataset, method, form), the λ grid in ascending order; per λ the selection-seed run's validation
accuracy and paper-1 F1 (binary, the positive class's, on SST-2; macro on SNLI: `claims_paper1.metric_column`),
its AdvGLUE accuracy and F1 (adv-SST2 for SST-2 models, adv-MNLI for SNLI models), its top-k saliency
entropy after training (nats), its run and the saliency maps of its own method for the six fixed validation
examples (`competency.example_maps`; None for a run that did not store them). Where a λ was also trained at
the confirmation seeds, their mean and Student-t 95% interval, the seed being the unit and the selection
seed left out, as in the chapter's comparison. The baseline is given per saliency method, since its entropy
and maps are those of the method being looked at (its `competency-k<k>.json` holds both). Chapter 3 writes
the result to `results/<profile>/03-modified-loss/explorer.json`; the explorer page
(`compnb.chapters.explorer_page`) embeds it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from compnb import atomicio
from compnb.chapters import competency, competency_report
from compnb.chapters.claims_paper1 import metric_column
from compnb.evaluation import seed_summary
from compnb.paths import project_root, results_dir

FILE = "explorer.json"
CONFIDENCE = 0.95
BASELINE = "—"  # runs.csv's method and form of the baseline (plain cross-entropy)


def columns(dataset: str) -> dict[str, str]:
    """What a point holds → its column of runs.csv for `dataset`: validation accuracy and F1, AdvGLUE accuracy
    and F1 (paper 1's F1: binary on SST-2, macro on SNLI) and H(top-k of S) after training."""
    return {"accuracy": "accuracy", "f1": metric_column(dataset, "f1", adversarial=False),
            "adv_accuracy": "adv_accuracy", "adv_f1": metric_column(dataset, "f1", adversarial=True),
            "H_topk": "H_topk_after"}


def _number(value: float) -> float | None:
    """A float for JSON: None where the value is missing or not finite (JSON has no NaN)."""
    return float(value) if value is not None and math.isfinite(float(value)) else None


def interval(values: pd.Series) -> dict:
    """{"mean", "low", "high"} of one metric over seeds (n,), the Student-t interval at `CONFIDENCE`
    (`evaluation.seed_summary`); low and high are None with one seed, all three None where a value is missing."""
    if values.isna().any():
        return {"mean": None, "low": None, "high": None}
    s = seed_summary(values.tolist(), CONFIDENCE)
    return {"mean": s["mean"], "low": _number(s["low"]), "high": _number(s["high"])}


def run_maps(folder: Path, method: str) -> list[dict] | None:
    """The maps of `method`'s S that the run in `folder` stored (`competency.MAPS_FILE`), one per example:
    {"row", "text", "pair" (the premise, or None), "label" (its name), "p_true" (the run's predicted
    probability of the true label), "tokens" (T,), "scores" (T,), summing to 1}; None when it stored none."""
    path = Path(folder) / competency.MAPS_FILE
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    names = stored["label_names"]
    return [{"row": e["row"], "text": e["text"], "pair": e["pair"], "label": names[e["label"]],
             "p_true": e["probs"][e["label"]], "tokens": e["maps"][method]["tokens"],
             "scores": e["maps"][method]["scores"]} for e in stored["examples"]]


def _entropy(folder: Path, method: str, k: int) -> float:
    """H(top-k of S) after training of `method`'s S, from the run's `competency-k<k>.json`."""
    path = Path(folder) / f"competency-k{k}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: chapter 3 measures every run it lists in runs.csv")
    return json.loads(path.read_text())["entropy_after"][method]["H_topk"]


def point(rows: pd.DataFrame, selection_seed: int, method: str, runs_root: Path) -> dict:
    """One configuration at one λ (or the baseline) from its runs (one row per seed): the selection-seed run's
    values, run and maps of `method`, and the confirmation seeds' intervals (None without such seeds)."""
    dataset = rows["dataset"].iloc[0]
    chosen = rows[rows["seed"] == selection_seed]
    if len(chosen) != 1:
        raise ValueError(f"{dataset} {rows['config'].iloc[0]} has {len(chosen)} runs at the selection seed "
                         f"{selection_seed}; runs.csv must hold exactly one")
    first, others = chosen.iloc[0], rows[rows["seed"] != selection_seed].sort_values("seed")
    measured = columns(dataset)
    return {"lam": float(first["lam"]), "run": first["run"], "seed": int(first["seed"]),
            "values": {name: _number(first[column]) for name, column in measured.items()},
            "confirmation": None if others.empty else {
                "seeds": [int(s) for s in others["seed"]],
                **{name: interval(others[column]) for name, column in measured.items()}},
            "maps": run_maps(runs_root / first["run"], method)}


def build(runs: pd.DataFrame, runs_root: Path, selection_seed: int, k: int = 5) -> dict:
    """The explorer's data from chapter 3's runs (`runs.csv`'s rows) and their folders under `runs_root`."""
    seeds = sorted(int(s) for s in runs["seed"].unique() if s != selection_seed)
    datasets = []
    for dataset, part in runs.groupby("dataset", sort=False):
        plain = part[part["method"] == BASELINE]
        tuned = part[part["method"] != BASELINE]
        methods = list(dict.fromkeys(tuned["method"]))
        baseline = {m: point(plain.assign(H_topk_after=[_entropy(runs_root / r, m, k) for r in plain["run"]]),
                             selection_seed, m, runs_root) for m in methods}
        configs = [{"method": method, "form": form,
                    "points": [point(at, selection_seed, method, runs_root)
                               for _, at in sorted(rows.groupby("lam"), key=lambda item: item[0])]}
                   for (method, form), rows in tuned.groupby(["method", "form"], sort=False)]
        datasets.append({"dataset": dataset, "f1": competency_report.f1_definition(dataset),
                         "adv_dataset": part["adv_dataset"].iloc[0], "adv_n": int(part["adv_n"].iloc[0]),
                         "baseline": baseline, "configs": configs})
    return {"chapter": competency.CHAPTER, "k": k, "confidence": CONFIDENCE, "selection_seed": int(selection_seed),
            "confirmation_seeds": seeds, "datasets": datasets}


def write(profile: str, runs: pd.DataFrame, k: int = 5) -> Path:
    """Write the explorer's data for chapter 3's `runs` at `profile` into its results folder (`results_dir`:
    a tweak's own folder while one runs) as `FILE`, atomically; the selection seed is the profile's first."""
    selection, _ = competency.seed_roles(profile)
    data = build(runs, project_root() / "results" / profile / "runs", selection, k)
    return atomicio.write_json(results_dir(profile, competency.CHAPTER) / FILE, {"profile": profile, **data})
