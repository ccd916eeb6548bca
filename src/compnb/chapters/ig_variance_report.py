"""Chapter 5's tables and figures, from `ig_variance_eval.run_all` records (one per seed and variant).

Every function takes the records and the test split's gold labels (n,) where it needs them; scores are
fractions, times milliseconds, attributions logits.
"""

from __future__ import annotations

import math
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats

from compnb import captured
from compnb import formatting as fmt
from compnb import paper_numbers as pn
from compnb import plots
from compnb import render
from compnb.evaluation import (
    calibration_r2,
    classification_metrics,
    expected_calibration_error,
    holm,
    paired_t_p,
    reliability_table,
    seed_summary,
)
from compnb.chapters.ig_variance_eval import VARIANTS

LABELS = ("entailment", "neutral", "contradiction")
CALIBRATION_BINS = 10
COLOURS = dict(zip(VARIANTS, plots.PALETTE))  # one colour per variant in every figure
# what each bounded metric can take: a seed interval is clipped to it (R² can be negative, never above 1)
BOUNDS = {"accuracy": (0.0, 1.0), "macro_f1": (0.0, 1.0), "roc_auc": (0.0, 1.0), "ece": (0.0, 1.0),
          "calibration_r2": (-math.inf, 1.0)}
RUN_METRICS = {"accuracy": "accuracy", "roc_auc": "ROC AUC", "macro_f1": "macro F1", "ece": "ECE",
               "calibration_r2": "calibration R²", "variance": "mean Var(IG)", "gap": "mean completeness gap",
               "ms_per_step": "ms / step"}
BOUNDED_NAMES = {RUN_METRICS[m] for m in BOUNDS}  # the display names of the bounded metrics
PER_CLASS_COLUMNS = ("variant", "seed", "class", "accuracy", "recall", "precision", "f1", "support")
LENGTH_SEED_COLUMNS = ("variant", "seed", "words", "pairs", "error rate")


def per_run(records: list[dict], labels: np.ndarray) -> pd.DataFrame:
    """One row per run: test accuracy, macro F1, one-vs-rest ROC AUC, ECE and calibration R² (10 equal-width
    bins), the mean attribution variance and completeness gap of its IG, and its training cost."""
    rows = []
    for r in records:
        m, probs = r["metrics"], r["probs"]
        scores = classification_metrics(labels, probs, LABELS)
        rows.append({"variant": r["variant"], "seed": r["seed"], "accuracy": scores["accuracy"],
                     "macro_f1": scores["macro_f1"], "roc_auc": scores["roc_auc"],
                     "ece": expected_calibration_error(labels, probs, CALIBRATION_BINS),
                     "calibration_r2": calibration_r2(labels, probs, CALIBRATION_BINS),
                     "variance": float(r["ig"]["variance"].mean()), "gap": float(r["ig"]["gap"].mean()),
                     "ms_per_step": 1000 * m["train_time_s"] / max(m["steps"], 1), "steps": m["steps"],
                     "epochs": m["epochs_run"], "stopped_early": m["stopped_early"],
                     "train_s": m["train_time_s"], "device": m.get("device", ""),
                     "engine": captured.recorded_engine(m)})
    return pd.DataFrame(rows)


DELTA_DECIMALS = 4  # differences of bounded metrics (accuracy, recall, ROC AUC, ...) in fixed notation


def delta_text(x: float) -> str:
    """A difference of a bounded metric to `DELTA_DECIMALS` places in fixed notation ('-0.0003'); one below
    half the last place prints as 0.0000, zero at the table's precision, not as a power of ten."""
    return fmt.signed(x, DELTA_DECIMALS)


def seed_interval(metric: str, values: np.ndarray, summary: dict) -> str:
    """The Student-t interval over seeds of `metric` as the table prints it: clipped to what the metric can take
    (`BOUNDS`); for calibration R², whose interval is uninformative once it runs past both 0 and 1, the word
    'undetermined' with the seeds' span instead."""
    if metric not in BOUNDS:
        return f"[{fmt.sig(summary['low'])}, {fmt.sig(summary['high'])}]"
    if metric == "calibration_r2" and summary["low"] < 0 and summary["high"] > BOUNDS[metric][1]:
        return f"undetermined ({len(values)} seeds span {values.min():.2f} to {values.max():.2f})"
    return fmt.interval(summary["low"], summary["high"], 3, BOUNDS[metric])


def comparison(runs: pd.DataFrame, metrics: tuple[str, ...] = ("accuracy", "roc_auc", "ece", "variance")
               ) -> pd.DataFrame:
    """Per variant and metric: the mean over seeds with its Student-t 95% interval, and the difference to the
    baseline paired by seed with its interval, the raw paired-t p (`p`) and `p (Holm)`, Holm-adjusted over this
    metric's family only: the two penalty variants against the baseline. Chapter 6 corrects the paper's claims
    again, over one family per chapter holding every confirmatory test."""
    base = runs[runs["variant"] == "baseline"].set_index("seed")
    rows = []
    for metric in metrics:
        family = []
        if runs[metric].isna().any():  # e.g. calibration R² with too few filled bins (tiny smoke sets)
            rows += [{"metric": RUN_METRICS[metric], "variant": v, "seeds": 0, "mean": np.nan,
                      "95% CI": "undefined for some run"} for v in VARIANTS]
            continue
        for variant in VARIANTS:
            part = runs[runs["variant"] == variant].set_index("seed").sort_index()
            s = seed_summary(part[metric].tolist())
            row = {"metric": RUN_METRICS[metric], "variant": variant, "seeds": len(part), "mean": s["mean"],
                   "95% CI": seed_interval(metric, part[metric].to_numpy(), s)}
            if variant != "baseline":
                common = part.index.intersection(base.index)
                delta = (part.loc[common, metric] - base.loc[common, metric]).to_numpy()
                d = seed_summary(delta.tolist())
                row |= {"Δ vs baseline": d["mean"], "Δ 95% CI": (
                            fmt.interval(d["low"], d["high"], DELTA_DECIMALS, with_sign=True) if metric in BOUNDS
                            else f"[{fmt.signed_sig(d['low'])}, {fmt.signed_sig(d['high'])}]"),
                        "p": paired_t_p(delta.tolist())}
                family.append(len(rows))
            rows.append(row)
        adjusted = holm([rows[i]["p"] for i in family])
        for i, value in zip(family, adjusted):
            rows[i]["p (Holm)"] = value
    return pd.DataFrame(rows)


