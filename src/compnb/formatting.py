"""Numbers as the book prints them, one way everywhere: signed differences, p-values, intervals inside a
metric's bounds and three significant figures. No "-0.000", no "+9.42e-07", no interval reaching past what
the metric can take. And the words around numbers in generated sentences: plurals, articles, lists, counts."""

from __future__ import annotations

import math
from collections.abc import Iterable

SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def sig(x: float, figures: int = 3) -> str:
    """`x` to `figures` significant figures, without an exponent from 0.001 to 10⁶ (3.14, 0.0123, 1,230),
    as a × 10ⁿ outside that range; '' for NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if -3 <= magnitude < 6:
        places = figures - 1 - magnitude  # negative: round to tens, hundreds, ...
        return f"{round(x, places):,.{max(places, 0)}f}"
    mantissa = x / 10**magnitude
    return f"{mantissa:.{figures - 1}f} × 10{str(magnitude).translate(SUPERSCRIPT)}"


def signed(x: float, decimals: int = 3) -> str:
    """A difference with its sign to `decimals` places ('+0.012', '-0.012'); one that rounds to zero prints
    as '0.000' (its sign is noise at that precision), never '-0.000'; '' for NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if round(x, decimals) == 0:
        return f"{0:.{decimals}f}"
    return ("+" if x > 0 else "-") + f"{abs(x):.{decimals}f}"


def signed_sig(x: float, figures: int = 3) -> str:
    """A difference of a quantity without a natural scale, with its sign, to `figures` significant figures
    ('+0.0123', '-9.42 × 10⁻⁷'); '' for NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return ("+" if x > 0 else "-" if x < 0 else "") + sig(abs(x), figures)


def pvalue(p: float) -> str:
    """A p-value: '< 0.001' below it, else two significant figures ('0.026', '0.27', '1')."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    if p < 0.001:
        return "< 0.001"
    text = f"{p:.2g}"
    return "1" if float(text) >= 1 else text


def interval(low: float, high: float, decimals: int = 3, bounds: tuple[float, float] | None = None,
             with_sign: bool = False) -> str:
    """'[low, high]' to `decimals` places, clipped to the metric's `bounds` (say (0, 1) for an accuracy,
    (-inf, 1) for R²); `with_sign` prints the ends as `signed` differences."""
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    show = (lambda v: signed(v, decimals)) if with_sign else (lambda v: f"{v:.{decimals}f}")
    return f"[{show(low)}, {show(high)}]"


def span(values, decimals: int = 2, kind: str = "f") -> str:
    """The range of `values` (a Series or an array) as 'low–high' in format `.{decimals}{kind}`
    ('0.841–0.873', '31%–38%'), or one number when both ends print alike."""
    low, high = f"{values.min():.{decimals}{kind}}", f"{values.max():.{decimals}{kind}}"
    return low if low == high else f"{low}–{high}"


def p_text(p: float) -> str:
    """'p = 0.026' or 'p < 0.001', for prose."""
    text = pvalue(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def parse_number(text: str) -> float:
    """The float a formatter printed: '+0.012', '-9.42 × 10⁻⁷', '1,230'."""
    text = text.strip().replace(",", "")
    if "×" not in text:
        return float(text)
    mantissa, power = text.split("×")
    exponent = power.strip().removeprefix("10").translate(str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789"))
    return float(mantissa) * 10 ** int(exponent)


def parse_interval(text: str) -> tuple[float, float]:
    """(low, high) of an interval an `interval` or the chapters printed: '[-0.023, +0.023]'."""
    low, high = text.strip().strip("[]").split(", ")
    return parse_number(low), parse_number(high)


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 row', '3 rows', '2 processes' (`many` where adding 's' is wrong)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def article(n: int) -> str:
    """'a' or 'an' before the number `n` read aloud: 'an 8', 'an 18', 'an 11,000', 'an 800', 'a 1,003'."""
    digits = str(abs(int(n)))
    return "an" if digits[0] == "8" or (len(digits) % 3 == 2 and digits[:2] in ("11", "18")) else "a"


def listing(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")


def count_word(n: int) -> str:
    """A count in words up to twelve ('three'), in digits above ('16')."""
    return _WORDS[n] if 0 <= n < len(_WORDS) else f"{n:,}"


def times(n: int) -> str:
    """'once', 'twice', 'three times', '16 times'."""
    return {1: "once", 2: "twice"}.get(n, f"{count_word(n)} times")


def int_span(values: Iterable[float]) -> str:
    """The range of integer `values` with thousands separators: '16,000', or '3–8' where they differ."""
    low, high = int(min(values)), int(max(values))
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"
