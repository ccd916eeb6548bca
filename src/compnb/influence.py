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
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from compnb.artifacts import word_spans
from compnb.losses import METHODS, topk_entropy
from compnb.models import SequenceClassifier
from compnb.saliency import GradientSaliency, MaskSaliency, masked_softmax


def _token_words(offsets: list[tuple[int, int]], sequence_ids: list[int | None], target: int,
                 starts: list[int], ends: list[int]) -> list[int]:
    """For each token, the index of the word span containing it (−1 outside the target text or words)."""
    owner = []
    for (start, end), seq in zip(offsets, sequence_ids):
        j = bisect_right(starts, start) - 1
        owner.append(j if seq == target and end > start and j >= 0 and start < ends[j] else -1)
    return owner


def word_saliency(model: SequenceClassifier, tokenizer, texts: Sequence[str], labels: Sequence[int],
                  artifact_words: set[str], *, k: int = 5, pairs: Sequence[str] | None = None,
                  max_length: int = 128, batch_size: int = 64) -> pd.DataFrame:
    """One row per (example, word) of the ranked text, in rank order: example, position (the word's index in
    its text), word, score, rank (1 = most salient), n_words, in_topk, artifact. `texts` is the ranked text (sentence or hypothesis); `pairs`, if given,
    the premise placed first in each input, as in training."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k!r}")
    device = next(model.parameters()).device
    explainer = GradientSaliency(model)
    rows = []
    for lo in tqdm(range(0, len(texts), batch_size), desc="word saliency", leave=False):
        batch_texts = list(texts[lo:lo + batch_size])
        args = (list(pairs[lo:lo + batch_size]), batch_texts) if pairs is not None else (batch_texts,)
        enc = tokenizer(*args, truncation=True, max_length=max_length, padding=True,
                        return_offsets_mapping=True, return_tensors="pt")
        label_batch = torch.as_tensor(labels[lo:lo + batch_size], device=device)
        segments = enc["token_type_ids"].to(device) if "token_type_ids" in enc else None
        norms = explainer.attribute(enc["input_ids"].to(device), enc["attention_mask"].to(device), label_batch,
                                    normalize=False, token_type_ids=segments).float().cpu().numpy()
        target = 1 if pairs is not None else 0
        for b, text in enumerate(batch_texts):
            spans = word_spans(text)
            owner = _token_words(enc["offset_mapping"][b].tolist(), enc.sequence_ids(b), target,
                                 [s for _, s, _ in spans], [e for _, _, e in spans])
            scores: dict[int, float] = {}
            for t, j in enumerate(owner):
                if j >= 0:
                    scores[j] = scores.get(j, 0.0) + float(norms[b, t])
            ranked = sorted(scores, key=lambda j: -scores[j])
            for rank, j in enumerate(ranked, start=1):
                word = spans[j][0]
                rows.append((lo + b, j, word, scores[j], rank, len(ranked), rank <= k, word in artifact_words))
    return pd.DataFrame(rows, columns=["example", "position", "word", "score", "rank", "n_words", "in_topk",
                                       "artifact"])


def sentence_level(table: pd.DataFrame, k: int = 5) -> dict:
    """p(top-k | artifact) and p(top-k) over the words of sentences with more than k words."""
    long = table[table["n_words"] > k]
    artifacts = long[long["artifact"]]
    return {"sentences": int(long["example"].nunique()), "words": len(long), "artifact_words": len(artifacts),
            "p_topk_given_artifact": float(artifacts["in_topk"].mean()) if len(artifacts) else float("nan"),
            "p_topk": float(long["in_topk"].mean()) if len(long) else float("nan")}


def dataset_level(table: pd.DataFrame, k: int = 5, confidence: float = 0.95) -> dict:
    """Observed vs expected artifacts among the top-k words, with a one-sided binomial test.

    Expected: Σ_s min(k, n_s)·a_s/n_s for a sentence s of n_s words, a_s of them artifacts (the mean of a
    random top-k). The test treats the Σ_s min(k, n_s) top-k slots as trials with the pooled rate
    expected/slots; the interval is Clopper–Pearson on the observed rate, in counts.
    """
    per = (table.assign(hit=table["artifact"] & table["in_topk"]).groupby("example")
           .agg(n=("word", "size"), a=("artifact", "sum"), observed=("hit", "sum")))
    slots = np.minimum(k, per["n"]).astype(int)
    expected = float((slots * per["a"] / per["n"]).sum())
    trials, observed = int(slots.sum()), int(per["observed"].sum())
    test = stats.binomtest(observed, trials, expected / trials, alternative="greater")
    ci = stats.binomtest(observed, trials).proportion_ci(confidence_level=confidence, method="exact")
    return {"k": k, "sentences": len(per), "slots": trials, "observed": observed, "expected": expected,
            "ratio": observed / expected if expected else float("nan"), "p_value": float(test.pvalue),
            "observed_low": ci.low * trials, "observed_high": ci.high * trials}


def saliency_entropy(model: SequenceClassifier, tokenizer, texts: Sequence[str], labels: Sequence[int], *,
                     pairs: Sequence[str] | None = None, max_length: int = 128, batch_size: int = 64,
                     method: str = "gradient", k: int = 5) -> pd.DataFrame:
    """Per example: `entropy` (nats) of the saliency distribution S over all its real tokens, `entropy_topk`
    of its k largest entries renormalised (the quantity chapter 3's loss raises), and `tokens`, their number
    (log(tokens) is the entropy of a uniform S). S is the competency loss's own: `method` "gradient" (softmax
    of ∂CE/∂embedding norms) or "mask" (softmax of abs(Δp(label)) when a token is dropped), in eval mode."""
    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; allowed: {', '.join(METHODS)}")
    device = next(model.parameters()).device
    explainer = GradientSaliency(model) if method == "gradient" else MaskSaliency(model)
    out = []
    for lo in tqdm(range(0, len(texts), batch_size), desc=f"{method} saliency entropy", leave=False):
        args = ((list(pairs[lo:lo + batch_size]), list(texts[lo:lo + batch_size])) if pairs is not None
                else (list(texts[lo:lo + batch_size]),))
        enc = tokenizer(*args, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        segments = enc["token_type_ids"].to(device) if "token_type_ids" in enc else None
        y = torch.as_tensor(labels[lo:lo + batch_size], device=device)
        if method == "gradient":
            s = explainer.attribute(ids, mask, y, token_type_ids=segments).float()
        else:
            s = masked_softmax(explainer.attribute(ids, mask, y, max_batch=1024, token_type_ids=segments).float(), mask)
        entropy = -(s * s.clamp_min(1e-30).log()).sum(-1)
        out.append(pd.DataFrame({"entropy": entropy.cpu().numpy(), "entropy_topk": topk_entropy(s, k).cpu().numpy(),
                                 "tokens": enc["attention_mask"].sum(-1).numpy()}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=["entropy", "entropy_topk", "tokens"])
