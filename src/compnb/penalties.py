"""The computations of chapter 3's competency loss and chapter 5's IG-variance loss, with torch and transformers
alone: `compnb.losses` and `compnb.ig_variance` define and register the two losses (their docstrings say
what each term means), and anything that must run without the training loop's dependencies (`datasets`,
`accelerate`), such as `benchmarks/bench_paper_scale.py` on a bare GPU machine, calls these functions, the
same code the training loop runs.

A batch is a dict of tensors: input_ids and attention_mask (B, T), labels (B,), optionally token_type_ids
(B, T), index (B,) and weight (B,): 1.0 for a real row, 0.0 for a padding row (`batching.PadCollator`'s `rows`).
With weights, every batch mean (CE, H(S_topk), the attribution variance) is Σ w·x / Σ w (`batch_mean`), so
padding rows change neither the loss nor its gradient; without them the means are the plain ones, computed as
before weights existed. Each `*_terms` function returns (loss, logits (B, classes), logs) as a registered loss
does, its logs detached 0-d tensors (no host sync). Both losses are non-linear functions of batch means: when a
training step splits the batch (several processes, or `grad_accum` micro-batches; `compnb.batch_stats.part`),
they compute through `batch_stats.split_loss`, so that the step's gradient and logs are the whole batch's;
otherwise they compute as before. The mask saliency's masked copies and the IG path points go
through the model in chunks sized by a memory budget (`compnb.saliency`: `COMPNB_MEMORY_BUDGET` or a share of
free GPU memory); the result does not depend on the chunking.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from compnb import batch_stats
from compnb.saliency import IG_METHODS, IntegratedGradients, MaskSaliency, masked_softmax
from compnb.sharding import embedding_output, first_backward, is_sharded

Batch = dict[str, torch.Tensor]

# chapter 3: the competency loss
FORMS = ("inverse", "exp_subtract", "subtract")
METHODS = ("gradient", "mask")
H_FLOOR = 1e-3  # nats; the inverse form divides by λ·max(H, H_FLOOR)
COMPETENCY_DEFAULTS = {"lam": 0.1, "form": "subtract", "method": "gradient", "k": 5}

# chapter 5: the IG-variance loss
VARIANTS = ("differentiable", "detached")
IG_DEFAULTS = {"lam": 0.1, "alpha": 10.0, "n_steps": 10, "method": "riemann_right", "variant": "differentiable"}


class ShardingUnsupported(ValueError):
    """A loss asked to run under FSDP sharding, which it cannot (the message says how to run it instead): a
    ValueError, so that `compnb train` prints it as one line."""


def model_inputs(batch: Batch) -> Batch:
    """The batch without `labels`, `index` and `weight`: what the model's forward takes."""
    return {k: v for k, v in batch.items() if k not in ("labels", "index", "weight")}


def batch_mean(values: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The batch mean of per-row values (B,): Σ w·x / Σ w with the batch's `weight` (B,) when it has one (a padding
    row, w = 0, must hold finite values: it is a copy of a real row), else `values.mean()`."""
    if "weight" not in batch:
        return values.mean()
    weight = batch["weight"].to(values.dtype)
    return (weight * values).sum() / weight.sum()


def mean_cross_entropy(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The batch mean (`batch_mean`) of the cross-entropy of logits (B, classes) against `labels` (B,); without
    `weight`, `F.cross_entropy`'s own mean."""
    if "weight" not in batch:
        return F.cross_entropy(logits, batch["labels"])
    return batch_mean(F.cross_entropy(logits, batch["labels"], reduction="none"), batch)


