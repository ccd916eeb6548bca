"""Chapter 4's tables and figures, from `adversarial_eval.run_all` records (one per seed and model kind)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from scipy import stats
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
            + (f"On {fmt.listing(at_chance)} every model's interval reaches chance: there retraining on "
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


FIX_SIDES = ("text attack", "token-id attack")
FIX_SEEDS = tuple(f"seeds ({side})" for side in FIX_SIDES)  # `fix_comparison`'s seed columns, where the sides have them


def fix_comparison(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """How the token-id attack moved chapter 4's gains: per (set, difference) of `gains`, the difference in
    accuracy with the text-rewriting attack (`before`) and with the token-id attack (`after`), each side's number
    of seeds where its table has a `seeds` column, and the shift."""
    keys = ["set", "difference"]
    before, after = (t.rename(columns={"seeds": column}) for t, column in zip((before, after), FIX_SEEDS))
    merged = before.merge(after, on=keys, suffixes=tuple(f" ({side})" for side in FIX_SIDES))
    merged["shift"] = merged["Δ accuracy (token-id attack)"] - merged["Δ accuracy (text attack)"]
    seeds = [column for column in FIX_SEEDS if column in merged]
    return merged[keys + ["Δ accuracy (text attack)", "p (paired t) (text attack)", "Δ accuracy (token-id attack)",
                          "95% CI (token-id attack)", "p (paired t) (token-id attack)", *seeds, "shift"]]


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
    """The SST-2 models on adv-SST2, in numbers: balanced labels, how many models lie significantly below chance
    (`table` is `earlier_advglue`, whose intervals say so), single-class guessing or not, recall on both classes,
    and whether the ROC AUC is under 0.5 for most models (the scores rank the classes the wrong way round) or
    not. Headed 'Why below chance' only where some model's whole interval lies below 0.5."""
    if bias.empty:
        return ""
    sst2 = table[table["set"] == "adv_sst2"]
    below = int((sst2["accuracy high"] < 0.5).sum())
    first = bias.iloc[0]
    both = int(((bias["recall negative"] < 0.5) & (bias["recall positive"] < 0.5)).sum())
    wrong = int((bias["ROC AUC"] < 0.5).sum())
    auc = (f"Their scores point the wrong way: the ROC AUC, which ignores the threshold, is {fmt.span(bias['ROC AUC'])} "
           f"and below 0.5 for {wrong} of {len(bias)} models" if wrong > len(bias) / 2 else
           f"Their scores do not point the wrong way for most models: the ROC AUC, which ignores the threshold, is "
           f"{fmt.span(bias['ROC AUC'])} and below 0.5 for {wrong} of {len(bias)} models")
    return (
        f"**{'Why below chance on adv-SST2' if below else 'adv-SST2 against chance'}.** The set is balanced "
        f"({first['positive']} positive, {first['negative']} "
        f"negative sentences), so a model that ignored the text, or always answered one class, would score about "
        f"0.5; {below} of {len(sst2)} models have their whole interval below 0.5. "
        + ("Nor do they answer one class: they" if bias["predicted negative"].between(0.1, 0.9).all() else "They")
        + f" call {fmt.span(bias['predicted negative'], 0, '%')} of the "
        f"sentences negative, and {both} of {len(bias)} miss more than half of *both* classes (mean recall "
        f"{bias['recall negative'].mean():.2f} on negative, {bias['recall positive'].mean():.2f} on positive "
        f"sentences). {auc}, while the same models score {fmt.span(bias['clean accuracy'])} on SST-2's validation "
        "sentences.")


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


# Readings that follow the results and the profile's settings (the number of seeds, the earlier chapters' recipes),
# so that the chapter's prose stays true when either changes.

def _seed_count(values: Iterable[float]) -> str:
    """The seeds behind a column of per-row seed counts: '3' or, where the rows differ, '3–8'."""
    values = pd.Series(values).dropna().astype(int)
    return fmt.int_span(values) if len(values) else "an unknown number of"


