"""Batched prediction with static shapes: class probabilities (n, classes) float32 of encoded examples, in their
order, from a model in eval mode without gradients.

Every batch is padded to the same row count, the batch size (n when smaller: a last, partial batch gets copies
of its first item as filler rows, dropped afterwards), and to a length in multiples of `captured.LENGTH_BUCKET`,
at most the longest example's (`static_collator`), so that at most ceil(longest / LENGTH_BUCKET) shapes occur.
The probabilities stay on the device and come to the host in one copy at the end. Nothing in a forward reads a
value back to the host.

On one CUDA device with the captured engine on (`captured.engine_for`: `COMPNB_CUDA_GRAPHS` not "0"), each
shape's forward is captured once as a CUDA graph and replayed (`CapturedForward`); elsewhere it runs eagerly
(`EagerForward`), padded the same way. `predict` and `predict_encoded` score a dataset on the model's device;
`gather_probs` scores a training run's validation set across `accelerate`'s processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
import datasets
import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device
from tqdm.auto import tqdm

from compnb import captured, models, sharding
from compnb.batching import Batch, Encoded, PadCollator, encode, sorted_batches
from compnb.penalties import model_inputs


def _probabilities(model: torch.nn.Module, inputs: Batch, autocast_dtype: torch.dtype | None) -> torch.Tensor:
    """Softmax (rows, classes) float32 of the model's logits on `inputs`, under autocast in `autocast_dtype` (its
    cast cache off, so that a captured forward casts the weights on every replay) when one is given."""
    device_type = next(iter(inputs.values())).device.type
    autocast = (torch.autocast(device_type, dtype=autocast_dtype, cache_enabled=False) if autocast_dtype is not None
                else nullcontext())
    with autocast:
        logits = model(**inputs)
    return logits.float().softmax(-1)


class EagerForward:
    """`forward(inputs)`: probabilities (rows, classes) float32 on the device of model inputs (a dict of tensors on
    the model's device), computed eagerly without gradients."""

    engine = captured.EAGER

    def __init__(self, model: torch.nn.Module, autocast_dtype: torch.dtype | None = None):
        self.model, self.autocast_dtype = model, autocast_dtype

    def __call__(self, inputs: Batch) -> torch.Tensor:
        with torch.no_grad():
            return _probabilities(self.model, inputs, self.autocast_dtype)


class CapturedForward:
    """`forward(inputs)` as `EagerForward`, replaying the CUDA graph captured for the inputs' shapes (PyTorch's
    whole-network capture): on a new shape, warm-up forwards on a side stream, then one forward captured into a
    graph with static input buffers; each call copies the inputs into the shape's buffers and replays. The
    returned tensor is the graph's static output: valid until the next call, which may overwrite it. Every
    shape's graph shares one memory pool; PyTorch calls that safe for graphs replayed in the order they were
    captured, and it holds here in any order because no graph reads another's output and each output is used
    before the next replay. The model must stay in eval mode and keep its parameters' storage (weights loaded
    in place are fine)."""

    engine = captured.GRAPHS

    def __init__(self, model: torch.nn.Module, autocast_dtype: torch.dtype | None = None,
                 warmup: int = captured.WARMUP_STEPS):
        if not torch.cuda.is_available():
            raise RuntimeError("a captured forward needs a CUDA device; predict eagerly on a CPU")
        self.model, self.autocast_dtype, self.warmup = model, autocast_dtype, warmup
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, Batch, torch.Tensor]] = {}
        self.pool = torch.cuda.graph_pool_handle()

    def _capture(self, inputs: Batch) -> tuple[torch.cuda.CUDAGraph, Batch, torch.Tensor]:
        static = {k: v.clone() for k, v in inputs.items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(self.warmup):
                _probabilities(self.model, static, self.autocast_dtype)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph, pool=self.pool):
            probs = _probabilities(self.model, static, self.autocast_dtype)
        return graph, static, probs

    def __call__(self, inputs: Batch) -> torch.Tensor:
        key = captured.shape_key(inputs)
        if key not in self.graphs:
            self.graphs[key] = self._capture(inputs)
        graph, static, probs = self.graphs[key]
        for name, value in inputs.items():
            static[name].copy_(value, non_blocking=True)
        graph.replay()
        return probs

    @property
    def shapes(self) -> int:
        """How many shapes have been captured (one graph each)."""
        return len(self.graphs)


