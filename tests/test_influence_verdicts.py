"""The top-k artifact sentence judges over-representation with a sentence's slots as one trial."""

import pandas as pd
from scipy import stats

from compnb import reporting


def test_a_slot_level_significance_that_vanishes_with_clustered_slots_is_not_called_significant():
    slots, expected, observed = 1000, 200.0, 228  # 22.8% against 20%
    slot_p = stats.binomtest(observed, slots, expected / slots, alternative="greater").pvalue
    assert slot_p < 0.05
    row = {"dataset": "sst2", "seed": 0, "k": 5, "top-k slots": slots, "observed": observed, "expected": expected,
           "observed / expected": observed / expected, "p-value": slot_p}
    text = reporting.influence_verdicts(pd.DataFrame([row]))
    assert "not supported" in text and "as one trial" in text
    strong = dict(row, observed=320, **{"observed / expected": 1.6})
    assert "is significant" in reporting.influence_verdicts(pd.DataFrame([strong]))
