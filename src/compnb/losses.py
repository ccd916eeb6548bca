"""The first paper's competency loss, L = F(CE, λ·H(S_topk)), registered with the training loop as
`"competency"`.

- S (batch, tokens) is a saliency distribution over each example's real tokens, taken from ∂CE/∂embeddings
  (the paper writes ∂L_M/∂x_t, the gradient of the modified loss itself, which would make S depend on the
  loss it defines; we use the cross-entropy's, as its definition of saliency does):

  * `gradient`: softmax of the per-token L2 norms of ∂CE/∂(input embedding), computed on the training
    forward itself (dropout included) with `create_graph=True`, so one forward serves CE and S;
  * `mask`: softmax of abs(p(label) − p(label | token dropped from the attention mask)) from
    `compnb.saliency.MaskSaliency` (eval mode, the masked copies batched in chunks sized by a memory budget,
    `COMPNB_MEMORY_BUDGET` or half the GPU's free memory, each chunk checkpointed when there is more than
    one, so that memory does not grow with batch × length; the loss does not depend on the chunking). The
    training step keeps a graph through each row's top-k copies only (`mask_topk_entropy`): H(S_topk) and its
    gradient do not depend on the other scores, which are found in a pass without a graph.

- S_topk: the k largest entries of each row, renormalised; H: their entropy in nats (at most log k),
  averaged over the batch. CE is the batch mean.
- F, with a = CE and b = λ·H: `inverse` a / b, with H clamped below at `H_FLOOR` nats so the loss stays
  finite when S collapses onto one token; `exp_subtract` exp(a)/exp(b), computed as exp(a − b) so neither
  factor overflows; `subtract` a − b. Each is increasing in CE and decreasing in H for λ > 0.
- λ = 0 means no penalty: the loss is exactly plain cross-entropy (same forward, same numbers), for every F.
- A batch that a training step splits (several processes, `grad_accum` micro-batches) gets the gradient and logs
  of the whole batch for every F (`compnb.batch_stats`); with micro-batches, `inverse` and `exp_subtract` take a
  statistics pass first (`subtract` is linear in the means and needs none).

The computations live in `compnb.penalties` (importable without the training loop's dependencies); this
module registers the loss and keeps their names.
"""

from __future__ import annotations

from typing import Any

import torch

from compnb import batch_stats
from compnb.penalties import (COMPETENCY_DEFAULTS, FORMS, H_FLOOR, METHODS, combine, competency_terms,
                              gradient_s, mask_s, mask_topk_entropy, topk_entropy)
from compnb.penalties import check_competency_params as check_params
from compnb.training import Batch, cross_entropy, register_loss

DEFAULTS = COMPETENCY_DEFAULTS
__all__ = ["DEFAULTS", "FORMS", "H_FLOOR", "METHODS", "check_params", "combine", "competency_loss", "gradient_s",
           "mask_s", "mask_topk_entropy", "non_linear", "topk_entropy"]


def non_linear(params: dict[str, Any]) -> bool:
    """Whether the loss with `params` is non-linear in its batch means: λ > 0 and a form other than `subtract`."""
    p = check_params(params)
    return p["lam"] > 0 and p["form"] != "subtract"


@register_loss("competency", params=tuple(DEFAULTS), check=check_params)
@batch_stats.of_means(non_linear)
def competency_loss(model: torch.nn.Module, batch: Batch, params: dict[str, Any]):
    """L = F(mean CE, λ·mean H(S_topk)); logs ce, H and the loss. λ = 0 is plain cross-entropy."""
    p = check_params(params)
    if p["lam"] == 0:
        return cross_entropy(model, batch, params)
    return competency_terms(model, batch, p)
