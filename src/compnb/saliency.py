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

Memory. Mask saliency runs one forward per scored token and integrated gradients one per path point; both put
these rows through the model in chunks whose size comes from a memory budget, not a fixed count:
`chunk_rows(model, tokens, kind, budget)` divides the budget (bytes, `budget_bytes`) by an upper estimate of
what one row of `tokens` tokens needs (`activation_bytes`, from the backbone's width, depth, heads, MLP width
and weight dtype). The budget is, in this order: the `memory_budget` argument; the `COMPNB_MEMORY_BUDGET`
environment variable (bytes, e.g. `24GiB`, `1.5e10`, or a percentage of free memory, e.g. `40%`); half the
memory free on the GPU (`torch.cuda.mem_get_info` plus what PyTorch's allocator holds unused) less what the
backward will still allocate (parameter gradients not yet there); on a CPU 8 GiB. When the graph is kept
(`differentiable=True`) and the rows take more than one chunk, each chunk is recomputed in the backward
instead of kept (activation checkpointing), so memory stays at about one chunk's. Chunking changes nothing
but memory and time: scores and parameter gradients agree with the unchunked computation to rounding. That
rounding differs between chunk sizes, so a budget taken from free memory makes GPU reruns differ in the last
bits; `COMPNB_DETERMINISTIC=1` fixes the budget (`compnb.determinism`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from . import determinism
from .models import SequenceClassifier

IG_METHODS = ("riemann_right", "gausslegendre")
MEMORY_BUDGET_ENV = "COMPNB_MEMORY_BUDGET"
FREE_FRACTION = 0.5  # of the GPU's free memory, the default budget for a method's chunks
CPU_BUDGET = 8 * 2**30  # bytes, the default budget on a CPU
ESTIMATE_MARGIN = 1.25  # on top of the saved activations: the backward's transient buffers, allocator rounding
ACTIVATION_KINDS = ("inference", "graph", "double")
FUSED_FIRST = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH]
_STATIC = [False]  # inside `static_shapes()`: shapes that depend on the batch's shape alone (CUDA graphs)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_memory(text: str) -> int | float:
    """`COMPNB_MEMORY_BUDGET`'s value: bytes (an int) from '24GiB', '500 MB', '1.5e10'; a fraction of free memory
    (a float in (0, 1]) from '40%'. A ValueError names a value that is neither."""
    value = text.strip().lower()
    percent = re.fullmatch(r"([0-9.]+)\s*%", value)
    if percent:
        fraction = float(percent.group(1)) / 100
        if 0 < fraction <= 1:
            return fraction
    sized = re.fullmatch(r"([0-9.]+(?:e[0-9]+)?)\s*([kmgt]i?b|b)?", value)
    if sized and float(sized.group(1)) > 0:
        return int(float(sized.group(1)) * _UNITS[sized.group(2) or ""])
    raise ValueError(f"{MEMORY_BUDGET_ENV}={text!r}: expected bytes ('24GiB', '500MB', '1.5e10') or a "
                     "percentage of free memory ('40%')")


@contextmanager
def static_shapes() -> Iterator[None]:
    """Within it, the saliencies' tensors take shapes that follow the batch's shape alone, as a captured CUDA
    graph needs: mask saliency drops every position (not only the real tokens, whose count varies with the
    data; the others score 0 as before) and chunks are sized by a fixed share of the device's total memory
    (`FREE_FRACTION`; `determinism.FIXED_BUDGET` with `COMPNB_DETERMINISTIC`), not by the memory free now."""
    previous, _STATIC[0] = _STATIC[0], True
    try:
        yield
    finally:
        _STATIC[0] = previous


def _free_bytes(device: torch.device) -> int:
    """Memory a new allocation can use: the GPU's free memory plus what PyTorch's caching allocator holds unused;
    on a CPU the free physical memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def budget_bytes(device: torch.device | str, budget: int | None = None, reserve: int = 0) -> int:
    """Bytes a method's chunks may take on `device`: `budget` when given; else `COMPNB_MEMORY_BUDGET` (bytes, or
    a percentage of free memory less `reserve`); else `FREE_FRACTION` of the GPU's free memory less `reserve`
    (bytes the caller will still allocate while the chunks live, e.g. parameter gradients), or `CPU_BUDGET`
    on a CPU. With `COMPNB_DETERMINISTIC` on, a GPU's default is `determinism.FIXED_BUDGET` and a percentage
    is refused: free memory changes with other processes, and with it the chunks' shapes and rounding.
    At least 1."""
    device = torch.device(device)
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ValueError(f"memory_budget must be a positive number of bytes, got {budget!r}")
        return budget
    setting = os.environ.get(MEMORY_BUDGET_ENV, "").strip()
    if setting:
        value = parse_memory(setting)
        if isinstance(value, int):
            return value
        if determinism.requested():
            raise ValueError(f"{MEMORY_BUDGET_ENV}={setting!r} is a share of free memory, which {determinism.ENV}=1 "
                             "cannot repeat: give bytes ('24GiB') or unset it")
        return max(1, int(value * (_free_bytes(device) - reserve)))
    if device.type == "cuda":
        if determinism.requested():
            return determinism.FIXED_BUDGET
        if _STATIC[0]:  # a captured graph keeps its chunks' shapes: a share of the device's total memory, fixed
            return max(1, int(FREE_FRACTION * torch.cuda.get_device_properties(device).total_memory) - reserve)
        return max(1, int(FREE_FRACTION * (_free_bytes(device) - reserve)))
    return CPU_BUDGET


def pending_grad_bytes(model: torch.nn.Module) -> int:
    """Bytes of the gradients the next backward will allocate: trainable parameters whose `.grad` is None."""
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad and p.grad is None)


def _shape(model: SequenceClassifier) -> tuple[int, int, int, int, bool, int]:
    """(hidden width, layers, heads, MLP width, gated MLP?, bytes per activation element) of the backbone."""
    config = model.backbone.config
    hidden = max(config.hidden_size, *(getattr(config, k, 0) or 0 for k in ("embedding_size", "word_embed_proj_dim")))
    mlp = next((getattr(config, k) for k in ("intermediate_size", "ffn_dim", "n_inner") if getattr(config, k, None)),
               4 * hidden)
    gated = any(name.endswith(("gate_proj", "gate_up_proj")) for name, _ in model.backbone.named_modules())
    weights = [p for p in model.parameters() if p.is_floating_point()]
    width = max(4, max((p.element_size() for p in weights), default=4))
    device_type = weights[0].device.type if weights else "cpu"
    if width == 4 and torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type).itemsize == 2:
        width = 3  # 16-bit autocast: matmul outputs in 16 bits, norms and softmax in float32
    return hidden, config.num_hidden_layers, config.num_attention_heads, mlp, gated, width


def activation_bytes(model: SequenceClassifier, tokens: int, kind: str) -> int:
    """Upper estimate of the bytes one row (one sequence of `tokens` tokens) takes in a forward of `model`:

    - `inference`: no graph kept (`torch.no_grad`); what one layer holds at a time:
      (6h + 3f + 2·a·T) elements per token;
    - `graph`: the graph kept for one backward: per layer and token (10h + 2f + 2·a·T) elements, a gated MLP
      (Llama's SwiGLU) (12h + 4f + 2·a·T);
    - `double`: the graph of a forward and of a backward taken with `create_graph=True` (the MATH attention
      kernel), kept for a second backward: 2.75× the `graph` figure's h and f terms, plus 4·a·T;

    plus 8h per token for the embeddings and head, all times `ESTIMATE_MARGIN`. h is the hidden width, f the
    MLP's, a the number of heads, T = `tokens`. An element counts at the weights' width but at least 4 bytes,
    and 3 bytes under 16-bit autocast over float32 or 16-bit weights (matmul outputs in 16 bits; norms and
    softmax in float32). The coefficients bound the tensors that autograd saves per row, counted on CPU in float32
    and in bf16 autocast on layers shaped as ELECTRA-small's, OPT-1.3B's and Llama-2-7B's at T = 128: the
    estimate is 1.4-2.9x that count, the rest left for the backward's transient buffers and for kernels that
    save more on a GPU. A test checks the bound on tiny twins.
    """
    if kind not in ACTIVATION_KINDS:
        raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(ACTIVATION_KINDS)}")
    h, layers, heads, f, gated, width = _shape(model)
    if kind == "inference":
        per_token = 6 * h + 3 * f + 2 * heads * tokens + 8 * h
    else:
        body = 12 * h + 4 * f if gated else 10 * h + 2 * f
        per_layer = body + 2 * heads * tokens if kind == "graph" else 2.75 * body + 4 * heads * tokens
        per_token = layers * per_layer + 8 * h
    return int(ESTIMATE_MARGIN * per_token * tokens * width)


def chunk_rows(model: SequenceClassifier, tokens: int, kind: str, budget: int) -> int:
    """How many rows of `tokens` tokens fit in `budget` bytes by `activation_bytes` (at least 1)."""
    return max(1, budget // max(1, activation_bytes(model, tokens, kind)))


def _spans(total: int, step: int) -> list[tuple[int, int]]:
    """[start, stop) of consecutive chunks of at most `step` rows covering range(total)."""
    return [(start, min(start + step, total)) for start in range(0, total, step)]


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
                  differentiable: bool = False, token_type_ids: torch.Tensor | None = None,
                  memory_budget: int | None = None) -> torch.Tensor:
        """abs(p(label) − p(label | token t masked out)) (B, T), probabilities in [0, 1].

        Scores every real token, except special tokens when `special_tokens_mask` (B, T; 1 = special) is
        given; those and padding get 0. The batch and all its masked copies (one row per scored token) go
        through the model in chunks sized by `memory_budget` (bytes; see the module docstring for the
        default) and capped at `max_batch` rows when that is set. Dropping a token also drops it from the
        pooling ('mean' averages fewer tokens, 'last' moves back). Single backward only, so fused SDPA stays
        on; `differentiable=True` keeps the graph, and when the rows take more than one chunk each chunk is
        checkpointed: its activations are recomputed (in eval mode, as in the forward) during the backward
        instead of being kept, so memory stays at about one chunk's, for one more forward of the copies.
        `token_type_ids` (B, T), for models that take segment ids, go with the batch and its copies.
        """
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        mask = attention_mask.bool()
        scored = mask if special_tokens_mask is None else mask & ~special_tokens_mask.bool()
        if _STATIC[0]:  # every position, so that the copies' count follows the shape (`static_shapes`)
            rows = torch.arange(mask.shape[0], device=mask.device).repeat_interleave(mask.shape[1])
            cols = torch.arange(mask.shape[1], device=mask.device).repeat(mask.shape[0])
        else:
            rows, cols = scored.nonzero(as_tuple=True)
        moved = self._moves(input_ids, attention_mask, labels, rows, cols, differentiable=differentiable,
                            token_type_ids=token_type_ids, memory_budget=memory_budget, max_batch=max_batch)
        scores = moved.new_zeros(input_ids.shape).index_put((rows, cols), moved)
        return scores * scored if _STATIC[0] else scores

    def attribute_at(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                     positions: torch.Tensor, *, token_type_ids: torch.Tensor | None = None,
                     memory_budget: int | None = None) -> torch.Tensor:
        """The scores (B, J) of `attribute` at J chosen positions (B, J) per row, with their graph: one forward of
        the batch and its B·J copies, whose count follows the shape alone (a captured graph's need). A position
        that is padding scores 0 (dropping it changes nothing)."""
        batch, chosen = positions.shape
        rows = torch.arange(batch, device=positions.device).repeat_interleave(chosen)
        moved = self._moves(input_ids, attention_mask, labels, rows, positions.reshape(-1), differentiable=True,
                            token_type_ids=token_type_ids, memory_budget=memory_budget)
        return moved.view(batch, chosen)

    def _moves(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
               rows: torch.Tensor, cols: torch.Tensor, *, differentiable: bool,
               token_type_ids: torch.Tensor | None, memory_budget: int | None,
               max_batch: int | None = None) -> torch.Tensor:
        """abs(p(label) − p(label | token cols[i] of row rows[i] dropped)) (N,) for N = len(rows), from one
        eval-mode forward of the batch and its N copies, chunked (and checkpointed when differentiable) as
        `attribute` says."""
        dropped = attention_mask[rows].clone()
        dropped.index_put_((torch.arange(len(rows), device=rows.device), cols),
                           torch.zeros((), dtype=dropped.dtype, device=dropped.device))  # no host scalar
        ids = torch.cat([input_ids, input_ids[rows]])
        masks = torch.cat([attention_mask, dropped])
        segments = None if token_type_ids is None else torch.cat([token_type_ids, token_type_ids[rows]])
        # Kept graphs live until the backward, which also allocates the parameter gradients.
        budget = budget_bytes(input_ids.device, memory_budget,
                              reserve=pending_grad_bytes(self.model) if differentiable else 0)
        step = chunk_rows(self.model, ids.shape[1], "graph" if differentiable else "inference", budget)
        step = max(1, min(step, max_batch or step, len(ids)))
        forward = (partial(checkpoint, self._eval_forward, use_reentrant=False) if differentiable and step < len(ids)
                   else self._eval_forward)
        with torch.set_grad_enabled(differentiable):
            logits = torch.cat([forward(ids[i:j], masks[i:j], None if segments is None else segments[i:j])
                                for i, j in _spans(len(ids), step)])
        probs = _at_label(logits.softmax(dim=-1), torch.cat([labels, labels[rows]]))
        full, without = probs[:len(input_ids)], probs[len(input_ids):]
        return (full[rows] - without).abs()


_QUADRATURES: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _quadrature_on(method: str, n_steps: int, dtype: torch.dtype, device: torch.device
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """`_quadrature` as tensors on `device`, made once per rule, dtype and device and then reused, so that a
    captured CUDA graph (whose warm-up makes them) copies nothing from the host."""
    key = (method, n_steps, dtype, torch.device(device))
    if key not in _QUADRATURES:
        _QUADRATURES[key] = tuple(torch.as_tensor(a, dtype=dtype, device=device) for a in _quadrature(method, n_steps))
    return _QUADRATURES[key]


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


class _PathPoints:
    """The IG path of one batch as rows r = step·B + example: `rows(start, stop, x, base, create_graph)` gives the
    quadrature-weighted gradients of the target logit at rows [start, stop) and the example of each row."""

    def __init__(self, model: SequenceClassifier, alphas: torch.Tensor, weights: torch.Tensor,
                 attention_mask: torch.Tensor, labels: torch.Tensor, token_type_ids: torch.Tensor | None):
        self.model, self.alphas, self.weights = model, alphas, weights
        self.attention_mask, self.labels, self.token_type_ids = attention_mask, labels, token_type_ids
        self.batch, self.tokens = attention_mask.shape
        self.total = len(alphas) * self.batch

    def rows(self, start: int, stop: int, x: torch.Tensor, base: torch.Tensor, create_graph: bool
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(w_step · ∂logit_label/∂path (stop − start, T, H), example index (stop − start,))."""
        r = torch.arange(start, stop, device=x.device)
        step, example = r // self.batch, r % self.batch
        path = _gradable(base[example] + self.alphas[step].view(-1, 1, 1) * (x[example] - base[example]),
                         create_graph)
        segments = {} if self.token_type_ids is None else {"token_type_ids": self.token_type_ids[example]}
        logits = self.model(inputs_embeds=path, attention_mask=self.attention_mask[example], **segments)
        (grads,) = torch.autograd.grad(_at_label(logits, self.labels[example]).sum(), path, create_graph=create_graph)
        return self.weights[step].view(-1, 1, 1) * grads, example

    def weighted_sum(self, x: torch.Tensor, base: torch.Tensor, step: int, create_graph: bool) -> torch.Tensor:
        """Σ_step w_step · ∂logit/∂path (B, T, H), in chunks of `step` rows (each chunk's graph dropped after it
        unless `create_graph`)."""
        total = torch.zeros_like(x)
        for start, stop in _spans(self.total, step):
            grads, example = self.rows(start, stop, x, base, create_graph)
            total = total.index_add(0, example, grads.to(total.dtype))
        return total


class _CheckpointedPathGradients(torch.autograd.Function):
    """Σ_step w_step · ∂logit/∂path (B, T, H), differentiable in x, the baseline and the parameters, without
    keeping the double-backward graph of all path points: the forward takes first-order gradients chunk by
    chunk (each chunk's graph freed at once); the backward recomputes each chunk with `create_graph=True`
    and backpropagates the incoming gradient through it, one chunk at a time, in chunks sized from the memory
    free when the backward runs. Parameter gradients are returned (not accumulated into `.grad` inside the
    backward), so DDP sees each parameter's gradient once; holding their running sum costs one extra set of
    gradients during this backward. Costs one more forward and first-order backward of the path points
    than keeping the graph."""

    @staticmethod
    def forward(ctx, points: _PathPoints, budget: int | None, forward_step: int, x: torch.Tensor,
                base: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        device_type = x.device.type
        ctx.points, ctx.budget, ctx.params = points, budget, params
        ctx.autocast = (torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type))
        ctx.save_for_backward(x, base)
        with torch.enable_grad(), sdpa_kernel(FUSED_FIRST):  # first-order only: the fused kernels will do
            return points.weighted_sum(x.detach(), base.detach(), forward_step, create_graph=False)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        x, base = ctx.saved_tensors
        points, params = ctx.points, ctx.params
        need = ctx.needs_input_grad[3:]
        leaf_x = x.detach().requires_grad_(need[0])
        leaf_base = base.detach().requires_grad_(need[1])
        wrt = [t for t, n in zip((leaf_x, leaf_base, *params), need) if n]
        # Each chunk's parameter gradients arrive while the running sum is held: room for two sets.
        reserve = 2 * sum(p.numel() * p.element_size() for p, n in zip(params, need[2:]) if n)
        step = chunk_rows(points.model, points.tokens, "double", budget_bytes(x.device, ctx.budget, reserve))
        sums: list[torch.Tensor | None] = [None] * len(wrt)
        enabled, dtype = ctx.autocast
        with torch.enable_grad(), torch.autocast(x.device.type, dtype=dtype, enabled=enabled), \
                analysis_mode(points.model, True):
            for start, stop in _spans(points.total, step):
                grads, example = points.rows(start, stop, leaf_x, leaf_base, create_graph=True)
                contribution = (grads * grad_out[example].to(grads.dtype)).sum()
                for k, g in enumerate(torch.autograd.grad(contribution, wrt, allow_unused=True)):
                    if g is not None:
                        sums[k] = g if sums[k] is None else sums[k].add_(g)
        found = iter(sums)
        return (None, None, None, *(next(found) if n else None for n in need))


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
                  input_graph: bool = False, token_type_ids: torch.Tensor | None = None,
                  memory_budget: int | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attributions (B, T) = Σ_h (x − baseline)·(weighted mean of ∂logit/∂x along the path), 0 on padding.

        `baselines` is a number or a tensor broadcastable to the embeddings (B, T, H); 0 is the zero
        embedding. The B·n_steps path points go through the model in chunks sized by `memory_budget` (bytes;
        see the module docstring for the default); with `differentiable=True`, when they take more than one
        chunk, each chunk's double-backward graph is recomputed in the backward instead of kept.
        `input_graph=True` (with `differentiable=False`) is Captum's `IntegratedGradients` over input
        embeddings: the path gradients are taken without a graph, but the (x − baseline) factor keeps the
        embeddings' graph, so a penalty on the attributions reaches the word-embedding matrix and nothing else.
        `token_type_ids` (B, T), when the model takes segment ids (BERT-style pairs), go with every path point.
        With `return_completeness_gap`, also returns abs(Σ_t attributions − (F(x) − F(baseline))) (B,), in
        logits, from one more forward of 2B rows.
        """
        alphas, weights = _quadrature_on(method, n_steps, self.model.embeddings.weight.dtype, input_ids.device)
        batch, tokens = input_ids.shape
        points = _PathPoints(self.model, alphas, weights, attention_mask, labels, token_type_ids)
        with analysis_mode(self.model, differentiable), torch.enable_grad():
            x = self.model.embeddings(input_ids)
            x = x if differentiable or input_graph else x.detach()
            base = (torch.full_like(x, baselines) if isinstance(baselines, (int, float))  # no host copy (CUDA graphs)
                    else torch.as_tensor(baselines, dtype=x.dtype, device=x.device).expand_as(x))
            if not differentiable:  # each chunk's graph is dropped once its gradients are taken
                step = chunk_rows(self.model, tokens, "graph", budget_bytes(x.device, memory_budget))
                mean_grads = points.weighted_sum(x.detach(), base.detach(), step, create_graph=False)
            else:
                # The double-backward graph lives until the loss's backward, which allocates parameter gradients.
                budget = budget_bytes(x.device, memory_budget, reserve=pending_grad_bytes(self.model))
                if chunk_rows(self.model, tokens, "double", budget) >= points.total:
                    mean_grads = points.weighted_sum(x, base, points.total, create_graph=True)
                else:
                    params = [p for p in self.model.parameters() if p.requires_grad]
                    step = chunk_rows(self.model, tokens, "graph", budget_bytes(x.device, memory_budget))
                    mean_grads = _CheckpointedPathGradients.apply(points, memory_budget, step, x, base, *params)
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