def forward_for(model: torch.nn.Module, engine: str,
                autocast_dtype: torch.dtype | None = None) -> EagerForward | CapturedForward:
    """The forward of `engine` (`captured.GRAPHS` or `captured.EAGER`) over `model`. For a captured forward the
    model must run without a wrapper that autocasts with its cast cache on (accelerate's: pass the bare model)."""
    return CapturedForward(model, autocast_dtype) if engine == captured.GRAPHS else EagerForward(model, autocast_dtype)


def static_collator(tokenizer, encoded: Encoded, batch_size: int) -> PadCollator:
    """A collator that pads every batch of `encoded` to min(batch_size, n) rows and to a length in multiples of
    `captured.LENGTH_BUCKET`, at most the longest example's, on the tokenizer's padding side."""
    return PadCollator(tokenizer.pad_token_id, tokenizer.padding_side, captured.LENGTH_BUCKET,
                       max(1, min(batch_size, len(encoded))), int(encoded.lengths.max(initial=1)))


def infer(forward: EagerForward | CapturedForward, encoded: Encoded, batches: list[list[int]],
          collate: PadCollator, device: torch.device, show: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(indices (m,), probs (m, classes) float32) of `forward`'s model in eval mode over `batches` (m items in
    all, each batch at most `collate.rows`): each batch padded by `collate`, its filler rows dropped on the
    device, the probabilities copied to the host once."""
    forward.model.eval()
    index = np.asarray([i for rows in batches for i in rows], np.int64)
    probs = torch.empty((len(index), forward.model.num_labels), dtype=torch.float32, device=device)
    done = 0
    for rows in tqdm(batches, desc="eval", leave=False, disable=not show):
        inputs = send_to_device(model_inputs(collate([encoded[i] for i in rows])), device)
        probs[done:done + len(rows)] = forward(inputs)[:len(rows)]
        done += len(rows)
    return index, probs.cpu().numpy()


def predict(model: models.SequenceClassifier, tokenizer, ds: datasets.Dataset, text_fields: Sequence[str],
            max_length: int, batch_size: int = 64) -> np.ndarray:
    """Class probabilities (n, classes) of `ds` in its row order; leaves the model in eval mode."""
    return predict_encoded(model, tokenizer, encode(tokenizer, ds, text_fields, max_length), batch_size)


def predict_encoded(model: models.SequenceClassifier, tokenizer, encoded: Encoded, batch_size: int = 64) -> np.ndarray:
    """`predict` of rows already tokenized by `encode` (n examples → (n, classes)), for callers that use the
    same encoding again. Runs in the model's dtype, captured on one CUDA device unless `COMPNB_CUDA_GRAPHS=0`."""
    device = next(model.parameters()).device
    forward = forward_for(model, captured.engine_for(device, sharding.is_sharded(model), 1))
    index, probs = infer(forward, encoded, sorted_batches(encoded.lengths, batch_size),
                         static_collator(tokenizer, encoded, batch_size), device)
    out = np.empty_like(probs)
    out[index] = probs
    return out


def gather_probs(accelerator: Accelerator, forward: EagerForward | CapturedForward, encoded: Encoded,
                 batch_size: int, collate: PadCollator) -> np.ndarray:
    """Probs (n, classes) of all of `encoded` in its order; each process scores every P-th length-sorted batch
    (sharded: as many batches on every process, `sharding.rank_batches`) and the processes' parts are gathered."""
    mine, own = sharding.rank_batches(sorted_batches(encoded.lengths, batch_size), accelerator.process_index,
                                      accelerator.num_processes, sharding.is_sharded(forward.model))
    index, probs = infer(forward, encoded, mine, collate, accelerator.device, accelerator.is_local_main_process)
    kept = sum(len(rows) for rows in mine[:own])
    parts = accelerator.gather_for_metrics([(index[:kept], probs[:kept])], use_gather_object=True)
    out = np.full((len(encoded), probs.shape[1]), np.nan, np.float32)
    for part_index, part_probs in parts:
        out[part_index] = part_probs
    return out
