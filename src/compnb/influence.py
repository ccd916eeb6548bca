"""Do artifacts drive a model's decisions? The first paper's artifact-influence analysis.

Word-level gradient saliency: a word's score is the sum of the L2 norms of ∂CE/∂(input embedding) over its
sub-word tokens (the softmax S of the paper is monotone in these norms, so its top-k is the same). Words are
the artifact test's words (`compnb.artifacts.word_spans`), aligned to sub-word tokens through the fast
tokenizer's character offsets, so the model sees exactly its training input. For NLI only hypothesis
words are ranked, as the artifacts were mined on hypotheses.

- sentence level: p(word in top-k | word is an artifact) against p(word in top-k), over sentences with
  more than k words;
- dataset level: the observed number of artifacts among all top-k slots against the number expected if
  the top-k were drawn at random from each sentence's words, with a one-sided binomial test.

Sensitivity (`sensitivity`): the same statistics with other ranked units, from the same gradient pass. The
unit is a word or a sub-word token of the ranked text (a token is an artifact when its word is), and the
special tokens ([CLS], [SEP], ...) are either left out or ranked too, each as a unit of its own (never an
artifact). Tokens outside the ranked text's words (punctuation, a premise) are never units, so the token
units of an example partition its word units and only the granularity changes between the two.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from compnb.artifacts import word_spans
from compnb.losses import METHODS, topk_entropy
from compnb.models import SequenceClassifier
from compnb.saliency import GradientSaliency, MaskSaliency, masked_softmax

UNITS = ("word", "token")
SPECIALS = ("excluded", "included")
COMBINATIONS = tuple((unit, specials) for unit in UNITS for specials in SPECIALS)
UNIT_COLUMNS = ["example", "word_index", "token", "unit", "score", "rank", "n_units", "in_topk", "artifact",
                "special"]


@dataclass(frozen=True)
class _Aligned:
    """One example's real tokens in input order — raw gradient norms (T,), the index of the ranked-text word
    holding each (T,; −1 for none), special-token flags (T,), token strings — and the ranked text's words."""
    norms: np.ndarray
    owner: np.ndarray
    special: np.ndarray
    tokens: list[str]
    words: list[str]


def _token_words(offsets: list[tuple[int, int]], sequence_ids: list[int | None], target: int,
                 starts: list[int], ends: list[int]) -> list[int]:
    """For each token, the index of the first word span its characters overlap (−1 outside the target text or
    words). Overlap, not the token's start: byte-level (OPT, GPT-2) and metaspace (Llama) tokens carry the space
    before their word ("Ġman" spans " man"), so their start lies outside the word."""
    owner = []
    for (start, end), seq in zip(offsets, sequence_ids):
        j = bisect_right(ends, start)  # the first word ending after the token starts
        owner.append(j if seq == target and end > start and j < len(starts) and starts[j] < end else -1)
    return owner


def _aligned(model: SequenceClassifier, tokenizer, texts: Sequence[str], labels: Sequence[int],
             pairs: Sequence[str] | None, max_length: int, batch_size: int) -> Iterator[_Aligned]:
    """Every example's `_Aligned` tokens, in order, from one gradient pass per batch over the training input
    (premise first when `pairs` is given; `texts` is the ranked text)."""
    device = next(model.parameters()).device
    explainer = GradientSaliency(model)
    target = 1 if pairs is not None else 0
    for lo in tqdm(range(0, len(texts), batch_size), desc="gradient saliency", leave=False):
        batch_texts = list(texts[lo:lo + batch_size])
        args = (list(pairs[lo:lo + batch_size]), batch_texts) if pairs is not None else (batch_texts,)
        enc = tokenizer(*args, truncation=True, max_length=max_length, padding=True,
                        return_offsets_mapping=True, return_tensors="pt")
        label_batch = torch.as_tensor(labels[lo:lo + batch_size], device=device)
        segments = enc["token_type_ids"].to(device) if "token_type_ids" in enc else None
        norms = explainer.attribute(enc["input_ids"].to(device), enc["attention_mask"].to(device), label_batch,
                                    normalize=False, token_type_ids=segments).float().cpu().numpy()
        for b, text in enumerate(batch_texts):
            spans = word_spans(text)
            real = enc["attention_mask"][b].bool().numpy()
            sequence = enc.sequence_ids(b)
            owner = _token_words(enc["offset_mapping"][b].tolist(), sequence, target,
                                 [s for _, s, _ in spans], [e for _, _, e in spans])
            yield _Aligned(norms=norms[b, real], owner=np.asarray(owner)[real],
                           special=np.array([seq is None for seq in sequence])[real],
                           tokens=tokenizer.convert_ids_to_tokens(enc["input_ids"][b, real].tolist()),
                           words=[w for w, _, _ in spans])


