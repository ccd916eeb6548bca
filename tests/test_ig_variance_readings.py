"""Chapter 5's sentences follow its numbers and settings: the R² interval against R²'s range, the binomial noise
of the length bins, and which quadrature rule the benchmark favours; none states a result the data do not."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from compnb.chapters import ig_variance_report


@pytest.mark.parametrize("low, high, says, not_says", [
    (-2.0, 2.13, ["past R²'s maximum of 1 and below 0", "undetermined"], ["clipped at 1", "as it is"]),
    (0.2, 1.4, ["past R²'s maximum of 1 but not below 0", "clipped at 1, as [0.200, 1.000]"], ["undetermined"]),
    (-0.5, 0.9, ["below 0", "within its maximum of 1", "prints it as it is"], ["undetermined", "clipped"]),
    (0.1, 0.9, ["within R²'s possible values", "prints it as it is"], ["below 0", "undetermined", "clipped"]),
])
def test_r2_interval_sentence_words_each_side_it_runs_past(low, high, says, not_says):
    text = ig_variance_report.r2_interval_sentence("baseline", 8, low, high)
    assert text.startswith(f"The Student-t 95% interval over 8 seeds is widest for baseline, {low:.2f} to {high:.2f}, ")
    assert all(s in text for s in says) and not any(s in text for s in not_says)


def _runs(r2: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"variant": v, "seed": s, "calibration_r2": x, "ece": 0.05 + 0.001 * s}
                         for v, values in r2.items() for s, x in enumerate(values)])


def _records(n: int = 60) -> tuple[list[dict], np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, n)
    probs = rng.dirichlet(np.ones(3), n)
    return [{"variant": v, "seed": 0, "probs": probs} for v in ig_variance_report.VARIANTS], labels


def test_calibration_sentence_reads_the_interval_and_the_spread_from_the_runs():
    records, labels = _records()
    wild = ig_variance_report.calibration_sentence(
        _runs({"baseline": [0.56, -0.89, 0.53], "detached": [0.59, 0.10, 0.36], "differentiable": [0.04, 0.02, 0.53]}),
        records, labels)
    assert "undetermined" in wild and "cannot order the variants" in wild and "The reason is the measure" in wild
    steady = ig_variance_report.calibration_sentence(
        _runs({"baseline": [0.50, 0.52, 0.51, 0.50], "detached": [0.80, 0.81, 0.80, 0.82],
               "differentiable": [0.60, 0.61, 0.60, 0.62]}), records, labels)
    assert "undetermined" not in steady and "past R²'s maximum" not in steady and "as it is" in steady
    assert "less than the largest difference" in steady and "cannot order" not in steady
    assert "fragile all the same" in steady and "over 4 seeds" in steady


def _by_length(rates: list[float], pairs: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"variant": "baseline", "words": [f"{i}–{i}" for i in range(len(rates))], "pairs": pairs,
                         "error rate": rates})


@pytest.mark.parametrize("roughness, reading", [
    ([0.05, 0.06], "every run's roughness (5.00–6.00 points) is above that"),
    ([0.001, 0.002], "no run's roughness (0.10–0.20 points) is above that"),
    ([0.001, 0.05], "the runs' roughness (0.10–5.00 points) is above that at 1 of 2 runs"),
])
def test_binomial_noise_sentence_computes_the_standard_error_and_compares_the_runs(roughness, reading):
    table = _by_length([0.2, 0.2, 0.2, 0.2, 0.2], [400, 400, 400, 400, 100])
    text = ig_variance_report.binomial_noise_sentence(table, pd.DataFrame({"roughness": roughness}))
    # √(0.2·0.8/400) = 2.0 points, √(0.2·0.8/100) = 4.0 points; a straight curve stays below
    # √(χ²₀.₉₅(3)/5 · mean SE²) 95% of the time
    straight = math.sqrt(stats.chi2.ppf(0.95, 3) / 5 * (4 * 0.02 ** 2 + 0.04 ** 2) / 5) * 100
    assert "holds 100–400 pairs at error rates of 20.0%" in text and "standard error, √(p(1 − p)/n), of 2.0–4.0 points" in text
    assert f"below {straight:.2f} points 95% of the time" in text and reading in text


def test_the_noise_threshold_is_the_95th_percentile_of_a_straight_curves_roughness():
    """Simulated: binomial error rates around a straight curve, a line fitted to each draw; the RMS residual's
    95th percentile matches the sentence's threshold within 3%."""
    rng = np.random.default_rng(0)
    pairs, truth = 400, np.linspace(0.15, 0.25, 6)
    rates = rng.binomial(pairs, truth, size=(20_000, truth.size)) / pairs
    x = np.arange(truth.size)
    fits = np.polynomial.polynomial.polyfit(x, rates.T, 1)
    residuals = rates - np.polynomial.polynomial.polyval(x, fits)
    simulated = np.quantile(np.sqrt((residuals ** 2).mean(axis=1)), 0.95) * 100
    table = _by_length(list(truth), [pairs] * truth.size)
    text = ig_variance_report.binomial_noise_sentence(table, pd.DataFrame({"roughness": [0.0]}))
    threshold = float(text.split("fitted line) below ")[1].split(" points")[0])
    assert threshold == pytest.approx(simulated, rel=0.03)


