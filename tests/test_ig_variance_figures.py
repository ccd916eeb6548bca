"""Chapter 5's figures for paper 3's Figures 8 and 9 pass the book's readability checks and show what they say."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from compnb.chapters import ig_variance_report  # noqa: E402
from test_figures import assert_readable, ig_records  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    """Close this module's figures: a later `plt.gca()` (test_figures' artifact scatter) would draw on them."""
    yield
    plt.close("all")


def test_per_class_figure_is_readable_and_draws_one_dot_per_run_and_class():
    records, labels = ig_records()
    table = ig_variance_report.per_class(records, labels)
    fig = assert_readable(ig_variance_report.plot_per_class(table))
    left, right = fig.axes[:2]
    assert left.get_ylabel().startswith("recall") and right.get_ylabel().startswith("recall −")
    dots = sum(len(c.get_offsets()) for c in left.collections)
    assert dots == len(table)  # 3 variants × 3 seeds × 3 classes
    assert sum(len(c.get_offsets()) for c in right.collections) == 2 * 3 * 3


def test_per_seed_length_figure_is_readable_with_a_line_per_seed():
    records, labels = ig_records()
    seeds = ig_variance_report.error_by_length_seeds(records, labels, np.random.default_rng(0).integers(8, 60, len(labels)))
    fig = assert_readable(ig_variance_report.plot_error_by_length_seeds(seeds))
    for ax in fig.axes:
        assert len(ax.get_lines()) == 3 + 1  # each seed and the baseline's mean
        assert ax.get_xlabel() == "words (pair)"
