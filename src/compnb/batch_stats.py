"""Losses of batch means that stay the whole batch's loss when a training step splits its batch over processes
(DDP, FSDP) or into `grad_accum` micro-batches.

A loss L = F(m) of batch means m = Σ_r w_r·x_r / W (x_r (k,): per-row statistics such as CE and H; w_r: row
weights, 1 or a padding row's 0; W = Σ_r w_r) is a mean over rows only when F is linear, so averaging the
gradients of F at each part's own means is, in general, another loss. Let c_p be the weight the step gives part
p's gradient (p's share of its process's rows over the number of processes, whose gradients DDP and FSDP
average; Σ_p c_p = 1) and W the whole batch's weight, over every part and process. Part p back-propagates

- for a non-linear F, the linear surrogate S_p = Σ_i ∂F/∂m_i(m̄) · Σ_{r∈p} w_r·x_{r,i} / (W·c_p), with m̄ the
  whole batch's means (detached: summed over micro-batches, all-reduced over processes), returned with the
  value F(m̄), so every part logs the whole batch's values;
- for a linear F, F itself at the pseudo-means Σ_{r∈p} w_r·x_r / (W·c_p), whose c_p-weighted sums over the
  parts are the whole batch's means (no statistics needed, only W);

so that Σ_p c_p·∇(loss of p) = ∇F(m̄), the whole batch's gradient, and the step's c_p-weighted logs are the
whole batch's values.

The step builds a `Split` once (`split_batch`: W all-reduced; for a non-linear loss with `grad_accum` > 1, a
statistics pass first, forwards without backward, the random state restored afterwards so that dropout draws
the same masks when the parts run again) and opens `part(split, c_p)` around each part's loss and backward; a
loss of batch means computes through `split_loss` when `is_split()`. A non-linear loss without micro-batches
(one part per process) all-reduces its sums in the forward instead. Which of the two follows the config, not
the step's count of micro-batches, so every process makes the same collective calls even when an epoch's last
batch gives one process fewer. A loss declares with `of_means` for which parameters it is non-linear in its
means. Outside `part` nothing here runs: a batch that is not split computes exactly what it did before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

Batch = dict[str, torch.Tensor]
Params = dict[str, Any]


@dataclass(frozen=True)
class Split:
    """A step's batch as split: `count` W, the whole batch's row weight (0-d float64), and `totals` (k + 1,)
    float64, its Σ w·x per statistic and then W, from the statistics pass, or None without one."""

    count: torch.Tensor
    totals: torch.Tensor | None = None


@dataclass(frozen=True)
class _Part:
    """What a loss sees of the part it computes: its gradient's weight `scale` c_p and the step's `split`; during
    the statistics pass, `recorded`, where each part's sums go."""

    scale: float
    split: Split | None
    recorded: list[torch.Tensor] | None = None


_PART: ContextVar[_Part | None] = ContextVar("compnb_batch_part", default=None)
_NON_LINEAR: dict[Callable, Callable[[Params], bool]] = {}


def of_means(non_linear: Callable[[Params], bool]) -> Callable[[Callable], Callable]:
    """Decorator for a loss function that computes through `split_loss`: `non_linear(params)` tells whether its F
    is non-linear in the batch means, so that a step with micro-batches runs the statistics pass for it."""
    def mark(loss_fn: Callable) -> Callable:
        _NON_LINEAR[loss_fn] = non_linear
        return loss_fn
    return mark


def needs_statistics(loss_fn: Callable, params: Params) -> bool:
    """Whether `loss_fn` with `params` is non-linear in its batch means (`of_means`)."""
    non_linear = _NON_LINEAR.get(loss_fn)
    return non_linear is not None and non_linear(params)


def is_split() -> bool:
    """Whether the loss being computed is that of a part of a split batch (inside `part` or the statistics pass)."""
    return _PART.get() is not None


def split_batch(parts: Sequence[Batch], loss_of: Callable[[Batch], Any], device: torch.device,
                statistics: bool) -> Split:
    """The `Split` of a step over this process's `parts` (every process calls it once per step: it all-reduces).
    With `statistics`, `loss_of(part)` runs for each part in turn, without backward (each graph dropped at once),
    and their sums are added and all-reduced; the random state of the CPU and of `device` is restored
    afterwards, so the parts draw the same dropout masks when they run again."""
    if not statistics:
        count = torch.zeros((), dtype=torch.float64, device=device)
        for part_batch in parts:
            count += part_batch["weight"].double().sum() if "weight" in part_batch else len(part_batch["labels"])
        return Split(_all_reduced(count))
    recorded: list[torch.Tensor] = []
    token = _PART.set(_Part(1.0, None, recorded))
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for part_batch in parts:
                loss_of(part_batch)
    finally:
        _PART.reset(token)
    if not recorded:
        raise RuntimeError("the statistics pass recorded no batch sums: the loss does not compute through split_loss")
    totals = _all_reduced(torch.stack(recorded).sum(0))
    return Split(totals[-1], totals)


@contextmanager
def part(split: Split, scale: float) -> Iterator[None]:
    """Around one part's loss and backward: the step's `split` and the part's gradient weight c_p (its share of
    its process's rows / processes)."""
    token = _PART.set(_Part(scale, split))
    try:
        yield
    finally:
        _PART.reset(token)


def _all_reduced(sums: torch.Tensor) -> torch.Tensor:
    """`sums` summed over the processes of the default group, when there are several."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(sums)
    return sums


def split_loss(loss_at: Callable[..., torch.Tensor], rows: Sequence[torch.Tensor], weight: torch.Tensor | None,
               linear: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(loss, means) of the current part of a split batch (module docstring): F = `loss_at(*means)` of the k
    per-row statistics `rows` (B,) (with their graphs) weighted by `weight` (B,) or 1. `linear` F: its value at
    the part's pseudo-means, which are returned; else the surrogate's gradient with the value F(m̄), and the whole
    batch's means m̄ (float64). Means are detached 0-d tensors. In the statistics pass, records the part's sums."""
    part = _PART.get()
    if part is None:
        raise RuntimeError("split_loss runs only for a part of a split batch (inside batch_stats.part)")
    w = torch.ones_like(rows[0]) if weight is None else weight
    sums = [(w.to(x.dtype) * x).sum() for x in rows]
    if linear:
        means = [s / (part.split.count * part.scale) for s in sums]
        return loss_at(*means), [m.detach() for m in means]
    local = torch.stack([s.detach().double() for s in sums] + [w.detach().double().sum()])
    if part.recorded is not None:
        part.recorded.append(local)
        totals = local
    else:
        totals = part.split.totals if part.split.totals is not None else _all_reduced(local)
    means = (totals[:-1] / totals[-1]).requires_grad_()
    with torch.enable_grad(), torch.autocast(means.device.type, enabled=False):
        value = loss_at(*means)
        (slopes,) = torch.autograd.grad(value, means)
    surrogate = sum(slope * s for slope, s in zip(slopes, sums)) / (totals[-1] * part.scale)
    return value.detach() + (surrogate - surrogate.detach()), list(means.detach())
