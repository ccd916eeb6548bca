"""Tables and figures that several chapters share: seed summaries beside the papers' numbers,
artifact-influence results, entropy distributions, throughput, and the run record of each "Reproducibility"
section (`record_display`)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import HTML

from compnb import paper_numbers as pn
from compnb import plots
from compnb.evaluation import seed_summary


def paper_baselines() -> list[dict]:
    """The papers' baselines from `compnb.paper_numbers`, labelled by backbone and source (validation accuracy,
    macro F1 where the paper reports one)."""
    return [
        {"dataset": "sst2", "source": "paper 1, OPT-1.3B (Table 1)", "accuracy": pn.value(1, "Table 1", "Baseline", "SST2 Accuracy"),
         "macro_f1": pn.value(1, "Table 1", "Baseline", "SST2 F1")},
        {"dataset": "sst2", "source": "paper 1, Llama-2-7B (Table 2)", "accuracy": pn.value(1, "Table 2", "Baseline", "SST2 Accuracy"),
         "macro_f1": pn.value(1, "Table 2", "Baseline", "SST2 F1")},
        {"dataset": "snli", "source": "paper 1, OPT-1.3B (Table 1)", "accuracy": pn.value(1, "Table 1", "Baseline", "SNLI Accuracy"),
         "macro_f1": pn.value(1, "Table 1", "Baseline", "SNLI F1")},
        {"dataset": "snli", "source": "paper 2, ELECTRA-small (§2)", "accuracy": pn.value(2, "§2", "Baseline", "Accuracy") / 100,
         "macro_f1": np.nan},
        {"dataset": "snli", "source": "paper 3, ELECTRA-small (Table 1)", "accuracy": pn.value(3, "Table 1", "Accuracy", "Baseline"),
         "macro_f1": np.nan},
    ]


def seed_table(records: list[dict]) -> pd.DataFrame:
    """Per dataset: mean and 95% interval over seeds of validation accuracy and macro F1, then the papers'."""
    rows = []
    for dataset in dict.fromkeys(r["config"].dataset for r in records):
        runs = [r for r in records if r["config"].dataset == dataset]
        row = {"dataset": dataset, "source": f"ours, {runs[0]['config'].model.split('/')[-1]}",
               "seeds": ", ".join(str(r["config"].seed) for r in runs)}
        for metric in ("accuracy", "macro_f1"):
            s = seed_summary([r["metrics"]["validation"][metric] for r in runs])
            row.update({metric: s["mean"], f"{metric} 95% CI": _interval(s)})
        rows.append(row)
    rows += [{**p, "seeds": "", "accuracy 95% CI": "", "macro_f1 95% CI": ""} for p in paper_baselines()]
    return pd.DataFrame(rows).sort_values(["dataset", "source"], key=lambda c: c.str.startswith("paper")
                                          if c.name == "source" else c, kind="stable").reset_index(drop=True)


def _interval(summary: dict) -> str:
    if np.isnan(summary["low"]):
        return "one seed: no interval"
    return f"[{summary['low']:.3f}, {summary['high']:.3f}]"


def influence_table(records: list[dict]) -> pd.DataFrame:
    """Sentence- and dataset-level top-k artifact statistics of every analysed run."""
    rows = []
    for r in records:
        if r["analysis"] is None:
            continue
        s, d = r["analysis"]["summary"]["sentence"], r["analysis"]["summary"]["dataset"]
        rows.append({"dataset": r["config"].dataset, "seed": r["config"].seed, "k": d["k"],
                     "p(top-k | artifact)": s["p_topk_given_artifact"], "p(top-k)": s["p_topk"],
                     "top-k slots": d["slots"], "observed": d["observed"], "observed low": d["observed_low"],
                     "observed high": d["observed_high"], "expected": d["expected"],
                     "observed / expected": d["ratio"], "p-value": d["p_value"]})
    return pd.DataFrame(rows)


def influence_display(table: pd.DataFrame) -> pd.DataFrame:
    """`influence_table` for the page: the ratio and its p-value first, the observed count with its interval in
    one cell, k (the same in every row) left to the caption."""
    shown = table.drop(columns=["k", "observed", "observed low", "observed high"])
    at = list(shown.columns).index("top-k slots")
    shown.insert(at, "observed [95% CI]", [f"{o:,.0f} [{lo:,.0f}, {hi:,.0f}]" for o, lo, hi in
                                           zip(table["observed"], table["observed low"], table["observed high"])])
    first = [c for c in ("dataset", "config", "seed") if c in shown.columns]
    lead = first + ["observed / expected", "p-value"]
    return shown[lead + [c for c in shown.columns if c not in lead]]