def _full(t: torch.Tensor) -> torch.Tensor:
    """`t` in at least float32 (bf16 autocast outputs are upcast; float64 stays float64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def check_competency_params(params: dict[str, Any]) -> dict[str, Any]:
    """The competency loss's parameters with defaults filled in; a ValueError names any bad value and what is
    allowed."""
    p = COMPETENCY_DEFAULTS | dict(params)
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
    """F(a, b) for a = CE and b = λ·H (b ≥ 0, for `inverse` b > 0); see `compnb.losses`."""
    if form == "inverse":
        return ce / penalty
    if form == "exp_subtract":
        return torch.exp(ce - penalty)
    if form == "subtract":
        return ce - penalty
    raise ValueError(f"unknown form {form!r}; allowed: {', '.join(FORMS)}")


def gradient_s(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, classes), S (B, T)) from one forward on input embeddings; S keeps its graph. The gradient is
    of the summed per-row CE, so each row's S is its own (padding rows leave real rows' S unchanged)."""
    inputs = model_inputs(batch)
    mask = inputs["attention_mask"]
    # The embedding output is captured inside the model's forward (FSDP gathers and reduces the embedding with
    # the model; `compnb.sharding`), made a leaf when frozen (LoRA), and kept unsharded for the second backward.
    with sdpa_kernel(SDPBackend.MATH), embedding_output(_unwrapped(model).embeddings, make_leaf=True) as captured:
        logits = model(**inputs)  # fused SDPA kernels have no double backward: MATH
        per_example = F.cross_entropy(_full(logits), batch["labels"], reduction="sum")
        if len(captured) != 1:
            raise RuntimeError(f"the embedding layer ran {len(captured)} times in one forward; gradient saliency "
                               "needs exactly one lookup per forward")
        with first_backward(model):
            (grads,) = torch.autograd.grad(per_example, captured[0], create_graph=True)
    norms = torch.linalg.vector_norm(_full(grads), dim=-1).masked_fill(~mask.bool(), 0.0)
    return logits, masked_softmax(norms, mask)


def mask_s(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, classes) of the training forward, S (B, T) from mask saliency, differentiable; the masked
    copies in chunks sized by the memory budget, checkpointed when there is more than one)."""
    logits = model(**model_inputs(batch))
    scores = MaskSaliency(_unwrapped(model)).attribute(batch["input_ids"], batch["attention_mask"], batch["labels"],
                                                       differentiable=True, token_type_ids=batch.get("token_type_ids"))
    return logits, masked_softmax(_full(scores), batch["attention_mask"])


def mask_topk_entropy(model: torch.nn.Module, batch: Batch, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, classes) of the training forward, H(S_topk) (B,) in nats from mask saliency), equal in value and
    gradient to `topk_entropy(mask_s(model, batch)[1], k)` at a fraction of its cost.

    The renormalised top k of a softmax, exp(a_i) / Σ_{j in top k} exp(a_j), does not depend on the scores
    outside the top k: so all the masked copies go through the model once without a graph (scored as
    `MaskSaliency.attribute` scores them) to find each row's top k, and only those k copies go through it again
    with their graph (`MaskSaliency.attribute_at`). A row with fewer than k real tokens takes padding positions
    too, which score 0 and weigh nothing, as in `topk_entropy`."""
    logits = model(**model_inputs(batch))
    explainer, mask = MaskSaliency(_unwrapped(model)), batch["attention_mask"]
    with torch.no_grad():
        scores = explainer.attribute(batch["input_ids"], mask, batch["labels"],
                                     token_type_ids=batch.get("token_type_ids"))
    positions = scores.masked_fill(~mask.bool(), -1.0).topk(min(k, mask.shape[-1]), dim=-1).indices  # scores ≥ 0
    chosen = explainer.attribute_at(batch["input_ids"], mask, batch["labels"], positions,
                                    token_type_ids=batch.get("token_type_ids"))
    return logits, topk_entropy(masked_softmax(_full(chosen), mask.gather(1, positions)), k)


