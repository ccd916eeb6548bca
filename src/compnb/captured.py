"""A whole training step captured as one CUDA graph per input shape and replayed (PyTorch's whole-network
capture recipe, `torch.cuda.graph`): forward, loss (the competency loss's double backward included), backward,
gradient clipping and a capturable fused AdamW step, with the learning rate as a device tensor.

Small backbones are launch-bound: an eager MiniLM step spends most of its time in Python and kernel launches
(the issue's measurements: 16 ms eager, 3.4 ms captured for cross-entropy at 32 × 64). A replay launches the
whole step at once.

How it keeps the numbers of eager training:

- Each new shape is captured once. Capture needs warm-up iterations on a side stream (allocations, cuBLAS
  workspaces, the optimizer's state); those iterations would train the model, so parameters, gradients and the
  optimizer's state are snapshotted before them and restored after the capture, in place (the graph holds
  their addresses). The step that triggered the capture is then replayed like every later one.
- Inputs are copied into the shape's static buffers before each replay; outputs (the loss and the loss's logs)
  are the graph's static tensors, cloned on return so that later replays cannot overwrite them. Nothing in a
  step reads a value back to the host.
- Autocast runs with its cast cache off inside capture (a cached cast would be captured once and go stale).
- The step runs inside `compnb.saliency.static_shapes()`: mask saliency scores every position (the count of
  real tokens would be a data-dependent shape), and the chunked saliencies (mask, IG) size their chunks from a
  fixed budget, so a shape's graph does not follow the data or the memory free at capture time.

Dropout draws from the CUDA generator, which `torch.cuda.graph` registers so that each replay advances it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from compnb.saliency import static_shapes

Batch = dict[str, torch.Tensor]
ENV = "COMPNB_CUDA_GRAPHS"  # "0" trains eagerly on a GPU too
EAGER, GRAPHS = "eager", "cuda-graph"
LENGTH_BUCKET = 16  # the captured engine pads lengths to multiples of this (at most max_length): few shapes
LossFn = Callable[[torch.nn.Module, Batch, dict[str, Any]], tuple[torch.Tensor, torch.Tensor, Mapping[str, Any]]]
WARMUP_STEPS = 3
GRAD_NORM = "grad_norm"  # the key of a captured step's gradient norm, which is watched, not logged


def recorded_engine(metrics: Mapping[str, Any]) -> str:
    """The engine a finished run's `metrics.json` says trained it; runs from before the engine was recorded: `EAGER`."""
    return metrics.get("engine", EAGER)


def engine_for(device: torch.device, distributed: bool, grad_accum: int) -> str:
    """`GRAPHS` on one CUDA device with one micro-batch per step, unless `COMPNB_CUDA_GRAPHS=0`; else `EAGER`
    (a CPU, several processes or FSDP, gradient accumulation)."""
    wanted = os.environ.get(ENV, "1").strip() not in ("0", "")
    return GRAPHS if wanted and device.type == "cuda" and not distributed and grad_accum == 1 else EAGER


@dataclass(frozen=True)
class StaticBatches:
    """Collates a sampled batch for the captured engine: ([the batch padded by `pad`, whose `rows` and `bucket`
    fix its shape], the number of real rows), the count known on the host so that a step never reads it back."""

    pad: Any  # a batching.PadCollator with rows and bucket set

    def __call__(self, items: list[dict[str, Any]]) -> tuple[list[Batch], int]:
        return [self.pad(items)], len(items)