def comparison_sentences(table: pd.DataFrame, alpha: float = 0.05) -> str:
    """One Markdown line per penalty variant and metric: the paired difference and whether it is significant."""
    lines = []
    for _, row in table[(table["variant"] != "baseline") & table["Δ vs baseline"].notna()].iterrows():
        delta = (delta_text if row["metric"] in BOUNDED_NAMES else fmt.signed_sig)(row["Δ vs baseline"])
        if np.isnan(row["p"]):
            lines.append(f"- **{row['variant']}, {row['metric']}**: {delta} at every seed "
                         f"(not testable: no spread across seeds).")
            continue
        verdict = ("significant after Holm over the two variants" if row["p (Holm)"] < alpha
                   else "significant alone, not after Holm over the two variants" if row["p"] < alpha
                   else "not significant")
        lines.append(f"- **{row['variant']}, {row['metric']}**: {delta} {row['Δ 95% CI']} "
                     f"(raw {fmt.p_text(row['p'])}, {verdict}).")
    return "\n".join(lines)


def _epoch_counts(epochs: pd.Series) -> str:
    """The epochs a variant's seeds ran (early stopping may end one sooner): '3', or '2–3' when they differ."""
    return fmt.span(epochs, 0)


def _counts(values: pd.Series) -> str:
    """How many seeds had each value, most first: 'cuda-graph × 5, eager × 3'."""
    return ", ".join(f"{value} × {n}" for value, n in values.value_counts().items())


def cost_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per variant: mean ms per training step over seeds, its ratio to the same seed's baseline, the epochs its
    seeds ran (early stopping), mean training time, and how many seeds trained on each device and engine."""
    base = runs[runs["variant"] == "baseline"].set_index("seed")["ms_per_step"]
    ratio = runs["ms_per_step"] / base.reindex(runs["seed"]).to_numpy()
    table = runs.assign(ratio=ratio).groupby("variant", sort=False).agg(
        seeds=("seed", "size"), ms_per_step=("ms_per_step", "mean"), ratio=("ratio", "mean"),
        epochs=("epochs", _epoch_counts), train_s=("train_s", "mean"), devices=("device", _counts),
        engines=("engine", _counts)).reset_index()  # not `engine=`: that is agg's own keyword
    return table.rename(columns={"ms_per_step": "ms / step", "ratio": "× baseline step", "epochs": "epochs run",
                                 "train_s": "training time (s)", "devices": "devices (seeds)",
                                 "engines": "engines (seeds)"})


ENGINE_NAMES = {captured.GRAPHS: "captured (CUDA graph)", captured.EAGER: "eager"}


def training_sentence(runs: pd.DataFrame, invocation: dict | None) -> str:
    """Where and how the runs of `runs` (`per_run`) trained, from the runs themselves, whether any seed's variants
    trained by different engines, and the command of the chapter's latest training record `invocation` (its
    params; None: no record at this profile)."""
    if invocation is None or not invocation.get("devices"):
        return "No record of how these runs were trained is kept at this profile."
    by = runs.groupby(["device", "engine"]).size().sort_values(ascending=False, kind="stable")
    how = [f"with the {ENGINE_NAMES[engine]} engine on {device}" for device, engine in by.index]
    counts = [f"{by.iloc[0]} were trained {how[0]}"] + [f"{n} {h}" for n, h in zip(by.iloc[1:], how[1:])]
    trained = (f"All {len(runs)} runs were trained {how[0]}" if len(by) == 1 else
               f"Of the {len(runs)} runs, {fmt.listing(counts)}")
    mixed = int((runs.groupby("seed")["engine"].nunique() > 1).sum())
    seeds = ("each seed's variants were trained by one engine, so each ratio compares like with like" if not mixed else
             f"at {mixed} seed{'s' if mixed > 1 else ''} the variants were trained by different engines, so "
             "those seeds' ratios mix the engines' speeds")
    return (f"{trained}; the latest training record is `{invocation['command']}`. Runs trained side by side shared "
            f"the device, and these times include that sharing; {seeds}.")


def plot_loss_curves(records: list[dict]) -> plt.Figure:
    """Training cross-entropy (left) and the penalty tanh(α·Var(IG)) (right) against the optimizer step, each
    variant's mean over seeds with the seeds' range shaded; the baseline computes no penalty. The curves nearly
    coincide, so each is drawn narrower than the one beneath it and the baseline, on top, dashed."""
    rows = [{"variant": r["variant"], "seed": r["seed"], "step": e["step"], "cross-entropy": e["ce"],
             "tanh(α·Var)": e.get("tanh_var", np.nan)} for r in records for e in r["metrics"]["train_loss"]]
    frame = pd.DataFrame(rows)
    widths = dict(zip(VARIANTS, (1.4, 2.4, 4.0)))
    fig, axes = plots.book_figure(3.2, 1, 2)
    for ax, column in zip(axes[0], ("cross-entropy", "tanh(α·Var)")):
        for variant in reversed(VARIANTS):  # the widest first, the baseline last
            curve = frame[frame["variant"] == variant].groupby("step")[column].agg(["mean", "min", "max"]).dropna()
            ax.fill_between(curve.index, curve["min"], curve["max"], color=COLOURS[variant], alpha=0.2, lw=0)
            ax.plot(curve.index, curve["mean"], color=COLOURS[variant], lw=widths[variant],
                    ls="--" if variant == "baseline" else "-", label=variant)
    axes[0, 0].set(xlabel="optimizer step", ylabel="training cross-entropy")
    axes[0, 1].set(xlabel="optimizer step", ylabel="tanh(α · mean Var(IG))")
    handles = {h.get_label(): h for h in axes[0, 0].get_lines()}
    plots.legend_above(fig, [handles[v] for v in VARIANTS])
    return fig


def pair_lengths(premises: list[str], hypotheses: list[str]) -> np.ndarray:
    """Words (whitespace-separated) in premise plus hypothesis, per pair (n,)."""
    return np.array([len(p.split()) + len(h.split()) for p, h in zip(premises, hypotheses)])


def length_bins(lengths: np.ndarray, n_bins: int = 5) -> tuple[np.ndarray, list[str]]:
    """Quantile bins of the pair lengths (n,) (`pd.qcut`, duplicate edges dropped): each pair's bin name
    ('8–15': words, both ends included) (n,) and the names from short to long. Every pair falls in one bin."""
    bins = pd.qcut(np.asarray(lengths), n_bins, duplicates="drop")
    names = np.asarray([f"{int(b.left) + 1}–{int(b.right)}" for b in bins])
    return names, [f"{int(b.left) + 1}–{int(b.right)}" for b in bins.categories]


def error_by_length_seeds(records: list[dict], labels: np.ndarray, lengths: np.ndarray, n_bins: int = 5
                          ) -> pd.DataFrame:
    """One row per run and length bin (`length_bins`): variant, seed, words (the bin), pairs (in the bin) and
    the run's test error rate on the bin's pairs. Seeds are the replicates: every run sees the same pairs."""
    names, order = length_bins(lengths, n_bins)
    rows = []
    for variant in VARIANTS:
        for r in sorted((r for r in records if r["variant"] == variant), key=lambda r: r["seed"]):
            wrong = r["probs"].argmax(1) != labels
            for name in order:
                inside = names == name
                rows.append({"variant": variant, "seed": r["seed"], "words": name, "pairs": int(inside.sum()),
                             "error rate": float(wrong[inside].mean())})
    return pd.DataFrame(rows, columns=list(LENGTH_SEED_COLUMNS))


def error_by_length(records: list[dict], labels: np.ndarray, lengths: np.ndarray, n_bins: int = 5) -> pd.DataFrame:
    """Per variant and length bin (`length_bins`): the mean over seeds of the runs' error rates
    (`error_by_length_seeds`) with its Student-t 95% interval over seeds (clipped to [0, 1]), and the bin's
    pairs. The seeds are the unit: the interval is that of three (or however many) per-seed error rates on the
    same pairs, not a binomial interval over the pooled predictions, and it leaves out the sampling of the
    test pairs themselves."""
    seeds = error_by_length_seeds(records, labels, lengths, n_bins)
    rows = []
    for (variant, name), part in seeds.groupby(["variant", "words"], sort=False):
        s = seed_summary(part["error rate"].tolist())
        rows.append({"variant": variant, "words": name, "pairs": int(part["pairs"].iloc[0]), "error rate": s["mean"],
                     "low": max(s["low"], 0.0), "high": min(s["high"], 1.0)})
    return pd.DataFrame(rows)


def length_trend(seeds: pd.DataFrame) -> pd.DataFrame:
    """Per run, from `error_by_length_seeds`: `slope`, the least-squares change in error rate per length bin
    (bins numbered 0, 1, ... from short to long; > 0: errors rise with length), and `roughness`, the RMS
    distance of the run's bin error rates from that straight line (0: a straight curve; the paper's
    "smoother")."""
    rows = []
    for (variant, seed), part in seeds.groupby(["variant", "seed"], sort=False):
        y = part["error rate"].to_numpy()
        x = np.arange(len(y), dtype=float)
        slope, intercept = np.polyfit(x, y, 1) if len(y) > 1 else (np.nan, y.mean())
        residual = y - (slope * x + intercept) if len(y) > 1 else np.zeros_like(y)
        rows.append({"variant": variant, "seed": seed, "bins": len(y), "slope": float(slope),
                     "roughness": float(np.sqrt(np.mean(residual ** 2)))})
    return pd.DataFrame(rows)


def seed_comparison(table: pd.DataFrame, metrics: tuple[str, ...], by: str | None = None) -> pd.DataFrame:
    """For per-run rows (`variant`, `seed`, the `metrics` and optionally a grouping column `by`, e.g. class):
    per group, metric and variant, the mean over seeds with its Student-t 95% interval; for the penalty
    variants the difference to the baseline paired by seed, its interval, how many seeds it is > 0 at, the raw
    paired-t p and `p (Holm, table)` (seeds where a value is undefined, NaN, are left out): Holm over every test of this table (stated in the caption). Chapter 6
    corrects the paper's claims over its chapter family."""
    groups = [(None, table)] if by is None else list(table.groupby(by, sort=False))
    rows, family = [], []
    for key, part in groups:
        base = part[part["variant"] == "baseline"].set_index("seed")
        for metric in metrics:
            for variant in VARIANTS:
                own = part[part["variant"] == variant].set_index("seed").sort_index()
                values = own[metric].dropna()  # e.g. precision of a class a run never predicts (tiny smoke sets)
                if values.empty:
                    rows.append(({by: key} if by else {}) | {"metric": metric, "variant": variant, "seeds": 0,
                                                             "mean": np.nan, "95% CI": "undefined at every seed"})
                    continue
                s = seed_summary(values.tolist())
                row = ({by: key} if by else {}) | {"metric": metric, "variant": variant, "seeds": len(values),
                                                   "mean": s["mean"], "95% CI": _interval(s)}
                if variant != "baseline":
                    common = values.index.intersection(base[metric].dropna().index)
                    delta = (values.loc[common] - base.loc[common, metric]).to_numpy()
                    if not len(delta):
                        rows.append(row)
                        continue
                    d = seed_summary(delta.tolist())
                    row |= {"Δ vs baseline": d["mean"], "Δ 95% CI": _interval(d, signed=True),
                            "seeds with Δ > 0": f"{int((delta > 0).sum())} of {len(delta)}",
                            "p (paired t, raw)": paired_t_p(delta.tolist())}
                    family.append(len(rows))
                rows.append(row)
    adjusted = holm([rows[i]["p (paired t, raw)"] for i in family]) if family else []
    for i, value in zip(family, adjusted):
        rows[i]["p (Holm, table)"] = value
    return pd.DataFrame(rows)