def competency_terms(model: torch.nn.Module, batch: Batch, params: dict[str, Any]
                     ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(L = F(mean CE, λ·mean H(S_topk)), logits, {ce, H_topk} as detached 0-d tensors) for λ > 0 (`compnb.losses`
    takes λ = 0 to plain cross-entropy); the means weighted by the batch's `weight` when it has one, and the whole
    batch's when a step splits it (`compnb.batch_stats`: L and the logs are the whole batch's, the gradient its
    share of the whole batch's, for every form, the inverse form's H floor included)."""
    p = check_competency_params(params)
    if p["method"] == "gradient":
        logits, s = gradient_s(model, batch)
        h_rows = topk_entropy(s, p["k"])
    else:
        logits, h_rows = mask_topk_entropy(model, batch, p["k"])

    def loss_at(ce: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        guarded = h.clamp_min(H_FLOOR) if p["form"] == "inverse" else h
        return combine(ce, p["lam"] * guarded, p["form"])

    if batch_stats.is_split():
        rows = (F.cross_entropy(_full(logits), batch["labels"], reduction="none"), h_rows)
        loss, (ce, h) = batch_stats.split_loss(loss_at, rows, batch.get("weight"), linear=p["form"] == "subtract")
    else:
        ce = mean_cross_entropy(_full(logits), batch)
        h = batch_mean(h_rows, batch)
        loss = loss_at(ce, h)
    return loss, logits, {"ce": ce.detach(), "H_topk": h.detach()}


def check_ig_params(params: dict[str, Any]) -> dict[str, Any]:
    """The IG-variance loss's parameters with defaults filled in; a ValueError names any bad value and what is
    allowed."""
    p = IG_DEFAULTS | dict(params)
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


def attribution_variances(model: torch.nn.Module, batch: Batch, p: dict[str, Any]) -> torch.Tensor:
    """Var_attr of each row (B,) (`attribution_variance` of the IG attributions, at least float32) with the graph
    the variant asks for (checked params `p`); the path points in chunks sized by the memory budget (the
    differentiable variant recomputes each in the backward when there is more than one)."""
    if is_sharded(model):
        raise ShardingUnsupported(
            "the IG-variance loss does not run under FSDP sharding: its path points enter the model as input "
            "embeddings made outside the sharded forward. ELECTRA-small, the paper's backbone, trains on one GPU; "
            "for several, launch without --use_fsdp (data parallel)")
    attributions = IntegratedGradients(_unwrapped(model)).attribute(
        batch["input_ids"], batch["attention_mask"], batch["labels"], n_steps=p["n_steps"], method=p["method"],
        differentiable=p["variant"] == "differentiable", input_graph=p["variant"] == "detached",
        token_type_ids=batch.get("token_type_ids"))
    return attribution_variance(_full(attributions), batch["attention_mask"])  # bf16 up


def ig_penalty(model: torch.nn.Module, batch: Batch, params: dict[str, Any]) -> torch.Tensor:
    """tanh(α · mean Var_attr) for the batch (a scalar; the mean weighted by the batch's `weight` when it has one),
    with the graph the variant asks for (`attribution_variances`)."""
    p = check_ig_params(params)
    return torch.tanh(p["alpha"] * batch_mean(attribution_variances(model, batch, p), batch))


def ig_variance_terms(model: torch.nn.Module, batch: Batch, params: dict[str, Any]
                      ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(mean CE + λ·tanh(α·Var_attr), logits, {ce, tanh_var} as detached 0-d tensors) for λ > 0
    (`compnb.ig_variance` takes λ = 0 to plain cross-entropy); the means weighted by the batch's `weight` when it
    has one, and the whole batch's when a step splits it (`compnb.batch_stats`, as `competency_terms`)."""
    p = check_ig_params(params)
    logits = model(**model_inputs(batch))
    if batch_stats.is_split():
        rows = (F.cross_entropy(logits.float(), batch["labels"], reduction="none"),
                attribution_variances(model, batch, p))
        loss, (ce, variance) = batch_stats.split_loss(
            lambda ce, v: ce + p["lam"] * torch.tanh(p["alpha"] * v), rows, batch.get("weight"), linear=False)
        return loss, logits, {"ce": ce, "tanh_var": torch.tanh(p["alpha"] * variance)}
    ce = mean_cross_entropy(logits.float(), batch)
    tanh_var = ig_penalty(model, batch, p)
    return ce + p["lam"] * tanh_var, logits, {"ce": ce.detach(), "tanh_var": tanh_var.detach()}
