"""Sharded training (PyTorch's FSDP2, `fully_shard`, as `accelerate launch --use_fsdp --fsdp_version 2`
applies it) for the losses that backpropagate through an input gradient.

FSDP2 keeps each rank's shard of the weights and gathers a unit's full weights only while the unit computes:
it frees them after the unit's forward (`reshard_after_forward`) and after its backward
(`reshard_after_backward`), reduce-scatters the gradients when a unit's backward ends, and gathers again
when the next pass reaches the unit. A second-order loss (chapter 3's gradient saliency, chapter 5's
differentiable IG) takes a first backward with `create_graph=True` to the input embeddings and later
backpropagates through that backward's graph, which holds the gathered weights. Two things follow:

- the first backward must not free the gathered weights: `first_backward(model)` sets
  `reshard_after_backward=False` on every unit for its duration (it computes no weight gradient, so nothing
  is reduced; the gathered weights stay until the training backward, whose own post-backward frees them);
- the embedding lookup must run inside the root module's forward, so that FSDP has gathered its weights and
  counts its gradient in the root unit's reduce-scatter: `penalties.gradient_s` captures the embedding output
  with a forward hook (`embedding_output`) instead of calling the embedding outside the model.

With the weights gathered all through the step, a sharded step needs the full 16-bit weights once per rank
on top of its shard of the float32 weights, gradients and AdamW moments (see the appendix "At the papers'
scale" for Llama-2-7B on four GPUs). Without FSDP every function here is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

try:  # public since torch 2.6
    from torch.distributed.fsdp import FSDPModule
except ImportError:  # pragma: no cover - older torch has no FSDP2
    FSDPModule = ()  # type: ignore[assignment,misc]


def is_sharded(model: nn.Module) -> bool:
    """Whether any module of `model` is an FSDP2 unit."""
    return bool(FSDPModule) and any(isinstance(m, FSDPModule) for m in model.modules())


@contextmanager
def first_backward(model: nn.Module) -> Iterator[None]:
    """Around a backward taken with `create_graph=True`: FSDP2 units keep their gathered weights after it
    (the second backward reads them); restores `reshard_after_backward=True`, FSDP2's default."""
    units = [m for m in model.modules() if FSDPModule and isinstance(m, FSDPModule)]
    for unit in units:
        unit.set_reshard_after_backward(False, recurse=False)
    try:
        yield
    finally:
        for unit in units:
            unit.set_reshard_after_backward(True, recurse=False)


@contextmanager
def embedding_output(embeddings: nn.Module, make_leaf: bool) -> Iterator[list[torch.Tensor]]:
    """Capture the output (B, T, E) of `embeddings` during the forwards inside the block, in a list that the
    block reads. With `make_leaf`, an output that does not require grad (frozen embeddings, as under LoRA)
    is made a leaf that does, so gradients can be taken to it; the forward continues from the captured
    tensor either way."""
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        if make_leaf and not output.requires_grad:
            output = output.detach().requires_grad_()
        captured.append(output)
        return output

    handle = embeddings.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def rank_batches(batches: list[list[int]], rank: int, ranks: int, sharded: bool) -> tuple[list[list[int]], int]:
    """This rank's share of evaluation `batches` (every `ranks`-th from `rank`) and how many of them are its
    own. Sharded, every rank must run the same number of forwards (each gathers weights with the others), so
    a short share is topped up with copies of the first batch, whose outputs the caller drops."""
    mine = batches[rank::ranks]
    if not sharded or not batches:
        return mine, len(mine)
    count = -(-len(batches) // ranks)
    return mine + [batches[0]] * (count - len(mine)), len(mine)


def load_full_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load a full (unsharded) state dict, as `accelerate.get_state_dict` saves one, into `model`: sharded, each
    rank keeps its shard (every rank passes the whole dict); otherwise `load_state_dict`."""
    if not is_sharded(model):
        model.load_state_dict(state_dict)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state_dict, options=StateDictOptions(full_state_dict=True))
