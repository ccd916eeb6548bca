"""The second paper's gradient-guided attack on NLI hypotheses, the adversarial set built from it, and the
error analysis of a retrained model.

- `GradientMaskAttack(model).attribute(...)`: per-token score Σ_d abs(∂CE(true label)/∂e_{t,d}) (B, T), the summed
  absolute gradient of the loss with respect to the input embedding; `choose` takes the arg-max over the
  hypothesis's real, non-special tokens (premise and special tokens are never chosen).
- `attack_pairs`: batches of (premise, hypothesis) pairs → the hypothesis with the chosen token's characters
  replaced by the tokenizer's mask token. Text in, text out, so adversarial pairs feed the same training
  loop; re-tokenising puts the mask token exactly where the chosen token was (a sub-word keeps its
  neighbours). Tokenizers without a mask token (GPT-style decoders) use their unknown token, else they
  are refused: `mask_substitute` says which.
- `premise_split`, `balanced`: premise-disjoint partitions and class-balanced draws, so the examples an
  adversarial set is built and trained from never share a premise with those it is evaluated on.
- `subsets`, `error_changes`: the paper's negation / ambiguity / long subsets and the fixed / introduced /
  remaining errors between two models.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from compnb.models import SequenceClassifier
from compnb.saliency import analysis_mode

NEGATION_WORDS = ("no", "not", "never", "nobody", "nothing", "none", "neither", "nor", "nowhere", "cannot", "n't")
AMBIGUITY_WORDS = ("some", "might", "may", "could", "possibly", "perhaps", "probably", "maybe", "likely",
                   "sometimes", "several", "many", "few", "about", "around", "almost", "nearly")
LONG_WORDS = 20  # a pair is long when either sentence has more words than this


def mask_substitute(tokenizer) -> str:
    """The string that replaces an attacked token: the mask token, else the unknown token (GPT-style
    tokenizers), else a ValueError naming the tokenizer."""
    for token in (tokenizer.mask_token, tokenizer.unk_token):
        if token:
            return token
    raise ValueError(f"tokenizer {type(tokenizer).__name__} has neither a mask nor an unknown token; "
                     f"the attack needs one of them to replace the chosen token")


class GradientMaskAttack:
    """The gradient-guided one-token attack; Captum-style: build on a model, call `attribute`."""

    def __init__(self, model: SequenceClassifier):
        self.model = model

    def attribute(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                  **model_kwargs) -> torch.Tensor:
        """Scores (B, T): Σ over embedding dims of abs(∂CE(true label)/∂embedding), 0 on padding; eval mode."""
        with analysis_mode(self.model, False), torch.enable_grad():
            embeds = self.model.embeddings(input_ids).detach().requires_grad_()
            logits = self.model(inputs_embeds=embeds, attention_mask=attention_mask, **model_kwargs)
            loss = F.cross_entropy(logits.float(), labels, reduction="sum")  # each row's gradient is its own
            (grads,) = torch.autograd.grad(loss, embeds)
        return grads.abs().sum(-1).float().masked_fill(~attention_mask.bool(), 0.0)

    @staticmethod
    def choose(scores: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Position (B,) of the highest score among `candidates` (B, T) bool; a ValueError if a row has none."""
        empty = ~candidates.any(-1)
        if empty.any():
            raise ValueError(f"rows {empty.nonzero().flatten().tolist()} have no hypothesis token to attack")
        return scores.masked_fill(~candidates, float("-inf")).argmax(-1)