def _interval(s: dict, signed: bool = False) -> str:
    if np.isnan(s["low"]):
        return "one seed: none"
    return fmt.interval(s["low"], s["high"], 4, with_sign=signed)


def per_class(records: list[dict], labels: np.ndarray) -> pd.DataFrame:
    """One row per run and gold class (`LABELS`): the class's accuracy, i.e. the share of its gold pairs the run
    predicts right, which is its recall (the two columns hold the same number: the per-class accuracy a
    confusion matrix's diagonal shows), its precision and F1 (NaN where undefined: no pair predicted as, or of,
    the class) and its support (gold pairs). Predictions are the argmax of the test probabilities."""
    rows = []
    for r in sorted(records, key=lambda r: (VARIANTS.index(r["variant"]), r["seed"])):
        predicted = np.asarray(r["probs"]).argmax(1)
        for k, name in enumerate(LABELS):
            gold, chosen = labels == k, predicted == k
            hits = int((gold & chosen).sum())
            recall = hits / gold.sum() if gold.any() else math.nan
            precision = hits / chosen.sum() if chosen.any() else math.nan
            f1 = (math.nan if math.isnan(recall) or math.isnan(precision)
                  else 0.0 if recall + precision == 0 else 2 * precision * recall / (precision + recall))
            rows.append({"variant": r["variant"], "seed": r["seed"], "class": name, "accuracy": recall,
                         "recall": recall, "precision": precision, "f1": f1, "support": int(gold.sum())})
    return pd.DataFrame(rows, columns=list(PER_CLASS_COLUMNS))


