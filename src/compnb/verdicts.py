"""From measurements to verdicts: the tests behind the claims ledger, their families, their power, and the
rules that turn a test into what the evidence can support.

Vocabulary (`VERDICTS`):

- *reproduced*: the claim's own test rejects at α after Holm's correction over its family. A claim of
  direction ("higher", "lower", "more") is tested one-sided in the claimed direction; a claim of equivalence
  ("comparable", "not significantly different", "nearly unchanged") by two one-sided tests (TOST) with a
  margin stated per claim. Non-significance alone never reproduces anything.
- *contradicted*: ours excludes the claim: the opposite one-sided test (for equivalence: the difference lies
  beyond the margin) rejects at α/m, Bonferroni over the family's m tests.
- *inconclusive*: neither; the design cannot tell. Each such row carries the minimum detectable effect (80%
  power at α with the units used) and the number of units 80% power would need.
- *not testable here*: an absolute number of a backbone, corpus or machine the book does not have.
- *not run*: the chapter has no result for the claim at this profile.

Every p-value comes from scipy.stats or statsmodels (`ttest_1samp`, `binomtest`, `ttost_paired`,
`multipletests`, `TTestPower`); what they lack (the power of an exact sign test) is written here and tested
against simulation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, TTestPower
from statsmodels.stats.proportion import proportion_confint, proportions_ztest
from statsmodels.stats.weightstats import ttost_paired

VERDICTS = ("reproduced", "contradicted", "inconclusive", "not testable here", "not run")
ALPHA = 0.05
POWER = 0.8
MAX_UNITS = 10_000  # the largest sample size a power calculation reports; beyond it, "more than"


class InvalidEvidence(ValueError):
    """Values a test cannot take (empty, NaN, unpaired): the measurement is undefined, not a bug in the test."""


@dataclass(frozen=True)
class Evidence:
    """One test of one claim; a claim can rest on several (one per configuration, class, ...).

    `estimate` and its interval (`low`, `high`, 95%; 90% for an equivalence test, as TOST at α uses) are in the
    claim's metric; `p` is the one-sided p of the claim's own test (TOST: the larger of its two), `p_against`
    the p of the test that would contradict it; `mde` is the smallest effect (metric units; a share of wins for
    sign tests) the test detects with 80% power at α, `units_needed` the units 80% power would need for
    `target` (the paper's effect where it printed one, else the margin or the observed effect); `n` counts
    the independent units (seeds, pairs, cells), `ties` the units a sign test dropped."""

    label: str
    test: str
    unit: str
    n: int
    estimate: float
    low: float
    high: float
    p: float
    p_against: float
    mde: float = math.nan
    units_needed: float = math.nan
    target: float = math.nan
    ties: int | None = None
    margin: float | None = None
    sd: float = math.nan  # standard deviation of the per-unit differences (t-based tests)


@dataclass(frozen=True)
class Judgement:
    """A claim's verdict with why, the deciding adjusted p (Holm for the claim's test) and the family size."""

    verdict: str
    why: str
    p_adjusted: float
    p_against_adjusted: float
    family_size: int


# --------------------------------------------------------------------------- power


def t_mde(n: int, sd: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest mean difference a one-sided one-sample t-test on n units with standard deviation `sd`
    detects with `power` at `alpha` (`statsmodels` `TTestPower`); NaN when n < 2 or sd is not positive."""
    if n < 2 or not sd > 0:
        return math.nan
    d = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="larger")
    return float(d) * sd