def capturable_adamw(groups: list[dict], lr: float, device: torch.device) -> torch.optim.AdamW:
    """Fused AdamW whose step can be captured: `capturable=True`, its learning rate a device tensor that
    `set_lr` or a torch scheduler fills in place (never assign a float: the graph holds the tensor)."""
    for group in groups:  # a float base rate: a scheduler then writes plain numbers into the tensor, no sync
        group.setdefault("initial_lr", float(lr))
    return torch.optim.AdamW(groups, lr=torch.tensor(lr, device=device), fused=True, capturable=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write a new learning rate into every group's device tensor (no reallocation, no sync)."""
    for group in optimizer.param_groups:
        group["lr"].fill_(lr)


def shape_key(batch: Batch) -> tuple:
    """What selects a batch's graph: each tensor's name, shape and dtype."""
    return tuple((k, tuple(v.shape), v.dtype) for k, v in sorted(batch.items()))


class _Snapshot:
    """Copies of parameters, their gradients and the optimizer's state, restored in place."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.values = [p.detach().clone() for p in self.params]
        self.grads = [None if p.grad is None else p.grad.detach().clone() for p in self.params]
        self.state = {id(p): {k: (v.clone() if torch.is_tensor(v) else v) for k, v in optimizer.state[p].items()}
                      for p in self.params if p in optimizer.state}
        self.optimizer = optimizer

    def restore(self) -> None:
        with torch.no_grad():
            for p, value, grad in zip(self.params, self.values, self.grads):
                p.copy_(value)
                if p.grad is not None:
                    p.grad.zero_() if grad is None else p.grad.copy_(grad)
            for p in self.params:
                state = self.optimizer.state.get(p)
                if not state:
                    continue
                saved = self.state.get(id(p))
                for key, value in state.items():
                    if torch.is_tensor(value):
                        value.copy_(saved[key]) if saved is not None else value.zero_()


class CapturedStep:
    """`step(batch)` runs one optimizer step of `loss_fn` on `batch` (a dict of CUDA tensors, a fixed set of
    keys) by replaying the CUDA graph captured for the batch's shapes, and returns the step's loss, logs and the
    gradients' total norm (before clipping) as device tensors: {"loss": (), <log name>: (), ..., GRAD_NORM: ()}.
    `max_grad_norm` clips as `clip_grad_norm_` does; the optimizer must come from `capturable_adamw`.
    `autocast_dtype` None runs in the parameters' dtype."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn,
                 params: dict[str, Any], max_grad_norm: float | None = None,
                 autocast_dtype: torch.dtype | None = torch.bfloat16, warmup: int = WARMUP_STEPS):
        if not torch.cuda.is_available():
            raise RuntimeError("a captured step needs a CUDA device; train eagerly on a CPU")
        self.model, self.optimizer, self.loss_fn, self.params = model, optimizer, loss_fn, params
        self.max_grad_norm, self.autocast_dtype, self.warmup = max_grad_norm, autocast_dtype, warmup
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, Batch, dict[str, torch.Tensor]]] = {}
        self.pool = torch.cuda.graph_pool_handle()  # one memory pool shared by every shape's graph

    def _body(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The step as eager code: zero the gradients in place, forward and loss, backward, clip, update."""
        self.optimizer.zero_grad(set_to_none=False)
        autocast = (torch.autocast("cuda", dtype=self.autocast_dtype, cache_enabled=False)
                    if self.autocast_dtype is not None else nullcontext())
        with autocast, static_shapes():
            loss, _, logs = self.loss_fn(self.model, batch, self.params)
        loss.backward()
        if self.max_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm, foreach=True)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters() if p.grad is not None],
                                                 foreach=True)
        self.optimizer.step()
        return {"loss": loss.detach(), **{k: torch.as_tensor(v, device=loss.device).detach() for k, v in logs.items()},
                GRAD_NORM: norm.detach()}

    def _capture(self, batch: Batch) -> tuple[torch.cuda.CUDAGraph, Batch, dict[str, torch.Tensor]]:
        static = {k: v.clone() for k, v in batch.items()}
        snapshot = _Snapshot(self.model, self.optimizer)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self._body(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            outputs = self._body(static)
        snapshot.restore()  # the warm-up steps trained; the run must not see them
        return graph, static, outputs

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        key = shape_key(batch)
        if key not in self.graphs:
            self.graphs[key] = self._capture(batch)
        graph, static, outputs = self.graphs[key]
        for name, value in batch.items():
            static[name].copy_(value, non_blocking=True)
        graph.replay()
        return {k: v.clone() for k, v in outputs.items()}

    @property
    def shapes(self) -> int:
        """How many shapes have been captured (one graph each)."""
        return len(self.graphs)