def plot_per_class(table: pd.DataFrame) -> plt.Figure:
    """Left: each class's recall (per-class accuracy) per variant, one dot per seed and the mean over seeds as
    a dash; right: each penalty variant's recall less the same seed's baseline, one dot per seed (jittered
    sideways so that equal values stay apart), with a line at
    zero (dots above it: that seed's variant does better on the class)."""
    fig, axes = plots.book_figure(3.4, 1, 2)
    left, right = axes[0]
    sns.pointplot(table, x="class", y="recall", hue="variant", hue_order=list(VARIANTS), palette=COLOURS,
                  errorbar=None, dodge=0.53, linestyle="none", marker="_", markersize=18, markeredgewidth=2,
                  ax=left, order=list(LABELS))
    sns.stripplot(table, x="class", y="recall", hue="variant", hue_order=list(VARIANTS), palette=COLOURS,
                  dodge=True, jitter=False, size=4, alpha=0.8, ax=left, order=list(LABELS), legend=False)
    low = max(0.0, float(table["recall"].min()) - 0.05)
    left.set(xlabel="gold class", ylabel="recall (per-class accuracy)", ylim=(low, min(1.0, float(table["recall"].max()) + 0.03)))
    base = table[table["variant"] == "baseline"].set_index(["seed", "class"])["recall"]
    delta = table[table["variant"] != "baseline"].copy()
    delta["Δ recall"] = delta["recall"].to_numpy() - base.reindex(list(zip(delta["seed"], delta["class"]))).to_numpy()
    sns.stripplot(delta, x="class", y="Δ recall", hue="variant", hue_order=list(VARIANTS[1:]),
                  palette={v: COLOURS[v] for v in VARIANTS[1:]}, dodge=True, jitter=0.08, size=5, ax=right,
                  order=list(LABELS), legend=False)
    right.axhline(0, color=plots.GREY, lw=1, ls="--")
    right.set(xlabel="gold class", ylabel="recall − same seed's baseline")
    if left.get_legend() is not None:
        left.get_legend().remove()
    handles = [plt.Line2D([], [], marker="o", ls="", color=COLOURS[v], label=v) for v in VARIANTS]
    plots.legend_above(fig, handles)
    return fig


def plot_error_by_length_seeds(seeds: pd.DataFrame) -> plt.Figure:
    """One panel per variant: each seed's test error rate against the length bin (thin lines), with the
    baseline's mean over seeds (dashed grey) in every panel for reference."""
    order = list(dict.fromkeys(seeds["words"]))
    fig, axes = plots.book_figure(3.0, 1, len(VARIANTS), sharey=True)
    reference = seeds[seeds["variant"] == "baseline"].groupby("words", sort=False)["error rate"].mean().loc[order]
    for ax, variant in zip(axes[0], VARIANTS):
        for seed, part in seeds[seeds["variant"] == variant].groupby("seed"):
            ax.plot(np.arange(len(order)), part.set_index("words").loc[order, "error rate"], "o-", ms=3, lw=1.2,
                    color=COLOURS[variant], alpha=0.8)
        ax.plot(np.arange(len(order)), reference, ls="--", color=plots.GREY, lw=1.2)
        ax.set_xticks(np.arange(len(order)), order, rotation=45)
        ax.set(title=variant, xlabel="words (pair)", ylabel="test error rate" if ax is axes[0, 0] else "")
    return fig


def per_class_sentence(summary: pd.DataFrame) -> str:
    """How to read the per-class comparison (`seed_comparison` of `per_class` by class on recall): per penalty
    variant, the classes whose mean recall is above the baseline's, at how many seeds, and whether every class
    rises at every seed (paper 3's Figure 9 says the IG-variance model improves on every class)."""
    rows = summary[(summary["variant"] != "baseline") & (summary["metric"] == "recall")]
    parts = []
    for variant, part in rows.groupby("variant", sort=False):
        cells = "; ".join(f"{row['class']} {fmt.signed(row['Δ vs baseline'] * 100, 1)} points "
                          f"(higher at {row['seeds with Δ > 0']} seeds, raw {fmt.p_text(row['p (paired t, raw)'])})"
                          for _, row in part.iterrows())
        up = (part["Δ vs baseline"] > 0).sum()
        every = all(row["seeds with Δ > 0"].split(" of ")[0] == row["seeds with Δ > 0"].split(" of ")[1]
                    for _, row in part.iterrows())
        parts.append(f"- **{variant}**: {cells}. Mean recall is higher on {up} of {len(part)} classes"
                     + ("; every class rises at every seed." if every else "; not every class rises at every seed."))
    return "\n".join(parts)


def length_sentence(trend: pd.DataFrame) -> str:
    """How to read the length figures (`length_trend` per run): per variant, the mean slope (error-rate points
    per bin) with how many seeds rise, and the mean roughness; and whether the penalty variants' curves are
    smoother than the same seed's baseline (paper 3's Figure 8)."""
    parts = []
    base = trend[trend["variant"] == "baseline"].set_index("seed")["roughness"]
    for variant, part in trend.groupby("variant", sort=False):
        text = (f"{variant}: slope {fmt.signed(part['slope'].mean() * 100, 2)} points per bin (rising at "
                f"{int((part['slope'] > 0).sum())} of {len(part)} seeds), roughness {part['roughness'].mean() * 100:.2f} points")
        if variant != "baseline":
            own = part.set_index("seed")["roughness"]
            common = own.index.intersection(base.index)
            smoother = int((own.loc[common] < base.loc[common]).sum())
            text += f", smoother than the same seed's baseline at {smoother} of {len(common)} seeds"
        parts.append(text)
    return "Per seed, over the length bins: " + "; ".join(parts) + "."


def binomial_noise_sentence(by_length: pd.DataFrame, trend: pd.DataFrame) -> str:
    """How much of the length curves' roughness the choice of test pairs alone explains: from `error_by_length`
    (a row per variant and bin: its pairs n and mean error rate p), each bin's binomial standard error
    √(p(1 − p)/n); the root-mean-square distance from its own fitted line that a straight underlying curve
    with that noise stays below 95% of the time over k bins, √(χ²₀.₉₅(k − 2)/k · mean SE²) (the residual sum of
    squares of a line fitted to k noisy points is σ²·χ² with k − 2 degrees of freedom); and at how many runs of
    `length_trend` the roughness is above it. Error rates and roughness in percentage points."""
    se = np.sqrt(by_length["error rate"] * (1 - by_length["error rate"]) / by_length["pairs"])
    k = by_length["words"].nunique()
    text = (f"Each bin holds {fmt.span(by_length['pairs'], 0)} pairs at error rates of "
            f"{fmt.span(by_length['error rate'] * 100, 1)}%, so its error rate carries a binomial standard error, "
            f"√(p(1 − p)/n), of {fmt.span(se * 100, 1)} points from the choice of test pairs alone.")
    if k < 3:
        return text + f" With {k} bin{'s' if k != 1 else ''} a fitted line passes through every point: no roughness is measured."
    straight = float(np.sqrt(stats.chi2.ppf(0.95, k - 2) / k * np.mean(se ** 2))) * 100
    rough = trend["roughness"] * 100
    above = int((rough > straight).sum())
    runs = f"{fmt.span(rough, 2)} points"
    reading = (f"every run's roughness ({runs}) is above that" if above == len(rough) else
               f"no run's roughness ({runs}) is above that" if above == 0 else
               f"the runs' roughness ({runs}) is above that at {above} of {len(rough)} runs")
    return text + (f" Over {k} bins, a straight underlying curve with that noise leaves a roughness (the RMS "
                   f"distance from the fitted line) below {straight:.2f} points 95% of the time; {reading}.")


