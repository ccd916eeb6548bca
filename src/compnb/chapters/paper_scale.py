"""The appendix "At the papers' scale": the paper-scale benchmark (`benchmarks/bench_paper_scale.py`) as a
table, and the GPU time each chapter's `paper` profile would take, projected from the measured step times.

Projection: a run's steps are ⌈examples / batch⌉ × epochs; its step time is the benchmark's (batch 16 × 128
tokens) scaled by the run's tokens per step, (batch × length) / (16 × 128), which ignores attention's quadratic
term and the change of efficiency with batch shape. A chapter's runs are independent, so on n GPUs its wall
time is at least max(total / n, its longest run) (runs spread evenly, one run per GPU). Early stopping can
only shorten the runs.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from compnb import plots
from compnb.paths import results_dir
from compnb.profiles import CHAPTER_SETTINGS, settings

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
    plots.fit_width(ax.figure)
    rows = pd.DataFrame(bench["rows"])
    rows = rows[(rows["status"] == "ok") & (rows["variant"] == rows["model"].map(VARIANT))]
    rows = rows.assign(backbone=rows["model"] + " (" + rows["variant"] + ")")
    sns.barplot(data=rows, y="method", x="ratio_to_plain", hue="backbone", orient="h",
                palette=list(plots.PALETTE[:rows["backbone"].nunique()]), saturation=1, ax=ax)
    ax.axvline(1.0, color="black", ls="--", lw=1)
    ax.set(xscale="log", xlabel="step time ÷ plain step of the same backbone (log scale)", ylabel="method")
    ax.grid(axis="y", visible=False)
    ax.get_legend().remove()
    plots.legend_above(ax)
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


def plain_step_table(record: dict) -> pd.DataFrame:
    """`benchmarks/bench_plain_step.py`'s variants of the OPT-1.3B plain step: rows × tokens, ms per step split
    into forward+backward and clipping+AdamW, peak GiB and MFU (%); failed variants keep their error."""
    rows = pd.DataFrame(record["rows"])
    ok = rows[rows.get("status", pd.Series(index=rows.index, dtype=object)).isna()]
    return pd.DataFrame({"variant": ok["variant"], "tokens / step": ok["batch"] * ok["length"],
                         "ms / step": ok["ms_per_step"], "forward + backward (ms)": ok["ms_forward_backward"],
                         "clip + AdamW (ms)": ok["ms_clip_adamw"], "peak GiB": ok["peak_gib"],
                         "MFU %": 100 * ok["mfu"]})


def sharded_table(record: dict) -> pd.DataFrame:
    """`benchmarks/bench_sharded.py`'s rows: strategy, backbone, method, GPUs, rows per GPU, ms per step (the
    slowest rank), ratio to the plain step, peak GiB (the fullest rank), MFU (%) over all GPUs, status."""
    rows = pd.DataFrame(record["rows"]).sort_values(["model", "strategy"], kind="stable")
    return pd.DataFrame({"strategy": rows["strategy"], "backbone": rows["model"], "method": rows["method"],
                         "GPUs": rows["ranks"], "rows per GPU": rows["batch_per_rank"],
                         "ms / step": rows.get("ms_per_step"), "× plain": rows.get("ratio_to_plain"),
                         "peak GiB per GPU": rows.get("peak_gib"), "MFU %": 100 * rows.get("mfu"),
                         "status": rows["status"]})


def sharded_train_table(runs: dict) -> pd.DataFrame:
    """`benchmarks/run_multi_gpu.sh`'s `compnb train` runs (one GPU, DDP, FSDP2): processes, optimizer steps,
    validation accuracy, training seconds and peak GPU memory per process."""
    return pd.DataFrame([{"launch": label, "processes": m["num_processes"], "steps": m["steps"],
                          "validation accuracy": m["validation"]["accuracy"], "training s": m["train_time_s"],
                          "peak MiB per process": m["peak_memory_mb"]} for label, m in runs.items()])


def last_token_concentration(rows: int = 16, tokens: int = 32, seed: int = 0) -> pd.DataFrame:
    """Gradient saliency on small random-initialised OPT, Llama and ELECTRA models (4 layers, width 64; random
    weights, no download) over `rows` × `tokens` random real tokens: per backbone, the median over rows of the
    last token's gradient norm over the row's median norm, the mean share of S on the last token, and the mean
    top-5 entropy of S (nats; at most log 5). A decoder pools the last token, an encoder the mean."""
    import torch
    from transformers import ElectraConfig, LlamaConfig, OPTConfig

    from compnb.models import SequenceClassifier
    from compnb.penalties import topk_entropy
    from compnb.saliency import GradientSaliency, masked_softmax

    size = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, vocab_size=1000)
    configs = {"OPT": OPTConfig(**size, ffn_dim=256, max_position_embeddings=tokens + 2, word_embed_proj_dim=64),
               "Llama": LlamaConfig(**size, intermediate_size=172, max_position_embeddings=tokens, pad_token_id=2),
               "ELECTRA": ElectraConfig(**size, embedding_size=64, intermediate_size=256,
                                        max_position_embeddings=tokens)}
    out = []
    for name, config in configs.items():
        torch.manual_seed(seed)
        model = SequenceClassifier.from_config(config, num_labels=2)
        ids = torch.randint(3, size["vocab_size"], (rows, tokens))
        mask, labels = torch.ones_like(ids), torch.randint(0, 2, (rows,))
        norms = GradientSaliency(model).attribute(ids, mask, labels, normalize=False)
        s = masked_softmax(norms, mask)
        out.append({"backbone (random weights)": name, "pooling": model.pooling,
                    "last / median gradient norm": float((norms[:, -1] / norms.median(-1).values).median()),
                    "S on the last token": float(s[:, -1].mean()),
                    "H top-5 (nats)": float(topk_entropy(s, 5).mean()), "max H top-5": math.log(5)})
    return pd.DataFrame(out)


def checks_from_log(path) -> pd.DataFrame:
    """The gradient checks `benchmarks/bench_sharded.py --check` printed, one per line of the log `path` ('# note:
    {record}'): strategy, GPUs, whether sharded, and the largest gradient difference, absolute and relative."""
    records = [ast.literal_eval(line.split(": ", 1)[1]) for line in Path(path).read_text().splitlines() if line.strip()]
    return pd.DataFrame([{"strategy": r["strategy"], "GPUs": r["ranks"], "sharded": r["sharded"],
                          "max |Δ gradient|": r["max_abs_diff"], "relative to the largest": r["relative"]}
                         for r in records])


def determinism_table(records: list[dict]) -> pd.DataFrame:
    """`benchmarks/bench_determinism.py`'s records (one per loss): per loss and mode, the two from-scratch
    runs' validation accuracies, whether their probabilities and loss curves are bit-identical, and ms per step."""
    rows = []
    for record in records:
        for m in record["modes"]:
            rows.append({"loss": record["loss"], "COMPNB_DETERMINISTIC": int(m["deterministic"]),
                         "accuracy, run 1": m.get("accuracy", [None])[0], "accuracy, run 2": m.get("accuracy", [None, None])[1],
                         "identical probabilities": m.get("probabilities identical"),
                         "identical loss curves": m.get("loss curves identical"),
                         "ms / step (run 2)": m.get("ms per step", [None, None])[1], "error": m.get("error", "")})
    return pd.DataFrame(rows)


def determinism_sentence(table: pd.DataFrame) -> str:
    """What `determinism_table` shows, read from it: which modes repeated bit for bit, whether an operation
    refused, the switch's cost, and what has not been measured."""
    ok = table[table["error"] == ""]
    repeated = ok[ok["identical probabilities"] & ok["identical loss curves"]]
    modes = {0: "the default", 1: "the deterministic"}
    which = sorted({modes[m] for m in repeated["COMPNB_DETERMINISTIC"]})
    failed = table[table["error"] != ""]
    cost = ok.pivot(index="loss", columns="COMPNB_DETERMINISTIC", values="ms / step (run 2)")
    ratios = [f"{loss} ×{row[1] / row[0]:.1f}" for loss, row in cost.iterrows() if {0, 1} <= set(row.dropna().index)]
    parts = [f"At this size {' and '.join(which) or 'neither'} mode{'s' if len(which) > 1 else ''} repeated bit for "
             f"bit ({len(repeated)} of {len(table)} cases)."]
    parts.append("An operation without a deterministic implementation stopped a run: "
                 + "; ".join(failed["error"]) if len(failed) else
                 "No operation of the double backward lacked a deterministic implementation.")
    if ratios:
        parts.append(f"The switch's cost per step: {', '.join(ratios)}.")
    return " ".join(parts)


def rerun_table(path) -> pd.DataFrame:
    """The CSV `benchmarks/compare_reruns.py` wrote at `path` (one row per run of two from-scratch reruns) summed
    per rerun, chapter and saliency method: runs, how many had bit-identical validation probabilities, the largest
    probability and accuracy differences between the reruns, the largest accuracy difference from the
    committed run of the same configuration, and how many of the runs' result files were byte-identical."""
    runs = _compared_runs(path).copy()
    runs["identical"] = runs["identical probabilities"].astype(bool)
    runs["|Δ acc| reruns"] = (runs["accuracy A"] - runs["accuracy B"]).abs()
    runs["|Δ acc| committed"] = (runs["accuracy A"] - runs["accuracy committed"]).abs()
    runs["runs"] = 1
    return (runs.groupby(["rerun", "chapter", "saliency"], sort=False)
            .agg(**{"runs": ("runs", "sum"), "bit-identical": ("identical", "sum"), "max |Δp|": ("max |Δp|", "max"),
                    "max |Δ accuracy|": ("|Δ acc| reruns", "max"),
                    "max |Δ accuracy| from committed": ("|Δ acc| committed", "max"),
                    "result files identical": ("files identical", "sum"),
                    "result files compared": ("files compared", "sum")})
            .reset_index())


def _compared_runs(path) -> pd.DataFrame:
    """The rows of `benchmarks/compare_reruns.py`'s CSV at `path` that compare a run (not a chapter folder)."""
    reruns = pd.read_csv(path)
    return reruns[reruns["identical probabilities"].notna()]


def latest_reruns(path) -> pd.DataFrame:
    """One row per run of the CSV at `path`: the run's latest pair of reruns (a later pair's row replaces an
    earlier pair's, as the mask runs' fixed-budget pair replaces the first pair's)."""
    return _compared_runs(path).drop_duplicates("run", keep="last").reset_index(drop=True)


def differing_files(path) -> pd.DataFrame:
    """The runs of the CSV at `path` whose probabilities repeated but some result file did not: rerun, run and
    the files that differ."""
    runs = _compared_runs(path)
    odd = runs[runs["identical probabilities"].astype(bool) & (runs["files identical"] < runs["files compared"])]
    return odd[["rerun", "run", "files that differ"]].reset_index(drop=True)


@dataclass(frozen=True)
class Planned:
    """The training runs chapters 2 to 4 make at a profile: how many, and the folder names of those known
    (chapter 2's and chapter 4's baselines from their configurations, chapter 3's runs, chapter 4's retrained
    and leaky arms where its `arms.csv` records them)."""

    count: int
    names: frozenset[str]

    def covered(self, latest: pd.DataFrame) -> tuple[int, int]:
        """Of `latest_reruns`' runs: (how many are runs planned today, how many are runs of an earlier design,
        whose configuration today's profile no longer trains)."""
        today = int(latest["run"].isin(self.names).sum())
        return today, len(latest) - today


def planned_runs(profile: str) -> Planned:
    """The training runs chapters 2 to 4 make at `profile`: chapter 2's baselines, chapter 4's kinds per seed,
    and every run chapter 3 recorded (its confirmation runs depend on the selection seed's results); names from
    chapter 2's and chapter 4's baseline configurations, chapter 3's `runs.csv` and chapter 4's `arms.csv` (the
    arms train on attacked data, so their names are known once the chapter has run)."""
    from compnb import run_cache
    from compnb.chapters import adversarial_eval, baseline

    seeds = settings(adversarial_eval.CHAPTER, profile)["seeds"]
    chapter3 = pd.read_csv(results_dir(profile, "03-modified-loss") / "runs.csv")
    arms = results_dir(profile, adversarial_eval.CHAPTER) / "arms.csv"
    chapter2 = baseline.configs(profile)
    names = {run_cache.run_dir(c).name for c in chapter2} | set(chapter3["run"])
    names |= {run_cache.run_dir(adversarial_eval.config(profile, seed)).name for seed in seeds}
    names |= set(pd.read_csv(arms)["run"]) if arms.is_file() else set()
    return Planned(len(chapter2) + len(seeds) * len(adversarial_eval.KINDS) + len(chapter3),
                   frozenset(names))


def _coverage(planned: Planned, latest: pd.DataFrame) -> str:
    """'95 of the 98 runs that chapters 2 to 4 train at the full profile; the rest were not rerun', with the
    reruns of an earlier design's runs counted apart."""
    today, earlier = planned.covered(latest)
    text = f"{today} of the {planned.count} runs that chapters 2 to 4 train at the full profile"
    text += "; the rest were not rerun" if today < planned.count else ""
    return text + (f"; {earlier} more {'is a run' if earlier == 1 else 'are runs'} of an earlier full profile, "
                   "which today's no longer trains" if earlier else "")


RUN_KINDS = {"— (ce)": "cross-entropy", "gradient": "gradient-saliency", "mask": "mask-saliency"}


def rerun_outcome(summary: pd.DataFrame, planned: Planned, latest: pd.DataFrame, differing: pd.DataFrame) -> str:
    """The reruns' outcome in two sentences, for the paper-scale appendix (the pairs in detail are the lab
    notes'): which runs the first pair of `rerun_table`'s `summary` did not repeat, how many of the
    `planned` runs of chapters 2-4 (`planned_runs`) repeated in their latest pair (`latest_reruns`), and how many of those
    still left a measurement file that differed (`differing_files`)."""
    first = summary[summary["rerun"] == summary["rerun"].iloc[0]]
    moved = first[first["bit-identical"] < first["runs"]]
    repeated = int(latest["identical probabilities"].astype(bool).sum())
    text = (f"The first pair repeated {int(first['bit-identical'].sum())} of its {int(first['runs'].sum())} runs bit "
            "for bit" + ("; it repeated " + ", ".join(
                f"{'none' if r['bit-identical'] == 0 else r['bit-identical']} of chapter {r['chapter']}'s {r['runs']} "
                f"{RUN_KINDS.get(r['saliency'], r['saliency'])} runs" for r in moved.to_dict("records"))
                if len(moved) else "") + ". "
            f"Taking each run's latest pair, {repeated} of {len(latest)} runs repeated bit for bit "
            f"({_coverage(planned, latest)})")
    if len(differing):
        text += (f", and {len(differing)} of them left a measurement file that differed in a last digit "
                 f"({', '.join(sorted(set(differing['files that differ'])))})")
    return text + "."


def rerun_sentence(summary: pd.DataFrame, planned: Planned, latest: pd.DataFrame) -> str:
    """What `rerun_table` shows, read from it: which runs repeated in the first pair of reruns and which did not,
    how each later pair went, and (from `latest_reruns`) how many of the `planned` runs of
    chapters 2-4 (`planned_runs`) repeated in their latest pair."""
    first, *later = list(dict.fromkeys(summary["rerun"]))
    rows = summary[summary["rerun"] == first].to_dict("records")
    same = [r for r in rows if r["bit-identical"] == r["runs"]]
    moved = [r for r in rows if r["bit-identical"] < r["runs"]]
    covered = sum(r["runs"] for r in rows)
    parts = [f"In the first pair of reruns ({first}), {sum(r['runs'] for r in same)} of {covered} runs repeated bit "
             "for bit: " + ", ".join(f"chapter {r['chapter']}'s {RUN_KINDS.get(r['saliency'], r['saliency'])} runs"
                                     for r in same) + "."]
    if moved:
        parts.append("Those that did not: " + ", ".join(
            f"chapter {r['chapter']}'s {RUN_KINDS.get(r['saliency'], r['saliency'])} runs "
            f"({r['runs'] - r['bit-identical']} of {r['runs']}, validation "
            f"accuracy apart by up to {r['max |Δ accuracy|']:.4f})" for r in moved) + ".")
    for label in later:
        again = summary[summary["rerun"] == label]
        parts.append(f"Then {label}: {int(again['bit-identical'].sum())} of {int(again['runs'].sum())} runs "
                     "repeated bit for bit.")
    repeated = int(latest["identical probabilities"].astype(bool).sum())
    parts.append(f"Taking each run's latest pair, {repeated} of {len(latest)} runs repeated bit for bit, and the pairs "
                 f"cover {_coverage(planned, latest)}.")
    return " ".join(parts)


def measurement_repeats(folder) -> pd.DataFrame:
    """Records of `benchmarks/saliency_repeats.py` (and, named `fresh-*`, of `measure_in_fresh_processes.sh`)
    in `folder`: per run and way of measuring, how often it was measured, how many of those gave bit-identical
    per-row entropies (NA where the kernel refused the inputs), and the distinct values of the mean
    after-training gradient-saliency entropy that chapter 3 records (nats, float32)."""
    rows = []
    for path in sorted(Path(folder).glob("*.json"), key=lambda p: (p.name.startswith("fresh-"), p.name)):
        record = json.loads(path.read_text())
        if path.name.startswith("fresh-"):
            rows += [{"run": record["run"], "measured": f"new process: trained, then measured as chapter 3 does ({key})",
                      "times": 1, "identical": 1, "values": [value]}
                     for key, value in record.items() if key.startswith("untrained model")]
            continue
        for m in record["measurements"]:
            if "error" in m:
                rows.append({"run": record["run"], "measured": f"attention kernel {m['backend']}: refused ({m['error']})",
                             "times": 0, "identical": pd.NA, "values": []})
            else:
                rows.append({"run": record["run"], "measured": f"attention kernel {m['backend']}, repeated in one process",
                             "times": m["repeats"], "identical": m["bit-identical repeats"], "values": m["distinct means"]})
        rows += [{"run": record["run"], "measured": f"as chapter 3 measures, one process, in turn: {key}", "times": 1,
                  "identical": 1, "values": [value]} for key, value in record["as chapter 3 measures"].items()]
    frame = pd.DataFrame(rows)
    frame["values"] = frame["values"].map(lambda values: " / ".join(f"{v:.9f}" for v in values) or "—")
    return frame.sort_values("run", kind="stable").reset_index(drop=True)


def engine_step_table(record: dict) -> pd.DataFrame:
    """`benchmarks/bench_train_step.py`'s record as a table: per backbone, batch × tokens and loss, milliseconds
    per step eager and captured, the speed-up, and the largest weight difference after the equivalence check's
    steps beside two eager runs' (the kernels' own noise); a loss that could not be captured keeps its error."""
    rows = []
    for r in record["rows"]:
        check = r.get("equivalence", {})
        rows.append({"backbone": r["backbone"], "batch": f"{r['batch']} × {r['tokens']}", "loss": r["loss"],
                     "eager ms": r.get("eager ms"), "captured ms": r.get("captured ms"), "speed-up": r.get("speed-up"),
                     "max |Δw| captured vs eager": check.get("max_abs_weight_diff"),
                     "max |Δw| eager vs eager": check.get("eager_vs_eager_max_abs_diff"), "error": r.get("error", "")})
    return pd.DataFrame(rows)


def _workers(command: str) -> int | None:
    """The `--workers N` of a recorded command line, or None."""
    found = re.search(r"--workers\s+(\d+)", command)
    return int(found.group(1)) if found else None


def engine_loop_table(record: dict, chapters: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """The real training loop with each engine: `benchmarks/bench_train_loop.py`'s runs (examples per second,
    wall seconds, validation accuracy), then each chapter trained from scratch with each engine (`chapters`:
    chapter name → engine → its invocation record; the worker count is read from the recorded command)."""
    rows = [{"what": r["run"], "engine": r["engine"], "training examples / s": r["train_examples_per_s"],
             "wall s": r["wall_time_s"], "validation accuracy": r["val_accuracy"]} for r in record["rows"]]
    rows += [{"what": f"{chapter}, {p['runs_trained']} runs from scratch, {_workers(p['command'])} workers",
              "engine": engine, "training examples / s": None, "wall s": p["wall_time_s"], "validation accuracy": None}
             for chapter, engines in chapters.items() for engine, p in ((e, inv["params"]) for e, inv in engines.items())]
    return pd.DataFrame(rows)


def engine_cost_table(chapters: dict[str, dict[str, dict]], target: float = 1 / 3) -> pd.DataFrame:
    """Per chapter trained from scratch with each engine (`chapters` as in `engine_loop_table`): wall seconds
    eager and captured, their ratio, and whether it meets `target` (the issue's one third)."""
    rows = []
    for chapter, engines in chapters.items():
        eager, graphs = (engines[e]["params"]["wall_time_s"] for e in ("eager", "captured"))
        rows.append({"chapter": chapter, "runs": engines["captured"]["params"]["runs_trained"],
                     "workers": _workers(engines["captured"]["params"]["command"]), "eager s": eager,
                     "captured s": graphs, "captured / eager": graphs / eager, "target": f"≤ {target:.2f}",
                     "met": graphs / eager <= target})
    return pd.DataFrame(rows)


def busy_table(record: dict) -> pd.DataFrame:
    """`benchmarks/bench_train_step.py`'s record, where a step's time goes: per backbone, batch × tokens and loss,
    the eager and captured step's milliseconds, the milliseconds in which the GPU ran a kernel or a copy, the eager
    step's GPU-busy share and the largest speed-up that removing idle time can give (eager ms / eager busy ms).
    Rows without a busy measurement (a loss that could not be captured) are left out."""
    rows = [{"backbone": r["backbone"], "batch × tokens": f"{r['batch']} × {r['tokens']}", "loss": r["loss"],
             "eager ms": r["eager ms"], "captured ms": r["captured ms"], "speed-up": r["speed-up"],
             "eager busy ms": r["eager GPU-busy ms"], "captured busy ms": r["captured GPU-busy ms"],
             "eager busy share": r["eager GPU-busy ms"] / r["eager ms"],
             "speed-up bound": r["eager ms"] / r["eager GPU-busy ms"]}
            for r in record["rows"] if "eager GPU-busy ms" in r and "captured GPU-busy ms" in r]
    return pd.DataFrame(rows)


def workers_table(record: dict) -> pd.DataFrame:
    """`benchmarks/bench_workers.py`'s record: per worker count, the set's wall seconds, its speed over one
    worker, and the runs' median training seconds by saliency method."""
    one = next(r["wall_s"] for r in record["rows"] if r["workers"] == 1)
    rows = []
    for r in sorted(record["rows"], key=lambda r: r["workers"]):
        runs = pd.DataFrame(r["runs"])
        median = runs.groupby("method")["train_time_s"].median()
        rows.append({"workers": r["workers"], "runs": len(runs), "wall s": r["wall_s"], "speed over 1 worker": one / r["wall_s"],
                     **{f"median training s, {m}": median.get(m) for m in ("gradient", "mask")}})
    return pd.DataFrame(rows)


def gpu_test_outcomes(log: str) -> pd.DataFrame:
    """A `pytest -rA` log's outcome per test (`PASSED`, `FAILED`, `ERROR`, `SKIPPED` lines of its short summary):
    columns file, test, outcome."""
    found = re.findall(r"^(PASSED|FAILED|ERROR|SKIPPED)(?: \[\d+\])? (tests/[^:\s]+)(?:::(\S+))?", log, re.MULTILINE)
    return pd.DataFrame([{"file": path, "test": name or "", "outcome": outcome} for outcome, path, name in found])


def engine_speedup(table: pd.DataFrame, backbone: str, batch: str, loss: str) -> float:
    """Captured over eager for one row of `engine_step_table` ('32 × 64' batches)."""
    row = table[(table["backbone"] == backbone) & (table["batch"] == batch) & (table["loss"] == loss)]
    return float(row["speed-up"].iloc[0])