def attack_pairs(model: SequenceClassifier, tokenizer, premises: Sequence[str], hypotheses: Sequence[str],
                 labels: Sequence[int], *, max_length: int = 128, batch_size: int = 64) -> pd.DataFrame:
    """Attack every pair; one row per pair: premise, hypothesis (attacked), original, label, token (the
    replaced token), start/end (its character span in the original hypothesis)."""
    device = next(model.parameters()).device
    attack, substitute, rows = GradientMaskAttack(model), mask_substitute(tokenizer), []
    for lo in tqdm(range(0, len(premises), batch_size), desc="attack", leave=False):
        p, h = list(premises[lo:lo + batch_size]), list(hypotheses[lo:lo + batch_size])
        enc = tokenizer(p, h, truncation=True, max_length=max_length, padding=True,
                        return_offsets_mapping=True, return_special_tokens_mask=True, return_tensors="pt")
        hyp = torch.tensor([[sid == 1 for sid in enc.sequence_ids(i)] for i in range(len(p))])
        candidates = hyp & ~enc["special_tokens_mask"].bool() & enc["attention_mask"].bool()
        extra = {"token_type_ids": enc["token_type_ids"].to(device)} if "token_type_ids" in enc else {}
        scores = attack.attribute(enc["input_ids"].to(device), enc["attention_mask"].to(device),
                                  torch.as_tensor(labels[lo:lo + batch_size], device=device), **extra).cpu()
        chosen = GradientMaskAttack.choose(scores, candidates)
        for i, t in enumerate(chosen.tolist()):
            start, end = enc["offset_mapping"][i, t].tolist()
            rows.append({"premise": p[i], "hypothesis": h[i][:start] + substitute + h[i][end:], "original": h[i],
                         "label": int(labels[lo + i]), "token": h[i][start:end], "start": start, "end": end})
    return pd.DataFrame(rows, columns=["premise", "hypothesis", "original", "label", "token", "start", "end"])


def premise_split(premises: Sequence[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (a, b) of a partition by premise: about `fraction` of the distinct premises go to b, with
    all their rows; no premise is in both."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    premises = np.asarray(premises, dtype=object)
    distinct = np.array(sorted(set(premises)), dtype=object)
    held = set(np.random.default_rng(seed).choice(distinct, size=max(1, round(fraction * len(distinct))),
                                                  replace=False))
    in_b = np.array([p in held for p in premises])
    return np.flatnonzero(~in_b), np.flatnonzero(in_b)


def balanced(labels: Sequence[int], per_class: int, seed: int) -> tuple[np.ndarray, dict[int, int]]:
    """Row indices of a class-balanced draw of up to `per_class` rows per label (all of a class that has
    fewer), and the count drawn per label."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class!r}")
    labels, rng = np.asarray(labels), np.random.default_rng(seed)
    chosen, counts = [], {}
    for label in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == label)
        take = rng.choice(rows, size=min(per_class, len(rows)), replace=False)
        chosen.append(take)
        counts[int(label)] = len(take)
    return np.sort(np.concatenate(chosen)), counts


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:'[a-z]+)?|n't", text.lower())


def subsets(premises: Sequence[str], hypotheses: Sequence[str], negation: Sequence[str] = NEGATION_WORDS,
            ambiguity: Sequence[str] = AMBIGUITY_WORDS, long_words: int = LONG_WORDS) -> dict[str, np.ndarray]:
    """Boolean masks (n,) of the paper's subsets: `negation` / `ambiguity` (the hypothesis contains a word of
    the list; "n't" also matches contractions such as "isn't"), `long` (either sentence has more than
    `long_words` words)."""
    neg, amb = {w.lower() for w in negation}, {w.lower() for w in ambiguity}
    hyp = [_words(h) for h in hypotheses]
    contracted = "n't" in neg
    return {
        "negation": np.array([bool(neg.intersection(ws)) or (contracted and any(w.endswith("n't") for w in ws))
                              for ws in hyp]),
        "ambiguity": np.array([bool(amb.intersection(ws)) for ws in hyp]),
        "long": np.array([max(len(_words(p)), len(ws)) > long_words for p, ws in zip(premises, hyp)]),
    }


def error_changes(labels: Sequence[int], before: Sequence[int], after: Sequence[int]) -> dict[str, int]:
    """Between two models' predictions: errors `fixed` (wrong before, right after), `introduced` (right
    before, wrong after) and `remaining` (wrong in both), as counts."""
    y, b, a = (np.asarray(v) for v in (labels, before, after))
    if not y.shape == b.shape == a.shape:
        raise ValueError(f"labels and predictions must have one shape, got {y.shape}, {b.shape}, {a.shape}")
    wrong_b, wrong_a = b != y, a != y
    return {"fixed": int((wrong_b & ~wrong_a).sum()), "introduced": int((~wrong_b & wrong_a).sum()),
            "remaining": int((wrong_b & wrong_a).sum())}
