"""Paper 2's claims (gradient-guided [MASK] attack, adversarial retraining on SNLI) and how chapter 4 measures
them. Seeds are replicates of training; the error subsets are judged over distinct evaluation pairs (a pair
counts once, by the sign of its fixed minus introduced errors summed over seeds), never over pair-seed copies.

Chapter 4's arms: `leaky` retrains on attacked pairs built from the evaluated premises (the paper's setting),
`retrained` (leak-free) on pairs from premises never evaluated, `leaky (matched size)` on as many leaky rows
as the leak-free arm has, so that the leak is measured at equal data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from compnb import formatting as fmt
from compnb import paper_numbers as pn
from compnb import verdicts
from compnb.chapters.claim_base import Claim, Measured, cite, cites, csv, estimate, scope, text
from compnb.chapters.claims_paper1 import absolute

CH4 = "04-adversarial-eval"
CH4_RECIPE = "ch. 4: the offline SNLI test pool split by premise; paired by seed against the baseline"
NEAR_PERFECT = 0.9  # "near-perfect recall": above 0.9


def _runs(folder: Path) -> list[str]:
    """Chapter 4's run folders, from its run record (the first is seed 0's baseline)."""
    return list(json.loads((folder / "run.json").read_text())["params"]["runs"])


def _scope(folder: Path, seeds, what: str = "") -> str:
    return scope(folder, _runs(folder), seeds, what)


def _scores(folder: Path, kind: str, set_name: str, metric: str = "accuracy") -> pd.Series:
    scores = csv(folder, "scores.csv")
    part = scores[(scores["kind"] == kind) & (scores["set"] == set_name)].set_index("seed")[metric]
    if part.empty:
        raise KeyError(f"no {kind} scores on {set_name}")
    return part.sort_index()


def gain(kind: str, set_name: str, control: str = "baseline", control_set: str | None = None,
         direction: int = +1, target: Callable[[], float] | None = None) -> Callable[[Path], Measured]:
    """`kind` on `set_name` against `control` on `control_set` (default the same set), paired by seed."""
    def measure(folder: Path) -> Measured:
        treated, plain = _scores(folder, kind, set_name), _scores(folder, control, control_set or set_name)
        common = treated.index.intersection(plain.index)
        label = f"{kind} ({set_name}) − {control} ({control_set or set_name}), accuracy"
        e = verdicts.paired_direction(treated[common], plain[common], direction, label=label,
                                      target=None if target is None else target())
        return Measured(f"{label}: {estimate(e)}", [e], scope=_scope(folder, list(common)))
    return measure


def fixed_over_pairs(subset: str, arm: str) -> Callable[[Path], Measured]:
    """Exact sign test over the subset's distinct evaluation pairs: does retraining fix more pairs than it
    breaks? A pair is 'net fixed' when, summed over seeds, it was fixed more often than broken."""
    def measure(folder: Path) -> Measured:
        table = csv(folder, "error_pairs.csv")
        row = table[(table["model"] == arm) & (table["subset"] == subset)].iloc[0]
        fixed, broken, tied = (int(row[c]) for c in ("pairs net fixed", "pairs net introduced", "pairs tied"))
        e = verdicts.sign_test(fixed, broken, tied, label=f"{arm}, {subset}", unit="pairs")
        seeds = sorted(int(s) for s in csv(folder, "scores.csv")["seed"].unique())
        if len(seeds) != int(row["seeds"]):
            raise KeyError(f"error_pairs.csv counts {row['seeds']} seeds, scores.csv has {len(seeds)}")
        return Measured(f"{fixed} pairs net fixed vs {broken} net broken ({tied} of {int(row['pairs'])} pairs tied "
                        f"or never wrong, dropped); share fixed {estimate(e)}", [e],
                        scope=_scope(folder, seeds, f"{int(row['pairs'])} {subset} evaluation pairs are the unit"))
    return measure


def _per_class(folder: Path) -> pd.DataFrame:
    """Chapter 4's per-seed class scores on the clean evaluation half."""
    table = csv(folder, "per_class.csv")
    if "seed" not in table.columns:
        raise KeyError("per_class.csv has no per-seed rows")
    return table[table["set"] == "clean"] if "set" in table.columns else table


def neutral_recall(subsets: tuple[str, ...]) -> Callable[[Path], Measured]:
    """The baseline's neutral recall on each subset above `NEAR_PERFECT`: a one-sided t over the subset's
    distinct neutral pairs, each the share of seeds at which the baseline called it neutral; the claim holds
    only if it holds on every subset."""
    def measure(folder: Path) -> Measured:
        table = csv(folder, "pair_outcomes.csv")
        parts, evidence = [], []
        for subset in subsets:
            rows = table[(table["model"] == "baseline") & (table["subset"] == subset) & (table["class"] == "neutral")]
            if rows.empty:  # a subset without neutral pairs (a small sample) says nothing about the claim
                parts.append(f"{subset}: no neutral pairs")
                continue
            e = verdicts.mean_direction(rows["correct share"], +1, null=NEAR_PERFECT, unit="neutral pairs",
                                        label=f"{subset}: neutral recall")
            evidence.append(e)
            parts.append(f"{subset} {e.estimate:.2f} {fmt.interval(e.low, e.high, 2, bounds=(0, 1))} over {e.n} "
                         "neutral pairs")
        if not evidence:
            raise KeyError(f"no neutral pairs in any of {subsets}")
        seeds = int(table["seeds"].iloc[0])
        return Measured("baseline's neutral recall: " + "; ".join(parts), evidence, "all",
                        scope=_scope(folder, sorted(csv(folder, "scores.csv")["seed"].unique())[:seeds],
                                     "distinct neutral pairs are the unit, their seeds averaged"))
    return measure


def every_class_f1(kind: str) -> Callable[[Path], Measured]:
    """`kind` − baseline F1 per class on the whole clean evaluation half, paired by seed; holds if every class
    rises."""
    def measure(folder: Path) -> Measured:
        table = _per_class(folder)
        table = table[table["subset"] == "all"]
        evidence, parts = [], []
        for name, rows in table.groupby("class", sort=False):
            tuned = rows[rows["model"] == kind].set_index("seed")["F1"].sort_index()
            plain = rows[rows["model"] == "baseline"].set_index("seed")["F1"].sort_index()
            common = tuned.index.intersection(plain.index)
            e = verdicts.paired_direction(tuned[common], plain[common], +1, label=f"{name}: F1")
            evidence.append(e)
            parts.append(f"{name} {estimate(e)}")
        if not evidence:
            raise KeyError(f"no per-class rows for {kind}")
        return Measured(f"{kind} − baseline, F1 per class: " + "; ".join(parts), evidence, "all",
                        scope=_scope(folder, sorted(table["seed"].unique())))
    return measure


def _throughput(folder: Path) -> tuple[np.ndarray, str, str]:
    table = csv(folder, "throughput.csv")
    value = ", ".join(f"{m}: {g['samples/s'].mean():,.0f} samples/s" for m, g in table.groupby("model", sort=False))
    return table["samples/s"].to_numpy(), value, _scope(folder, sorted(table["seed"].unique()))


def _baseline_clean(folder: Path) -> tuple[np.ndarray, str, str]:
    row = csv(folder, "seed_means.csv").set_index(["model", "set"]).loc[("baseline", "clean")]
    values = _scores(folder, "baseline", "clean")
    return (values.to_numpy(), f"{row['accuracy']:.3f} {row['accuracy 95% CI']} (clean evaluation half)",
            _scope(folder, list(values.index)))


def _attack_effect() -> float:
    return (pn.value(2, "§2", "Baseline", "Accuracy") - pn.value(2, "§2.4", "Baseline", "Accuracy")) / 100


def _retraining_effect() -> float:
    return pn.value(2, "§5.8", "Accuracy", "Fine-Tuned Model") - pn.value(2, "§5.8", "Accuracy", "Baseline Model")


SUBSETS = (("negation", "§5.3", "far more"), ("ambiguity", "§5.5", "far more"), ("long", "§5.7", "more"))
PAPER_ROWS = {"negation": "Negation", "ambiguity": "Ambiguities", "long": "Challenging Cases"}


def _subset_claims() -> tuple[Claim, ...]:
    out = []
    for subset, source, how in SUBSETS:
        paper = cites((2, source, PAPER_ROWS[subset], "Fixed errors"), (2, source, PAPER_ROWS[subset],
                                                                        "Introduced errors"), sep=" vs ")
        out.append(Claim(f"P2-{subset}", 2, source, f"On {subset} pairs retraining fixes {how} errors than it "
                         "introduces (the paper's setting: attacked pairs from the evaluated premises)",
                         "pairs fixed vs broken", "direction", paper, CH4, CH4_RECIPE + "; leaky arm, clean half",
                         "more pairs net fixed than net broken, exact sign test over distinct pairs",
                         fixed_over_pairs(subset, "leaky")))
        out.append(Claim(f"P2-{subset}-leak-free", 2, source, f"The same on {subset} pairs without the leak",
                         "pairs fixed vs broken", "direction", paper, CH4,
                         CH4_RECIPE + "; leak-free arm, clean half",
                         "more pairs net fixed than net broken, exact sign test over distinct pairs",
                         fixed_over_pairs(subset, "leak-free"), beyond=True))
    return tuple(out)


