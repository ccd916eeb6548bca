"""compnb.verdicts: each rule pinned against scipy/statsmodels (or simulation) on made-up data whose right
verdict is known."""

import math

import numpy as np
import pytest
from scipy import stats

from compnb import evaluation, verdicts as v


def judge(evidence, combine="one", family=None):
    family = list(family) if family is not None else [evidence] if not isinstance(evidence, list) else evidence
    p, against = v.adjust(family)
    k = len(evidence) if isinstance(evidence, list) else 1
    return v.decide(p[:k], against[:k], combine, v.family_size(family))


def test_paired_direction_matches_scipy_one_sided_paired_t():
    a, b = np.array([0.81, 0.83, 0.82, 0.84]), np.array([0.80, 0.80, 0.81, 0.82])
    e = v.paired_direction(a, b, +1)
    assert e.p == pytest.approx(stats.ttest_rel(a, b, alternative="greater").pvalue)
    assert e.p_against == pytest.approx(stats.ttest_rel(a, b, alternative="less").pvalue)
    low, high = stats.t.interval(0.95, 3, loc=(a - b).mean(), scale=stats.sem(a - b))
    assert (e.low, e.high) == pytest.approx((low, high))


def test_opposite_sign_inside_a_wide_interval_is_inconclusive_not_reproduced():
    # paper 3's accuracy claim: the paper's +0.0045 lies inside our wide interval, ours has the other sign
    ours = np.array([-0.015, 0.008, -0.008])
    e = v.paired_direction(ours, np.zeros(3), +1, target=0.0045)
    assert e.low < 0.0045 < e.high and e.estimate < 0
    assert judge(e).verdict == "inconclusive"
    assert e.units_needed > 3  # and it says how many seeds would be needed


def test_significant_opposite_direction_is_contradicted():
    e = v.paired_direction([-0.031, -0.030, -0.029, -0.032], [0, 0, 0, 0], +1)
    assert judge(e).verdict == "contradicted"


def test_non_significance_never_reproduces_an_equivalence_claim():
    # p = 0.074 for a difference (the old rule said "reproduced"); TOST with a 0.01 margin cannot tell
    treated, control = np.array([0.860, 0.855, 0.861]), np.array([0.862, 0.859, 0.861])
    assert stats.ttest_rel(treated, control).pvalue > 0.05
    e = v.paired_equivalence(treated, control, margin=0.001)
    assert judge(e).verdict == "inconclusive"


def test_tost_matches_two_scipy_one_sided_tests():
    a, b = np.array([0.801, 0.804, 0.802, 0.803, 0.800]), np.array([0.800, 0.803, 0.803, 0.801, 0.801])
    d, m = a - b, 0.01
    e = v.paired_equivalence(a, b, m)
    lower = stats.ttest_1samp(d, -m, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, m, alternative="less").pvalue
    assert e.p == pytest.approx(max(lower, upper))
    assert judge(e).verdict == "reproduced"


def test_equivalence_contradicted_when_the_difference_lies_beyond_the_margin():
    e = v.paired_equivalence([0.90, 0.91, 0.905, 0.908], [0.80, 0.80, 0.801, 0.799], margin=0.01)
    assert judge(e).verdict == "contradicted"


def test_three_events_are_inconclusive_whatever_their_direction():
    e = v.sign_test(3, 0, label="ambiguity, 3 fixed vs 0 introduced", unit="pairs")
    assert e.p == pytest.approx(0.125)
    assert math.isnan(e.mde)  # no share of wins is detectable with three untied units
    assert judge(e).verdict == "inconclusive"


def test_sign_test_drops_ties_and_counts_them():
    e = v.sign_test(6, 1, 2)
    assert e.n == 7 and e.ties == 2
    assert e.p == pytest.approx(stats.binomtest(6, 7, 0.5, alternative="greater").pvalue)
    # counting the two ties as losses would have given another p
    assert e.p != pytest.approx(stats.binomtest(6, 9, 0.5, alternative="greater").pvalue)


