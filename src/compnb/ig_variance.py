"""The third paper's IG-variance loss, L = CE + λ·tanh(α·Var_attr), registered as `"ig_variance"`.

Var_attr is the batch mean of each example's variance (population, over its real tokens) of token-level
integrated-gradients attributions (`compnb.saliency.IntegratedGradients`: the true label's logit, a
zero-embedding baseline, `n_steps` path points batched in chunks sized by a memory budget, summed over the
embedding dimension; the loss does not depend on the chunking). Two variants of the penalty's graph:

- `differentiable`: the path gradients are taken with `create_graph=True`, so the penalty trains every
  parameter (what the paper's loss means); when the path points take more than one chunk, each chunk's
  double-backward graph is recomputed in the backward instead of kept;
- `detached`: Captum's `IntegratedGradients` over input embeddings (captum 0.9 has no create_graph), where
  only the (x − baseline) factor keeps a graph: the penalty reaches the word-embedding matrix and gives
  exactly zero gradient to every other parameter.

λ = 0 is plain cross-entropy (same forward, same numbers). A batch that a training step splits (several
processes, `grad_accum` micro-batches) gets the gradient and logs of the whole batch (`compnb.batch_stats`: the
surrogate's weight on each row's variance is λ·α·(1 − tanh²(α·Var̄))/W); with micro-batches a statistics pass
runs first.

The computations live in `compnb.penalties` (importable without the training loop's dependencies); this
module registers the loss and keeps their names.
"""

from __future__ import annotations

from typing import Any

import torch

from compnb import batch_stats
from compnb.penalties import IG_DEFAULTS, VARIANTS, attribution_variance, ig_penalty, ig_variance_terms
from compnb.penalties import check_ig_params as check_params
from compnb.training import Batch, cross_entropy, register_loss

DEFAULTS = IG_DEFAULTS
__all__ = ["DEFAULTS", "VARIANTS", "attribution_variance", "check_params", "ig_variance_loss", "penalty"]


def penalty(model: torch.nn.Module, batch: Batch, params: dict[str, Any]) -> torch.Tensor:
    """tanh(α · mean Var_attr) for the batch (a scalar), with the graph the variant asks for."""
    return ig_penalty(model, batch, params)


@register_loss("ig_variance", params=tuple(DEFAULTS), check=check_params)
@batch_stats.of_means(lambda params: check_params(params)["lam"] > 0)
def ig_variance_loss(model: torch.nn.Module, batch: Batch, params: dict[str, Any]):
    """L = mean CE + λ·tanh(α·Var_attr); logs ce and the penalty. λ = 0 is plain cross-entropy."""
    p = check_params(params)
    if p["lam"] == 0:
        return cross_entropy(model, batch, params)
    return ig_variance_terms(model, batch, p)