def _side_of_zero(low: float, high: float) -> int:
    """+1 when an interval lies above 0, -1 below, 0 when it includes 0."""
    return 1 if low > 0 else -1 if high < 0 else 0


def leak_reading(gains: pd.DataFrame, leaked: dict[str, float] | None = None) -> str:
    """A reading of `gains`' leak rows on the clean evaluation half and its attacked copies: whether the leak at
    equal size (matched − retrained) is resolved from 0 and, where the leak as first measured (leaky − retrained)
    is, how much of it the mean keeps; what share of the evaluation pairs' attacked copies each leaky arm trained
    on (`leaked`: arm → share, optional: the matched arm differs from the leaky one in that share as well as in
    size, so the split between the two causes is not read off); and the paired t-test's degrees of freedom."""
    first, equal = "leaky − retrained (the leak)", f"{MATCHED} − retrained (the leak at equal size)"
    sentences = []
    for name, where in (("clean", "the clean evaluation half"), ("attacked", "the attacked copies")):
        rows = gains[gains["set"] == name].set_index("difference")
        if first not in rows.index or equal not in rows.index:
            continue
        lead, same = rows.loc[first], rows.loc[equal]
        lead_side = _side_of_zero(*fmt.parse_interval(lead["95% CI"]))
        same_side = _side_of_zero(*fmt.parse_interval(same["95% CI"]))
        verdict = {0: "not measurably different from", 1: "better than", -1: "worse than"}[same_side]
        text = (f"On {where}, leaky − retrained is {gain_text(gains, name, first)} and leaky (matched size) − "
                f"retrained {gain_text(gains, name, equal)}: at equal size the leaky model is {verdict} the leak-free "
                "one")
        if lead_side > 0 and same["Δ accuracy"] > 0:
            text += f", its mean difference is {same['Δ accuracy'] / lead['Δ accuracy']:.0%} of the leak as first measured"
        elif lead_side == 0:
            text += ", and the leak as first measured is not resolved from 0 there either"
        sentences.append(text + ".")
    if not sentences:
        return ""
    if leaked:
        (arm, share), *rest = leaked.items()
        sentences.append(f"The {arm} model's training data held the attacked copies of {share:.0%} of the evaluation "
                         "pairs" + "".join(f", the {a} model's of {x:.0%}" for a, x in rest) + ("." if not rest else
                         ": the matched arm differs from the leaky one in the leaked share as well as in size, so "
                         "what is left at equal size is not split between the two causes here."))
    seeds = gains["seeds"].dropna().astype(int) if "seeds" in gains else pd.Series(dtype=int)
    if seeds.empty:
        sentences.append("The number of seeds behind these differences is not recorded.")
    elif seeds.min() < 2:
        sentences.append("With one seed there is no paired test.")
    else:
        n = int(seeds.min())
        same_count = seeds.nunique() == 1
        crit = stats.t.ppf(0.975, n - 1)
        sentences.append(
            f"{fmt.count_word(n).capitalize() if same_count else 'At least ' + fmt.count_word(n)} seeds give the paired "
            f"t-test {'' if same_count else 'at least '}{fmt.count_word(n - 1)} degree{'s' if n > 2 else ''} of freedom: "
            f"its 95% interval is the mean ± {'' if same_count else 'at most '}{crit:.2f} standard errors (1.96 with "
            "many seeds)" + (", so these intervals are wide and these p-values coarse." if n - 1 < 4 else "."))
    return " ".join(sentences)


def leaked_shares(arm_table: pd.DataFrame, pairs: int) -> dict[str, float]:
    """Per leaky arm of `arms` (its rows with any attacked copy of an evaluation pair): the mean over seeds of
    the share of the `pairs` evaluation pairs whose attacked copy it trained on."""
    if arm_table.empty:
        return {}
    shares = arm_table.groupby("arm", sort=False)["from the evaluation half"].mean() / pairs
    return {arm: float(share) for arm, share in shares.items() if share > 0}


