"""The second paper's gradient-guided attack on NLI hypotheses, the adversarial set built from it, and the
error analysis of a retrained model.

- `GradientMaskAttack(model).attribute(...)`: per-token score Σ_d abs(∂CE(true label)/∂e_{t,d}) (B, T), the summed
  absolute gradient of the loss with respect to the input embedding; `choose` takes the arg-max over the
  hypothesis's real, non-special tokens (premise and special tokens are never chosen).
- `attack_pairs`: batches of (premise, hypothesis) pairs → the pairs' token ids with exactly the chosen id
  replaced by the mask token's (`mask_one`), stored as ids so that training and scoring take exactly the
  attacked input (`compnb.data.from_frame` keeps pre-tokenized rows as they are). A sub-word piece is masked
  alone: its neighbours keep their ids, which the text of the attacked hypothesis tokenized again would not
  ("sand ##box" → "[MASK]box" → "[MASK] box"; `text_roundtrip_changes` counts such pairs). Tokenizers without
  a mask token (GPT-style decoders) are refused unless the caller names a substitute (`mask_substitute`).
- `premise_split`, `balanced`: premise-disjoint partitions and class-balanced draws, so the examples an
  adversarial set is built and trained from never share a premise with those it is evaluated on;
  `balanced_total`: a draw of an exact size, as even across labels as the rows allow (the leaky set cut to the
  leak-free set's size).
- `subsets`, `error_changes`: the paper's negation / ambiguity / long subsets and the fixed / introduced /
  remaining errors between two models; `sign_test_pairs`: the exact sign test over distinct pairs, seeds
  summed per pair.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats
from tqdm.auto import tqdm

from compnb import data
from compnb.models import SequenceClassifier
from compnb.saliency import analysis_mode

NEGATION_WORDS = ("no", "not", "never", "nobody", "nothing", "none", "neither", "nor", "nowhere", "cannot", "n't")
AMBIGUITY_WORDS = ("some", "might", "may", "could", "possibly", "perhaps", "probably", "maybe", "likely",
                   "sometimes", "several", "many", "few", "about", "around", "almost", "nearly")
LONG_WORDS = 20  # a pair is long when either sentence has more words than this
SUBSTITUTES = ("mask", "unk", "pad")  # special tokens `mask_substitute` takes by name
BOUNDARY_ROLES = ("bos", "eos", "sep", "cls")  # a substitute named by role may not share their id
ATTACK_COLUMNS = ("premise", "original", "label", *data.PRETOKENIZED, "position", "token", "token_id", "start", "end",
                  "hypothesis_display", data.TOKENIZER_COLUMN)


def _boundary_roles(tokenizer, token_id: int | None) -> list[str]:
    """The `BOUNDARY_ROLES` whose token has id `token_id` in `tokenizer`."""
    return [role for role in BOUNDARY_ROLES if token_id is not None
            and getattr(tokenizer, f"{role}_token_id", None) == token_id]


def mask_substitute(tokenizer, substitute: str = "mask") -> int:
    """Id of the token that replaces an attacked one: `substitute` 'mask' (the paper's), 'unk' or 'pad' names
    that special token of the tokenizer, any other string a token of its vocabulary. A ValueError names the
    tokenizer and what it offers when it lacks the token: a decoder, without a mask token, needs an explicit
    substitute. A role that resolves to the id of a BOS, EOS, SEP or CLS token is refused too (OPT's unknown
    token is '</s>', its BOS, EOS and pair separator; Llama padded by `compnb.models` pads with its EOS): the
    attacked pair would gain a sequence boundary. Naming that token itself (e.g. '</s>') still takes it."""
    name = f"{type(tokenizer).__name__} ({getattr(tokenizer, 'name_or_path', '') or 'unnamed'})"
    token = getattr(tokenizer, f"{substitute}_token") if substitute in SUBSTITUTES else substitute
    if not token:
        offered = "".join(f"{s!r} ({getattr(tokenizer, f'{s}_token')!r}), " for s in SUBSTITUTES
                          if getattr(tokenizer, f"{s}_token")
                          and not _boundary_roles(tokenizer, getattr(tokenizer, f"{s}_token_id")))
        raise ValueError(f"tokenizer {name} has no {substitute} token; to replace the attacked token with another, "
                         f"pass substitute= {offered}or a token of its vocabulary")
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
        raise ValueError(f"{token!r} is not a token of tokenizer {name}; substitutes: {', '.join(SUBSTITUTES)} or "
                         f"a token of its vocabulary")
    boundary = _boundary_roles(tokenizer, token_id)
    if substitute in SUBSTITUTES and boundary:  # OPT: unk is '</s>', its BOS, EOS and pair separator
        raise ValueError(f"the {substitute} token of tokenizer {name} is {token!r} (id {token_id}), the same id as "
                         f"its {'/'.join(boundary)} token, which marks where sequences begin or end; pass another "
                         f"substitute, or name {token!r} itself to use it anyway")
    return int(token_id)


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


def mask_one(tokenizer, enc, row: int, position: int, substitute_id: int, hypothesis_text: str | None = None) -> dict:
    """Row `row` of a padded batch `enc` of (premise, hypothesis) pairs (a fast tokenizer's output with
    `offset_mapping`) with the id at `position` (index in the padded row, a hypothesis token) replaced by
    `substitute_id` and every other id kept: input_ids (and token_type_ids when the tokenizer's model takes
    them) without padding, position (index in those ids), token and token_id (the replaced piece), start/end
    (its character span in the hypothesis; given the `hypothesis_text`, without the leading space that byte-level
    and metaspace pieces such as OPT's "Ġman" carry in their offsets), hypothesis_display (the attacked
    hypothesis decoded: for reading only, never to tokenize again)."""
    real = enc["attention_mask"][row].bool().tolist()
    sequence = enc.sequence_ids(row)
    if not real[position] or sequence[position] != 1:
        raise ValueError(f"position {position} of row {row} is not a hypothesis token (sequence ids {sequence})")
    keys = [k for k in data.PRETOKENIZED if k in tokenizer.model_input_names]
    ids = {k: [int(v) for v, keep in zip(enc[k][row].tolist(), real) if keep] for k in keys}
    at = sum(real[:position])
    token_id, ids["input_ids"][at] = ids["input_ids"][at], substitute_id
    hypothesis = [v for v, s in zip(ids["input_ids"], [s for s, keep in zip(sequence, real) if keep]) if s == 1]
    start, end = (int(v) for v in enc["offset_mapping"][row][position])
    while hypothesis_text is not None and start < end - 1 and hypothesis_text[start].isspace():
        start += 1
    return {**ids, "position": at, "token": tokenizer.convert_ids_to_tokens(token_id), "token_id": token_id,
            "start": start, "end": end, "hypothesis_display": tokenizer.decode(hypothesis)}


def attack_pairs(model: SequenceClassifier, tokenizer, premises: Sequence[str], hypotheses: Sequence[str],
                 labels: Sequence[int], *, max_length: int = 128, batch_size: int = 64,
                 substitute: str = "mask") -> pd.DataFrame:
    """Attack every pair (truncated to `max_length` tokens); one row per pair, columns `ATTACK_COLUMNS`: premise,
    original (the clean hypothesis), label, `mask_one`'s columns for the chosen token, the `substitute`
    (`mask_substitute`) in its place, and tokenizer (`data.tokenizer_fingerprint`, for `data.from_frame`)."""
    device = next(model.parameters()).device
    attack, substitute_id, rows = GradientMaskAttack(model), mask_substitute(tokenizer, substitute), []
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
        rows += [{"premise": p[i], "original": h[i], "label": int(labels[lo + i]),
                  **mask_one(tokenizer, enc, i, t, substitute_id, h[i])} for i, t in enumerate(chosen.tolist())]
    frame = pd.DataFrame(rows).assign(**{data.TOKENIZER_COLUMN: data.tokenizer_fingerprint(tokenizer)})
    return frame[[c for c in ATTACK_COLUMNS if c in frame.columns]]


def text_roundtrip_changes(tokenizer, attacked: pd.DataFrame, max_length: int) -> dict[str, int]:
    """What tokenizing the attacked *text* again would have changed, as the pipeline once did: for each row of
    `attack_pairs` (made by `tokenizer`), the substitute's string put into the original hypothesis at the
    masked piece's character span, the pair tokenized with truncation to `max_length`, and compared with the
    stored ids. Counts: `pairs`, `ids_differ` (any id differs, e.g. a masked non-final piece turns the next
    one into a word start) and `length_differs` (the number of ids changes)."""
    made_by, fingerprint = set(attacked[data.TOKENIZER_COLUMN]), data.tokenizer_fingerprint(tokenizer)
    if made_by != {fingerprint}:
        raise ValueError(f"the attacked rows were made by tokenizer(s) {sorted(made_by)}, not by this one "
                         f"({fingerprint})")
    texts = [o[:start] + tokenizer.convert_ids_to_tokens(int(ids[at])) + o[end:] for o, ids, at, start, end in
             attacked[["original", "input_ids", "position", "start", "end"]].itertuples(index=False)]
    again = tokenizer(attacked["premise"].tolist(), texts, truncation=True, max_length=max_length)["input_ids"]
    stored = [list(map(int, ids)) for ids in attacked["input_ids"]]
    return {"pairs": len(stored), "ids_differ": sum(a != b for a, b in zip(again, stored)),
            "length_differs": sum(len(a) != len(b) for a, b in zip(again, stored))}


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


def balanced_total(labels: Sequence[int], total: int, seed: int) -> tuple[np.ndarray, dict[int, int]]:
    """Row indices of a draw of exactly `total` rows, as even across labels as the rows allow (each label gets
    `total // k` or one more; a label with fewer rows gives all it has and the others share the rest; leftover
    single rows go to the labels in ascending order), and the count drawn per label. Deterministic in `seed`."""
    labels = np.asarray(labels)
    if not 0 <= total <= len(labels):
        raise ValueError(f"total must be between 0 and the {len(labels)} rows, got {total!r}")
    classes = sorted(set(labels.tolist()))
    available = {c: int((labels == c).sum()) for c in classes}
    take, left = {c: 0 for c in classes}, total
    while left:
        open_ = [c for c in classes if take[c] < available[c]]
        share = left // len(open_)
        if share == 0:  # fewer rows left than labels with room: one more each, in label order
            for c in open_[:left]:
                take[c] += 1
            break
        for c in open_:
            extra = min(share, available[c] - take[c])
            take[c] += extra
            left -= extra
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), size=take[c], replace=False) for c in classes]
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], int), {int(c): take[c] for c in classes}


def sign_test_pairs(fixed: np.ndarray, introduced: np.ndarray) -> dict:
    """The per-pair sign test of a retrained model against its baseline. `fixed` and `introduced` are boolean
    (seeds, pairs) arrays over the same distinct evaluation pairs (fixed: baseline wrong and retrained right at
    that seed; introduced: baseline right and retrained wrong). Seeds are replicates, so each pair counts once:
    its sign is that of its sum over seeds of fixed − introduced; pairs summing to 0 (ties, among them pairs
    never changed) are dropped and counted. Exact binomial sign test of the positive against the negative pairs:
    one-sided (more pairs net fixed than net introduced) and two-sided."""
    fixed, introduced = np.atleast_2d(np.asarray(fixed, bool)), np.atleast_2d(np.asarray(introduced, bool))
    if fixed.shape != introduced.shape:
        raise ValueError(f"fixed and introduced must have one shape, got {fixed.shape} and {introduced.shape}")
    if (fixed & introduced).any():
        raise ValueError("a pair cannot be both fixed and introduced at one seed")
    net = fixed.sum(0).astype(int) - introduced.sum(0).astype(int)
    pos, neg = int((net > 0).sum()), int((net < 0).sum())
    n = pos + neg
    return {"pairs": int(net.size), "pairs net fixed": pos, "pairs net introduced": neg,
            "pairs tied": int((net == 0).sum()),
            "p (sign, one-sided)": stats.binomtest(pos, n, 0.5, alternative="greater").pvalue if n else np.nan,
            "p (sign, two-sided)": stats.binomtest(pos, n, 0.5).pvalue if n else np.nan,
            "seeds": int(fixed.shape[0])}


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
