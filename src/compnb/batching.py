"""Tokenised examples and their batches: `encode` tokenises a dataset once (unpadded ids per example), `PadCollator`
pads a list of items to one batch (to the longest item, or to static shapes: lengths in buckets and a fixed row
count), `MicroBatches` splits a sampled batch for gradient accumulation, `LengthBucketSampler` draws training
batches of similar length, and `sorted_batches` orders evaluation batches longest first.

Shapes: ids and masks (batch, tokens), labels and index (batch,), weight (batch,) float32 with `rows`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import torch

from compnb import data

BUCKET_BATCHES = 50  # length-sorting window of the training sampler, in batches
Batch = dict[str, torch.Tensor]


class Encoded(torch.utils.data.Dataset):
    """Unpadded token ids per example (`columns`: name → n lists), labels (n,) or None, lengths (n,)."""

    def __init__(self, columns: dict[str, list[list[int]]], labels: list[int] | None):
        self.columns, self.labels = columns, labels
        self.lengths = np.array([len(ids) for ids in columns["input_ids"]], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {key: column[i] for key, column in self.columns.items()} | {"index": i}
        return item | {"labels": self.labels[i]} if self.labels is not None else item

    def __add__(self, other: Encoded) -> Encoded:
        """This set's examples, then `other`'s; both need the same id columns and both labels or neither."""
        if self.columns.keys() != other.columns.keys() or (self.labels is None) != (other.labels is None):
            raise ValueError(f"cannot join encoded sets with columns {sorted(self.columns)} and {sorted(other.columns)}"
                             f" (labelled: {self.labels is not None}, {other.labels is not None})")
        labels = None if self.labels is None else self.labels + other.labels
        return Encoded({k: self.columns[k] + other.columns[k] for k in self.columns}, labels)


def _check_max_length(tokenizer, max_length: int) -> None:
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is not None and max_length > limit:
        raise ValueError(f"max_length {max_length} exceeds what the model takes ({limit} tokens); "
                         f"allowed: 8..{limit}")


def encode(tokenizer, ds: datasets.Dataset, text_fields: Sequence[str], max_length: int,
           chunk: int = 10_000) -> Encoded:
    """Tokenise `ds` once (one field, or a sentence pair), unpadded. Longer inputs are truncated to `max_length`
    tokens (the longest first, for pairs), as in the papers. An empty text is a ValueError naming its row and
    field; a `max_length` beyond the tokenizer's `model_max_length` is one too. A pre-tokenized `ds` (an
    `input_ids` column, see `data.from_frame`) is taken as stored, `text_fields` unused (`encode_stored`)."""
    _check_max_length(tokenizer, max_length)
    if data.PRETOKENIZED[0] in ds.column_names:
        return encode_stored(tokenizer, ds, max_length)
    missing = [f for f in text_fields if f not in ds.column_names]
    if missing or not 1 <= len(text_fields) <= 2 or len(ds) == 0:
        raise ValueError(f"need one or two text fields of a non-empty dataset; got {list(text_fields)} for "
                         f"columns {ds.column_names} ({len(ds)} rows)")
    texts = [data.column(ds, f) for f in text_fields]
    for field_name, column in zip(text_fields, texts):
        empty = next((i for i, text in enumerate(column) if not isinstance(text, str) or not text.strip()), None)
        if empty is not None:
            raise ValueError(f"{field_name!r} of row {empty} is empty ({column[empty]!r}); every example needs text")
    keys = [k for k in ("input_ids", "token_type_ids") if k in tokenizer.model_input_names]
    columns: dict[str, list[list[int]]] = {k: [] for k in keys}
    for start in range(0, len(ds), chunk):
        out = tokenizer(*[t[start:start + chunk] for t in texts], truncation=True, max_length=max_length,
                        return_attention_mask=False)
        for k in keys:
            columns[k] += out[k]
    return Encoded(columns, data.column(ds, "label") if "label" in ds.column_names else None)


def encode_stored(tokenizer, ds: datasets.Dataset, max_length: int) -> Encoded:
    """The id columns of pre-tokenized rows exactly as stored (never truncated, never tokenized again). A
    ValueError if the rows were made by another tokenizer (their `tokenizer` column differs from
    `data.tokenizer_fingerprint(tokenizer)`), lack an id column the tokenizer's model takes, or a row is empty,
    longer than `max_length` or has id columns of unequal length."""
    fingerprint = data.tokenizer_fingerprint(tokenizer)
    made_by = set(data.column(ds, data.TOKENIZER_COLUMN)) if data.TOKENIZER_COLUMN in ds.column_names else {None}
    if made_by != {fingerprint}:
        raise ValueError(f"pre-tokenized rows were made by tokenizer(s) {sorted(map(str, made_by))}, not by this "
                         f"{type(tokenizer).__name__} ({fingerprint}, {tokenizer.name_or_path}); tokenize them "
                         f"again with it")
    keys = [k for k in data.PRETOKENIZED if k in tokenizer.model_input_names]
    missing = [k for k in keys if k not in ds.column_names]
    if missing or len(ds) == 0:
        raise ValueError(f"pre-tokenized rows need columns {keys} and at least one row; got {ds.column_names} "
                         f"({len(ds)} rows)")
    columns = {k: data.column(ds, k) for k in keys}
    for i in range(len(ds)):
        lengths = {k: len(columns[k][i]) for k in keys}
        if not 0 < lengths["input_ids"] <= max_length or len(set(lengths.values())) > 1:
            raise ValueError(f"pre-tokenized row {i} has {lengths} ids; rows are used as stored, so each column "
                             f"needs the same 1..{max_length} (max_length) ids")
    return Encoded(columns, data.column(ds, "label") if "label" in ds.column_names else None)


@dataclass(frozen=True)
class PadCollator:
    """Pads `Encoded` items to the longest in the batch: ids and mask (batch, longest), labels/index (batch,).

    Static shapes, for a step captured once per shape: with `bucket`, the length is the longest rounded up to a
    multiple of `bucket`, but at most `max_length` (when given); with `rows`, the batch is filled up to exactly
    `rows` rows with copies of its first item, and gets `weight` (rows,) float32: 1.0 for the items, 0.0 for
    the copies (the losses' batch means then leave the copies out). None (the default) leaves either as is."""

    pad_token_id: int
    padding_side: str = "right"
    bucket: int | None = None
    rows: int | None = None
    max_length: int | None = None

    def __post_init__(self) -> None:
        for name in ("bucket", "rows", "max_length"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 or None, got {value!r}")

    def _pad(self, ids: list[int], longest: int, value: int) -> list[int]:
        fill = [value] * (longest - len(ids))
        return fill + ids if self.padding_side == "left" else ids + fill

    def _length(self, longest: int) -> int:
        """The padded length of a batch whose longest item has `longest` ids."""
        if self.max_length is not None and longest > self.max_length:
            raise ValueError(f"an item has {longest} ids, more than max_length {self.max_length}")
        if self.bucket is None:
            return longest
        padded = -(-longest // self.bucket) * self.bucket
        return padded if self.max_length is None else min(padded, self.max_length)

    def __call__(self, items: list[dict[str, Any]]) -> Batch:
        real = len(items)
        if self.rows is not None:
            if real > self.rows:
                raise ValueError(f"a batch of {real} items does not fit in rows={self.rows}")
            items = items + [items[0]] * (self.rows - real)
        longest = self._length(max(len(item["input_ids"]) for item in items))
        batch = {key: torch.tensor([self._pad(item[key], longest, self.pad_token_id if key == "input_ids" else 0)
                                    for item in items])
                 for key in ("input_ids", "token_type_ids") if key in items[0]}
        batch["attention_mask"] = torch.tensor([self._pad([1] * len(it["input_ids"]), longest, 0) for it in items])
        batch |= {key: torch.tensor([item[key] for item in items]) for key in ("labels", "index") if key in items[0]}
        if self.rows is not None:
            batch["weight"] = torch.tensor([1.0] * real + [0.0] * (len(items) - real))
        return batch


@dataclass(frozen=True)
class MicroBatches:
    """Collates a sampled batch of `Encoded` items as consecutive micro-batches of at most `size` items, each
    padded on its own by `pad`: a list of ceil(len(items) / size) batches (one when size covers the batch)."""

    pad: PadCollator
    size: int

    def __call__(self, items: list[dict[str, Any]]) -> list[Batch]:
        return [self.pad(items[i:i + self.size]) for i in range(0, len(items), self.size)]


class LengthBucketSampler:
    """Training batches of similar length: a seeded shuffle, sorting by length within windows of `bucket`
    batches, then a shuffle of the batches. Same (seed, epoch) → same batches; each index once per epoch.
    (No `batch_size` attribute on purpose: accelerate then shards batches of varying size as they come.)"""

    def __init__(self, lengths: np.ndarray, size: int, seed: int, bucket: int = BUCKET_BATCHES):
        self.lengths, self.size, self.seed, self.bucket, self.epoch = np.asarray(lengths), size, seed, bucket, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.size)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order, window, batches = rng.permutation(len(self.lengths)), self.size * self.bucket, []
        for start in range(0, len(order), window):
            part = order[start:start + window]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [part[i:i + self.size].tolist() for i in range(0, len(part), self.size)]
        yield from (batches[j] for j in rng.permutation(len(batches)))


def sorted_batches(lengths: np.ndarray, size: int) -> list[list[int]]:
    """Example indices in batches of `size`, longest first (evaluation: little padding, OOM shows at once)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i:i + size].tolist() for i in range(0, len(order), size)]