def r2_interval_sentence(variant: str, n_seeds: int, low: float, high: float) -> str:
    """The widest Student-t interval of calibration R² over seeds (`variant`'s, over `n_seeds` seeds) against
    what R² can take (at most 1; below 0 when the diagonal fits the bins worse than their mean accuracy), and how the table
    prints it (`seed_interval`): undetermined when it runs past both 1 and 0, clipped at 1 when it runs past 1
    only, as it is otherwise."""
    text = (f"The Student-t 95% interval over {n_seeds} seeds is widest for {variant}, {low:.2f} to {high:.2f}, ")
    top = BOUNDS["calibration_r2"][1]
    if high > top and low < 0:
        return text + (f"past R²'s maximum of 1 and below 0: clipped to [{low:.2f}, 1] it would say only that the "
                       "measure cannot tell, so the table prints such an interval as undetermined, with the span of "
                       "the seeds' values. ")
    if high > top:
        return text + (f"past R²'s maximum of 1 but not below 0: the table prints it clipped at 1, as "
                       f"{fmt.interval(low, high, 3, BOUNDS['calibration_r2'])}. ")
    if low < 0:
        return text + ("below 0, which R² reaches when the diagonal fits the bins' accuracies worse than their mean "
                       "does, and within its maximum of 1: the table prints it as it is. ")
    return text + "within R²'s possible values, 0 to 1: the table prints it as it is. "


def calibration_sentence(runs: pd.DataFrame, records: list[dict], labels: np.ndarray) -> str:
    """How unstable calibration R² is over seeds: each variant's per-seed values and their range, the width
    of the Student-t interval against R²'s possible values (`r2_interval_sentence`), and the fewest pairs in a
    filled confidence bin (each filled bin counts once in the R², however few pairs it holds)."""
    parts, widths = [], []
    for variant in VARIANTS:
        values = runs[runs["variant"] == variant].sort_values("seed")["calibration_r2"].to_numpy()
        if np.isnan(values).any():
            return "Calibration R² is undefined for some run at this profile (too few filled confidence bins)."
        parts.append(f"{variant} " + ", ".join(f"{v:.2f}" for v in values))
        if len(values) > 1:
            s = seed_summary(values.tolist())
            widths.append((variant, s["low"], s["high"]))
    smallest = min(int(reliability_table(labels, r["probs"], CALIBRATION_BINS)["count"].replace(0, np.nan).min())
                   for r in records)
    spread = runs.groupby("variant")["calibration_r2"].agg(lambda v: v.max() - v.min())
    ece_spread = runs.groupby("variant")["ece"].agg(lambda v: v.max() - v.min())
    means = runs.groupby("variant")["calibration_r2"].mean()
    gap = means.max() - means.min()
    unstable = spread.max() > gap
    text = (f"**Calibration R² over seeds.** Per seed it reads {'; '.join(parts)}: one variant's seeds span up to "
            f"{spread.max():.2f}, {'more' if unstable else 'less'} than the largest difference between the "
            f"variants' means ({gap:.2f})"
            + (", so at these seeds the measure cannot order the variants. " if unstable else ". "))
    if widths:
        variant, low, high = max(widths, key=lambda w: w[2] - w[1])
        text += r2_interval_sentence(variant, len(runs[runs["variant"] == variant]), low, high)
    text += (("The reason is the measure: " if unstable else "The measure is fragile all the same: ")
             + f"every filled confidence bin counts once in the R², however few pairs "
             f"it holds. The emptiest filled bin of any run holds {smallest} pair{'s' if smallest != 1 else ''}; "
             f"its accuracy is then a coarse fraction far from its confidence, and it weighs as much as the bin "
             f"of the most confident pairs, so one sparse low-confidence bin can take R² below zero. ECE, "
             f"which weights bins by their pairs, moves by at most {ece_spread.max():.3f} between one variant's "
             f"seeds (the ECE rows of the table above).")
    return text


def per_seed_table(runs: pd.DataFrame, metrics: tuple[str, ...] = ("accuracy", "macro_f1", "roc_auc", "ece",
                                                                   "calibration_r2")) -> pd.DataFrame:
    """The runs' test metrics one row per variant and seed (as in runs.csv), named for reading."""
    return runs[["variant", "seed", *metrics]].rename(columns={m: RUN_METRICS[m] for m in metrics})


def plot_error_by_length(table: pd.DataFrame) -> plt.Axes:
    """Error rate against pair length (words, one tick per bin with its pairs), one line per variant with its
    seeds' 95% interval as error bars."""
    fig, axes = plots.book_figure(3.6)
    ax = axes[0, 0]
    order = list(dict.fromkeys(table["words"]))
    for i, variant in enumerate(VARIANTS):
        part = table[table["variant"] == variant].set_index("words").loc[order]
        x = np.arange(len(order)) + (i - (len(VARIANTS) - 1) / 2) * 0.08
        ax.errorbar(x, part["error rate"], yerr=[part["error rate"] - part["low"], part["high"] - part["error rate"]],
                    fmt="o-", capsize=3, color=COLOURS[variant], label=variant)
    pairs = table.drop_duplicates("words").set_index("words").loc[order, "pairs"]
    ax.set_xticks(np.arange(len(order)), [f"{w}\n({n} pairs)" for w, n in zip(order, pairs)])
    ax.set(xlabel="words in premise + hypothesis", ylabel="test error rate (mean over seeds)")
    plots.legend_above(ax)
    return ax


def plot_confusions(records: list[dict], labels: np.ndarray, seed: int) -> plt.Figure:
    """Row-normalised confusion matrices (gold rows, predicted columns, counts written in the cells) of the
    three variants of one seed, with one shared colour scale."""
    fig, axes = plots.book_figure(2.7, 1, len(VARIANTS), sharey=True)
    short = [name[:7] + "." if len(name) > 8 else name for name in LABELS]
    for ax, variant in zip(axes[0], VARIANTS):
        r = next(r for r in records if r["variant"] == variant and r["seed"] == seed)
        matrix = np.asarray(classification_metrics(labels, r["probs"], LABELS)["confusion_matrix"], dtype=float)
        sns.heatmap(matrix / matrix.sum(1, keepdims=True), annot=matrix.astype(int), fmt="d", cmap="Blues",
                    vmin=0, vmax=1, cbar=False, square=True, xticklabels=short, yticklabels=short, ax=ax)
        ax.tick_params(axis="both", rotation=0)
        ax.set(title=variant, xlabel="predicted", ylabel="gold" if ax is axes[0, 0] else "")
    fig.colorbar(axes[0, 0].collections[0], ax=axes[0], label="share of the gold row", shrink=0.8)
    return fig