def t_units_needed(effect: float, sd: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Units a one-sided one-sample t-test needs to detect `effect` (> 0) with `power` at `alpha` given `sd`;
    NaN without a positive effect and spread, `MAX_UNITS` + 1 beyond `MAX_UNITS`."""
    if not (effect > 0 and sd > 0):
        return math.nan
    d = effect / sd
    power_at = lambda n: TTestPower().power(effect_size=d, nobs=n, alpha=alpha, alternative="larger")  # noqa: E731
    if power_at(MAX_UNITS) < power:
        return MAX_UNITS + 1
    n = 2
    while power_at(n) < power:
        n += 1 if n < 64 else max(1, n // 8)
    while n > 2 and power_at(n - 1) >= power:  # undo any overshoot of the coarse steps
        n -= 1
    return float(n)


def sign_critical(n: int, alpha: float = ALPHA) -> int | None:
    """Smallest count k of wins among n untied units at which the one-sided exact sign test rejects at
    `alpha` (P(X ≥ k | n, ½) ≤ α), or None when no count can (n ≤ 4 at α = 0.05)."""
    if n < 1:
        return None
    tail = stats.binom.sf(np.arange(n + 1) - 1, n, 0.5)  # tail[k] = P(X ≥ k)
    ok = np.flatnonzero(tail <= alpha)
    return int(ok[0]) if len(ok) else None


def sign_power(n: int, share: float, alpha: float = ALPHA) -> float:
    """Power of the one-sided exact sign test on n untied units when the true share of wins is `share`."""
    k = sign_critical(n, alpha)
    return 0.0 if k is None else float(stats.binom.sf(k - 1, n, share))


def sign_mde(n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true share of wins (> ½) the one-sided exact sign test on n untied units detects with
    `power` at `alpha`; NaN when no share can (too few units)."""
    if sign_power(n, 1.0, alpha) < power:
        return math.nan
    return float(optimize.brentq(lambda s: sign_power(n, s, alpha) - power, 0.5, 1.0, xtol=1e-9))


def sign_units_needed(share: float, alpha: float = ALPHA, power: float = POWER, most: int = 2000) -> float:
    """Untied units the one-sided exact sign test needs to detect a true share of wins `share` (> ½) with
    `power`: the smallest n from which on (for the next 12) its power stays above, since exact power
    saw-tooths in n; `MAX_UNITS` + 1 beyond `most`."""
    if not 0.5 < share <= 1:
        return math.nan
    n = np.arange(1, most + 13)
    k = stats.binom.isf(alpha, n, 0.5)  # rejecting X > k keeps the size at most α (sf(k) ≤ α)
    powers = np.where(stats.binom.sf(k, n, 0.5) <= alpha, stats.binom.sf(k, n, share), 0.0)
    enough = powers >= power
    steady = np.array([enough[i:i + 12].all() for i in range(most)])
    return float(n[np.argmax(steady)]) if steady.any() else MAX_UNITS + 1


def power_at(e: "Evidence", alpha: float) -> tuple[float, float]:
    """(MDE, units needed for `e.target`) of the test behind `e` at level `alpha`, say α/m for a family of m:
    t-tests from the spread of the differences, TOST with each one-sided test at 90% power, sign tests
    exactly; other tests keep what they carry."""
    side = 1 - (1 - POWER) / 2
    if e.test.startswith("TOST"):
        return t_mde(e.n, e.sd, alpha, side), t_units_needed(e.target, e.sd, alpha, side)
    if e.test.startswith(("one-sided t", "one-sided paired t")):
        return t_mde(e.n, e.sd, alpha), t_units_needed(e.target, e.sd, alpha)
    if e.test.startswith("exact sign"):
        return sign_mde(e.n, alpha), sign_units_needed(e.target, alpha) if not math.isnan(e.target) else math.nan
    return e.mde, e.units_needed


# --------------------------------------------------------------------------- tests


def _as_array(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise InvalidEvidence(f"{name} must be a non-empty 1-D array of finite numbers, got "
                              f"{np.asarray(values).tolist()!r}")
    return arr


def _t_interval(d: np.ndarray, confidence: float) -> tuple[float, float]:
    if len(d) < 2:
        return math.nan, math.nan
    sem = stats.sem(d)
    if sem == 0:
        return float(d.mean()), float(d.mean())
    low, high = stats.t.interval(confidence, len(d) - 1, loc=d.mean(), scale=sem)
    return float(low), float(high)


def _one_sided_t(d: np.ndarray, null: float, alternative: str) -> float:
    """One-sided one-sample t p-value (`scipy.stats.ttest_1samp`); without spread it is undefined (NaN),
    since a t-test cannot weigh the same value seen n times."""
    if len(d) < 2 or np.ptp(d) < 1e-15:
        return math.nan
    return float(stats.ttest_1samp(d, null, alternative=alternative).pvalue)


def mean_direction(values: Sequence[float], direction: int, null: float = 0.0, *, label: str = "",
                   unit: str = "seeds", target: float | None = None,
                   test: str = "one-sided t over {unit}") -> Evidence:
    """Is the mean of `values` (n,), e.g. per-seed differences treated − control, above (`direction` +1) or
    below (−1) `null`? One-sided one-sample t (`scipy.stats.ttest_1samp`), its opposite for `p_against`, a
    95% Student-t interval, the t-test's 80%-power MDE and the units needed for `target` (the size of an
    effect in the claimed direction, say the paper's; default the observed effect when it lies in the claimed
    direction, else none)."""
    d = _as_array(values, "values")
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    toward, away = ("greater", "less") if direction > 0 else ("less", "greater")
    sd = float(d.std(ddof=1)) if len(d) > 1 else math.nan
    observed = (float(d.mean()) - null) * direction
    effect = abs(target) if target is not None and not math.isnan(target) else observed if observed > 0 else math.nan
    low, high = _t_interval(d, 0.95)
    return Evidence(label, test.format(unit=unit), unit, len(d), float(d.mean()), low, high,
                    _one_sided_t(d, null, toward), _one_sided_t(d, null, away), t_mde(len(d), sd),
                    t_units_needed(effect, sd), effect, sd=sd)


def paired_direction(treated: Sequence[float], control: Sequence[float], direction: int, **kwargs) -> Evidence:
    """`mean_direction` of the paired differences treated − control (same seed, same evaluation rows)."""
    a, b = _as_array(treated, "treated"), _as_array(control, "control")
    if a.shape != b.shape:
        raise InvalidEvidence(f"treated and control must pair up, got {len(a)} and {len(b)} values")
    kwargs.setdefault("test", "one-sided paired t over {unit}")
    return mean_direction(a - b, direction, **kwargs)


def paired_equivalence(treated: Sequence[float], control: Sequence[float], margin: float, *, label: str = "",
                       unit: str = "seeds", alpha: float = ALPHA) -> Evidence:
    """Equivalence within ±`margin` of paired values (n,) by TOST (`statsmodels` `ttost_paired`): p is the
    larger of the two one-sided p-values; `p_against` the one-sided p that the mean difference lies beyond
    the margin on the side of the estimate (its rejection contradicts equivalence). The interval is the
    (1 − 2α) Student-t interval, the one TOST at α inverts. The MDE is the smallest margin TOST establishes
    with 80% power when the true difference is 0 (each one-sided test at 90% power, a conservative bound),
    and `units_needed` the seeds that this margin would need."""
    a, b = _as_array(treated, "treated"), _as_array(control, "control")
    if a.shape != b.shape:
        raise InvalidEvidence(f"treated and control must pair up, got {len(a)} and {len(b)} values")
    if not margin > 0:
        raise ValueError(f"margin must be positive, got {margin!r}")
    d = a - b
    n, sd = len(d), float(d.std(ddof=1)) if len(d) > 1 else math.nan
    if n < 2 or np.ptp(d) < 1e-15:
        p = p_against = math.nan
    else:
        p = float(ttost_paired(a, b, -margin, margin)[0])
        bound, side = (margin, "greater") if d.mean() >= 0 else (-margin, "less")
        p_against = float(stats.ttest_1samp(d, bound, alternative=side).pvalue)
    side_power = 1 - (1 - POWER) / 2
    low, high = _t_interval(d, 1 - 2 * alpha)
    return Evidence(label, f"TOST paired t over {unit}, margin ±{margin:g}", unit, n, float(d.mean()), low, high,
                    p, p_against, t_mde(n, sd, alpha, side_power), t_units_needed(margin, sd, alpha, side_power),
                    margin, margin=margin, sd=sd)


def sign_test(wins: int, losses: int, ties: int = 0, *, label: str = "", unit: str = "cells",
              target: float | None = None) -> Evidence:
    """Exact sign test that wins outnumber losses among untied units (`scipy.stats.binomtest`, one-sided;
    ties dropped and counted). The estimate is the share of wins among untied units with its Clopper–Pearson
    interval; the MDE is the smallest true share of wins detectable with 80% power, `units_needed` the
    untied units needed at `target` (default the observed share, when above ½)."""
    if min(wins, losses, ties) < 0:
        raise ValueError(f"counts must be non-negative, got wins={wins}, losses={losses}, ties={ties}")
    n = wins + losses
    if n == 0:
        return Evidence(label, f"exact sign test over {unit}, ties dropped", unit, 0, math.nan, math.nan,
                        math.nan, math.nan, math.nan, ties=ties)
    result = stats.binomtest(wins, n, 0.5, alternative="greater")
    ci = stats.binomtest(wins, n).proportion_ci(0.95, method="exact")
    share = target if target is not None else wins / n
    return Evidence(label, f"exact sign test over {unit}, ties dropped", unit, n, wins / n, float(ci.low),
                    float(ci.high), float(result.pvalue),
                    float(stats.binomtest(wins, n, 0.5, alternative="less").pvalue), sign_mde(n),
                    sign_units_needed(share), share, ties=ties)


def clustered_share(successes: int, trials: int, expected: float, cluster_size: int, *, label: str = "",
                    unit: str = "slots") -> Evidence:
    """Is the share successes / trials above `expected`, when the trials come in clusters of at most
    `cluster_size` (say the five top-5 slots of one sentence) that need not be independent? The design effect
    1 + (m − 1)ρ is at most m whatever the correlation ρ, so the trials count as at most trials / m
    independent ones (Kish's effective sample size): a one-sided z-test of the share with its variance under
    the null (`statsmodels` `proportions_ztest`, `prop_var=expected`) and a Wilson interval on the effective
    counts. Conservative by construction; the MDE is the excess share a one-sided z-test of that effective n
    detects with 80% power (`NormalIndPower` on Cohen's h)."""
    if not 0 < expected < 1 or not 0 <= successes <= trials or trials < 1 or cluster_size < 1:
        raise ValueError(f"need 0 < expected < 1, 0 ≤ successes ≤ trials and cluster_size ≥ 1, got {successes}, "
                         f"{trials}, {expected}, {cluster_size}")
    n_eff = trials / cluster_size
    count = successes / cluster_size
    p_up = float(proportions_ztest(count, n_eff, expected, alternative="larger", prop_var=expected)[1])
    p_down = float(proportions_ztest(count, n_eff, expected, alternative="smaller", prop_var=expected)[1])
    low, high = proportion_confint(count, n_eff, alpha=0.05, method="wilson")
    h = NormalIndPower().solve_power(effect_size=None, nobs1=n_eff, alpha=ALPHA, power=POWER, ratio=0,
                                     alternative="larger")
    mde = math.sin(math.asin(math.sqrt(expected)) + h / 2) ** 2 - expected  # Cohen's h back to a share
    return Evidence(label, f"one-sided z-test of a share over {unit}, effective n = {unit} / {cluster_size}", unit,
                    trials, successes / trials, float(low), float(high), p_up, p_down, mde)


# --------------------------------------------------------------------------- families and decisions


def adjust(evidence: Sequence[Evidence], alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Over one family: Holm-adjusted `p` and Bonferroni-adjusted `p_against` (`statsmodels`
    `multipletests`), each in the input's order. Untestable entries (NaN) stay NaN and do not count towards
    the family's size."""
    def adjusted(values: np.ndarray, method: str) -> np.ndarray:
        out = np.full_like(values, np.nan)
        ok = ~np.isnan(values)
        if ok.any():
            out[ok] = multipletests(values[ok], alpha=alpha, method=method)[1]
        return out
    p = np.array([e.p for e in evidence], dtype=np.float64)
    against = np.array([e.p_against for e in evidence], dtype=np.float64)
    return adjusted(p, "holm"), adjusted(against, "bonferroni")


def family_size(evidence: Sequence[Evidence]) -> int:
    """The number of testable members of a family (those with a p-value)."""
    return int(sum(not math.isnan(e.p) for e in evidence))


def _nan_reduce(values: np.ndarray, reduce) -> float:
    finite = values[~np.isnan(values)]
    return float(reduce(finite)) if len(finite) else math.nan


def decide(p_adjusted: Sequence[float], p_against_adjusted: Sequence[float], combine: str = "one",
           family_size: int = 1, alpha: float = ALPHA) -> Judgement:
    """The verdict of a claim from the family-adjusted p-values of its tests (one per component).

    combine: "one" (a single test); "any" (the claim holds if some component does, "some configuration
    improves": reproduced if any test rejects, contradicted only if every opposite test does); "all" (the
    claim holds for every component, "every class improves": reproduced only if every test rejects, an
    intersection-union test, contradicted if any opposite test does). A NaN p (untestable) never rejects."""
    if combine not in ("one", "any", "all"):
        raise ValueError(f"combine must be 'one', 'any' or 'all', got {combine!r}")
    p = np.asarray(p_adjusted, dtype=np.float64)
    against = np.asarray(p_against_adjusted, dtype=np.float64)
    if p.shape != against.shape or p.ndim != 1 or len(p) == 0 or (combine == "one" and len(p) != 1):
        raise ValueError(f"need one p and one p_against per component, got {p_adjusted!r}, {p_against_adjusted!r}")
    holds, fails = p < alpha, against < alpha  # NaN compares False
    if combine == "all":
        reproduced, contradicted = bool(holds.all()), bool(fails.any())
        deciding, deciding_against = _nan_reduce(p, np.max), _nan_reduce(against, np.min)
    else:
        reproduced = bool(holds.any())
        contradicted = bool(fails.all()) if combine == "any" else bool(fails[0])
        deciding = _nan_reduce(p, np.min)
        deciding_against = _nan_reduce(against, np.max if combine == "any" else np.min)
    of = "" if combine == "one" else f" ({int(holds.sum())} of {len(p)} tests)"
    if reproduced:
        why = f"the claim's test rejects at α = {alpha:g} after Holm's correction{of}"
        return Judgement("reproduced", why, deciding, deciding_against, family_size)
    if contradicted:
        why = f"the opposite test rejects at α = {alpha:g} after Bonferroni's correction" + (
            "" if combine == "one" else f" ({int(fails.sum())} of {len(p)} tests)")
        return Judgement("contradicted", why, deciding, deciding_against, family_size)
    if np.isnan(p).all():
        return Judgement("inconclusive", "untestable with this design: no spread over the units, or too few "
                         "untied units", deciding, deciding_against, family_size)
    return Judgement("inconclusive", "neither the claim's test nor its opposite rejects after correction",
                     deciding, deciding_against, family_size)
