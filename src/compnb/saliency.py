"""Token attributions for a `SequenceClassifier`: gradient, mask and integrated-gradients saliency.

Captum-style: one class per method, built on the model, whose `attribute(...)` takes a tokenized batch —
input_ids (B, T) long, attention_mask (B, T) with 1 for real tokens, labels (B,) long — and returns
per-token scores (B, T), 0 on padding (padding never enters a softmax). The functions `gradient_saliency`,
`mask_saliency` and `integrated_gradients` are one-line shortcuts for the classes.

`differentiable=False` (default) returns detached scores. `differentiable=True` keeps the graph (input
gradients are taken with `torch.autograd.grad(..., create_graph=True)`), so a penalty on the scores
backpropagates into the model's parameters.

Every call runs the model in eval mode (dropout off) and restores each module's train/eval flag afterwards;
parameters' `requires_grad` flags are never touched. The fused SDPA kernels (the CPU flash kernel that
transformers' default "sdpa" attention reaches, and CUDA flash / memory-efficient) have no double backward, so
gradient methods with `differentiable=True` run their forwards under `sdpa_kernel(SDPBackend.MATH)`, whose
composite ops are twice differentiable; switching the model to eager attention is not needed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from .models import SequenceClassifier

IG_METHODS = ("riemann_right", "gausslegendre")


@contextmanager
def analysis_mode(model: SequenceClassifier, double_backward: bool) -> Iterator[None]:
    """Eval mode, plus the MATH SDPA backend when a double backward will follow; restores train/eval flags."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with sdpa_kernel(SDPBackend.MATH) if double_backward else nullcontext():
            yield
    finally:
        for module, training in modes:
            module.training = training


def _gradable(tensor: torch.Tensor, differentiable: bool) -> torch.Tensor:
    """`tensor` as an input gradients can be taken to: detached unless `differentiable`."""
    tensor = tensor if differentiable else tensor.detach()
    return tensor if tensor.requires_grad else tensor.requires_grad_()