def _units(ex: _Aligned, unit: str, specials: str) -> list[tuple[int, int, str, float]]:
    """One example's units in reading order, each (ranked-text word index, −1 for a special token; index of
    its first token; text; score, the summed raw norms of its tokens). Units are the ranked text's words or
    tokens, plus each special token when `specials` is "included"."""
    units: dict[tuple[int, int], list] = {}  # key → [first token, text, score]
    for t, (j, special) in enumerate(zip(ex.owner.tolist(), ex.special.tolist())):
        if j < 0 and not (special and specials == "included"):
            continue
        key = (j, -1) if unit == "word" and j >= 0 else (j, t)
        text = ex.words[j] if unit == "word" and j >= 0 else ex.tokens[t]
        units.setdefault(key, [t, text, 0.0])[2] += float(ex.norms[t])
    return [(j, t, text, score) for (j, _), (t, text, score) in units.items()]


def _rows(example: int, ex: _Aligned, unit: str, specials: str, artifact_words: set[str], k: int) -> list[tuple]:
    """`UNIT_COLUMNS` rows of one example's units, in rank order (ties keep reading order)."""
    ranked = sorted(_units(ex, unit, specials), key=lambda u: -u[3])
    return [(example, j, t, text, score, rank, len(ranked), rank <= k, j >= 0 and ex.words[j] in artifact_words,
             j < 0) for rank, (j, t, text, score) in enumerate(ranked, start=1)]