def pairs_reading(pairs: pd.DataFrame, alpha: float = 0.05) -> str:
    """A reading of `error_pairs`: on all clean evaluation pairs, which way each model leans (more pairs net
    fixed or net introduced); which subsets have so few changed pairs that even all of them net fixed could not
    give a one-sided sign-test p below `alpha` (`scipy.stats.binomtest`), with that smallest p."""
    if pairs.empty:
        return ""
    whole = pairs[pairs["subset"] == "all"]
    lean = {m: ("fixing" if r["pairs net fixed"] > r["pairs net introduced"] else "introducing"
                if r["pairs net fixed"] < r["pairs net introduced"] else "neither way")
            for m, r in whole.set_index("model").iterrows()}
    if not lean:
        text = "No model is scored over the whole evaluation half, so which way the models lean is not read here."
    elif set(lean.values()) == {"fixing"}:
        text = ("Over the whole evaluation half, every retrained model leans to fixing (more pairs net fixed than "
                "net introduced)" + (", the leak-free one too" if "leak-free" in lean and len(lean) > 1 else "") + ".")
    else:
        text = "Over the whole evaluation half, " + "; ".join(
            f"the {m} model leans to {way}" if way != "neither way" else f"the {m} model leans neither way"
            for m, way in lean.items()) + " (pairs net fixed against net introduced)."
    small = []
    for subset, part in pairs[pairs["subset"] != "all"].groupby("subset", sort=False):
        changed = int((part["pairs net fixed"] + part["pairs net introduced"]).max())
        best = stats.binomtest(changed, changed, 0.5, alternative="greater").pvalue if changed else 1.0
        if best >= alpha:
            small.append((subset, int(part["pairs"].iloc[0]), changed))
    if small:
        k = max(c for *_, c in small)
        p = stats.binomtest(k, k, 0.5, alternative="greater").pvalue if k else 1.0
        text += (f" The {fmt.listing([s for s, *_ in small])} subset{'s' if len(small) > 1 else ''} hold"
                 f"{'' if len(small) > 1 else 's'} {fmt.listing([f'{n:,}' for _, n, _ in small])} distinct pairs, of "
                 f"which at most {fmt.listing([str(c) for *_, c in small])}"
                 f"{' respectively' if len(small) > 1 else ''} change on balance for any model, so a sign "
                 f"test on {'them' if len(small) > 1 else 'it'} cannot reach one-sided p < {alpha:g} whatever the "
                 f"direction: {k} of {k} pairs net fixed give one-sided p = "
                 + (f"1/{round(1 / p):,}" if k else "1") + ".")
    else:
        text += (f" Every subset has enough changed pairs for a sign test to reach one-sided p < {alpha:g} if they "
                 "all went one way.")
    pool = int(whole["pairs"].iloc[0]) if len(whole) else int(pairs["pairs"].max())
    return text + (f" The paper's shares on these subsets rest on thousands of pairs; ours on {fmt.article(pool)} {pool:,}-pair "
                   "evaluation half.")


def _defaults_to_neutral(rows: pd.DataFrame) -> bool:
    """Whether one seed's per-class rows (one per class) show the paper's pattern: neutral recall the highest of
    the classes and neutral precision below neutral recall (more pairs called neutral than are neutral)."""
    by = rows.set_index("class")
    neutral = by.loc["neutral"]
    return bool((by["recall"] <= neutral["recall"]).all() and neutral["precision"] < neutral["recall"])