def plot_calibration(records: list[dict], labels: np.ndarray) -> plt.Axes:
    """Reliability diagram: accuracy against mean confidence per confidence bin, every seed's test predictions
    pooled per variant, with the diagonal of perfect calibration."""
    _, ax = plt.subplots(figsize=(0.75 * plots.FIG_WIDTH_IN, 0.7 * plots.FIG_WIDTH_IN), layout="constrained")
    for variant in VARIANTS:
        runs = [r for r in records if r["variant"] == variant]
        table = reliability_table(np.concatenate([labels] * len(runs)), np.concatenate([r["probs"] for r in runs]),
                                  CALIBRATION_BINS).dropna()
        ax.plot(table["confidence"], table["accuracy"], "o-", color=COLOURS[variant], label=variant)
    ax.plot([1 / 3, 1], [1 / 3, 1], ls="--", color="black", lw=1, label="perfect calibration")
    ax.set(xlabel="mean confidence in bin", ylabel="accuracy in bin")
    plots.legend_above(ax, ncols=2)
    return ax


def calibration_reading(records: list[dict], labels: np.ndarray) -> str:
    """A reading of `plot_calibration`: per variant (seeds pooled), the share of test predictions in its most
    confident filled bin with their accuracy and confidence, and the mean gap between confidence and accuracy
    over all bins weighted by their predictions (> 0: overconfident)."""
    parts = []
    for variant in VARIANTS:
        runs = [r for r in records if r["variant"] == variant]
        table = reliability_table(np.concatenate([labels] * len(runs)), np.concatenate([r["probs"] for r in runs]),
                                  CALIBRATION_BINS).dropna()
        top = table.iloc[-1]
        gap = float(((table["confidence"] - table["accuracy"]) * table["count"]).sum() / table["count"].sum())
        parts.append(f"{variant} puts {top['count'] / table['count'].sum():.0%} of its predictions in its most "
                     f"confident bin, right {top['accuracy']:.0%} of the time at {top['confidence']:.0%} "
                     f"confidence, and is {'over' if gap > 0 else 'under'}confident by {abs(gap):.3f} on average")
    return ("A point below the diagonal is a bin whose predictions are right less often than their confidence "
            "says. " + "; ".join(parts)[0].upper() + "; ".join(parts)[1:] + ". The ECE rows of the table above "
            "weigh the same gaps, unsigned, by their bins' predictions.")


def length_reading(table: pd.DataFrame) -> str:
    """A reading of `plot_error_by_length`: per variant, the error rate in the shortest and the longest bin,
    and whether the variants' intervals overlap in every bin."""
    first, last = table["words"].iloc[0], table["words"].iloc[-1]
    parts = [f"{variant} {part['error rate'].iloc[0]:.1%} → {part['error rate'].iloc[-1]:.1%}"
             for variant, part in table.groupby("variant", sort=False)]
    overlap = all(part["low"].max() <= part["high"].min() for _, part in table.groupby("words", sort=False))
    return (f"From the shortest pairs ({first} words) to the longest ({last} words): {'; '.join(parts)}. "
            + ("In every bin the variants' intervals overlap, so the curves differ by less than the seeds "
               "vary; the table below puts slope and smoothness to a paired test." if overlap else
               "In some bin the variants' intervals do not overlap; the table below tests slope and smoothness "
               "paired by seed."))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def pick_examples(premises: list[str], hypotheses: list[str], labels: np.ndarray,
                  baseline_probs: np.ndarray) -> dict[str, int]:
    """Test pairs for attribution plots, by rule (ties: the first in test order):

    - 'neutral, baseline wrong': the gold-neutral pair the baseline misclassifies most confidently;
    - 'contradiction, high overlap': the gold contradiction whose hypothesis words occur in the premise in
      the largest share (then the longest hypothesis);
    - 'long premise': the pair with the most premise words.

    A pair is shown once: a later rule skips the pairs an earlier one chose."""
    neutral, contradiction = LABELS.index("neutral"), LABELS.index("contradiction")
    wrong = np.flatnonzero((labels == neutral) & (baseline_probs.argmax(1) != neutral))
    out = {}
    if len(wrong):
        out["neutral, baseline wrong"] = int(wrong[np.argmax(baseline_probs[wrong].max(1))])
    overlap = []
    for i in np.flatnonzero(labels == contradiction):
        hyp, prem = _words(hypotheses[i]), set(_words(premises[i]))
        overlap.append((sum(w in prem for w in hyp) / max(len(hyp), 1), len(hyp), -i))
    overlap = [o for o in overlap if -o[2] not in out.values()]
    if overlap:
        out["contradiction, high overlap"] = int(-max(overlap)[2])
    words = [(len(p.split()), -i) for i, p in enumerate(premises) if i not in out.values()]
    out["long premise"] = int(-max(words)[1])
    return out


def label_note(premises: list[str], hypotheses: list[str], labels: np.ndarray, records: list[dict], index: int,
               seed: int) -> str:
    """A comment on test pair `index` when its hypothesis repeats its premise word for word under a label other
    than entailment: a sentence entails itself, so the gold label is an annotation error; the models' answers
    at `seed`, and how many test pairs repeat their premise. '' for any other pair."""
    if _words(premises[index]) != _words(hypotheses[index]) or labels[index] == LABELS.index("entailment"):
        return ""
    repeats = sum(_words(p) == _words(h) for p, h in zip(premises, hypotheses))
    answers = []
    for variant in VARIANTS:
        probs = next(r for r in records if r["variant"] == variant and r["seed"] == seed)["probs"][index]
        answers.append(f"{variant} {LABELS[int(probs.argmax())]} ({probs.max():.2f})")
    return (f"**Test pair {index} is mislabelled.** Its hypothesis repeats the premise word for word, and a "
            f"sentence entails itself, yet its gold label is {LABELS[int(labels[index])]}: an annotation error in "
            f"SNLI ({repeats} of the {len(premises):,} test pairs "
            f"{'repeats its' if repeats == 1 else 'repeat their'} premise). The models answer "
            f"{', '.join(answers)}, the right answer to the text, which accuracy counts as an error. The rule "
            "that picked it (the most hypothesis words found in the premise, among contradictions) finds such "
            "slips first, since a true contradiction must change something. The attributions of this pair show what "
            "a model reads when premise and hypothesis agree, not how it detects a contradiction.")


def _merged(tokens: list[str], scores: np.ndarray, special: set[str]) -> tuple[list[str], list[float]]:
    """WordPiece continuations ('##x') joined to their word with summed scores; special tokens shown as '‖'
    between the two texts and dropped at the ends."""
    words, values = [], []
    for token, score in zip(tokens, scores):
        if token in special:
            words.append("‖")
            values.append(0.0)
        elif token.startswith("##") and words and words[-1] != "‖":
            words[-1] += token[2:]
            values[-1] += float(score)
        else:
            words.append(token.lstrip("Ġ▁"))
            values.append(float(score))
    while words and words[0] == "‖":
        words, values = words[1:], values[1:]
    while words and words[-1] == "‖":
        words, values = words[:-1], values[:-1]
    return words, values


