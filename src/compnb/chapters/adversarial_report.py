"""Chapter 4's tables and figures, from `adversarial_eval.run_all` records (one per seed and model kind)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from sklearn.metrics import precision_recall_fscore_support

from compnb.paths import project_root, results_dir
from compnb.training import TrainConfig

from compnb import adversarial, advglue, data, plots
from compnb.chapters import competency
from compnb import formatting as fmt
from compnb import paper_numbers as pn
from compnb.evaluation import accuracy, bootstrap_ci, macro_f1, paired_t_p, seed_summary

LABELS = ("entailment", "neutral", "contradiction")


def scores(records: list[dict], n_resamples: int = 2000) -> pd.DataFrame:
    """One row per (seed, kind, set): n, accuracy and macro F1 with 95% percentile-bootstrap intervals."""
    rows = []
    for r in records:
        for name, probs in r["probs"].items():
            y = r["sets"][name]["label"].to_numpy()
            acc = bootstrap_ci(y, probs, accuracy, n_resamples=n_resamples)
            f1 = bootstrap_ci(y, probs, macro_f1, n_resamples=n_resamples)
            rows.append({"seed": r["seed"], "kind": r["kind"], "set": name, "n": len(y),
                         "accuracy": acc["estimate"], "acc low": acc["low"], "acc high": acc["high"],
                         "macro_f1": f1["estimate"], "f1 low": f1["low"], "f1 high": f1["high"]})
    return pd.DataFrame(rows)


def seed_means(table: pd.DataFrame) -> pd.DataFrame:
    """Per (kind, set): mean accuracy and macro F1 over seeds with Student-t 95% intervals."""
    rows = []
    for (kind, name), part in table.groupby(["kind", "set"], sort=False):
        row = {"model": kind, "set": name, "n": int(part["n"].iloc[0]), "seeds": len(part)}
        for metric in ("accuracy", "macro_f1"):
            s = seed_summary(part[metric].tolist())
            row |= {metric: s["mean"], f"{metric} 95% CI": f"[{s['low']:.3f}, {s['high']:.3f}]"}
        rows.append(row)
    return pd.DataFrame(rows)


MATCHED = "leaky (matched size)"
DIFFERENCES = (("retrained − baseline (leak-free)", "retrained", "baseline"),
               ("leaky − baseline (paper's setting)", "leaky", "baseline"),
               ("leaky − retrained (the leak)", "leaky", "retrained"),
               (f"{MATCHED} − baseline", MATCHED, "baseline"),
               (f"{MATCHED} − retrained (the leak at equal size)", MATCHED, "retrained"),
               (f"leaky − {MATCHED} (twice the attacked rows)", "leaky", MATCHED))


def gains(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy differences paired by seed, per set: retrained − baseline (leak-free gain), leaky − baseline
    (the paper's setting), leaky − retrained (what the leak adds, with about twice the attacked rows), and,
    where the size-matched leaky arm was run, its gain, the leak at equal size (matched − retrained) and what
    the extra rows add (leaky − matched); mean, t interval, raw paired-t p (two-sided; the ledger corrects it
    over the chapter's family). The per-seed accuracies are `scores`' rows."""
    wide = table.pivot_table(index=["set", "seed"], columns="kind", values="accuracy")
    rows = []
    for name, part in wide.groupby(level="set", sort=False):
        for label, a, b in DIFFERENCES:
            if a not in part or b not in part:
                continue
            delta = (part[a] - part[b]).tolist()
            s = seed_summary(delta)
            p = paired_t_p(delta)
            rows.append({"set": name, "difference": label, "Δ accuracy": s["mean"],
                         "95% CI": fmt.interval(s["low"], s["high"], with_sign=True), "p (paired t)": p, "seeds": len(delta)})
    return pd.DataFrame(rows)


