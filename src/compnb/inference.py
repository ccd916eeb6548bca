"""Batched prediction: class probabilities (n, classes) float32 of encoded examples, in their order, from a model
in eval mode without gradients. `predict` and `predict_encoded` score a dataset on one device; `gather_probs`
scores a training run's validation set across `accelerate`'s processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import datasets
import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device
from tqdm.auto import tqdm

from compnb import models, sharding
from compnb.batching import Encoded, PadCollator, encode, sorted_batches
from compnb.penalties import model_inputs


def _infer(model, encoded: Encoded, batches: list[list[int]], collate: PadCollator, device, autocast=nullcontext,
           show: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(indices (m,), probs (m, classes) float32) of `model` in eval mode without gradients over `batches`."""
    model.eval()
    index, probs = [np.zeros(0, np.int64)], [np.zeros((0, model.num_labels), np.float32)]
    with torch.no_grad(), autocast():
        for rows in tqdm(batches, desc="eval", leave=False, disable=not show):
            logits = model(**model_inputs(send_to_device(collate([encoded[i] for i in rows]), device)))
            probs.append(logits.float().softmax(-1).cpu().numpy())
            index.append(np.asarray(rows, np.int64))
    return np.concatenate(index), np.concatenate(probs)


def predict(model: models.SequenceClassifier, tokenizer, ds: datasets.Dataset, text_fields: Sequence[str],
            max_length: int, batch_size: int = 64) -> np.ndarray:
    """Class probabilities (n, classes) of `ds` in its row order; leaves the model in eval mode."""
    return predict_encoded(model, tokenizer, encode(tokenizer, ds, text_fields, max_length), batch_size)


def predict_encoded(model: models.SequenceClassifier, tokenizer, encoded: Encoded, batch_size: int = 64) -> np.ndarray:
    """`predict` of rows already tokenized by `encode` (n examples → (n, classes)), for callers that use the
    same encoding again."""
    collate = PadCollator(tokenizer.pad_token_id, tokenizer.padding_side)
    index, probs = _infer(model, encoded, sorted_batches(encoded.lengths, batch_size), collate,
                          next(model.parameters()).device)
    out = np.empty_like(probs)
    out[index] = probs
    return out


def gather_probs(accelerator: Accelerator, model, encoded: Encoded, batch_size: int, collate,
                 autocast: Callable[[], Any]) -> np.ndarray:
    """Probs (n, classes) of all of `encoded` in its order; each process scores every P-th length-sorted batch
    (sharded: as many batches on every process, `sharding.rank_batches`)."""
    mine, own = sharding.rank_batches(sorted_batches(encoded.lengths, batch_size), accelerator.process_index,
                                      accelerator.num_processes, sharding.is_sharded(model))
    index, probs = _infer(accelerator.unwrap_model(model), encoded, mine, collate, accelerator.device, autocast,
                          accelerator.is_local_main_process)
    kept = sum(len(rows) for rows in mine[:own])
    part = index[:kept], probs[:kept]
    parts = accelerator.gather_for_metrics([part], use_gather_object=True)
    out = np.full((len(encoded), parts[0][1].shape[1]), np.nan, np.float32)
    for index, probs in parts:
        out[index] = probs
    return out