def attribution_html(records: list[dict], index: int, seed: int, tokenizer, gold: int) -> str:
    """The IG attributions of one test pair under each variant's model (one seed), as signed coloured text
    (red: towards the gold label, blue: against), with each model's prediction and the pair's Var(IG)."""
    blocks = []
    special = set(tokenizer.all_special_tokens)
    for variant in VARIANTS:
        r = next(r for r in records if r["variant"] == variant and r["seed"] == seed)
        ig = r["ig"]
        if "ids" not in ig:
            raise ValueError(f"run {r['run_dir'].name} kept no attributions (only the first seed does); use seed "
                             f"{min(x['seed'] for x in records)}")
        start, end = ig["offsets"][index], ig["offsets"][index + 1]
        tokens = tokenizer.convert_ids_to_tokens(ig["ids"][start:end].tolist())
        words, values = _merged(tokens, ig["attributions"][start:end], special)
        pred = int(r["probs"][index].argmax())
        caption = (f"{variant}: predicted {LABELS[pred]} ({r['probs'][index, pred]:.2f}), gold {LABELS[gold]}; "
                   f"Var(IG) = {ig['variance'][index]:.3g}, completeness gap {ig['gap'][index]:.2g} logits")
        blocks.append(render.signed_html(words, values, caption=caption))
    return "".join(blocks)


def paper_table(scores: pd.DataFrame, cost: pd.DataFrame) -> pd.DataFrame:
    """Paper 3's Table 1 beside ours, one column per metric (accuracy, ROC AUC, training cost), one row per
    quantity: the paper's baseline and
    IG-variance values and their difference (runtime: their ratio), then our three variants' means over
    seeds and each variant's difference to our baseline (cost: ms per step and ratio to the baseline step),
    then ours − paper: for the baselines, and for the effect of the paper's method (our detached variant's Δ
    less the paper's Δ; cost: our ratio over the paper's). The paper's model is ELECTRA-small on all of SNLI;
    ours is the offline recipe of this chapter."""
    rows = []
    for metric, paper_row in (("accuracy", "Accuracy"), ("ROC AUC", "ROC AUC")):
        base, ig = (pn.value(3, "Table 1", paper_row, c) for c in ("Baseline", "IG Variance"))
        ours = scores[scores["metric"] == metric].set_index("variant")
        rows.append({"metric": metric, "paper: baseline": f"{base:.4f}", "paper: IG variance": f"{ig:.4f}",
                     "paper: Δ": fmt.signed(ig - base, 4),
                     **{f"ours: {v}": f"{ours.loc[v, 'mean']:.4f}" for v in VARIANTS if v in ours.index},
                     **{f"ours: Δ {v}": fmt.signed(ours.loc[v, 'Δ vs baseline'], 4) for v in VARIANTS[1:] if v in ours.index},
                     "ours − paper: baseline": fmt.signed(ours.loc["baseline", "mean"] - base, 4),
                     "ours − paper: Δ (detached)": fmt.signed(ours.loc["detached", "Δ vs baseline"] - (ig - base), 4)
                     if "detached" in ours.index else ""})
    base, ig = (pn.value(3, "Table 1", "Runtime (s)", c) for c in ("Baseline", "IG Variance"))
    steps = cost.set_index("variant")
    rows.append({"metric": "cost", "paper: baseline": f"{base:.1f} s", "paper: IG variance": f"{ig:.1f} s",
                 "paper: Δ": f"×{ig / base:.2f}",
                 **{f"ours: {v}": f"{steps.loc[v, 'ms / step']:.0f} ms/step" for v in VARIANTS if v in steps.index},
                 **{f"ours: Δ {v}": f"×{steps.loc[v, '× baseline step']:.2f}" for v in VARIANTS[1:] if v in steps.index},
                 "ours − paper: baseline": "other units",
                 "ours − paper: Δ (detached)": f"×{steps.loc['detached', '× baseline step'] / (ig / base):.2f} of the paper's"
                 if "detached" in steps.index else ""})
    return pd.DataFrame(rows).set_index("metric").T.rename_axis("quantity").reset_index().rename_axis(None, axis=1)


RULE_NAMES = {"gausslegendre": "Gauss–Legendre (Captum's default)", "riemann_right": "right Riemann"}


def rule_comparison(benchmark: dict, n_steps: int = 10) -> pd.DataFrame:
    """The two quadrature rules at `n_steps` path points, from `bench_ig_step.py`'s JSON: Captum's default
    (Gauss–Legendre, the rule paper 3 ran through Captum) and right Riemann (this chapter's penalty), with the
    mean completeness gap (logits and relative to `|F(x) − F(0)|`) and the cost of a differentiable step."""
    rows = pd.DataFrame(benchmark["rows"])
    rows = rows[(rows["variant"] == "differentiable") & (rows["n_steps"] == n_steps) & (rows["precision"] == "fp32")]
    return pd.DataFrame([{"rule": RULE_NAMES[r["method"]], "steps": int(r["n_steps"]), "completeness gap": r["gap"],
                          "relative gap": r["relative_gap"], "ms / step": r["ms"], "× plain step": r["ratio"]}
                         for _, r in rows.sort_values("method").iterrows()])


def rule_sentence(rules: pd.DataFrame, method: str) -> str:
    """Which quadrature rule this chapter's penalty uses (`method`) and what `rule_comparison`'s table says of
    the choice: each rule's completeness gap and the cost of a differentiable step, which rule leaves the
    smaller gap, and whether that is the rule in use."""
    chosen = RULE_NAMES.get(method, method).split(" (")[0]
    text = f"This chapter's penalty uses {chosen}" + (", not Captum's default. " if method != "gausslegendre" else ". ")
    riemann, gauss = RULE_NAMES["riemann_right"], RULE_NAMES["gausslegendre"]
    if rules.empty or not {riemann, gauss} <= set(rules["rule"]):
        return text + "The benchmark does not hold both rules at the same number of path points."
    table = rules.set_index("rule")
    r, g = table.loc[riemann], table.loc[gauss]
    cost = r["ms / step"] / g["ms / step"] - 1
    text += (f"At the same {int(r['steps'])} path points, on this model, right Riemann leaves a completeness gap of "
             f"{r['completeness gap']:.3f} logits against Gauss–Legendre's {g['completeness gap']:.3f}, and its "
             f"differentiable step takes {r['ms / step']:.1f} ms against {g['ms / step']:.1f} ms "
             f"({abs(cost):.0%} {'more' if cost > 0 else 'less'}). ")
    if r["completeness gap"] == g["completeness gap"]:
        return text + "The two rules leave the same gap."
    better = "riemann_right" if r["completeness gap"] < g["completeness gap"] else "gausslegendre"
    why = (" (the path's kinks, above, cost Gauss–Legendre its accuracy)" if better == "riemann_right"
           else " (here the path's kinks do not cost Gauss–Legendre its accuracy)")
    name = RULE_NAMES[better].split(" (")[0]
    return text + (f"{name[0].upper() + name[1:]}'s gap is the smaller{why}, "
                   + ("so the measurement supports the rule in use." if better == method
                      else f"so by this measurement {name} would be the more accurate."))