def plot_scores(table: pd.DataFrame, seed: int) -> plt.Figure:
    """Accuracy with its 95% bootstrap interval per set and model kind, for one seed; chance (1/3, SNLI's
    three labels) dashed."""
    part = table[table["seed"] == seed]
    sets, kinds = list(dict.fromkeys(part["set"])), list(dict.fromkeys(part["kind"]))
    fig, axes = plots.book_figure(3.6)
    ax = axes[0, 0]
    width, handles = 0.8 / len(kinds), []
    for i, (kind, colour) in enumerate(zip(kinds, plots.PALETTE)):
        rows = part[part["kind"] == kind].set_index("set").loc[sets]
        x = np.arange(len(sets)) + (i - (len(kinds) - 1) / 2) * width
        handles.append(ax.errorbar(x, rows["accuracy"], yerr=[rows["accuracy"] - rows["acc low"],
                                                               rows["acc high"] - rows["accuracy"]],
                                   fmt="o", capsize=3, color=colour, label=kind))
    handles.append(ax.axhline(1 / len(LABELS), color="black", ls="--", lw=1, label=f"chance (1/{len(LABELS)})"))
    ax.set_xticks(np.arange(len(sets)), [f"{s}\n(n = {int(part[part['set'] == s]['n'].iloc[0])})" for s in sets])
    ax.set(xlabel="evaluation set", ylabel=f"accuracy (seed {seed}, 95% bootstrap)")
    ax.grid(axis="x", visible=False)
    plots.legend_above(ax, handles)
    return fig