def _at_label(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each row's entry (B,) of values (B, classes) at its label."""
    return values.gather(1, labels[:, None]).squeeze(1)


def _segments(token_type_ids: torch.Tensor | None, repeats: int = 1) -> dict[str, torch.Tensor]:
    """The `token_type_ids` keyword for a forward over `repeats` stacked copies of the batch (none if None)."""
    return {} if token_type_ids is None else {"token_type_ids": token_type_ids.repeat(repeats, 1)}


def masked_softmax(scores: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Softmax of scores (B, T) over each row's real tokens (mask 1): a distribution (B, T), 0 on padding."""
    return scores.masked_fill(~attention_mask.bool(), float("-inf")).softmax(dim=-1)


class GradientSaliency:
    """Gradient saliency: per-token L2 norm of ∂CE(true label)/∂(input embedding), softmaxed over real tokens."""

    def __init__(self, model: SequenceClassifier):
        self.model = model

    def attribute(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor, *,
                  normalize: bool = True, differentiable: bool = False,
                  token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """S (B, T), a distribution over each row's real tokens (`normalize=True`), or the raw gradient norms
        (B, T) in nats of cross-entropy per unit of embedding norm; 0 on padding.

        The loss is the sum of per-example CE, so each row's gradient is that example's own. Pass the
        tokenizer's `token_type_ids` (B, T) for models that take segment ids (BERT-style pairs).
        """
        mask = attention_mask.bool()
        with analysis_mode(self.model, differentiable), torch.enable_grad():
            embeds = _gradable(self.model.embeddings(input_ids), differentiable)
            logits = self.model(inputs_embeds=embeds, attention_mask=attention_mask,
                                **_segments(token_type_ids))
            loss = F.cross_entropy(logits, labels, reduction="sum")
            (grads,) = torch.autograd.grad(loss, embeds, create_graph=differentiable)
        norms = torch.linalg.vector_norm(grads, dim=-1).masked_fill(~mask, 0.0)
        return masked_softmax(norms, mask) if normalize else norms


class MaskSaliency:
    """Mask saliency: how much p(true label) moves when one token is dropped from the attention mask."""

    def __init__(self, model: SequenceClassifier):
        self.model = model

    def _eval_forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      token_type_ids: torch.Tensor | None) -> torch.Tensor:
        """Logits (B, classes) with dropout off (a checkpoint's recompute runs this again, also in eval mode)."""
        with analysis_mode(self.model, False):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **_segments(token_type_ids))

    def attribute(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor, *,
                  special_tokens_mask: torch.Tensor | None = None, max_batch: int | None = None,
                  differentiable: bool = False, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """abs(p(label) − p(label | token t masked out)) (B, T), probabilities in [0, 1].

        Scores every real token, except special tokens when `special_tokens_mask` (B, T; 1 = special) is
        given; those and padding get 0. The batch and all its masked copies (one row per scored token) go
        through one batched forward, split into chunks of at most `max_batch` rows when that is set.
        Dropping a token also drops it from the pooling ('mean' averages fewer tokens, 'last' moves back).
        Single backward only, so fused SDPA stays on; `differentiable=True` keeps the graph. With both
        `differentiable=True` and `max_batch`, each chunk is checkpointed: its activations are recomputed
        (in eval mode, as in the forward) during the backward instead of being kept, so memory stays at about
        one chunk's, for one more forward of the copies. `token_type_ids` (B, T), for models that take
        segment ids, go with the batch and its copies.
        """
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        mask = attention_mask.bool()
        scored = mask if special_tokens_mask is None else mask & ~special_tokens_mask.bool()
        rows, cols = scored.nonzero(as_tuple=True)
        dropped = attention_mask[rows].clone()
        dropped[torch.arange(len(rows), device=rows.device), cols] = 0
        ids = torch.cat([input_ids, input_ids[rows]])
        masks = torch.cat([attention_mask, dropped])
        segments = None if token_type_ids is None else torch.cat([token_type_ids, token_type_ids[rows]])
        step = max_batch or len(ids)
        forward = (partial(checkpoint, self._eval_forward, use_reentrant=False) if differentiable and max_batch
                   else self._eval_forward)
        with torch.set_grad_enabled(differentiable):
            logits = torch.cat([forward(ids[i:i + step], masks[i:i + step],
                                        None if segments is None else segments[i:i + step])
                                for i in range(0, len(ids), step)])
        probs = _at_label(logits.softmax(dim=-1), torch.cat([labels, labels[rows]]))
        full, without = probs[:len(input_ids)], probs[len(input_ids):]
        scores = probs.new_zeros(input_ids.shape)
        return scores.index_put((rows, cols), (full[rows] - without).abs())


def _quadrature(method: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights), each (n_steps,), of a rule for integrals over [0, 1] (Captum's conventions)."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps}")
    if method == "riemann_right":
        return np.arange(1, n_steps + 1) / n_steps, np.full(n_steps, 1.0 / n_steps)
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)
        return 0.5 * (nodes + 1.0), 0.5 * weights
    raise ValueError(f"unknown method {method!r}; allowed: {', '.join(IG_METHODS)}")


class IntegratedGradients:
    """Integrated gradients w.r.t. the input embeddings; the target is the true label's logit.

    As in Captum, the attributed function is the model's output for the target class, here the logit
    (not the probability), so attributions are in logit units and sum to ≈ logit(x) − logit(baseline).
    """

    def __init__(self, model: SequenceClassifier):
        self.model = model

    def attribute(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor, *,
                  baselines: float | torch.Tensor = 0.0, n_steps: int = 10, method: str = "riemann_right",
                  differentiable: bool = False, return_completeness_gap: bool = False,
                  input_graph: bool = False, token_type_ids: torch.Tensor | None = None
                  ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attributions (B, T) = Σ_h (x − baseline)·(weighted mean of ∂logit/∂x along the path), 0 on padding.

        `baselines` is a number or a tensor broadcastable to the embeddings (B, T, H); 0 is the zero
        embedding. All `n_steps` path points of the batch go through one forward of B·n_steps rows.
        `input_graph=True` (with `differentiable=False`) is Captum's `IntegratedGradients` over input
        embeddings: the path gradients are taken without a graph, but the (x − baseline) factor keeps the
        embeddings' graph, so a penalty on the attributions reaches the word-embedding matrix and nothing else.
        `token_type_ids` (B, T), when the model takes segment ids (BERT-style pairs), go with every path point.
        With `return_completeness_gap`, also returns abs(Σ_t attributions − (F(x) − F(baseline))) (B,), in
        logits, from one more forward of 2B rows.
        """
        alphas, weights = (torch.as_tensor(a, dtype=self.model.embeddings.weight.dtype, device=input_ids.device)
                           for a in _quadrature(method, n_steps))
        batch, tokens = input_ids.shape
        with analysis_mode(self.model, differentiable), torch.enable_grad():
            x = self.model.embeddings(input_ids)
            x = x if differentiable or input_graph else x.detach()
            base = torch.as_tensor(baselines, dtype=x.dtype, device=x.device).expand_as(x)
            along = x if differentiable else x.detach()
            path = _gradable((base + alphas.view(-1, 1, 1, 1) * (along - base)).flatten(0, 1), differentiable)
            logits = self.model(inputs_embeds=path, attention_mask=attention_mask.repeat(n_steps, 1),
                                **_segments(token_type_ids, n_steps))
            target = _at_label(logits, labels.repeat(n_steps)).sum()
            (grads,) = torch.autograd.grad(target, path, create_graph=differentiable)
        mean_grads = (weights.view(-1, 1, 1, 1) * grads.view(n_steps, batch, tokens, -1)).sum(0)
        attributions = ((x - base) * mean_grads).sum(-1).masked_fill(~attention_mask.bool(), 0.0)
        if not return_completeness_gap:
            return attributions
        with analysis_mode(self.model, False), torch.set_grad_enabled(differentiable):
            ends = self.model(inputs_embeds=torch.cat([x, base]), attention_mask=attention_mask.repeat(2, 1),
                              **_segments(token_type_ids, 2))
        at_input, at_baseline = _at_label(ends, labels.repeat(2)).view(2, batch)
        return attributions, (attributions.sum(-1) - (at_input - at_baseline)).abs()


def gradient_saliency(model: SequenceClassifier, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      labels: torch.Tensor, **kwargs) -> torch.Tensor:
    """`GradientSaliency(model).attribute(...)`: S or raw norms (B, T)."""
    return GradientSaliency(model).attribute(input_ids, attention_mask, labels, **kwargs)


def mask_saliency(model: SequenceClassifier, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  labels: torch.Tensor, **kwargs) -> torch.Tensor:
    """`MaskSaliency(model).attribute(...)`: probability changes (B, T)."""
    return MaskSaliency(model).attribute(input_ids, attention_mask, labels, **kwargs)


def integrated_gradients(model: SequenceClassifier, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         labels: torch.Tensor, **kwargs) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """`IntegratedGradients(model).attribute(...)`: attributions (B, T) in logits [, completeness gap (B,)]."""
    return IntegratedGradients(model).attribute(input_ids, attention_mask, labels, **kwargs)


def word_scores(scores: torch.Tensor, word_ids: Sequence[int | None] | Sequence[Sequence[int | None]]
                ) -> torch.Tensor:
    """Sum sub-word token scores into word scores.

    scores (T,) with one `word_ids` list (a fast tokenizer's `encoding.word_ids()`) → (W,); or scores (B, T)
    with one list per row → (B, W), W the largest word count, shorter rows zero-padded. Tokens whose word id
    is None (special tokens, padding) are left out.
    """
    batched = scores.dim() == 2
    table = scores if batched else scores[None]
    lists = word_ids if batched else [word_ids]
    ids = torch.tensor([[-1 if w is None else w for w in row] for row in lists], dtype=torch.long,
                       device=scores.device)
    if ids.shape != table.shape:
        raise ValueError(f"word_ids shape {tuple(ids.shape)} does not match scores {tuple(table.shape)}")
    n_words = int(ids.max().item()) + 1 if ids.numel() else 0
    slots = torch.where(ids >= 0, ids, n_words)
    summed = table.new_zeros(len(table), n_words + 1).scatter_add(1, slots, table)[:, :n_words]
    return summed if batched else summed[0]