def neutral_reading(classes: pd.DataFrame, model: str = "baseline", few: int = 30) -> str:
    """A reading of `per_class` (every seed's rows) for `model`: on the whole clean evaluation half, where its
    mean neutral recall ranks among the classes and whether it calls more pairs neutral than are neutral (neutral
    precision below neutral recall); then, per set and subset, at how many seeds it shows the paper's pattern
    (both at once). Subsets of fewer than `few` pairs are called too few to say much either way."""
    part = classes[classes["model"] == model]
    if part.empty:
        return ""
    seeds = part["seed"].nunique()
    sentences = []
    clean = part[(part["set"] == "clean") & (part["subset"] == "all")]
    if len(clean):
        mean = clean.groupby("class", sort=False)[["recall", "precision"]].mean()
        recall, precision = mean.loc["neutral", "recall"], mean.loc["neutral", "precision"]
        below, above = int((mean["recall"] < recall).sum()), int((mean["recall"] > recall).sum())
        rank = ("the highest" if above == 0 else "the lowest" if below == 0 else "neither the highest nor the lowest")
        defaults = above == 0 and precision < recall
        others = " and ".join(f"{mean.loc[c, 'recall']:.2f} {c}" for c in mean.index if c != "neutral")
        sentences.append(
            f"Our clean {model} {'defaults' if defaults else 'does not default'} to neutral: over the whole clean "
            f"evaluation half its neutral recall, {recall:.2f} on average over the seeds (against {others}), is "
            f"{rank} of the {fmt.count_word(len(mean))} classes, and its neutral precision, {precision:.2f}, is "
            + ("below it: it calls more pairs neutral than are neutral." if precision < recall else
               "not below it: it calls no more pairs neutral than are neutral."))
    groups: dict[str, list[str]] = {"every": [], "some": [], "none": []}
    for (name, subset), rows in part.groupby(["set", "subset"], sort=False):
        hits = sum(_defaults_to_neutral(r) for _, r in rows.groupby("seed"))
        pairs = int(rows["pairs"].iloc[0])
        detail = (f"{pairs:,} pairs" + (", too few to say much either way" if pairs < few else "")
                  + ("" if hits in (0, seeds) else f", {hits} of {seeds} seeds"))
        groups["every" if hits == seeds else "none" if hits == 0 else "some"].append(f"{name} {subset} ({detail})")
    spans = [f"at every seed on {fmt.listing(groups['every'])}" if groups["every"] else "",
             f"at some seeds on {fmt.listing(groups['some'])}" if groups["some"] else "",
             f"at no seed on {fmt.listing(groups['none'])}" if groups["none"] else ""]
    sentences.append(f"{'Over the ' + fmt.count_word(seeds) + ' seeds' if seeds > 1 else 'At its only seed'}, the paper's pattern, neutral "
                     "recall the highest of the three classes and neutral precision below it, holds for the "
                     f"{model} " + "; ".join(s for s in spans if s) + ".")
    if any(g.startswith("attacked all ") for g in groups["every"]):
        sentences.append(f"With one token replaced by the mask, the {model} calls many pairs neutral at every seed, "
                         "as the paper describes.")
    return " ".join(sentences)


def pooling_note(seeds: int) -> str:
    """Why `error_shares` carries no test, for `seeds` seeds: pooled seeds score the same pairs, so a pair that
    changes at every seed counts once per seed; the test's unit is the distinct pair."""
    pooled = (f"The shares pool the {fmt.count_word(seeds)} seeds, which score the same evaluation pairs: a pair fixed at "
              f"every seed counts {fmt.times(seeds)}, so the pooled counts are not independent observations and carry "
              "no test." if seeds > 1 else "The shares come from one seed, and carry no test.")
    return (pooled + " The unit of the test is the distinct evaluation pair. For each pair, the fixes minus the "
            "introductions over the seeds give it a sign; pairs whose sum is zero (most of them never change) are ties, "
            "dropped and counted; and an exact sign test asks whether more pairs lean to fixed than to introduced.")


def fix_comparison_caption(table: pd.DataFrame) -> str:
    """The caption of `fix_comparison`: each side's number of seeds (from its `seeds` column, where the table
    has one), and, where they differ in some row, that the two sides may come from different designs."""
    text, token = (table.get(column) for column in FIX_SEEDS)
    if text is None or token is None or text.isna().all() or token.isna().all():
        return ("Differences in accuracy (means over each run's seeds) with the text-rewriting attack and with the "
                "token-id attack, and how far the fix moved each.")
    a, b = _seed_count(text), _seed_count(token)
    if (text == token).all():
        return (f"Differences in accuracy (means over {a} seeds, the same on both sides of each row) with the "
                "text-rewriting attack and with the token-id attack, and how far the fix moved each.")
    return (f"Differences in accuracy with the text-rewriting attack (means over {a} seeds) and with the token-id "
            f"attack (means over {b} seeds), and the shift between them. The two sides have different seeds, so they "
            "may come from different designs (each run's profile settings): the shift mixes the fix with that change.")


