"""Watching training for non-finite values without waiting for the host at each step.

`Watch` keeps on the device the first step whose loss (or a value the loss logs) and whose gradient norm were not
finite: each step adds a few device operations and no host sync; the loop reads the watch (one gather, one sync)
where it reads its logs anyway and before it writes a checkpoint or best weights, so that it stops before any
file is written from a non-finite state, and names the exact step where it went wrong. The gradient norm is
watched through an optimizer step pre-hook, on the gradient the optimizer is about to apply (after clipping,
which leaves a non-finite norm non-finite); the captured engine's step runs inside a CUDA graph and returns the
norm it computed (`captured.GRAD_NORM`), which the loop watches the same way; the weights themselves are checked
before anything is saved.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator

NEVER = 2**62  # the step recorded while everything has been finite
KINDS = ("loss", "gradient norm", "weights")


class DivergedError(ValueError):
    """Training met a non-finite loss, gradient norm or weight."""


class Watch:
    """`first` (2,) int64 on the device: the first step whose loss and whose gradient norm were not finite (`NEVER`
    until then); `step`, the step being taken, set on the host before it."""

    def __init__(self, device: torch.device, step: int = 0):
        self.first = torch.full((2,), NEVER, dtype=torch.int64, device=device)
        self.step = step

    def see(self, kind: int, value: torch.Tensor) -> None:
        """Record the current step for `kind` (0 the loss, 1 the gradient norm) if any entry of `value` is not
        finite and none was before; device operations only."""
        self.first[kind] = torch.minimum(self.first[kind], torch.where(torch.isfinite(value).all(), NEVER, self.step))

    def watch_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """See the norm of the gradients `optimizer` is about to apply at each of its steps (a step pre-hook)."""
        def hook(opt: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
            grads = [_local(p.grad) for group in opt.param_groups for p in group["params"] if p.grad is not None]
            if grads:
                self.see(1, torch.nn.utils.get_total_norm(grads))
        optimizer.register_step_pre_hook(hook)

    def read(self, accelerator: Accelerator, model: torch.nn.Module | None = None) -> tuple[str, int] | None:
        """(what, step) of the first non-finite value on any process, the loss before the gradient norm at the same
        step, or None; with `model`, weights that are not finite now count too (as of the current step). One
        gather and one host sync."""
        values = self.first
        if model is not None:
            finite = torch.stack([torch.isfinite(_local(p.detach())).all() for p in model.parameters()]).all()
            values = torch.cat([values, torch.where(finite, NEVER, self.step).reshape(1)])
        first = accelerator.gather(values[None]).amin(0).tolist()
        step = min(first)
        return None if step == NEVER else (KINDS[first.index(step)], step)


def diverged(run: str, what: str, step: int, checkpoint: int | None, lr: float,
             max_grad_norm: float | None) -> DivergedError:
    """The one line for run `run` whose `what` (a `KINDS` entry) went non-finite at `step`, its checkpoint (of
    step `checkpoint`, if any) kept, with the config's `lr` and `max_grad_norm`."""
    when = f"were not finite after step {step}" if what == "weights" else f"was not finite at step {step}"
    kept = "it has no checkpoint yet" if checkpoint is None else f"its checkpoint of step {checkpoint} is kept"
    clip = "null" if max_grad_norm is None else f"{max_grad_norm:g}"
    return DivergedError(f"run {run} diverged: its {what} {when}; training stopped, nothing is marked finished and "
                         f"{kept}; lower lr (now {lr:g}) or clip gradients with max_grad_norm (now {clip}) in its "
                         "config")


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's shard of a sharded (DTensor) tensor, else the tensor."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor
