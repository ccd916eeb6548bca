"""Paper 3's claims (integrated-gradients variance regularisation on SNLI) and how chapter 5 measures them:
every comparison pairs the detached penalty (Captum's IG, as the paper used it) with the baseline of the
same seed, on the same test pairs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from compnb import verdicts
from compnb.chapters.claim_base import MARGINS, Claim, Measured, cite, cites, csv, estimate, scope, text
from compnb.chapters.claims_paper1 import absolute

CH5 = "05-ig-variance"
CH5_RECIPE = "ch. 5: paper 3's recipe (batch 16, lr 5e-5, early stopping, α 10, λ 0.1, 10 IG steps); paired by seed"
T1 = "Table 1"


def _runs(folder: Path) -> pd.DataFrame:
    return csv(folder, "runs.csv")


def _scope(folder: Path, seeds) -> str:
    runs = json.loads((folder / "run.json").read_text())["params"]["runs"]
    return scope(folder, runs, seeds)


def _pair(folder: Path, variant: str, column: str) -> tuple[pd.Series, pd.Series]:
    runs = _runs(folder)
    tuned = runs[runs["variant"] == variant].set_index("seed")[column].sort_index()
    plain = runs[runs["variant"] == "baseline"].set_index("seed")[column].sort_index()
    common = tuned.index.intersection(plain.index)
    if common.empty:
        raise KeyError(f"no seeds with both {variant} and baseline")
    return tuned[common], plain[common]


def versus_baseline(variant: str, column: str, name: str, direction: int = 0, margin: str | None = None,
                    target: Callable[[], float] | None = None) -> Callable[[Path], Measured]:
    """`variant` − baseline in `column` of chapter 5's runs.csv, paired by seed: one-sided in `direction`, or
    TOST within `MARGINS[margin]`."""
    def measure(folder: Path) -> Measured:
        tuned, plain = _pair(folder, variant, column)
        label = f"{variant} − baseline, {name}"
        if margin is not None:
            e = verdicts.paired_equivalence(tuned, plain, MARGINS[margin][0], label=label)
        else:
            e = verdicts.paired_direction(tuned, plain, direction, label=label,
                                          target=None if target is None else target())
        digits = 4 if abs(e.estimate) < 0.01 and margin else 3
        return Measured(f"{label}: {estimate(e, digits)}", [e], scope=_scope(folder, list(tuned.index)))
    return measure


def every_class(folder: Path) -> Measured:
    """Detached − baseline recall (per-class accuracy) for each class, paired by seed; holds if every class
    improves (Fig. 9)."""
    table = csv(folder, "per_class.csv")
    evidence, parts, seeds = [], [], []
    for name, rows in table.groupby("class", sort=False):
        tuned = rows[rows["variant"] == "detached"].set_index("seed")["recall"].sort_index()
        plain = rows[rows["variant"] == "baseline"].set_index("seed")["recall"].sort_index()
        common = tuned.index.intersection(plain.index)
        e = verdicts.paired_direction(tuned[common], plain[common], +1, label=f"{name}: recall")
        evidence.append(e)
        parts.append(f"{name} {estimate(e)}")
        seeds = list(common)
    return Measured("detached − baseline, recall per class: " + "; ".join(parts), evidence, "all",
                    scope=_scope(folder, seeds))


def _trend(folder: Path, variant: str, column: str) -> pd.Series:
    table = csv(folder, "length_trend.csv")
    return table[table["variant"] == variant].set_index("seed")[column].sort_index()


def longer_is_harder(folder: Path) -> Measured:
    """Per seed and model: the slope of error rate over the length buckets (least squares, per bucket); Fig. 8:
    error rates rise with length for both models, so it holds if the slope is positive for both."""
    evidence, parts = [], []
    for variant in ("baseline", "detached"):
        slope = _trend(folder, variant, "slope")
        e = verdicts.mean_direction(slope, +1, label=f"{variant}: slope of error rate per length bucket")
        evidence.append(e)
        parts.append(f"{variant} {estimate(e, 4)}")
    return Measured("slope of error rate per length bucket: " + "; ".join(parts), evidence, "all",
                    scope=_scope(folder, list(slope.index)))


def smoother(folder: Path) -> Measured:
    """Fig. 8: the IG-variance error curve is smoother: the detached run's roughness (RMS distance of its error
    rates from its own straight line) below the same seed's baseline's."""
    tuned, plain = _trend(folder, "detached", "roughness"), _trend(folder, "baseline", "roughness")
    common = tuned.index.intersection(plain.index)
    e = verdicts.paired_direction(tuned[common], plain[common], -1, label="detached − baseline, roughness")
    return Measured(f"detached − baseline, roughness of the error curve: {estimate(e, 4)}", [e],
                    scope=_scope(folder, list(common)))


def _baseline_accuracy(folder: Path) -> tuple[np.ndarray, str, str]:
    row = csv(folder, "comparison.csv").set_index(["metric", "variant"]).loc[("accuracy", "baseline")]
    runs = _runs(folder)
    values = runs[runs["variant"] == "baseline"].sort_values("seed")
    return (values["accuracy"].to_numpy(), f"{row['mean']:.3f} {row['95% CI']} (offline SNLI test split)",
            _scope(folder, list(values["seed"])))


CLAIMS = (
    Claim("P3-baseline", 3, T1, "ELECTRA-small's baseline accuracy on SNLI", "accuracy, test", "absolute",
          cite(3, T1, "Accuracy", "Baseline"), CH5, CH5_RECIPE, "TOST within 0.01 of the paper's number, at the "
          "paper profile only", absolute(_baseline_accuracy, "ELECTRA-small", (3, T1, "Accuracy", "Baseline"),
                                         ", trained on all of SNLI")),
    Claim("P3-accuracy", 3, "§3", "IG-variance training gives comparable accuracy (slightly higher, not "
          "significantly)", "accuracy, test", "equivalence",
          cites((3, T1, "Accuracy", "Baseline"), (3, T1, "Accuracy", "IG Variance")), CH5,
          CH5_RECIPE + "; detached penalty", "TOST paired by seed",
          versus_baseline("detached", "accuracy", "accuracy", margin="test accuracy"), margin="test accuracy"),
    Claim("P3-roc-auc", 3, "§3", "IG-variance training gives comparable ROC AUC (slightly higher, not "
          "significantly)", "ROC AUC, test", "equivalence",
          cites((3, T1, "ROC AUC", "Baseline"), (3, T1, "ROC AUC", "IG Variance")), CH5,
          CH5_RECIPE + "; detached penalty", "TOST paired by seed",
          versus_baseline("detached", "roc_auc", "ROC AUC", margin="roc auc"), margin="roc auc"),
    Claim("P3-runtime", 3, T1, "IG-variance training is noticeably slower", "ms per training step", "direction",
          cites((3, T1, "Runtime (s)", "Baseline"), (3, T1, "Runtime (s)", "IG Variance")), CH5,
          CH5_RECIPE + "; detached penalty", "slower, one-sided paired t over seeds (the ratio is the machine's)",
          versus_baseline("detached", "ms_per_step", "ms per step", +1)),
    Claim("P3-calibration", 3, "§3, Fig. 10", "IG-variance training is better calibrated: a higher R² of accuracy "
          "on confidence", "calibration R²", "direction", text("higher R² (Fig. 10; no number printed)"), CH5,
          CH5_RECIPE + "; detached penalty", "higher, one-sided paired t over seeds",
          versus_baseline("detached", "calibration_r2", "calibration R²", +1)),
    Claim("P3-length", 3, "§3, Fig. 8", "Error rates rise with example length for both models", "error rate by "
          "length (words of premise and hypothesis)", "direction", text("rising curves (Fig. 8; no number printed)"),
          CH5, CH5_RECIPE, "positive slope over the length buckets for both models, one-sided t over seeds",
          longer_is_harder),
    Claim("P3-smoother", 3, "§3, Fig. 8", "IG-variance training's error curve over length is smoother",
          "roughness of the error curve", "direction", text("a smoother curve (Fig. 8; no number printed)"), CH5,
          CH5_RECIPE + "; detached penalty", "lower roughness, one-sided paired t over seeds", smoother),
    Claim("P3-every-class", 3, "§3, Fig. 9", "IG-variance training improves on every class, albeit slightly",
          "recall per class", "direction", text("confusion matrices (Fig. 9; no number printed)"), CH5,
          CH5_RECIPE + "; detached penalty", "higher recall for every class, one-sided paired t over seeds",
          every_class),
    Claim("P3-variance-detached", 3, "§2.3", "The penalty as the paper computes it (Captum, detached) lowers the "
          "variance of attributions", "mean Var(IG)", "direction", text("the method's aim"), CH5,
          CH5_RECIPE + "; detached penalty", "lower, one-sided paired t over seeds",
          versus_baseline("detached", "variance", "mean Var(IG)", -1), aim=True),
    Claim("P3-variance-differentiable", 3, "§2.3", "The penalty made differentiable in the parameters (beyond the "
          "paper) lowers the variance of attributions", "mean Var(IG)", "direction", text("the method's aim"), CH5,
          CH5_RECIPE + "; differentiable penalty", "lower, one-sided paired t over seeds",
          versus_baseline("differentiable", "variance", "mean Var(IG)", -1), aim=True, beyond=True),
)