CLAIMS = (
    Claim("P2-baseline", 2, "§2", "ELECTRA-small's baseline accuracy on SNLI", "accuracy", "absolute",
          cite(2, "§2", "Baseline", "Accuracy"), CH4, CH4_RECIPE, "TOST within 0.01 of the paper's number, at the "
          "paper profile only", absolute(_baseline_clean, "ELECTRA-small", (2, "§2", "Baseline", "Accuracy"),
                                         ", trained on all of SNLI")),
    Claim("P2-attack-drop", 2, "§2.4", "The gradient-guided [MASK] attack lowers the baseline's accuracy",
          "accuracy, attacked vs clean", "direction",
          cites((2, "§2", "Baseline", "Accuracy"), (2, "§2.4", "Baseline", "Accuracy")), CH4, CH4_RECIPE,
          "attacked below clean, one-sided paired t over seeds", gain("baseline", "attacked", "baseline", "clean", -1, _attack_effect)),
    Claim("P2-clean-gain", 2, "§5.8", "Adversarial retraining raises accuracy on the evaluation set (the paper's "
          "setting: adversarial pairs built from the evaluated examples)", "accuracy, clean half", "direction",
          cites((2, "§5.8", "Accuracy", "Baseline Model"), (2, "§5.8", "Accuracy", "Fine-Tuned Model")), CH4,
          CH4_RECIPE + "; leaky arm", "higher, one-sided paired t over seeds",
          gain("leaky", "clean", target=_retraining_effect)),
    Claim("P2-clean-gain-leak-free", 2, "§5.8", "The same gain without the leak: adversarial pairs from premises "
          "never evaluated", "accuracy, clean half", "direction",
          cites((2, "§5.8", "Accuracy", "Baseline Model"), (2, "§5.8", "Accuracy", "Fine-Tuned Model")), CH4,
          CH4_RECIPE + "; leak-free arm", "higher, one-sided paired t over seeds",
          gain("retrained", "clean", target=_retraining_effect),
          beyond=True),
    Claim("P2-attacked-gain", 2, "§4.6", "Retraining also improves accuracy on adversarial inputs",
          "accuracy, attacked half", "direction", text("stated, no number printed"), CH4,
          CH4_RECIPE + "; leak-free arm", "higher, one-sided paired t over seeds", gain("retrained", "attacked")),
    *_subset_claims(),
    Claim("P2-neutral-recall", 2, "§5.2, §5.4, §5.6", "On negation, ambiguous and long pairs the baseline's "
          "neutral recall is near perfect (it over-predicts neutral)", "neutral recall of the baseline",
          "direction", text("'near-perfect recall' (no number printed)"), CH4, CH4_RECIPE + "; baseline, clean half",
          f"recall above {NEAR_PERFECT} on every subset, one-sided t over seeds",
          neutral_recall(("negation", "ambiguity", "long"))),
    Claim("P2-every-class", 2, "§6", "Retraining improves F1 on every class", "F1 per class, clean half",
          "direction", text("'enhanced precision, recall and F1-scores across all classes'"), CH4,
          CH4_RECIPE + "; leaky arm", "higher for every class, one-sided paired t over seeds",
          every_class_f1("leaky")),
    Claim("P2-leak-at-equal-size", 2, "§5.8", "Part of the paper's gain is the leak: at equal attacked rows, "
          "rows drawn from the leaky pool (about half of them built from evaluated premises) raise clean accuracy "
          "more than rows from unseen premises",
          "accuracy, clean half", "direction", text("not examined by the paper"), CH4,
          CH4_RECIPE + "; leaky (matched size) vs leak-free arm", "higher, one-sided paired t over seeds",
          gain("leaky (matched size)", "clean", "retrained"), beyond=True),
    Claim("P2-throughput", 2, "§5.8", "Evaluation throughput of the baseline and the retrained model",
          "samples/s (evaluation)", "absolute",
          cites((2, "§5.8", "Samples/Sec", "Baseline Model"), (2, "§5.8", "Samples/Sec", "Fine-Tuned Model")),
          CH4, CH4_RECIPE, "hardware-dependent", lambda folder: Measured(
              _throughput(folder)[1], verdict="not testable here", why="samples per second belong to the paper's "
              "machine and backbone", scope=_throughput(folder)[2])),
)