def test_family_size_decides_the_verdict():
    # raw one-sided p of about 0.013: significant alone, not in a family of 12 with nothing else significant
    e = v.paired_direction([0.012, 0.015, 0.009], [0, 0, 0], +1)
    assert 0.01 < e.p < 0.05
    assert judge(e).verdict == "reproduced"
    others = [v.paired_direction([0.01, -0.01, 0.002], [0, 0, 0], +1) for _ in range(11)]
    assert judge(e, family=[e] + others).verdict == "inconclusive"


def test_holm_matches_the_hand_written_holm_and_bonferroni():
    rng = np.random.default_rng(0)
    evidence = [v.paired_direction(rng.normal(0.01, 0.01, 4), np.zeros(4), +1) for _ in range(7)]
    p, against = v.adjust(evidence)
    assert p == pytest.approx(evaluation.holm([e.p for e in evidence]))
    assert against == pytest.approx(np.minimum(1, 7 * np.array([e.p_against for e in evidence])))


def test_untestable_members_do_not_enlarge_the_family():
    flat = v.paired_direction([0.01, 0.01, 0.01], [0, 0, 0], +1)  # no spread: a t-test cannot weigh it
    real = v.paired_direction([0.012, 0.015, 0.009], [0, 0, 0], +1)
    assert math.isnan(flat.p)
    p, _ = v.adjust([flat, real])
    assert math.isnan(p[0]) and p[1] == pytest.approx(real.p)
    assert v.family_size([flat, real]) == 1


def test_t_mde_reaches_the_stated_power_by_the_noncentral_t():
    n, sd = 3, 0.005
    mde = v.t_mde(n, sd)
    crit = stats.t.ppf(0.95, n - 1)
    power = stats.nct.sf(crit, n - 1, mde / sd * math.sqrt(n))
    assert power == pytest.approx(0.8, abs=1e-6)


def test_t_units_needed_is_the_smallest_n_with_enough_power():
    effect, sd = 0.004, 0.005
    n = int(v.t_units_needed(effect, sd))
    power = lambda m: stats.nct.sf(stats.t.ppf(0.95, m - 1), m - 1, effect / sd * math.sqrt(m))
    assert power(n) >= 0.8 > power(n - 1)


def test_sign_power_agrees_with_simulation():
    rng = np.random.default_rng(1)
    n, share = 20, 0.75
    wins = rng.binomial(n, share, size=40_000)
    simulated = np.mean([stats.binomtest(int(w), n, 0.5, alternative="greater").pvalue <= 0.05
                         for w in np.unique(wins) for _ in range(int((wins == w).sum()))])
    assert v.sign_power(n, share) == pytest.approx(simulated, abs=0.01)
    assert v.sign_power(n, v.sign_mde(n)) == pytest.approx(0.8, abs=1e-6)


def test_every_class_needs_every_test_and_some_configuration_needs_one():
    strong = v.paired_direction([0.03, 0.031, 0.029, 0.032], [0, 0, 0, 0], +1)
    weak = v.paired_direction([0.01, -0.01, 0.003, 0.0], [0, 0, 0, 0], +1)
    assert judge([strong, weak], combine="all").verdict == "inconclusive"
    assert judge([strong, weak], combine="any").verdict == "reproduced"
    assert judge([strong, strong], combine="all").verdict == "reproduced"


def test_bad_input_is_refused_with_the_value():
    with pytest.raises(ValueError, match="margin"):
        v.paired_equivalence([1, 2], [1, 2], margin=0)
    with pytest.raises(ValueError, match="combine"):
        v.decide([0.01], [0.9], combine="most")
    with pytest.raises(ValueError, match="pair up"):
        v.paired_direction([1, 2, 3], [1, 2], +1)


def test_a_clustered_share_inflates_the_variance_by_the_cluster_size():
    successes, trials, expected, m = 1507, 4326, 0.4556, 5
    e = v.clustered_share(successes, trials, expected, m)
    share = successes / trials
    z = (share - expected) / math.sqrt(expected * (1 - expected) * m / trials)  # variance × the design effect
    assert e.p_against == pytest.approx(stats.norm.cdf(z), rel=1e-6)
    assert e.p == pytest.approx(stats.norm.sf(z), rel=1e-6)
    single = v.clustered_share(successes, trials, expected, 1)
    assert single.p_against < e.p_against  # ignoring the clusters overstates the evidence
    near = v.clustered_share(460, 1000, 0.4556, 5)
    assert judge(near).verdict == "inconclusive"