def _unit_tables(aligned: Iterable[_Aligned], artifact_words: set[str], k: int,
                 combinations: Sequence[tuple[str, str]]) -> dict[tuple[str, str], pd.DataFrame]:
    """(unit, specials) → its unit table, over the examples whose ranked text kept at least one word."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k!r}")
    rows: dict[tuple[str, str], list[tuple]] = {c: [] for c in combinations}
    for example, ex in enumerate(aligned):
        if (ex.owner >= 0).any():
            for unit, specials in combinations:
                rows[unit, specials].extend(_rows(example, ex, unit, specials, artifact_words, k))
    return {c: pd.DataFrame(r, columns=UNIT_COLUMNS) for c, r in rows.items()}


def word_saliency(model: SequenceClassifier, tokenizer, texts: Sequence[str], labels: Sequence[int],
                  artifact_words: set[str], *, k: int = 5, pairs: Sequence[str] | None = None,
                  max_length: int = 128, batch_size: int = 64) -> pd.DataFrame:
    """One row per (example, word) of the ranked text, in rank order: example, position (the word's index in
    its text), word, score, rank (1 = most salient), n_words, in_topk, artifact. `texts` is the ranked text
    (sentence or hypothesis); `pairs`, if given, the premise placed first in each input, as in training."""
    aligned = _aligned(model, tokenizer, texts, labels, pairs, max_length, batch_size)
    return word_saliency_of(_unit_tables(aligned, artifact_words, k, [("word", "excluded")]))


def word_saliency_of(tables: dict[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """`word_saliency`'s table from unit tables holding the (word, excluded) one (`unit_saliency`'s), so that
    one gradient pass serves both."""
    return (tables["word", "excluded"].drop(columns=["token", "special"])
            .rename(columns={"word_index": "position", "unit": "word", "n_units": "n_words"}))


def unit_saliency(model: SequenceClassifier, tokenizer, texts: Sequence[str], labels: Sequence[int],
                  artifact_words: set[str], *, pairs: Sequence[str] | None = None, k: int = 5,
                  max_length: int = 128, batch_size: int = 64) -> dict[tuple[str, str], pd.DataFrame]:
    """(unit, specials) → unit table for each of `COMBINATIONS`, all from one gradient pass; arguments as
    `word_saliency`. A unit table has one row per (example, unit), in rank order: example, word_index (the
    ranked-text word the unit is or lies in; −1 for a special token), token (the index of its first token
    among the example's real tokens, in input order), unit (the word, the token as the tokenizer writes it,
    or the special token), score (summed raw gradient norms of its tokens), rank, n_units, in_topk,
    artifact, special. Every table covers the same examples: those with a ranked word."""
    aligned = _aligned(model, tokenizer, texts, labels, pairs, max_length, batch_size)
    return _unit_tables(aligned, artifact_words, k, COMBINATIONS)


def sentence_level(table: pd.DataFrame, k: int = 5) -> dict:
    """p(top-k | artifact) and p(top-k) over the words of sentences with more than k words."""
    long = table[table["n_words"] > k]
    artifacts = long[long["artifact"]]
    return {"sentences": int(long["example"].nunique()), "words": len(long), "artifact_words": len(artifacts),
            "p_topk_given_artifact": float(artifacts["in_topk"].mean()) if len(artifacts) else float("nan"),
            "p_topk": float(long["in_topk"].mean()) if len(long) else float("nan")}


TOPK_COLUMNS = ["sentence", "slots", "artifacts_in_topk"]


def topk_per_sentence(table: pd.DataFrame) -> pd.DataFrame:
    """Per analysed sentence, for a test paired by sentence (two runs ranking the same validation rows):
    `sentence` (the validation row index, `word_saliency`'s example), `slots` (its top-k slots, min(k, words))
    and `artifacts_in_topk` (how many of them artifacts hold). `table`: a word or unit table (columns example,
    in_topk, artifact). Summed over sentences, slots and artifacts_in_topk are `dataset_level`'s slots and
    observed."""
    if not len(table):
        return pd.DataFrame({c: pd.Series(dtype=int) for c in TOPK_COLUMNS})
    per = (table.assign(hit=table["artifact"].astype(bool) & table["in_topk"].astype(bool))
           .groupby("example", sort=True).agg(slots=("in_topk", "sum"), artifacts_in_topk=("hit", "sum")))
    return (per.astype(int).rename_axis("sentence").reset_index()[TOPK_COLUMNS])


def dataset_level(table: pd.DataFrame, k: int = 5, confidence: float = 0.95) -> dict:
    """Observed vs expected artifacts among the top-k words (or units), with a one-sided binomial test.

    `table`: one row per ranked unit with columns example, in_topk, artifact (`word_saliency`'s or a
    `unit_saliency` table). Expected: Σ_s min(k, n_s)·a_s/n_s for a sentence s of n_s units, a_s of them
    artifacts (the mean of a random top-k). The test treats the Σ_s min(k, n_s) top-k slots as trials with
    the pooled rate expected/slots; the interval is Clopper–Pearson on the observed rate, in counts.
    """
    per = (table.assign(hit=table["artifact"] & table["in_topk"]).groupby("example")
           .agg(n=("artifact", "size"), a=("artifact", "sum"), observed=("hit", "sum")))
    slots = np.minimum(k, per["n"]).astype(int)
    expected = float((slots * per["a"] / per["n"]).sum())
    trials, observed = int(slots.sum()), int(per["observed"].sum())
    test = stats.binomtest(observed, trials, expected / trials, alternative="greater")
    ci = stats.binomtest(observed, trials).proportion_ci(confidence_level=confidence, method="exact")
    return {"k": k, "sentences": len(per), "slots": trials, "observed": observed, "expected": expected,
            "ratio": observed / expected if expected else float("nan"), "p_value": float(test.pvalue),
            "observed_low": ci.low * trials, "observed_high": ci.high * trials}


def unit_summary(table: pd.DataFrame, k: int = 5) -> dict:
    """`dataset_level` of a `unit_saliency` table, plus entropy_topk: the mean over examples of the entropy
    (nats) of the top-k of S, the softmax of the unit scores over the example's units, renormalised;
    entropy_max: log k, its largest value; special_share: the mean share of an example's top-k slots held by
    special tokens."""
    examples = torch.tensor(pd.factorize(table["example"])[0])
    scores = torch.full((int(examples.max()) + 1, int(table["n_units"].max())), float("-inf"), dtype=torch.float64)
    scores[examples, torch.tensor(table["rank"].to_numpy()) - 1] = torch.tensor(table["score"].to_numpy())
    s = masked_softmax(scores, scores.isfinite())
    top = table[table["in_topk"]]
    return {**dataset_level(table, k), "entropy_topk": float(topk_entropy(s, k).mean()), "entropy_max": math.log(k),
            "special_share": float(top.groupby("example")["special"].mean().mean())}


def sensitivity(model: SequenceClassifier, tokenizer, texts: Sequence[str], labels: Sequence[int],
                artifact_words: set[str], *, pairs: Sequence[str] | None = None, k: int = 5,
                max_length: int = 128, batch_size: int = 64) -> pd.DataFrame:
    """The artifact statistics under each ranked unit set, from one gradient pass (arguments as
    `word_saliency`): one row per (unit, specials) of `COMBINATIONS`, with columns unit ("word" or "token"),
    specials ("excluded" or "included"), then `unit_summary`'s: k, sentences, slots, observed, expected,
    ratio, p_value, observed_low, observed_high (counts of top-k slots), entropy_topk, entropy_max (nats),
    special_share. The word/excluded row is `dataset_level` of `word_saliency`'s table."""
    return sensitivity_of(unit_saliency(model, tokenizer, texts, labels, artifact_words, pairs=pairs, k=k,
                                        max_length=max_length, batch_size=batch_size), k)


def sensitivity_of(tables: dict[tuple[str, str], pd.DataFrame], k: int = 5) -> pd.DataFrame:
    """`sensitivity`'s table from `unit_saliency`'s tables (made with the same `k`)."""
    return pd.DataFrame([{"unit": unit, "specials": specials, **unit_summary(table, k)}
                         for (unit, specials), table in tables.items()])


def _loss_saliency(model: SequenceClassifier, tokenizer, method: str, texts: Sequence[str],
                   pairs: Sequence[str] | None, labels: Sequence[int], max_length: int) -> tuple[dict, torch.Tensor]:
    """(the tokenizer's encoding of the batch, padded; S (B, T) over its real tokens, 0 on padding): the competency
    loss's own S, `method` "gradient" (softmax of ∂CE/∂embedding norms) or "mask" (softmax of abs(Δp(label)) when
    a token is dropped), in eval mode."""
    device = next(model.parameters()).device
    args = (list(pairs), list(texts)) if pairs is not None else (list(texts),)
    enc = tokenizer(*args, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    segments = enc["token_type_ids"].to(device) if "token_type_ids" in enc else None
    y = torch.as_tensor(list(labels), device=device)
    if method == "gradient":
        return enc, GradientSaliency(model).attribute(ids, mask, y, token_type_ids=segments).float()
    scores = MaskSaliency(model).attribute(ids, mask, y, max_batch=1024, token_type_ids=segments).float()
    return enc, masked_softmax(scores, mask)


def saliency_entropy(model: SequenceClassifier, tokenizer, texts: Sequence[str], labels: Sequence[int], *,
                     pairs: Sequence[str] | None = None, max_length: int = 128, batch_size: int = 64,
                     method: str = "gradient", k: int = 5) -> pd.DataFrame:
    """Per example: `entropy` (nats) of the saliency distribution S over all its real tokens, `entropy_topk`
    of its k largest entries renormalised (the quantity chapter 3's loss raises), and `tokens`, their number
    (log(tokens) is the entropy of a uniform S). S is the competency loss's own (`_loss_saliency`)."""
    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; allowed: {', '.join(METHODS)}")
    out = []
    for lo in tqdm(range(0, len(texts), batch_size), desc=f"{method} saliency entropy", leave=False):
        chunk = slice(lo, lo + batch_size)
        enc, s = _loss_saliency(model, tokenizer, method, texts[chunk], None if pairs is None else pairs[chunk],
                                labels[chunk], max_length)
        entropy = -(s * s.clamp_min(1e-30).log()).sum(-1)
        out.append(pd.DataFrame({"entropy": entropy.cpu().numpy(), "entropy_topk": topk_entropy(s, k).cpu().numpy(),
                                 "tokens": enc["attention_mask"].sum(-1).numpy()}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=["entropy", "entropy_topk", "tokens"])


def token_maps(model: SequenceClassifier, tokenizer, texts: Sequence[str], labels: Sequence[int], *,
               pairs: Sequence[str] | None = None, max_length: int = 128, method: str = "gradient"
               ) -> list[dict]:
    """Per example, its saliency map as `saliency_entropy` computes S (the competency loss's own, eval mode):
    {"tokens": the tokenizer's tokens, special ones included (T,), "scores": S over them (T,), summing to 1},
    one example at a time so that no padding enters."""
    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; allowed: {', '.join(METHODS)}")
    out = []
    for i, label in enumerate(labels):
        enc, s = _loss_saliency(model, tokenizer, method, texts[i:i + 1], None if pairs is None else pairs[i:i + 1],
                                [label], max_length)
        out.append({"tokens": tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist()),
                    "scores": [round(float(v), 6) for v in s[0].cpu()]})
    return out
