"""The book's number formats."""

from __future__ import annotations

import math

import pytest

from compnb import formatting as fmt


@pytest.mark.parametrize("x, text", [(0.0123, "+0.012"), (-0.0123, "-0.012"), (-0.0004, "0.000"), (0.0, "0.000"),
                                     (1e-9, "0.000"), (math.nan, "")])
def test_signed_differences_never_print_minus_zero(x, text):
    assert fmt.signed(x) == text


@pytest.mark.parametrize("x, text", [(9.42e-07, "+9.42 × 10⁻⁷"), (-0.0123, "-0.0123"), (0.0, "0"), (1234.5, "+1,230")])
def test_scale_free_differences_keep_three_significant_figures(x, text):
    assert fmt.signed_sig(x) == text


@pytest.mark.parametrize("p, text", [(0.0004, "< 0.001"), (0.0261, "0.026"), (0.27, "0.27"), (0.999, "1"), (1.0, "1")])
def test_p_values(p, text):
    assert fmt.pvalue(p) == text


def test_intervals_stay_inside_the_metric_bounds():
    assert fmt.interval(-2.0, 2.135, bounds=(-math.inf, 1.0)) == "[-2.000, 1.000]"
    assert fmt.interval(-0.0231, 0.0232, with_sign=True) == "[-0.023, +0.023]"


@pytest.mark.parametrize("x, text", [(3.14159, "3.14"), (0.012345, "0.0123"), (67349, "67,300"), (2.5e-5, "2.50 × 10⁻⁵")])
def test_three_significant_figures(x, text):
    assert fmt.sig(x) == text


@pytest.mark.parametrize("x", [0.0123, -0.0123, 9.42e-07, -2.5e-05, 1234.5])
def test_printed_numbers_and_intervals_read_back(x):
    assert fmt.parse_number(fmt.signed_sig(x)) == pytest.approx(x, rel=5e-3)
    low, high = fmt.parse_interval(fmt.interval(x, 2 * abs(x) + 0.01, with_sign=True))
    assert (low, high) == pytest.approx((round(x, 3), round(2 * abs(x) + 0.01, 3)))


def test_p_text_reads_in_prose():
    assert fmt.p_text(0.0261) == "p = 0.026" and fmt.p_text(1e-5) == "p < 0.001"


@pytest.mark.parametrize("n, word", [(8, "an"), (18, "an"), (11, "an"), (80, "an"), (800, "an"), (8_000, "an"),
                                     (11_000, "an"), (18_500, "an"), (1, "a"), (1_003, "a"), (110, "a"),
                                     (1_100, "a"), (180, "a"), (118, "a"), (100_000, "a")])
def test_the_article_before_a_number_follows_how_it_is_read(n, word):
    assert fmt.article(n) == word


def test_plural_counts():
    assert (fmt.plural(1, "row"), fmt.plural(3, "row"), fmt.plural(2, "process", "processes")) == \
        ("1 row", "3 rows", "2 processes")


def test_listings_counts_in_words_times_and_integer_spans():
    assert (fmt.listing(["a"]), fmt.listing(["a", "b"]), fmt.listing(["a", "b", "c"])) == ("a", "a and b", "a, b and c")
    assert (fmt.count_word(0), fmt.count_word(3), fmt.count_word(12), fmt.count_word(16)) == ("no", "three", "twelve", "16")
    assert (fmt.times(1), fmt.times(2), fmt.times(3), fmt.times(1_200)) == ("once", "twice", "three times", "1,200 times")
    assert (fmt.int_span([16_000, 16_000.0]), fmt.int_span([3, 8, 5])) == ("16,000", "3–8")
