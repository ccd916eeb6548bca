"""The appendix "At the papers' scale": the paper-scale benchmark (`benchmarks/bench_paper_scale.py`) as a
table, and the GPU time each chapter's `paper` profile would take, projected from the measured step times.

Projection: a run's steps are ⌈examples / batch⌉ × epochs; its step time is the benchmark's (batch 16 × 128
tokens) scaled by the run's tokens per step, (batch × length) / (16 × 128), which ignores attention's quadratic
term and the change of efficiency with batch shape. A chapter's runs are independent, so on n GPUs its wall
time is at least max(total / n, its longest run) (runs spread evenly, one run per GPU). Early stopping can
only shorten the runs.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from compnb.profiles import CHAPTER_SETTINGS

TRAIN_EXAMPLES = {"sst2": 67_349, "snli": 550_152}  # the GLUE SST-2 and SNLI training splits (labelled pairs)
ADVERSARIAL_EXTRA = 15_000  # chapter 4 adds 5,000 attacked pairs per class to SNLI train
BENCH_TOKENS = 16 * 128
# the benchmark cell each backbone runs with: OPT-1.3B in float32 weights, Llama-2-7B with LoRA (float32 with
# AdamW does not fit one 80 GB card), ELECTRA-small in float32
VARIANT = {"opt-1.3b": "fp32", "llama-2-7b": "lora", "electra-small": "fp32"}


def bench_table(bench: dict) -> pd.DataFrame:
    """One row per (backbone, weights, method) of the benchmark JSON: ms per step, ratio to the plain step, peak
    GiB, model-FLOP ratio to plain, model FLOPs utilisation (%) against the card's bf16 peak, and status."""
    rows = pd.DataFrame(bench["rows"])
    return pd.DataFrame({"backbone": rows["model"], "weights": rows["variant"], "method": rows["method"],
                         "ms / step": rows["ms_per_step"], "× plain": rows["ratio_to_plain"],
                         "peak GiB": rows["peak_gib"], "FLOPs × plain": rows["flop_ratio"],
                         "MFU %": 100 * rows["mfu"], "status": rows["status"]})


def plot_cost(bench: dict, ax: plt.Axes | None = None) -> plt.Axes:
    """Each method's step time as a multiple of the plain step (log x), one bar per backbone in the cell the
    projection uses (`VARIANT`); cells that ran out of memory or were not measured are absent."""
    ax = ax or plt.gca()
    rows = pd.DataFrame(bench["rows"])
    rows = rows[(rows["status"] == "ok") & (rows["variant"] == rows["model"].map(VARIANT))]
    rows = rows.assign(backbone=rows["model"] + " (" + rows["variant"] + ")")
    sns.barplot(data=rows, y="method", x="ratio_to_plain", hue="backbone", orient="h", ax=ax)
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    ax.set(xscale="log", xlabel="step time ÷ plain step of the same backbone (log scale)", ylabel="method")
    ax.legend(title="backbone (weights)", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax


def _ms(bench: dict, model: str, method: str) -> float:
    rows = pd.DataFrame(bench["rows"])
    row = rows[(rows["model"] == model) & (rows["variant"] == VARIANT[model]) & (rows["method"] == method)]
    if row.empty or row["status"].iloc[0] != "ok":
        raise KeyError(f"no measured {model} {VARIANT[model]} {method} step in the benchmark")
    return float(row["ms_per_step"].iloc[0])


def _paper(chapter: str) -> dict:
    """The chapter's paper-profile settings, read without the door's check for the papers' models and data."""
    return CHAPTER_SETTINGS[chapter]["paper"]


def _runs() -> list[tuple[str, str, str, str, int, str]]:
    """(chapter, backbone, dataset, method, examples, chapter settings key) of every run of the paper profile."""
    runs = []
    ch2 = _paper("02-baseline-finetune")
    for model, datasets in (("opt-1.3b", ("sst2", "snli")), ("llama-2-7b", ("sst2",))):
        runs += [("02", model, d, "plain", TRAIN_EXAMPLES[d], "02-baseline-finetune")
                 for d in datasets for _ in ch2["seeds"]]
    ch3 = _paper("03-modified-loss")
    grid = len(ch3["lams"]) * len(ch3["forms"])
    for model, datasets in (("opt-1.3b", ("sst2", "snli")), ("llama-2-7b", ("sst2",))):
        for d in datasets:
            for method, n in (("plain", 1 + (len(ch3["seeds"]) - 1)),
                              ("competency-gradient", grid + len(ch3["forms"]) * (len(ch3["seeds"]) - 1)),
                              ("competency-mask", grid + len(ch3["forms"]) * (len(ch3["seeds"]) - 1))):
                runs += [("03", model, d, method, TRAIN_EXAMPLES[d], "03-modified-loss")] * n
    ch4 = _paper("04-adversarial-eval")
    for _ in ch4["seeds"]:
        runs += [("04", "electra-small", "snli", "plain", TRAIN_EXAMPLES["snli"], "04-adversarial-eval")]
        runs += [("04", "electra-small", "snli", "plain", TRAIN_EXAMPLES["snli"] + ADVERSARIAL_EXTRA,
                  "04-adversarial-eval")] * 2
    ch5 = _paper("05-ig-variance")
    for _ in ch5["seeds"]:
        runs += [("05", "electra-small", "snli", m, TRAIN_EXAMPLES["snli"], "05-ig-variance")
                 for m in ("plain", "ig-detached", "ig-differentiable")]
    return runs


def projection(bench: dict, gpus: tuple[int, ...] = (1, 4, 8)) -> pd.DataFrame:
    """Per chapter of the paper profile: runs, total GPU-hours (H100), the longest run (hours) and the wall
    hours on each number of `gpus`; a chapter with an unmeasured method is left out with the reason."""
    per_chapter: dict[str, list[float]] = {}
    missing: dict[str, str] = {}
    for chapter, model, dataset, method, examples, key in _runs():
        s = _paper(key)
        steps = math.ceil(examples / s["batch_size"]) * s["epochs"]
        try:
            ms = _ms(bench, model, method) * s["batch_size"] * s["max_length"] / BENCH_TOKENS
        except KeyError as err:
            missing[chapter] = str(err)
            continue
        per_chapter.setdefault(chapter, []).append(steps * ms / 3.6e6)
    rows = []
    for chapter, hours in sorted(per_chapter.items()):
        if chapter in missing:
            continue
        total, longest = sum(hours), max(hours)
        rows.append({"chapter": chapter, "runs": len(hours), "GPU-hours": total, "longest run (h)": longest,
                     **{f"wall h, {n} GPU{'s' if n > 1 else ''}": max(total / n, longest) for n in gpus}})
    return pd.DataFrame(rows)