def test_binomial_noise_sentence_with_two_bins_measures_no_roughness():
    text = ig_variance_report.binomial_noise_sentence(_by_length([0.1, 0.3], [300, 300]), pd.DataFrame({"roughness": [0.0]}))
    assert "With 2 bins a fitted line passes through every point" in text and "above that" not in text


def _rules(riemann_gap: float, gauss_gap: float) -> pd.DataFrame:
    bench = {"rows": [
        {"variant": "differentiable", "method": "riemann_right", "n_steps": 10, "precision": "fp32", "gap": riemann_gap,
         "relative_gap": riemann_gap / 2, "ms": 59.5, "ratio": 4.66},
        {"variant": "differentiable", "method": "gausslegendre", "n_steps": 10, "precision": "fp32", "gap": gauss_gap,
         "relative_gap": gauss_gap / 2, "ms": 58.4, "ratio": 4.57}]}
    return ig_variance_report.rule_comparison(bench)


def test_rule_sentence_follows_which_gap_is_smaller_and_the_rule_in_use():
    text = ig_variance_report.rule_sentence(_rules(0.200, 0.342), "riemann_right")
    assert text.startswith("This chapter's penalty uses right Riemann, not Captum's default.")
    assert "0.200 logits against Gauss–Legendre's 0.342" in text and "59.5 ms against 58.4 ms (2% more)" in text
    assert "Right Riemann's gap is the smaller (the path's kinks" in text and "supports the rule in use" in text
    flipped = ig_variance_report.rule_sentence(_rules(0.400, 0.100), "riemann_right")
    assert "Gauss–Legendre's gap is the smaller (here the path's kinks do not" in flipped
    assert "so by this measurement Gauss–Legendre would be the more accurate" in flipped
    gauss = ig_variance_report.rule_sentence(_rules(0.400, 0.100), "gausslegendre")
    assert gauss.startswith("This chapter's penalty uses Gauss–Legendre.") and "supports the rule in use" in gauss
    assert "leave the same gap" in ig_variance_report.rule_sentence(_rules(0.3, 0.3), "riemann_right")


def test_rule_sentence_without_both_rules_says_so():
    one = _rules(0.2, 0.3).iloc[:1]
    assert "does not hold both rules" in ig_variance_report.rule_sentence(one, "riemann_right")
    none = ig_variance_report.rule_comparison({"rows": [{"variant": "differentiable", "method": "riemann_right",
                                                         "n_steps": 20, "precision": "fp32", "gap": 0.1,
                                                         "relative_gap": 0.05, "ms": 60.0, "ratio": 4.0}]})
    assert none.empty and "does not hold both rules" in ig_variance_report.rule_sentence(none, "riemann_right")