def fix_comparison_shown(table: pd.DataFrame) -> pd.DataFrame:
    """`fix_comparison` as the chapter shows it: without the seed columns, which `fix_comparison_caption` states."""
    return table.drop(columns=[column for column in FIX_SEEDS if column in table])


def training_recipes(runs: list[tuple[str, Path, str]]) -> str:
    """How the models of `earlier_runs` were trained, per chapter and dataset, from each run's `config.json`
    (epochs) and `metrics.json` (training examples): '… chapter 3 trained SST-2 for 1 epoch on 16,000 examples
    and SNLI for 1 epoch on 15,932 examples.'."""
    rows = []
    for chapter, folder, _ in runs:
        config = json.loads((Path(folder) / "config.json").read_text())
        metrics = json.loads((Path(folder) / "metrics.json").read_text())
        rows.append({"chapter": int(chapter[:2]), "dataset": config["dataset"], "epochs": int(config["epochs"]),
                     "examples": int(metrics["train_examples"])})
    if not rows:
        return ""
    table = pd.DataFrame(rows)
    names = {"sst2": "SST-2", "snli": "SNLI"}
    parts = []
    for chapter, part in table.groupby("chapter", sort=True):
        each = []
        for dataset, runs_of in part.groupby("dataset", sort=False):
            epochs = fmt.int_span(runs_of["epochs"])
            each.append(f"{names.get(dataset, dataset)} for {epochs} epoch{'' if epochs == '1' else 's'} on "
                        f"{fmt.int_span(runs_of['examples'])} examples")
        parts.append(f"chapter {chapter} trained {fmt.listing(each)}")
    return "The models were trained as follows (from each run's configuration): " + "; ".join(parts) + "."


def _adv_sst2_counts(table: pd.DataFrame) -> tuple[int, int, int]:
    """On adv-SST2 in `earlier_advglue`: (models whose whole interval lies below chance 0.5, models whose
    accuracy is below 0.5, models)."""
    sst2 = table[table["set"] == "adv_sst2"]
    return int((sst2["accuracy high"] < 0.5).sum()), int((sst2["accuracy"] < 0.5).sum()), len(sst2)


def adv_sst2_chance_sentence(table: pd.DataFrame) -> str:
    """Whether the SST-2 models of `earlier_advglue` score below chance on adv-SST2, whose sentences come from the
    corpus they learned, so that another corpus cannot be the explanation."""
    interval, point, n = _adv_sst2_counts(table)
    if not n:
        return ""
    if interval:
        return (f"On adv-SST2, whose sentences come from the very corpus the SST-2 models learned, {interval} of "
                f"{n} models have their whole interval *below* chance (0.5): that needs another explanation.")
    if point:
        return (f"On adv-SST2, whose sentences come from the very corpus the SST-2 models learned, {point} of {n} "
                "models score below chance (0.5), though no model's whole interval lies below it.")
    return ("On adv-SST2, whose sentences come from the very corpus the SST-2 models learned, no model scores below "
            "chance (0.5).")


def shared_weakness_sentence(table: pd.DataFrame) -> str:
    """Whether the adv-SST2 scores of `earlier_advglue` show the weakness AdvGLUE's construction selects for:
    models whose whole interval lies below chance, or only accuracies below 0.5 that noise could explain."""
    interval, point, n = _adv_sst2_counts(table)
    if not n:
        return ""
    if interval:
        return (f"Here {interval} of {n} SST-2 models have their whole interval below 0.5: their below-chance "
                "accuracy on adv-SST2 measures that shared weakness, a systematic one, not noise.")
    if point:
        return (f"Here {point} of {n} SST-2 models score below 0.5, but none has its whole interval below it, so "
                "the scores do not separate that weakness from noise.")
    return "Here no SST-2 model scores below 0.5: the models do not show that weakness on adv-SST2."
