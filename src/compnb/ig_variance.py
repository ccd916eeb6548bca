"""The third paper's IG-variance loss, L = CE + λ·tanh(α·Var_attr), registered as `"ig_variance"`.

Var_attr is the batch mean of each example's variance (population, over its real tokens) of token-level
integrated-gradients attributions (`compnb.saliency.IntegratedGradients`: the true label's logit, a
zero-embedding baseline, `n_steps` path points in one batched forward, summed over the embedding dimension).
Two variants of the penalty's graph:

- `differentiable`: the path gradients are taken with `create_graph=True`, so the penalty trains every
  parameter (what the paper's loss means);
- `detached`: Captum's `IntegratedGradients` over input embeddings (captum 0.9 has no create_graph), where
  only the (x − baseline) factor keeps a graph: the penalty reaches the word-embedding matrix and gives
  exactly zero gradient to every other parameter.

λ = 0 is plain cross-entropy (same forward, same numbers).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from compnb.saliency import IG_METHODS, IntegratedGradients
from compnb.training import Batch, cross_entropy, model_inputs, register_loss

VARIANTS = ("differentiable", "detached")
DEFAULTS = {"lam": 0.1, "alpha": 10.0, "n_steps": 10, "method": "riemann_right", "variant": "differentiable"}


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """The loss parameters with defaults filled in; a ValueError naming any bad value and what is allowed."""
    p = DEFAULTS | dict(params)
    for name in ("lam", "alpha"):
        value = p[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if isinstance(p["n_steps"], bool) or not isinstance(p["n_steps"], int) or p["n_steps"] < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {p['n_steps']!r}")
    if p["method"] not in IG_METHODS:
        raise ValueError(f"unknown IG method {p['method']!r}; allowed: {', '.join(IG_METHODS)}")
    if p["variant"] not in VARIANTS:
        raise ValueError(f"unknown variant {p['variant']!r}; allowed: {', '.join(VARIANTS)}")
    return p


def attribution_variance(attributions: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Per example, the population variance of attributions (B, T) over its real tokens (mask 1): (B,)."""
    mask = attention_mask.to(attributions.dtype)
    count = mask.sum(-1).clamp_min(1.0)
    mean = (attributions * mask).sum(-1) / count
    return (((attributions - mean[:, None]) ** 2) * mask).sum(-1) / count


def penalty(model: torch.nn.Module, batch: Batch, params: dict[str, Any]) -> torch.Tensor:
    """tanh(α · mean Var_attr) for the batch (a scalar), with the graph the variant asks for."""
    p = check_params(params)
    unwrapped = model.module if hasattr(model, "module") else model
    attributions = IntegratedGradients(unwrapped).attribute(
        batch["input_ids"], batch["attention_mask"], batch["labels"], n_steps=p["n_steps"], method=p["method"],
        differentiable=p["variant"] == "differentiable", input_graph=p["variant"] == "detached",
        token_type_ids=batch.get("token_type_ids"))
    full = attributions.to(torch.promote_types(attributions.dtype, torch.float32))  # bf16 up, float64 kept
    variance = attribution_variance(full, batch["attention_mask"]).mean()
    return torch.tanh(p["alpha"] * variance)


@register_loss("ig_variance", params=tuple(DEFAULTS), check=check_params)
def ig_variance_loss(model: torch.nn.Module, batch: Batch, params: dict[str, Any]):
    """L = mean CE + λ·tanh(α·Var_attr); logs ce and the penalty. λ = 0 is plain cross-entropy."""
    p = check_params(params)
    if p["lam"] == 0:
        return cross_entropy(model, batch, params)
    logits = model(**model_inputs(batch))
    ce = F.cross_entropy(logits.float(), batch["labels"])
    tanh_var = penalty(model, batch, p)
    return ce + p["lam"] * tanh_var, logits, {"ce": ce.item(), "tanh_var": tanh_var.item()}
