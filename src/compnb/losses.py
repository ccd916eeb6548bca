"""The first paper's competency loss, L = F(CE, λ·H(S_topk)), registered with the training loop as
`"competency"`.

- S (batch, tokens) is a saliency distribution over each example's real tokens, taken from ∂CE/∂embeddings
  (the paper writes ∂L_M/∂x_t, the gradient of the modified loss itself, which would make S depend on the
  loss it defines; we use the cross-entropy's, as its definition of saliency does):

  * `gradient`: softmax of the per-token L2 norms of ∂CE/∂(input embedding), computed on the training
    forward itself (dropout included) with `create_graph=True`, so one forward serves CE and S;
  * `mask`: softmax of abs(p(label) − p(label | token dropped from the attention mask)) from
    `compnb.saliency.MaskSaliency` (eval mode, all masked copies batched, in checkpointed chunks of
    `MASK_CHUNK` copies so that memory does not grow with batch × length).

- S_topk: the k largest entries of each row, renormalised; H: their entropy in nats (at most log k),
  averaged over the batch. CE is the batch mean.
- F, with a = CE and b = λ·H: `inverse` a / b, with H clamped below at `H_FLOOR` nats so the loss stays
  finite when S collapses onto one token; `exp_subtract` exp(a)/exp(b), computed as exp(a − b) so neither
  factor overflows; `subtract` a − b. Each is increasing in CE and decreasing in H for λ > 0.
- λ = 0 means no penalty: the loss is exactly plain cross-entropy (same forward, same numbers), for every F.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from compnb.saliency import MaskSaliency, masked_softmax
from compnb.training import Batch, cross_entropy, model_inputs, register_loss

FORMS = ("inverse", "exp_subtract", "subtract")
METHODS = ("gradient", "mask")
H_FLOOR = 1e-3  # nats; the inverse form divides by λ·max(H, H_FLOOR)
MASK_CHUNK = 1024  # masked copies per checkpointed chunk of the mask method (bounds its activation memory)
DEFAULTS = {"lam": 0.1, "form": "subtract", "method": "gradient", "k": 5}


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """The loss parameters with defaults filled in; a ValueError naming any bad value and what is allowed."""
    p = DEFAULTS | dict(params)
    lam = p["lam"]
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam >= 0 or lam == float("inf"):
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    if p["form"] not in FORMS:
        raise ValueError(f"unknown form {p['form']!r}; allowed: {', '.join(FORMS)}")
    if p["method"] not in METHODS:
        raise ValueError(f"unknown saliency method {p['method']!r}; allowed: {', '.join(METHODS)}")
    if isinstance(p["k"], bool) or not isinstance(p["k"], int) or p["k"] < 1:
        raise ValueError(f"k must be an integer >= 1, got {p['k']!r}")
    return p


def topk_entropy(s: torch.Tensor, k: int) -> torch.Tensor:
    """Entropy (nats) of the k largest entries of each row of S (B, T), renormalised: (B,), in [0, log k].

    Rows with fewer than k real tokens use all of them (padding has S = 0 and contributes 0·log 0 = 0).
    """
    top = s.topk(min(k, s.shape[-1]), dim=-1).values
    top = top / top.sum(-1, keepdim=True)
    return -(top * top.clamp_min(torch.finfo(top.dtype).tiny).log()).sum(-1)


def combine(ce: torch.Tensor, penalty: torch.Tensor, form: str) -> torch.Tensor:
    """F(a, b) for a = CE and b = λ·H (b ≥ 0, for `inverse` b > 0); see the module docstring."""
    if form == "inverse":
        return ce / penalty
    if form == "exp_subtract":
        return torch.exp(ce - penalty)
    if form == "subtract":
        return ce - penalty
    raise ValueError(f"unknown form {form!r}; allowed: {', '.join(FORMS)}")


def _full(t: torch.Tensor) -> torch.Tensor:
    """`t` in at least float32 (bf16 autocast outputs are upcast; float64 stays float64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def gradient_s(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, classes), S (B, T)) from one forward on input embeddings; S keeps its graph."""
    inputs = model_inputs(batch)
    mask = inputs["attention_mask"]
    with sdpa_kernel(SDPBackend.MATH):  # fused SDPA kernels have no double backward
        embeds = _unwrapped(model).embeddings(inputs.pop("input_ids"))
        logits = model(inputs_embeds=embeds, **inputs)
        per_example = F.cross_entropy(_full(logits), batch["labels"], reduction="sum")
        (grads,) = torch.autograd.grad(per_example, embeds, create_graph=True)
    norms = torch.linalg.vector_norm(_full(grads), dim=-1).masked_fill(~mask.bool(), 0.0)
    return logits, masked_softmax(norms, mask)


def mask_s(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, classes) of the training forward, S (B, T) from mask saliency, differentiable)."""
    logits = model(**model_inputs(batch))
    scores = MaskSaliency(_unwrapped(model)).attribute(batch["input_ids"], batch["attention_mask"], batch["labels"],
                                                       max_batch=MASK_CHUNK, differentiable=True,
                                                       token_type_ids=batch.get("token_type_ids"))
    return logits, masked_softmax(_full(scores), batch["attention_mask"])


@register_loss("competency", params=tuple(DEFAULTS), check=check_params)
def competency_loss(model: torch.nn.Module, batch: Batch, params: dict[str, Any]):
    """L = F(mean CE, λ·mean H(S_topk)); logs ce, H and the loss. λ = 0 is plain cross-entropy."""
    p = check_params(params)
    if p["lam"] == 0:
        return cross_entropy(model, batch, params)
    logits, s = (gradient_s if p["method"] == "gradient" else mask_s)(model, batch)
    ce = F.cross_entropy(_full(logits), batch["labels"])
    h = topk_entropy(s, p["k"]).mean()
    guarded = h.clamp_min(H_FLOOR) if p["form"] == "inverse" else h
    loss = combine(ce, p["lam"] * guarded, p["form"])
    return loss, logits, {"ce": ce.item(), "H_topk": h.item()}
