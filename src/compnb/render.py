"""Token attributions as coloured text in the HTML book."""

from __future__ import annotations

import html
from collections.abc import Sequence

from matplotlib import colormaps
from matplotlib.colors import to_hex


def _shaded(words: Sequence[str], scores: Sequence[float], caption: str, cmap: str, position, label: str) -> str:
    """The HTML paragraph both shadings share: each word's background is `cmap` at `position(score / top)`,
    top the largest |score|; white text on the darkest shades; `label` formats the hover value."""
    if len(words) != len(scores):
        raise ValueError(f"{len(words)} words but {len(scores)} scores")
    top = max((abs(s) for s in scores), default=0.0) or 1.0
    colours = colormaps[cmap]
    spans = []
    for word, score in zip(words, scores):
        text_colour = "white" if abs(score) / top > 0.6 else "black"
        spans.append(f'<span title="{score:{label}}" style="background:{to_hex(colours(position(score / top)))};'
                     f'color:{text_colour};padding:1px 3px;margin:1px;border-radius:3px">{html.escape(word)}</span>')
    head = f'<div style="font-size:0.85em;color:#555">{html.escape(caption)}</div>' if caption else ""
    return f'<div style="line-height:2.0;margin:0.4em 0">{head}{" ".join(spans)}</div>'


def saliency_html(words: Sequence[str], scores: Sequence[float], *, caption: str = "", cmap: str = "Reds") -> str:
    """An HTML paragraph with each word's background shaded by its score / max score (hover shows the score)."""
    return _shaded(words, scores, caption, cmap, lambda r: 0.85 * abs(r), ".3g")


def signed_html(words: Sequence[str], scores: Sequence[float], *, caption: str = "", cmap: str = "RdBu_r") -> str:
    """An HTML paragraph with each word shaded on a diverging scale centred at 0, scaled by the largest `|score|`:
    red for positive scores, blue for negative (hover shows the score)."""
    return _shaded(words, scores, caption, cmap, lambda r: 0.5 + 0.45 * r, "+.3g")  # 0.05 … 0.95


def example_html(example: dict, label_names: Sequence[str]) -> str:
    """One analysed example (as stored by `compnb.chapters.baseline.analyse`): its premise, if any, then its ranked
    words shaded by saliency, artifacts underlined, with gold label and prediction in the caption."""
    gold, pred = label_names[example["label"]], label_names[example["prediction"]]
    verdict = "correct" if gold == pred else "wrong"
    caption = f"gold: {gold} · predicted: {pred} ({verdict})"
    words = example["words"]
    body = saliency_html([w["word"] for w in words], [w["score"] for w in words], caption=caption)
    for w in words:
        if w["artifact"]:
            escaped = html.escape(w["word"])
            body = body.replace(f">{escaped}</span>", f"><u>{escaped}</u></span>", 1)
    premise = (f'<div style="font-size:0.85em;color:#333">premise: {html.escape(example["premise"])}</div>'
               if example.get("premise") else "")
    return premise + body