def _listing(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def scores_reading(table: pd.DataFrame, seed: int) -> str:
    """A reading of `plot_scores` for one seed: per set, the lowest and highest model accuracy, and which
    sets have every model's interval reaching chance (1/3)."""
    part = table[table["seed"] == seed]
    spans = []
    for name, rows in part.groupby("set", sort=False):
        low, high = rows.loc[rows["accuracy"].idxmin()], rows.loc[rows["accuracy"].idxmax()]
        spans.append(f"{name} {low['accuracy']:.2f} ({low['kind']}) to {high['accuracy']:.2f} ({high['kind']})")
    at_chance = [name for name, rows in part.groupby("set", sort=False) if (rows["acc low"] <= 1 / len(LABELS)).all()]
    return (f"Seed {seed}, from the lowest to the highest model on each set: {'; '.join(spans)}. "
            + (f"On {_listing(at_chance)} every model's interval reaches chance: there retraining on "
               "masked SNLI pairs buys nothing measurable." if at_chance else
               "No set has every model's interval at chance."))


def attack_summary(records: list[dict]) -> pd.DataFrame:
    """Per seed: the baseline's accuracy on the evaluation half before and after the attack, and the share of
    its correct predictions the one-token attack flips."""
    rows = []
    for r in records:
        if r["kind"] != "baseline":
            continue
        y = r["sets"]["clean"]["label"].to_numpy()
        clean, attacked = r["probs"]["clean"].argmax(1), r["probs"]["attacked"].argmax(1)
        rows.append({"seed": r["seed"], "pairs": len(y), "clean accuracy": float((clean == y).mean()),
                     "attacked accuracy": float((attacked == y).mean()),
                     "correct flipped by the attack": float(((clean == y) & (attacked != y)).sum() / max((clean == y).sum(), 1))})
    return pd.DataFrame(rows)


def draws(folder: Path) -> pd.DataFrame:
    """What the class-balanced draws could take, per training set and seed (from the draws' JSON files)."""
    rows = []
    for path in sorted(folder.glob("train-*-s*.json")):
        meta = json.loads(path.read_text())
        kind, seed = path.stem[len("train-"):].rsplit("-s", 1)[0], int(path.stem.rsplit("-s", 1)[1])
        rows.append({"set": kind, "seed": seed, "asked per class": meta["per_class"],
                     **{f"drawn {LABELS[int(k)]}": v for k, v in meta["drawn"].items()}})
    return pd.DataFrame(rows)


def _models_of_seed(records: list[dict], seed: int, negation, ambiguity, long_words: int,
                    kinds: tuple[str, ...] = ("baseline", "retrained")):
    """(the seed's records of `kinds` present, clean-half labels (n,), subset name → mask (n,))."""
    chosen = {r["kind"]: r for r in records if r["seed"] == seed and r["kind"] in kinds}
    frame = chosen["baseline"]["sets"]["clean"]
    masks = {"all": np.ones(len(frame), bool),
             **adversarial.subsets(frame["premise"].tolist(), frame["hypothesis"].tolist(), negation, ambiguity,
                                   long_words)}
    return chosen, frame["label"].to_numpy(), masks


def per_class(records: list[dict], negation, ambiguity, long_words: int,
              sets: tuple[str, ...] = ("clean", "attacked")) -> pd.DataFrame:
    """Per seed, evaluation set (the clean evaluation half and its attacked copy), subset (all, negation,
    ambiguity, long; defined on the clean pair, so the same pairs in both sets) and model: precision, recall,
    F1 and support of each class; a subset without pairs is left out. One row per seed, so a claim about a
    class (the baseline's neutral recall, say) can be judged over seeds."""
    rows = []
    for seed in sorted({r["seed"] for r in records}):
        chosen, y, masks = _models_of_seed(records, seed, negation, ambiguity, long_words, KINDS)
        for name in sets:
            for subset, mask in masks.items():
                if not mask.any():  # an empty subset has no scores
                    continue
                for kind, r in chosen.items():
                    pred = r["probs"][name].argmax(1)[mask]
                    p, rc, f, support = precision_recall_fscore_support(y[mask], pred, labels=[0, 1, 2],
                                                                        zero_division=0.0)
                    rows += [{"seed": seed, "set": name, "subset": subset, "pairs": int(mask.sum()), "model": kind,
                              "class": LABELS[c], "precision": p[c], "recall": rc[c], "F1": f[c],
                              "support": int(support[c])} for c in range(3)]
    return pd.DataFrame(rows)


def pair_outcomes(records: list[dict], negation, ambiguity, long_words: int, set_name: str = "clean") -> pd.DataFrame:
    """Per model, subset and distinct evaluation pair of `set_name`: its true class and the share of seeds at
    which the model got it right. Pairs are the unit a claim about a class's recall on a subset is tested over
    (a pair's seeds are replicates, averaged here), so that a recall on four neutral pairs is judged as four
    pairs, not as twelve pair-seeds."""
    seeds = sorted({r["seed"] for r in records})
    correct: dict[tuple[str, str], list[np.ndarray]] = {}
    labels, masks = None, None
    for seed in seeds:
        chosen, y, masks = _models_of_seed(records, seed, negation, ambiguity, long_words, KINDS)
        labels = y
        for kind, r in chosen.items():
            correct.setdefault(kind, []).append(r["probs"][set_name].argmax(1) == y)
    rows = []
    for kind, per_seed in correct.items():
        share = np.mean(per_seed, axis=0)
        for subset, mask in masks.items():
            rows += [{"model": kind, "subset": subset, "pair": int(i), "class": LABELS[int(labels[i])],
                      "correct share": float(share[i]), "seeds": len(per_seed)} for i in np.flatnonzero(mask)]
    return pd.DataFrame(rows)


def per_class_means(table: pd.DataFrame) -> pd.DataFrame:
    """`per_class` over seeds: per (set, subset, model, class) the mean of precision, recall and F1, and the
    lowest and highest recall of any seed."""
    keys = ["set", "subset", "pairs", "class", "model"]
    grouped = table.groupby(keys, sort=False)
    out = grouped[["precision", "recall", "F1"]].mean()
    out["recall (min over seeds)"] = grouped["recall"].min()
    out["recall (max over seeds)"] = grouped["recall"].max()
    out["seeds"] = grouped["seed"].nunique()
    return out.reset_index()


KINDS = ("baseline", "retrained", "leaky", MATCHED)
# scores.csv's kind → the name chapter 4's error tables give the model compared with the baseline
ERROR_MODELS = {"retrained": "leak-free", "leaky": "leaky", MATCHED: MATCHED}


def _changes_over_seeds(records: list[dict], kind: str, negation, ambiguity, long_words: int):
    """(fixed, introduced, masks, seeds) for model `kind` against its seed's baseline on the clean evaluation
    half: boolean (seeds, pairs) arrays over the same distinct pairs (checked: every seed's half holds the same
    pairs in the same order), and subset name → mask (pairs,); None when `kind` was not run."""
    seeds = sorted({r["seed"] for r in records if r["kind"] == kind})
    if not seeds:
        return None
    fixed, introduced, reference, masks = [], [], None, None
    for seed in seeds:
        chosen, y, masks = _models_of_seed(records, seed, negation, ambiguity, long_words, ("baseline", kind))
        frame = chosen["baseline"]["sets"]["clean"][["premise", "hypothesis", "label"]]
        if reference is None:
            reference = frame
        elif not frame.equals(reference):
            raise ValueError(f"seed {seed}'s clean evaluation half holds other pairs than seed {seeds[0]}'s: the "
                             "per-pair test needs the same pairs at every seed")
        before, after = (chosen[k]["probs"]["clean"].argmax(1) for k in ("baseline", kind))
        fixed.append((before != y) & (after == y))
        introduced.append((before == y) & (after != y))
    return np.array(fixed), np.array(introduced), masks, seeds


def error_shares(records: list[dict], negation, ambiguity, long_words: int) -> pd.DataFrame:
    """Descriptive: per retrained model (leak-free, leaky and leaky at matched size) and subset of the clean
    evaluation half (all, negation, ambiguity, long), the errors fixed, introduced and remaining from the
    baseline of the same seed, summed over seeds (`pair-seeds`: each distinct pair counted once per seed), as
    counts and as shares of those errors (the paper's unit: the three shares add to 1). No test here: seeds
    repeat the same pairs, so the pair-seeds are not independent; `error_pairs` tests over distinct pairs."""
    rows = []
    for kind, name in ERROR_MODELS.items():
        for seed in sorted({r["seed"] for r in records if r["kind"] == kind}):
            chosen, y, masks = _models_of_seed(records, seed, negation, ambiguity, long_words, ("baseline", kind))
            before, after = (chosen[k]["probs"]["clean"].argmax(1) for k in ("baseline", kind))
            for subset, mask in masks.items():
                counts = adversarial.error_changes(y[mask], before[mask], after[mask])
                rows.append({"model": name, "subset": subset, "seed": seed, "pair-seeds": int(mask.sum()), **counts})
    table = pd.DataFrame(rows).groupby(["model", "subset"], sort=False).sum(numeric_only=True).drop(columns="seed")
    errors = table[["fixed", "introduced", "remaining"]].sum(axis=1)
    for change in ("fixed", "introduced", "remaining"):
        table[f"{change} share"] = table[change] / errors.where(errors > 0)
    return table.reset_index()


ERROR_PAIR_COLUMNS = ("model", "subset", "pairs", "pairs net fixed", "pairs net introduced", "pairs tied",
                      "p (sign, one-sided)", "p (sign, two-sided)", "seeds")


def error_pairs(records: list[dict], negation, ambiguity, long_words: int) -> pd.DataFrame:
    """The test of 'fixes more errors than it introduces', over distinct evaluation pairs: per model compared
    with its seed's baseline (leak-free, leaky, leaky at matched size) and subset of the clean evaluation half,
    each pair's fixed − introduced summed over seeds gives its sign; ties (0, unchanged pairs among them) are
    dropped and counted; exact sign test of net-fixed against net-introduced pairs
    (`adversarial.sign_test_pairs`), one-sided (more fixed) and two-sided; p raw (the ledger corrects them)."""
    rows = []
    for kind, name in ERROR_MODELS.items():
        found = _changes_over_seeds(records, kind, negation, ambiguity, long_words)
        if found is None:
            continue
        fixed, introduced, masks, _ = found
        for subset, mask in masks.items():
            rows.append({"model": name, "subset": subset,
                         **adversarial.sign_test_pairs(fixed[:, mask], introduced[:, mask])})
    return pd.DataFrame(rows, columns=list(ERROR_PAIR_COLUMNS))


def arms(records: list[dict]) -> pd.DataFrame:
    """Per retrained arm and seed: the attacked rows it trained on (with their labels, and how many are attacked
    copies of evaluation-half pairs, by premise: the leak) and all its training examples (SNLI train plus those
    rows), so the arms' sizes can be compared."""
    rows = []
    for r in records:
        extra = r["config"].extra_train
        if extra is None:
            continue
        frame = pd.read_parquet(project_root() / extra, columns=["premise", "label"])
        labels, held = frame["label"].to_numpy(), set(r["sets"]["clean"]["premise"])
        rows.append({"arm": r["kind"], "seed": r["seed"], "attacked rows": len(labels),
                     **{f"attacked {LABELS[c]}": int((labels == c).sum()) for c in range(len(LABELS))},
                     "from the evaluation half": int(frame["premise"].isin(held).sum()),
                     "training examples": int(r["metrics"]["train_examples"]), "run": r["run_dir"].name})
    return pd.DataFrame(rows)


def fix_comparison(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """How the token-id attack moved chapter 4's gains: per (set, difference) of `gains`, the difference in
    accuracy with the text-rewriting attack (`before`) and with the token-id attack (`after`), and the shift."""
    keys = ["set", "difference"]
    merged = before.merge(after, on=keys, suffixes=(" (text attack)", " (token-id attack)"))
    merged["shift"] = merged["Δ accuracy (token-id attack)"] - merged["Δ accuracy (text attack)"]
    return merged[keys + ["Δ accuracy (text attack)", "p (paired t) (text attack)", "Δ accuracy (token-id attack)",
                          "95% CI (token-id attack)", "p (paired t) (token-id attack)", "shift"]]


def _as_fraction(paper: int, source: str, row: str, column: str) -> float:
    """A paper's number as a fraction of 1: a printed percentage divided by 100, any other number as printed."""
    number = pn.value(paper, source, row, column)
    return number / 100 if pn.printed(paper, source, row, column).endswith("%") else number


def paper_table(means: pd.DataFrame, shares: pd.DataFrame, backbone: str = "MiniLM") -> pd.DataFrame:
    """Paper 2's numbers beside ours and their difference: the baseline on clean and attacked pairs, the
    retrained model on the clean evaluation set (the paper's leaky setting and our leak-free one), and the
    fixed / introduced / remaining shares of errors per subset. `means` is `seed_means`, `shares` is
    `error_shares`; the paper's model is ELECTRA-small on all of SNLI, one run; ours is `backbone` on the
    offline SNLI sample, means over seeds. Columns name both."""
    theirs, mine = "paper (ELECTRA-small, SNLI)", f"ours ({backbone}, offline SNLI)"
    m = means.set_index(["model", "set"])["accuracy"]
    cells = [("baseline, clean validation", (2, "§2", "Baseline", "Accuracy"), m.get(("baseline", "clean"))),
             ("baseline, attacked pairs", (2, "§2.4", "Baseline", "Accuracy"), m.get(("baseline", "attacked"))),
             ("retrained, evaluation set (paper's setting: leaky)", (2, "§5.8", "Accuracy", "Fine-Tuned Model"),
              m.get(("leaky", "clean"))),
             ("retrained, evaluation set (leak-free)", None, m.get(("retrained", "clean")))]
    sections = {"negation": ("§5.3", "Negation"), "ambiguity": ("§5.5", "Ambiguities"), "long": ("§5.7", "Challenging Cases")}
    leaky = shares[shares["model"] == ERROR_MODELS["leaky"]].set_index("subset")
    for subset, (source, row) in sections.items():
        for change in ("fixed", "introduced", "remaining"):
            ours = leaky[f"{change} share"].get(subset, np.nan)
            cells.append((f"{subset}: {change} errors (share of errors, leaky)",
                          (2, source, row, f"{change.capitalize()} errors"), None if np.isnan(ours) else ours))
    table = []
    for quantity, where, ours in cells:
        paper = _as_fraction(*where) if where is not None else np.nan
        share = "share" in quantity
        shown = (lambda x: f"{x:.1%}") if share else (lambda x: f"{x:.3f}")
        table.append({"quantity": quantity, theirs: pn.cite(*where) if where is not None else "",
                      mine: "" if ours is None else shown(ours),
                      "ours − paper": "" if ours is None or np.isnan(paper) else
                      (f"{fmt.signed(100 * (ours - paper), 1)} points" if share else fmt.signed(ours - paper, 3))})
    return pd.DataFrame(table)


def error_shares_reading(shares: pd.DataFrame) -> str:
    """A reading of `plot_error_shares`: on all clean evaluation pairs, each model's fixed and introduced
    shares of its errors (pooled over seeds), and the subset where the most errors remain."""
    whole = shares[shares["subset"] == "all"]
    parts = [f"{r['model']} fixes {r['fixed share']:.0%} and introduces {r['introduced share']:.0%}"
             for _, r in whole.iterrows()]
    stuck = shares.loc[shares["remaining share"].idxmax()]
    most = ("Errors that remain are more than half of every bar" if (shares["remaining share"] > 0.5).all()
            else "Errors that remain are the largest share")
    return (f"Over all clean evaluation pairs, of the errors before or after retraining, {'; '.join(parts)}; the "
            f"rest remain. {most}, at most on the {stuck['subset']} pairs for {stuck['model']} "
            f"({stuck['remaining share']:.0%}).")


def plot_error_shares(shares: pd.DataFrame) -> plt.Axes:
    """Grouped bars of the fixed / introduced / remaining shares of errors per subset (its pair-seeds, each
    pair once per seed, under its name), one panel per model; returns the first panel."""
    models = list(dict.fromkeys(shares["model"]))
    colours = {"fixed": plots.PALETTE[2], "introduced": plots.PALETTE[3], "remaining": plots.GREY}
    fig, axes = plots.book_figure(3.4, 1, len(models), sharey=True)
    width = 0.8 / len(colours)
    for ax, model in zip(axes[0], models):
        part = shares[shares["model"] == model]
        x = np.arange(len(part))
        for i, (change, colour) in enumerate(colours.items()):
            ax.bar(x + (i - 1) * width, part[f"{change} share"], width, color=colour, label=change)
        ax.set_xticks(x, [f"{subset}\n({n:,})" for subset, n in zip(part["subset"], part["pair-seeds"])])
        ax.set_title(model)
        ax.grid(axis="x", visible=False)
    axes[0, 0].set_ylabel("share of errors (baseline → retrained)")
    fig.supxlabel("subset of the clean evaluation half (pair-seeds: its pairs times the seeds)")
    plots.legend_above(fig)
    return axes[0, 0]


def throughput(records: list[dict]) -> pd.DataFrame:
    """Per run: training examples, samples/s and optimizer steps/s of training, and the device."""
    return pd.DataFrame([{"seed": r["seed"], "model": r["kind"], "training examples": r["metrics"]["train_examples"],
                          "samples/s": r["metrics"]["train_examples_per_s"],
                          "steps/s": r["metrics"]["steps"] / max(r["metrics"]["train_time_s"], 1e-9),
                          "device": r["metrics"].get("device", "")} for r in records])


EARLIER_CHAPTERS = ("02-baseline-finetune", "03-modified-loss")


def earlier_runs(profile: str) -> list[tuple[str, Path, str]]:
    """(chapter, run folder, model label) of every run that chapters 2 and 3 list in their `run.json` at
    `profile`; a chapter not yet executed at that profile contributes none."""
    out = []
    for chapter in EARLIER_CHAPTERS:
        record = results_dir(profile, chapter) / "run.json"
        if not record.is_file():
            continue
        for name in json.loads(record.read_text())["params"]["runs"]:
            folder = project_root() / "results" / profile / "runs" / name
            config = TrainConfig.from_json(folder / "config.json")
            out.append((chapter, folder, f"ch. {int(chapter[:2])} · {competency.label(config)}"))
    return out


def earlier_advglue(profile: str, n_resamples: int = 2000) -> pd.DataFrame:
    """`advglue.scores` of every model of chapters 2 and 3 at `profile` (one row per run and AdvGLUE set)."""
    return advglue.scores(earlier_runs(profile), n_resamples)


NARROW_WIDTH_IN = 5.0  # a figure read at phone width too: drawn narrower, so its 9-pt text shrinks less


def model_group(configuration: str) -> str:
    """The kind of model a configuration label names: 'ch. 3 · gradient · inverse · λ=1' → 'ch. 3 · gradient'."""
    return " · ".join(configuration.split(" · ")[:2])


def plot_earlier_advglue(table: pd.DataFrame) -> plt.Figure:
    """One panel per AdvGLUE set, stacked: the accuracy of every model with its 95% bootstrap interval, one row
    per kind of model (`model_group`: chapter 2's baselines, chapter 3's baselines, its gradient and its mask
    configurations), every seed in its colour, chance (1 / the set's labels) dashed. Drawn
    `NARROW_WIDTH_IN` wide with few labels, so that it stays readable at phone width; each configuration's
    numbers are in `earlier_advglue_table`."""
    sets, seeds = list(dict.fromkeys(table["set"])), sorted(table["seed"].unique())
    colours = dict(zip(seeds, plots.PALETTE))
    groups = {name: list(dict.fromkeys(table.loc[table["set"] == name, "configuration"].map(model_group)))
              for name in sets}
    heights = [0.3 * len(g) + 0.5 for g in groups.values()]
    size = (NARROW_WIDTH_IN, min(sum(heights) + 0.6, plots.MAX_ASPECT * NARROW_WIDTH_IN))
    fig, axes = plt.subplots(len(sets), 1, figsize=size, layout="constrained", sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, name in zip(axes[:, 0], sets):
        part = table[table["set"] == name]
        rows = part["configuration"].map(model_group).map(groups[name].index).to_numpy(float)
        for row in np.unique(rows):  # spread a group's models over its row, seeds side by side
            at = np.flatnonzero(rows == row)
            rows[at] += np.linspace(-0.3, 0.3, len(at)) if len(at) > 1 else 0.0
        for seed, colour in colours.items():
            mine = (part["seed"] == seed).to_numpy()
            acc = part["accuracy"].to_numpy()[mine]
            ax.errorbar(acc, rows[mine], xerr=[acc - part["accuracy low"].to_numpy()[mine],
                                               part["accuracy high"].to_numpy()[mine] - acc],
                        fmt="o", ms=3, capsize=0, lw=0.5, alpha=0.8, color=colour)
        ax.axvline(1 / len(data.spec(name).label_names), color="black", ls="--", lw=1, label="chance")
        ax.set_yticks(range(len(groups[name])), groups[name])
        ax.set_ylim(len(groups[name]) - 0.5, -0.5)
        ax.set_title(f"{name} (n = {int(part['n'].iloc[0])})")
        ax.grid(axis="y", visible=False)
    axes[-1, 0].set_xlabel("accuracy (95% bootstrap interval)")
    handles = [Line2D([], [], color=c, marker="o", ms=4, lw=0.8, label=f"seed {seed}") for seed, c in colours.items()]
    handles.append(Line2D([], [], color="black", ls="--", lw=1, label="chance"))
    plots.legend_above(fig, handles, ncols=min(len(handles), 5))
    return fig


def earlier_advglue_table(table: pd.DataFrame) -> pd.DataFrame:
    """`earlier_advglue` for the book: one row per model and set, each score with its interval as text."""
    out = table[["set", "n", "configuration", "seed"]].copy()
    for metric, name in (("accuracy", "accuracy"), ("macro_f1", "macro F1")):
        out[name] = table[metric]
        out[f"{name} 95% CI"] = [f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(table[f"{metric} low"], table[f"{metric} high"])]
    return out.rename(columns={"configuration": "model"})


def earlier_advglue_sentences(table: pd.DataFrame) -> str:
    """Per AdvGLUE set: the range of the models' accuracies, the chapter-2 baselines' mean, and how many
    models' whole interval lies above chance (1 / number of labels)."""
    lines = []
    for name, part in table.groupby("set", sort=False):
        chance = 1 / len(LABELS) if part["trained on"].iloc[0] == "snli" else 0.5
        low, high = part.loc[part["accuracy"].idxmin()], part.loc[part["accuracy"].idxmax()]
        ch2 = part[part["chapter"] == EARLIER_CHAPTERS[0]]["accuracy"]
        above = int((part["accuracy low"] > chance).sum())
        lines.append(f"- **{name}** (n = {int(part['n'].iloc[0])}): accuracy from {low['accuracy']:.3f} "
                     f"({low['configuration']}, seed {low['seed']}) to {high['accuracy']:.3f} "
                     f"({high['configuration']}, seed {high['seed']})"
                     + (f"; chapter 2's baselines {ch2.mean():.3f} on average over {len(ch2)} seeds" if len(ch2) else "")
                     + f"; {above} of {len(part)} models have their whole interval above chance ({chance:.3f}).")
    return "\n".join(lines)


def label_bias(runs: list[tuple[str, Path, str]], adv_set: str = "adv_sst2") -> pd.DataFrame:
    """Per run (`earlier_runs`' tuples) scored on the two-label `adv_set`: the set's class sizes, the share
    of its examples predicted negative, each class's recall, the ROC AUC (below 0.5: the model's scores rank
    the classes the wrong way round) and the run's accuracy on its clean validation set."""
    rows = []
    for _, folder, label in runs:
        path = advglue.eval_path(folder, adv_set)
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        confusion = np.asarray(result["confusion_matrix"])  # rows: gold negative, positive; columns: predicted
        clean = json.loads((Path(folder) / "metrics.json").read_text())["validation"]["accuracy"]
        rows.append({"configuration": label, "seed": TrainConfig.from_json(Path(folder) / "config.json").seed,
                     "negative": int(confusion[0].sum()), "positive": int(confusion[1].sum()),
                     "accuracy": result["accuracy"], "predicted negative": confusion[:, 0].sum() / confusion.sum(),
                     "recall negative": confusion[0, 0] / confusion[0].sum(),
                     "recall positive": confusion[1, 1] / confusion[1].sum(),
                     "ROC AUC": result["roc_auc"], "clean accuracy": clean})
    return pd.DataFrame(rows)


def below_chance_sentences(bias: pd.DataFrame, table: pd.DataFrame) -> str:
    """Why the SST-2 models score below chance on adv-SST2, in numbers: balanced labels, no single-class
    guessing, recall under one half on both classes and a ROC AUC under 0.5 at every model; `table` is
    `earlier_advglue` (its intervals say how many models lie significantly below chance)."""
    if bias.empty:
        return ""
    sst2 = table[table["set"] == "adv_sst2"]
    below = int((sst2["accuracy high"] < 0.5).sum())
    first = bias.iloc[0]

    both = int(((bias["recall negative"] < 0.5) & (bias["recall positive"] < 0.5)).sum())
    return (
        f"**Why below chance on adv-SST2.** The set is balanced ({first['positive']} positive, {first['negative']} "
        f"negative sentences), so a model that ignored the text, or always answered one class, would score about "
        f"0.5; {below} of {len(sst2)} models have their whole interval below 0.5. "
        + ("Nor do they answer one class: " if bias["predicted negative"].between(0.1, 0.9).all() else "")
        + f"they call {fmt.span(bias['predicted negative'], 0, '%')} of the "
        f"sentences negative, and {both} of {len(bias)} miss more than half of *both* classes (mean recall "
        f"{bias['recall negative'].mean():.2f} on negative, {bias['recall positive'].mean():.2f} on positive "
        f"sentences). Their scores point the wrong way: the ROC AUC, which ignores the threshold, is "
        f"{fmt.span(bias['ROC AUC'])} and below 0.5 for {int((bias['ROC AUC'] < 0.5).sum())} of {len(bias)} models, "
        f"while the same models score {fmt.span(bias['clean accuracy'])} on SST-2's validation sentences.")


def gain_text(gains: pd.DataFrame, set_name: str, difference: str) -> str:
    """One row of `gains` as prose: '+0.011 [+0.003, +0.019] (raw p = 0.026)', or 'not run' without it."""
    row = gains[(gains["set"] == set_name) & (gains["difference"] == difference)]
    return (f"{fmt.signed(row['Δ accuracy'].iloc[0])} {row['95% CI'].iloc[0]} (raw {fmt.p_text(row['p (paired t)'].iloc[0])})"
            if len(row) else "not run")


def pairs_sentences(pairs: pd.DataFrame) -> str:
    """`error_pairs` as one Markdown paragraph per model: per subset, pairs net fixed against net introduced,
    ties and the one-sided sign-test p."""
    def line(model: str) -> str:
        part = pairs[pairs["model"] == model]
        return f"**{model}**: " + "; ".join(
            f"{r['subset']} {r['pairs net fixed']} net fixed vs {r['pairs net introduced']} net introduced of "
            f"{r['pairs']} pairs ({r['pairs tied']} tied, one-sided {fmt.p_text(r['p (sign, one-sided)'])})"
            for _, r in part.iterrows())
    return "\n\n".join(line(m) for m in dict.fromkeys(pairs["model"]))