def influence_verdicts(table: pd.DataFrame, alpha: float = 0.05) -> str:
    """One Markdown sentence per analysed run: observed vs expected artifacts among the top-k words, which way
    they deviate, and whether over-representation is significant at `alpha` when a sentence's k slots count as
    one trial (`verdicts.clustered_share`: slots of one sentence are not independent, so the slot-level
    binomial p of the table overstates the evidence)."""
    from compnb import verdicts

    lines = []
    for _, row in table.iterrows():
        direction = "over" if row["observed"] > row["expected"] else "under"
        slots = int(row["top-k slots"])
        e = verdicts.clustered_share(int(row["observed"]), slots, float(row["expected"]) / slots, int(row["k"]))
        verdict = ("the over-representation is significant" if e.p < alpha
                   else "the paper's hypothesis of over-representation is not supported")
        run = f"{row['dataset']}, {row['config']}" if "config" in row else row["dataset"]
        lines.append(f"- **{run}** (seed {row['seed']}): {row['observed']:,} artifacts in "
                     f"{slots:,} top-{row['k']} slots against {row['expected']:,.0f} expected "
                     f"(ratio {row['observed / expected']:.2f}): artifacts are {direction}-represented, and "
                     f"{verdict} (one-sided p = {e.p:.3g} with a sentence's {row['k']} slots as one trial; "
                     f"{row['p-value']:.3g} over slots as if independent).")
    return "\n".join(lines)


def scatter_reading(table: pd.DataFrame, name: str) -> str:
    """The reading under an artifact scatter (`plots.artifact_scatter`) of `artifacts.mine`'s `table` for dataset
    `name`: how many word–label points lie above the boundary, and its most frequent artifact."""
    found = table[table["artifact"]]
    if found.empty:
        return f"No word–label point of {name} clears the boundary at this profile."
    top = found.loc[found["n"].idxmax()]
    uniform = 1 / table.attrs["num_labels"]
    return (f"{len(found):,} of the {len(table):,} word–label points of {name} lie above the boundary. The most "
            f"frequent artifact, *{top['word']}* ({top['n']:,} examples), points to {top['label']} with "
            f"$\\hat p$ = {top['p_hat']:.2f} against the uniform {uniform:.2f}"
            + (": a small excess that its frequency makes significant." if top["p_hat"] - uniform < 0.1 else "."))