def benchmark_table(benchmark: dict) -> pd.DataFrame:
    """The IG step benchmark (`benchmarks/bench_ig_step.py --json`) as a table: per variant, quadrature and
    precision, ms per step, the ratio to a plain step and the completeness gap (logits, and as a share of
    the mean `|F(x) − F(0)|`)."""
    rows = pd.DataFrame(benchmark["rows"])
    rows["steps"] = rows["n_steps"].replace(0, "")
    table = rows[["variant", "method", "steps", "precision", "ms", "ratio", "gap", "relative_gap"]]
    return table.rename(columns={"ms": "ms / step", "ratio": "× plain step", "gap": "completeness gap",
                                 "relative_gap": "gap / |ΔF|"})


def benchmark_sentences(benchmark: dict) -> str:
    """What the IG step benchmark shows: the naive and batched costs, whether any Gauss–Legendre rule reaches
    10-step right-Riemann IG's completeness gap (and at what cost), and what bf16 changes."""
    rows = pd.DataFrame(benchmark["rows"])
    naive = rows[rows["variant"] == "naive"].iloc[0]
    diff = rows[rows["variant"] == "differentiable"]
    reference = diff[(diff["method"] == "riemann_right") & (diff["n_steps"] == 10)]
    best = reference.loc[reference["ratio"].idxmin()]
    text = (f"The naive loss costs {naive['ratio']:.1f}× a plain step; with every path point in one batched "
            f"forward, differentiable 10-step right-Riemann IG costs {best['ratio']:.2f}× ({best['precision']}), "
            f"{'within' if best['ratio'] <= 6 else 'above'} the 6× goal. ")
    gl = diff[(diff["method"] == "gausslegendre") & (diff["precision"] == best["precision"])]
    enough = gl[gl["gap"] <= best["gap"]]
    if len(enough):
        cheapest = enough.loc[enough["ratio"].idxmin()]
        text += (f"Gauss–Legendre with {cheapest['n_steps']} nodes reaches a completeness gap no larger "
                 f"({cheapest['gap']:.3f} against {best['gap']:.3f} logits) at {cheapest['ratio']:.2f}×. ")
    else:
        text += (f"No Gauss–Legendre rule of up to {gl['n_steps'].max()} nodes reaches right-Riemann's completeness "
                 f"gap of {best['gap']:.3f} logits (they leave {gl['gap'].min():.3f} to {gl['gap'].max():.3f}), so "
                 f"fewer evaluations would change what is computed: the penalty keeps right Riemann. ")
    if set(reference["precision"]) >= {"fp32", "bf16"}:
        fp32, bf16 = (reference[reference["precision"] == p].iloc[0] for p in ("fp32", "bf16"))
        text += (f"bf16 autocast takes {bf16['ms']:.1f} ms against {fp32['ms']:.1f} ms in float32 at this batch "
                 f"size, with a gap of {bf16['gap']:.3f} against {fp32['gap']:.3f} logits.")
    return text


def curves_sentence(records: list[dict]) -> str:
    """How to read the training curves: each variant's training cross-entropy in the last logged window (mean
    over seeds), and how the penalized variants' tanh(α·Var) moved from the first window to the last, read
    from the numbers (whether it grew, whether the differentiable variant ends lower)."""
    ends, penalty = {}, {}
    for variant in VARIANTS:
        curves = [r["metrics"]["train_loss"] for r in records if r["variant"] == variant]
        ends[variant] = float(np.mean([c[-1]["ce"] for c in curves]))
        if variant != "baseline":
            penalty[variant] = (float(np.mean([c[0].get("tanh_var", np.nan) for c in curves])),
                                float(np.mean([c[-1].get("tanh_var", np.nan) for c in curves])))
    spread = max(ends.values()) - min(ends.values())
    moved = "; ".join(f"{v} from {a:.3g} to {b:.3g}" for v, (a, b) in penalty.items())
    grew = all(b > a for a, b in penalty.values())
    held = penalty["differentiable"][1] < penalty["detached"][1]
    reading = ("the attributions' variance grows as the model fits, " if grew else "") + (
        "and the differentiable variant, whose penalty reaches every layer, holds it lower" if held
        else "and the differentiable variant does not hold it lower than the detached one")
    return (f"The three cross-entropy curves end within {spread:.3f} nats of each other (last window: "
            + ", ".join(f"{v} {e:.3f}" for v, e in ends.items())
            + f"). The penalty term tanh(α·Var) moves {moved} from the first logged window to the last: {reading}.")


def confusion_sentence(records: list[dict], labels: np.ndarray, seed: int) -> str:
    """How to read the confusion matrices: each variant's most frequent error (gold → predicted) with its share
    of that variant's errors, and the gold class with the lowest recall, for the seed the figure shows."""
    parts, hardest = [], set()
    for variant in VARIANTS:
        r = next(r for r in records if r["variant"] == variant and r["seed"] == seed)
        matrix = np.asarray(classification_metrics(labels, r["probs"], LABELS)["confusion_matrix"], dtype=int)
        errors = matrix.copy()
        np.fill_diagonal(errors, 0)
        gold, pred = np.unravel_index(errors.argmax(), errors.shape)
        hardest.add(LABELS[int(np.argmin(np.diag(matrix) / matrix.sum(1)))])
        parts.append(f"{variant} {LABELS[gold]} → {LABELS[pred]}, {errors[gold, pred]} of {errors.sum()} errors "
                     f"({errors[gold, pred] / max(errors.sum(), 1):.0%})")
    recall = (f"the class with the lowest recall is {hardest.pop()} for all three"
              if len(hardest) == 1 else f"the class with the lowest recall differs ({', '.join(sorted(hardest))})")
    return f"The most frequent error (gold → predicted) is, for {'; '.join(parts)}; {recall}."


def attribution_sentence(records: list[dict], index: int, seed: int, tokenizer) -> str:
    """How to read one pair's attribution maps: under each variant, the word with the largest `|attribution|`
    and its share of the pair's total `|attribution|`, and the pair's Var(IG) relative to the baseline's."""
    special, parts, base = set(tokenizer.all_special_tokens), [], None
    for variant in VARIANTS:
        ig = next(r for r in records if r["variant"] == variant and r["seed"] == seed)["ig"]
        start, end = ig["offsets"][index], ig["offsets"][index + 1]
        words, values = _merged(tokenizer.convert_ids_to_tokens(ig["ids"][start:end].tolist()),
                                ig["attributions"][start:end], special)
        size = np.abs(values)
        top = int(size.argmax())
        variance = float(ig["variance"][index])
        base = variance if variant == "baseline" else base
        relative = "" if variant == "baseline" else f", Var(IG) {variance / base:.2f} × the baseline's"
        parts.append(f"{variant}: '{words[top]}' carries {size[top] / size.sum():.0%} of the attribution{relative}")
    return "Largest attribution: " + "; ".join(parts) + "."
