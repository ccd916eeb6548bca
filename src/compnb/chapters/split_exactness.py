"""Split batches, tried for real in chapter 7: one optimizer step of the training loop (`training._Run._eager_step`,
the loop's own code, with the optimizer replaced by one that keeps the gradients it is asked to apply) on a batch of
four sentences split into `grad_accum` 2 micro-batches of two, against the same step on the whole batch, for every
competency form × saliency method and both variants of the IG-variance loss (`split_table`).

The model is a tiny BERT (one layer of width 16, the default backbone's tokenizer) in float64 with dropout off, so
that the only differences are float64 rounding: the split step must give the whole batch's gradient to
`TOLERANCE` (max `|Δ|` over the largest gradient entry) and log the whole batch's loss to `LOG_TOLERANCE`. Beside
it, the gradient of each micro-batch's loss at its own means, averaged (what a split batch gave before
`compnb.batch_stats`): exact only for a loss linear in its batch means.
"""

from __future__ import annotations

import copy
import time
from types import SimpleNamespace
from typing import Any

import pandas as pd
import torch
from accelerate import Accelerator

from compnb import batching, losses, models, penalties, training
from compnb.chapters.faults import sentences

TOLERANCE = 1e-10  # max |Δ gradient| over the largest gradient entry
LOG_TOLERANCE = 1e-6  # the logged loss, relative (the IG-variance loss computes its cross-entropy in float32)
ROWS, PARTS, LENGTH = 4, 2, 24  # sentences in the batch, micro-batches, padded length


def tiny_model(seed: int = 0) -> tuple[models.SequenceClassifier, Any]:
    """(a one-layer BERT classifier of width 16 in float64, dropout off; the default backbone's tokenizer)."""
    from transformers import BertConfig

    tokenizer = models.load_tokenizer()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = models.SequenceClassifier.from_config(
            BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, max_position_embeddings=32), 2)
    return model.double().eval(), tokenizer


def batch_items(tokenizer, n: int = ROWS, seed: int = 2) -> list[dict[str, Any]]:
    """`n` sentences of the tiny world as the training loop's items (ids, token types, label, index)."""
    frame = sentences(n, seed)
    ids = tokenizer(list(frame["sentence"]), truncation=True, max_length=LENGTH, return_attention_mask=False)
    return [{"input_ids": ids["input_ids"][i], "token_type_ids": ids["token_type_ids"][i],
             "labels": int(frame["label"][i]), "index": i} for i in range(n)]


class _Keeper:
    """The optimizer's place in a step: keeps the gradients it is asked to apply."""

    def __init__(self, model: torch.nn.Module):
        self.model, self.grads = model, {}

    def step(self) -> None:
        self.grads = {n: p.grad.clone() for n, p in self.model.named_parameters() if p.grad is not None}

    def zero_grad(self) -> None:
        self.model.zero_grad()


def step(model: torch.nn.Module, parts: list[training.Batch], loss: str, params: dict, grad_accum: int
         ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """(the gradients, the logged values) of one `_Run._eager_step` of `model` on the micro-batches `parts`, in this
    process on the CPU, without clipping."""
    config = training.TrainConfig(loss=loss, loss_params=params, grad_accum=grad_accum, max_grad_norm=None)
    run = SimpleNamespace(accelerator=Accelerator(cpu=True), config=config, model=model, optimizer=_Keeper(model),
                          scheduler=SimpleNamespace(step=lambda: None),
                          window=training.LogWindow(torch.device("cpu"), {}))
    training._Run._eager_step(run, parts)
    return run.optimizer.grads, dict(zip(run.window.keys, run.window.sums.tolist()))


def relative_difference(grads: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """max `|grads − reference|` over every entry of every parameter, over the largest `|reference|` entry."""
    if grads.keys() != reference.keys():
        raise ValueError(f"different parameters: {sorted(grads.keys() ^ reference.keys())}")
    largest = max(float(g.abs().max()) for g in reference.values())
    return max(float((grads[n] - g).abs().max()) for n, g in reference.items()) / largest


def _two_digits(value: float) -> float:
    """`value` to two significant digits: the last digits of float64 rounding differ from CPU to CPU."""
    return float(f"{value:.1e}")


def cases(model: torch.nn.Module, batch: training.Batch) -> list[tuple[str, str, str, dict]]:
    """(loss, form or variant, saliency method, params) of every loss of batch means: each competency form ×
    saliency method at λ = 0.5, and each IG-variance variant with α set so that α·Var_attr = 1 on the batch
    (tanh is far from linear there)."""
    rows = [("competency", form, method, {"form": form, "method": method, "lam": 0.5})
            for form in losses.FORMS for method in losses.METHODS]
    for variant in penalties.VARIANTS:
        p = penalties.check_ig_params({"variant": variant, "n_steps": 3, "lam": 0.5})
        variance = float(penalties.attribution_variances(model, batch, p).detach().mean())
        rows.append(("ig_variance", variant, "integrated gradients", {**p, "alpha": 1.0 / variance}))
    return rows


def split_table(tolerance: float = TOLERANCE) -> pd.DataFrame:
    """One row per `cases` entry: the relative gradient difference of the batch split into `PARTS` micro-batches
    from the whole batch (and of the parts' averaged gradients at their own means, the way before), the relative
    difference of the logged loss (each to two significant digits), the tolerance, whether the split step is within
    it (and the logged loss within `LOG_TOLERANCE`), and its seconds."""
    base, tokenizer = tiny_model()
    items = batch_items(tokenizer)
    pad = batching.PadCollator(tokenizer.pad_token_id, tokenizer.padding_side, LENGTH, None, LENGTH)
    whole_batch, parts = pad(items), batching.MicroBatches(pad, ROWS // PARTS)(items)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models run fastest on one thread
    rows = []
    try:
        for loss, kind, method, params in cases(base, whole_batch):
            start = time.perf_counter()
            model = copy.deepcopy(base)
            whole, whole_logs = step(model, [whole_batch], loss, params, 1)
            split, split_logs = step(model, parts, loss, params, PARTS)
            own = [step(model, [part], loss, params, 1)[0] for part in parts]
            averaged = {n: sum(g[n] for g in own) / len(own) for n in whole}
            gap = relative_difference(split, whole)
            logged = abs(split_logs["loss"] - whole_logs["loss"]) / abs(whole_logs["loss"])
            rows.append({"loss": loss, "form or variant": kind, "saliency": method,
                         "split step: relative gradient difference": _two_digits(gap),
                         "own means averaged (before): relative gradient difference":
                             _two_digits(relative_difference(averaged, whole)),
                         "logged loss: relative difference": _two_digits(logged), "tolerance": tolerance,
                         "within tolerance": bool(gap <= tolerance and logged <= LOG_TOLERANCE),
                         "seconds": round(time.perf_counter() - start, 2)})
    finally:
        torch.set_num_threads(threads)
    return pd.DataFrame(rows)