def plot_topk_artifacts(table: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Observed (with interval) and expected artifacts among the top-k words, one pair of bars per row of
    `table` (`influence_table`'s columns); a caller's figure wider than `plots.FIG_WIDTH_IN` is narrowed."""
    ax = ax or plt.gca()
    plots.fit_width(ax.figure)
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["expected"], width=0.4, label="expected (random top-k words)", color=plots.GREY)
    ax.bar(x + 0.2, table["observed"], width=0.4, label="observed (95% interval)", color=plots.PALETTE[0],
           yerr=[table["observed"] - table["observed low"], table["observed high"] - table["observed"]], capsize=4)
    ax.set_xticks(x, [f"{d}\n(p = {p:.2g})" for d, p in zip(table["dataset"], table["p-value"])])
    ax.set(xlabel="validation set (one-sided binomial p-value)", ylabel="artifacts among top-k words")
    ax.grid(axis="x", visible=False)
    plots.legend_above(ax)
    return ax


def plot_entropy(records: list[dict]) -> plt.Figure:
    """Histograms of the per-example entropy of S (nats), one panel per analysed dataset, with log of the
    median length in tokens (a uniform S) dashed."""
    analysed = [r for r in records if r["analysis"] is not None]
    fig, axes = plots.book_figure(3.0, 1, len(analysed))
    for ax, r in zip(axes[0], analysed):
        entropy = r["analysis"]["entropy"]
        sns.histplot(entropy["entropy"], bins=30, color=plots.PALETTE[0], ax=ax)
        ax.axvline(np.log(entropy["tokens"].median()), color="black", ls="--", lw=1)
        ax.set(xlabel=f"H(S), nats ({r['config'].dataset})", ylabel="validation examples" if ax is axes[0, 0] else "")
    return fig


def _device_kind(memory_kind: str) -> str:
    """The device class a run without a recorded device name ran on, from how its peak memory was read."""
    return {"cuda_max_allocated": "a CUDA GPU", "cpu_max_rss": "CPU"}[memory_kind]


def _mean(values: np.ndarray) -> float:
    """The mean, or NaN (a blank cell) for no values, without numpy's empty-slice warning."""
    return float(values.mean()) if values.size else np.nan


def entropy_by_outcome(records: list[dict], labels: dict[str, np.ndarray], low: float = 0.5) -> pd.DataFrame:
    """Per analysed run: the share of validation examples whose S has entropy below `low` nats, and the error
    rate and mean confidence of the model on those and on the rest. `labels` maps dataset → validation labels
    in the order of the run's `val_probs.npy`."""
    rows = []
    for r in records:
        if r["analysis"] is None:
            continue
        probs = np.load(r["run_dir"] / "val_probs.npy")
        wrong = probs.argmax(1) != labels[r["config"].dataset]
        collapsed = r["analysis"]["entropy"]["entropy"].to_numpy() < low
        confidence = probs.max(1)
        rows.append({"dataset": r["config"].dataset, "seed": r["config"].seed,
                     f"share with H(S) < {low}": collapsed.mean(),
                     "error rate there": _mean(wrong[collapsed]), "error rate elsewhere": _mean(wrong[~collapsed]),
                     "mean confidence there": _mean(confidence[collapsed]),
                     "mean confidence elsewhere": _mean(confidence[~collapsed])})
    return pd.DataFrame(rows)


def throughput_table(records: list[dict]) -> pd.DataFrame:
    """Training and inference examples per second, wall time and peak memory of each run."""
    return pd.DataFrame([{"dataset": r["config"].dataset, "seed": r["config"].seed,
                          "device": r["metrics"].get("device") or _device_kind(r["metrics"]["peak_memory_kind"]),
                          "train examples/s": r["metrics"]["train_examples_per_s"],
                          "eval examples/s": r["metrics"]["eval_examples_per_s"],
                          "wall time (s)": r["metrics"]["wall_time_s"],
                          "peak memory (MiB)": r["metrics"]["peak_memory_mb"]} for r in records])


SHORT_HASH = 12  # hex digits of a fingerprint shown inline; the full value is one click away


def _fingerprint(value: str) -> str:
    """A hash as `<kind>:<first digits>…`, the full value in a collapsed block under it (wraps at any width)."""
    if not value:
        return "not recorded"
    kind, _, digest = value.rpartition(":")
    if len(digest) <= SHORT_HASH:
        return f"<code>{html.escape(value)}</code>"
    short = f"{kind}:{digest[:SHORT_HASH]}…" if kind else f"{digest[:SHORT_HASH]}…"
    return (f'<details class="compnb-hash"><summary><code>{html.escape(short)}</code></summary>'
            f'<code style="word-break: break-all">{html.escape(value)}</code></details>')


def _value(value: object) -> str:
    """One parameter's value as the notebook would write it (None, strings quoted, lists of names collapsed)."""
    if isinstance(value, list) and len(value) > 4:
        names = ", ".join(map(str, value))
        return (f"<details><summary>{len(value)} entries</summary><small style=\"word-break: break-all\">"
                f"{html.escape(names)}</small></details>")
    return f"<code>{html.escape(repr(value))}</code>"


def _sources(sources: list[dict]) -> str:
    items = []
    for s in sources:
        sample = f" ({html.escape(s['note'])})" if s.get("note") else ""
        items.append(f"<li>{html.escape(s['dataset'])} {html.escape(s['split'])}: {s['rows']:,} rows, "
                     f"{html.escape(s['origin'])}{sample}; SHA-256 {_fingerprint(s.get('sha256', ''))}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def record_html(record: dict, run_dirs: list[Path] | None = None) -> str:
    """`provenance.run_record`'s record as an HTML definition list a reader can scan: parameters, seed,
    commit, Python and packages, data sources with their fingerprints, and, with `run_dirs`, the distinct
    backbone weight fingerprints those training runs recorded. Hashes are shortened, each with its full value
    in a collapsed block."""
    git = record.get("git") or {}
    state = {True: " (uncommitted changes)", False: "", None: " (state not known)"}[git.get("dirty")]
    rows = [("parameters", "<ul>" + "".join(f"<li><code>{html.escape(k)}</code> = {_value(v)}</li>"
                                            for k, v in record["params"].items()) + "</ul>"),
            ("seed", "none of its own (each training run records its seed)" if record.get("seed") is None
             else str(record["seed"])),
            ("commit", f"{_fingerprint(git.get('commit') or '')}{state}"),
            ("created", html.escape(record.get("created", ""))),
            ("Python, platform", html.escape(f"{record.get('python', '')}, {record.get('platform', '')}")),
            ("packages", html.escape(", ".join(f"{k} {v}" for k, v in record.get("packages", {}).items()
                                               if v is not None)))]
    if record.get("data_sources"):
        rows.append(("data", _sources(record["data_sources"])))
    if run_dirs:
        weights = {}
        for folder in run_dirs:
            path = Path(folder) / "run.json"
            value = json.loads(path.read_text()).get("weights") if path.is_file() else None
            weights[value or ""] = weights.get(value or "", 0) + 1
        rows.append(("backbone weights", "<ul>" + "".join(
            f"<li>{_fingerprint(w)} ({n} run{'s' if n != 1 else ''})</li>" for w, n in weights.items()) + "</ul>"))
    body = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return f'<dl class="compnb-record">{body}</dl>'


def record_display(record: dict, run_dirs: list[Path] | None = None) -> HTML:
    """`record_html` for a notebook cell's output (the chapters' "Reproducibility" section)."""
    return HTML(record_html(record, run_dirs))
