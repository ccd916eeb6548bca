"""Fine-tune one classifier per `TrainConfig` with `accelerate`, cached and resumable by run id.

A run lives in `results/<profile>/runs/<dataset>-<loss>-<run_id>/`. `metrics.json`, written last, marks it
finished: `train` then returns the folder without training. `checkpoint/` (accelerate state plus
`trainer_state.json`) is replaced atomically at each epoch end and every `checkpoint_every` steps, so an
interrupted run resumes where it stopped and ends with the same metrics (exactly, on CPU). Losses live in
`LOSSES`: a loss maps (model, batch, params) to (loss, logits (batch, classes), logs: detached 0-d tensors), so
new objectives plug in without touching the loop. A batch may carry `weight` (batch,), 0.0 on padding rows
(`PadCollator`'s `rows`): every loss's batch means are then weighted (`compnb.penalties.batch_mean`). The loop
sums what it logs on the device (`LogWindow`) and reads it on the host only to log, before a checkpoint and at
the end. The same code runs on a CPU, one GPU or under `accelerate launch`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import resource
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import DistributedType, send_to_device, set_seed
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoTokenizer, get_linear_schedule_with_warmup

from compnb import atomicio, captured, data, determinism, models, profiles, sharding
from compnb.evaluation import classification_metrics
from compnb.fingerprints import data_sha256, weights_fingerprint
from compnb.paths import project_root
from compnb.penalties import mean_cross_entropy, model_inputs
from compnb.provenance import run_record

TRAIN_DATASETS = ("sst2", "snli")
FINISHED, CHECKPOINT, STATE_FILE, BACKBONE = "metrics.json", "checkpoint", "trainer_state.json", "backbone"
BUCKET_BATCHES = 50  # length-sorting window of the training sampler, in batches
Batch = dict[str, torch.Tensor]
LossFn = Callable[[torch.nn.Module, Batch, dict[str, Any]],
                  tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]
LOSSES: dict[str, LossFn] = {}
LOSS_PARAMS: dict[str, tuple[str, ...]] = {}
LOSS_CHECKS: dict[str, Callable[[dict[str, Any]], Any]] = {}
BUILTIN_LOSS_MODULES = ("compnb.losses", "compnb.ig_variance")  # imported on first use, so their losses are registered
# Fields added after runs were committed: left out of `to_dict` while at these defaults, so older configs keep
# their run ids.
UNHASHED_DEFAULTS: dict[str, Any] = {"extra_train": None, "extra_train_sha256": None, "weight_dtype": "float32",
                                     "grad_accum": 1, "lora": None}
WEIGHT_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                                         "float16": torch.float16}
LORA_DEFAULTS: dict[str, Any] = {"r": 8, "alpha": 8.0, "dropout": 0.0, "target_modules": None}  # peft's defaults


def register_loss(name: str, *, params: Sequence[str] = (),
                  check: Callable[[dict[str, Any]], Any] | None = None) -> Callable[[LossFn], LossFn]:
    """Decorator adding a loss to `LOSSES` as `name`; `params` are the `loss_params` keys it accepts, and
    `check(loss_params)`, if given, raises a ValueError for bad values when a config is built."""
    def add(fn: LossFn) -> LossFn:
        old = LOSSES.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"loss {name!r} is already registered by {old.__module__}.{old.__qualname__}")
        LOSSES[name], LOSS_PARAMS[name] = fn, tuple(params)
        if check is not None:
            LOSS_CHECKS[name] = check
        return fn
    return add


def _register_builtin_losses() -> None:
    import importlib

    for module in BUILTIN_LOSS_MODULES:
        importlib.import_module(module)


@register_loss("ce")
def cross_entropy(model: torch.nn.Module, batch: Batch, params: dict[str, Any]):
    """Mean cross-entropy of logits (batch, classes) against labels (batch,), weighted by `weight` (batch,) when
    the batch has one; logs it as a detached 0-d tensor."""
    logits = model(**model_inputs(batch))
    loss = mean_cross_entropy(logits.float(), batch)
    return loss, logits, {"ce": loss.detach()}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run; `run_id()` hashes it. `loss_params` (a dict or pairs) is kept as sorted
    pairs so the config stays hashable. `patience` counts evaluations (each epoch end and, if set, every
    `eval_every` steps) without a better validation accuracy; None disables early stopping. `extra_train`
    names a Parquet file of more training rows (`compnb.data.from_parquet`: text, or pre-tokenized ids used as
    stored; a path relative to the project root, or absolute), added to the (subsampled) training split; its sha256 is part of the config, so a
    changed file is a different run, and a saved config whose file has changed is refused.

    Memory options: `weight_dtype` (float32, bfloat16 or float16) is the dtype the backbone's weights are
    loaded and kept in; the head and LoRA adapters stay float32, and the forward pass runs under bf16
    autocast on a GPU (on a CPU, autocast in the weight dtype when it is 16-bit). float16 needs `lora` (AdamW's
    moments underflow on float16 weights). `grad_accum` micro-batches of `batch_size` make one optimizer step:
    the sampler draws batches of batch_size × grad_accum examples (per process) and each micro-batch's mean
    loss is weighted by its share of them, so a loss that is a mean over examples gets the same gradient as
    one batch of that size; the schedule, `eval_every`, `checkpoint_every` and `log_every` count optimizer
    steps. `lora` (a dict or pairs of r, alpha, dropout, target_modules; defaults filled in, target_modules
    None: peft's modules for the architecture) freezes the backbone and trains LoRA adapters on it through
    `peft`; the head stays fully trainable. Fields added after runs were committed (`UNHASHED_DEFAULTS`) are
    left out of `to_dict` while at their defaults, so configs without them hash as before they existed."""

    model: str = models.DEFAULT_BACKBONE
    dataset: str = "sst2"
    loss: str = "ce"
    loss_params: tuple[tuple[str, Any], ...] = ()
    seed: int = 0
    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    patience: int | None = 3
    eval_every: int | None = None
    checkpoint_every: int | None = None
    log_every: int = 50
    max_grad_norm: float | None = 1.0
    pooling: str | None = None
    profile: str = "full"
    extra_train: str | None = None
    extra_train_sha256: str | None = None
    weight_dtype: str = "float32"
    grad_accum: int = 1
    lora: tuple[tuple[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str) -> None:
            raise ValueError(f"{name} must be {allowed}, got {getattr(self, name)!r}")

        if not isinstance(self.model, str) or not self.model.strip():
            bad("model", "a non-empty string (a hub id or a local folder)")
        if self.dataset not in TRAIN_DATASETS:
            bad("dataset", f"one of {', '.join(TRAIN_DATASETS)}")
        _register_builtin_losses()
        if self.loss not in LOSSES:
            bad("loss", f"a registered loss ({', '.join(sorted(LOSSES))})")
        profiles.check_profile(self.profile)
        if self.profile == "paper" and self.model not in models.PAPER_BACKBONES:
            bad("model", f"one of the papers' backbones at profile 'paper' ({', '.join(models.PAPER_BACKBONES)})")
        if self.pooling is not None and self.pooling not in models.POOLINGS:
            bad("pooling", f"null or one of {', '.join(models.POOLINGS)}")
        for name, low, optional in (("seed", 0, False), ("epochs", 1, False), ("batch_size", 1, False),
                                    ("max_length", 8, False), ("log_every", 1, False), ("max_train_examples", 1, True),
                                    ("max_eval_examples", 1, True), ("patience", 1, True), ("eval_every", 1, True),
                                    ("checkpoint_every", 1, True), ("grad_accum", 1, False)):
            value = getattr(self, name)
            if not (optional and value is None) and (type(value) is not int or value < low):
                bad(name, f"an integer >= {low}" + (" or null" if optional else ""))
        for name, ok, allowed in (("lr", lambda v: v > 0, "> 0"), ("weight_decay", lambda v: v >= 0, ">= 0"),
                                  ("warmup_ratio", lambda v: 0 <= v < 1, "in [0, 1)"),
                                  ("max_grad_norm", lambda v: v > 0, "> 0 or null")):
            value = getattr(self, name)
            if value is None and name == "max_grad_norm":
                continue
            if type(value) not in (int, float) or not math.isfinite(value) or not ok(value):
                bad(name, f"a number {allowed}")
            object.__setattr__(self, name, float(value))
        try:
            params = dict(self.loss_params)
        except (TypeError, ValueError):
            bad("loss_params", "a mapping of parameter names to values")
        scalar = (str, int, float, bool, type(None))
        if not all(isinstance(k, str) and isinstance(v, scalar) for k, v in params.items()):
            bad("loss_params", "a mapping of names to JSON scalars")
        unknown = sorted(set(params) - set(LOSS_PARAMS[self.loss]))
        if unknown:
            raise ValueError(f"loss_params {unknown} are not accepted by loss {self.loss!r}; "
                             f"allowed: {', '.join(LOSS_PARAMS[self.loss]) or 'none'}")
        if self.loss in LOSS_CHECKS:  # validates, and fills in defaults so equal runs hash equally
            params = LOSS_CHECKS[self.loss](params)
        object.__setattr__(self, "loss_params", tuple(sorted(params.items())))
        if self.weight_dtype not in WEIGHT_DTYPES:
            bad("weight_dtype", f"one of {', '.join(WEIGHT_DTYPES)}")
        if self.lora is not None:
            object.__setattr__(self, "lora", _check_lora(self.lora))
        elif self.weight_dtype == "float16":
            bad("weight_dtype", "float32 or bfloat16 without lora (AdamW's moments underflow on float16 weights)")
        if self.extra_train is None:
            if self.extra_train_sha256 is not None:
                bad("extra_train_sha256", "null when extra_train is")
            return
        path = extra_train_path(self.extra_train)
        if not path.is_file():
            bad("extra_train", "a Parquet file (relative to the project root, or absolute)")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if self.extra_train_sha256 not in (None, digest):
            raise ValueError(f"extra_train {self.extra_train!r} has changed since this config was made (sha256 "
                             f"{digest[:12]}…, recorded {str(self.extra_train_sha256)[:12]}…)")
        object.__setattr__(self, "extra_train_sha256", digest)

    @property
    def loss_kwargs(self) -> dict[str, Any]:
        return dict(self.loss_params)

    @property
    def lora_kwargs(self) -> dict[str, Any] | None:
        """The LoRA settings as a dict (target_modules a list or None), or None without LoRA."""
        if self.lora is None:
            return None
        values = dict(self.lora)
        targets = values["target_modules"]
        return values | {"target_modules": None if targets is None else list(targets)}

    def to_dict(self) -> dict[str, Any]:
        special = {"loss_params": self.loss_kwargs, "lora": self.lora_kwargs}
        return {f.name: special.get(f.name, getattr(self, f.name)) for f in fields(self)
                if not (f.name in UNHASHED_DEFAULTS and getattr(self, f.name) == UNHASHED_DEFAULTS[f.name])}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; allowed: {', '.join(f.name for f in fields(cls))}")
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        try:
            values = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"config {str(path)!r} is not valid JSON: {err}") from err
        if not isinstance(values, dict):
            raise ValueError(f"config {str(path)!r} must hold a JSON object, got {type(values).__name__}")
        return cls.from_dict(values)

    def run_id(self) -> str:
        """First 12 hex digits of the sha256 of the canonical (sorted, compact) JSON of the config."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _check_lora(value: Any) -> tuple[tuple[str, Any], ...]:
    """LoRA settings (a dict or pairs) as sorted pairs with `LORA_DEFAULTS` filled in; a ValueError names a bad
    key or value."""
    try:
        given = dict(value)
    except (TypeError, ValueError):
        raise ValueError(f"lora must be null or a mapping of {', '.join(LORA_DEFAULTS)}, got {value!r}") from None
    unknown = sorted(set(given) - set(LORA_DEFAULTS))
    if unknown:
        raise ValueError(f"lora keys {unknown} are unknown; allowed: {', '.join(LORA_DEFAULTS)}")
    values = LORA_DEFAULTS | given
    r, alpha, dropout, targets = (values[k] for k in ("r", "alpha", "dropout", "target_modules"))
    if type(r) is not int or r < 1:
        raise ValueError(f"lora r must be an integer >= 1, got {r!r}")
    if type(alpha) not in (int, float) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"lora alpha must be a number > 0, got {alpha!r}")
    if type(dropout) not in (int, float) or not 0 <= dropout < 1:
        raise ValueError(f"lora dropout must be a number in [0, 1), got {dropout!r}")
    if targets is not None:
        if isinstance(targets, str) or not targets or not all(isinstance(t, str) and t.strip() for t in targets):
            raise ValueError(f"lora target_modules must be null or a non-empty list of module names, got {targets!r}")
        targets = tuple(targets)
    values |= {"alpha": float(alpha), "dropout": float(dropout), "target_modules": targets}
    return tuple(sorted(values.items()))


def add_lora(model: models.SequenceClassifier, lora: Mapping[str, Any]) -> models.SequenceClassifier:
    """LoRA adapters (`TrainConfig.lora_kwargs`) injected into the backbone in place through `peft`: the backbone's
    own weights frozen, the adapters float32 and trainable, the head untouched (trainable)."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                        target_modules=lora["target_modules"])
    try:
        inject_adapter_in_model(config, model.backbone)
    except ValueError as err:  # peft names the target modules it did not find, or knows no default for the type
        raise ValueError(f"lora target_modules {lora['target_modules']!r} do not fit backbone "
                         f"{model.backbone.config.model_type!r}: {err}") from None
    for name, param in model.backbone.named_parameters():
        param.requires_grad_("lora_" in name)
        if "lora_" in name:
            param.data = param.data.float()
    return model


def extra_train_path(name: str) -> Path:
    """`name` as a path: absolute as given, else relative to the project root."""
    path = Path(name)
    return path if path.is_absolute() else project_root() / path


def run_dir(config: TrainConfig, runs_root: str | Path | None = None) -> Path:
    """`<runs_root>/<dataset>-<loss>-<run_id>`; runs_root defaults to `results/<profile>/runs`."""
    root = Path(runs_root) if runs_root is not None else project_root() / "results" / config.profile / "runs"
    return root / f"{config.dataset}-{config.loss}-{config.run_id()}"


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


@dataclass
class TrainerState:
    """Progress kept in each checkpoint. `epoch` counts finished epochs, `batches_done` batches of the next one
    (per process); `loss_sums`/`loss_count` hold the log window not yet written to `loss_curve` (`loss_sums` as
    of the last `LogWindow.read`: the loop sums the window on the device)."""

    epoch: int = 0
    batches_done: int = 0
    step: int = 0
    best_accuracy: float = -1.0
    best_step: int = 0
    best_epoch: float = 0.0
    bad_evals: int = 0
    stopped: bool = False
    examples: int = 0
    train_s: float = 0.0
    wall_s: float = 0.0
    loss_curve: list[dict] = field(default_factory=list)
    val_curve: list[dict] = field(default_factory=list)
    loss_sums: dict[str, float] = field(default_factory=dict)
    loss_count: int = 0


class LogWindow:
    """What the loop logs, kept on the device so that a step never waits for the host: `sums` (keys,) float64,
    the summed per-step values (the loss, then the loss's logs) since the last `loss_curve` point, and
    `examples`, this process's examples since the last `read`, counted on the host."""

    def __init__(self, device: torch.device, sums: Mapping[str, float]):
        self.keys = list(sums)
        self.sums = torch.tensor(list(sums.values()), dtype=torch.float64, device=device)
        self.examples = 0

    def add(self, keys: list[str], values: torch.Tensor, examples: int) -> None:
        """Adds one step's values (keys,) float64 on the device and its `examples`; no host sync."""
        if keys != self.keys:
            self._order(keys)
        self.sums += values
        self.examples += examples

    def _order(self, keys: list[str]) -> None:
        """Takes the order of a step's `keys`: an empty window starts at 0, another (a resumed one, its keys as
        saved: sorted) is permuted; a ValueError if the keys themselves differ."""
        if self.keys and sorted(keys) != sorted(self.keys):
            raise ValueError(f"a step logged {keys}, the steps before it {self.keys}")
        self.sums = self.sums[[self.keys.index(k) for k in keys]] if self.keys else self.sums.new_zeros(len(keys))
        self.keys = keys

    def read(self, accelerator: Accelerator) -> tuple[int, dict[str, float]]:
        """(examples since the last read, summed over processes; the window's sums, averaged over processes) with
        one reduce and one host sync; the examples count restarts at 0."""
        local = torch.cat([self.sums.new_tensor([self.examples]), self.sums])
        reduced = accelerator.reduce(local, "mean").tolist()
        self.examples = 0
        return round(reduced[0] * accelerator.num_processes), dict(zip(self.keys, reduced[1:]))

    def clear(self) -> None:
        """Starts the next window (the examples count is `read`'s)."""
        self.sums.zero_()


def _best_file(folder: Path, step: int) -> Path:
    return folder / f"best-{step}.safetensors"


def _save_weights(path: Path, state_dict: dict[str, torch.Tensor]) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomicio.atomic_write(path, lambda f: f.write(safetensors_bytes(tensors)))


def _tidy(folder: Path, fresh: bool) -> None:
    """Undo a checkpoint swap cut short; with `fresh`, drop the finished marker, checkpoint and best weights."""
    ckpt, tmp, old = folder / CHECKPOINT, folder / f"{CHECKPOINT}.tmp", folder / f"{CHECKPOINT}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    if old.is_dir() and not ckpt.is_dir():
        os.replace(old, ckpt)
    shutil.rmtree(old, ignore_errors=True)
    if fresh:
        (folder / FINISHED).unlink(missing_ok=True)
        shutil.rmtree(ckpt, ignore_errors=True)
        for path in folder.glob("best-*.safetensors"):
            path.unlink()


def _read_checkpoint(folder: Path, config: TrainConfig) -> TrainerState | None:
    """The saved progress of this run, None without a checkpoint; ValueError if it belongs to another config."""
    path = folder / CHECKPOINT / STATE_FILE
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    other = TrainConfig.from_dict(saved.pop("config"))
    if other != config:
        raise ValueError(f"checkpoint {folder / CHECKPOINT} belongs to run {other.run_id()}, not to this "
                         f"config's run {config.run_id()}; delete it or train with force=True")
    return TrainerState(**saved)


def _save_checkpoint(accelerator: Accelerator, folder: Path, config: TrainConfig, state: TrainerState) -> None:
    """accelerate state + trainer_state.json into checkpoint.tmp, then swapped in for checkpoint/ by renames."""
    ckpt, tmp, old = folder / CHECKPOINT, folder / f"{CHECKPOINT}.tmp", folder / f"{CHECKPOINT}.old"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomicio.write_json(tmp / STATE_FILE, {"config": config.to_dict(), **asdict(state)})
        if ckpt.is_dir():
            os.replace(ckpt, old)
        os.replace(tmp, ckpt)
        shutil.rmtree(old, ignore_errors=True)
        for path in folder.glob("best-*.safetensors"):
            if path != _best_file(folder, state.best_step):
                path.unlink()
    accelerator.wait_for_everyone()


def _save_backbone(folder: Path, model: models.SequenceClassifier, tokenizer) -> None:
    """Backbone config and tokenizer into `backbone/` (via a temporary folder), so `load_run` needs no hub."""
    target, tmp = folder / BACKBONE, folder / f"{BACKBONE}.tmp"
    if target.is_dir():
        return
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(tmp)
    model.backbone.config.save_pretrained(tmp)
    os.replace(tmp, target)


def _gather_probs(accelerator: Accelerator, model, encoded: Encoded, batch_size: int, collate,
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


def _cpu_autocast(accelerator: Accelerator, config: TrainConfig) -> Callable[[], Any]:
    """torch's autocast in the weight dtype on a CPU with 16-bit weights (float32 head and adapters meet 16-bit
    activations there), else a no-op: on a GPU accelerate's bf16 autocast already wraps the prepared model."""
    if accelerator.mixed_precision != "no" or config.weight_dtype == "float32":
        return nullcontext
    return lambda: torch.autocast(accelerator.device.type, dtype=WEIGHT_DTYPES[config.weight_dtype])


def _peak_memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu_max_rss"


def validation_set(config: TrainConfig) -> datasets.Dataset:
    """The validation rows, in order, that the run of `config` validates on (a seed-0 subsample of at most
    `max_eval_examples`, the same for every training seed); they line up with the run's `val_probs.npy`. At the
    paper profile only the complete split will do (`data.load`'s `complete`)."""
    return data.subsample(data.load(config.dataset, "validation", complete=config.profile == "paper"),
                          config.max_eval_examples, 0)


def _device_name(device: torch.device) -> str:
    """'NVIDIA H100 80GB HBM3', say, or 'CPU (16 threads)'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


class StaleRunError(ValueError):
    """A finished run whose data or weights have changed under the same names since it trained."""


def reuse_problem(folder: Path, config: TrainConfig) -> str | None:
    """Why the finished run in `folder` must not be reused for `config`, or None. A run records the SHA-256
    of each data file it read and of its backbone's weights (`compnb.fingerprints`); each must still match
    what the same names resolve to now. A run recorded before fingerprints compares the labelled row count
    of each local file instead."""
    record = json.loads((folder / "run.json").read_text()) if (folder / "run.json").is_file() else {}
    for source in record.get("data_sources", []):
        if source.get("origin") == "hub":
            problem = _hub_reuse_problem(folder, config, source)
            if problem is not None:
                return problem
            continue
        if source.get("origin") != "local":
            continue
        if source["split"] == "extra":
            now = source["location"]
        else:
            now, _ = data.locate(source["dataset"], source["split"], complete=config.profile == "paper")
        if now is None:
            return (f"run {folder.name} trained on {source['location']}, and no local copy of "
                    f"{source['dataset']}/{source['split']} is found now; restore it, or retrain with force=True "
                    "(`compnb train --force`)")
        if source.get("sha256"):
            current = data_sha256(now)
            if current != source["sha256"]:
                return (f"run {folder.name} trained on {source['location']} (sha256 {source['sha256'][:12]}), but "
                        f"{now} now holds other content (sha256 {current[:12]}); retrain with force=True "
                        "(`compnb train --force`), or restore the data it trained on")
        elif not source.get("sample") and source["split"] != "extra":
            rows = data.labelled_rows(now)
            if rows != source["rows"]:
                return (f"run {folder.name} trained on {source['rows']:,} labelled rows of {source['location']}, "
                        f"but {now} holds {rows:,}; retrain with force=True (`compnb train --force`)")
    recorded = record.get("weights")
    if recorded:
        current = weights_fingerprint(models.resolve_backbone(config.model))
        if current != recorded:
            return (f"run {folder.name} fine-tuned {config.model} with weights {recorded}, but the name now "
                    f"resolves to {current}; retrain with force=True (`compnb train --force`)")
    return None


def require_reusable(folder: Path, config: TrainConfig) -> None:
    """Raise `StaleRunError` (`reuse_problem`'s reason) when the finished run in `folder` may not be reused."""
    problem = reuse_problem(folder, config)
    if problem is not None:
        raise StaleRunError(problem)


def _hub_reuse_problem(folder: Path, config: TrainConfig, source: dict) -> str | None:
    """Why a run that read `source` from the hub must not be reused now, or None: the same split now resolves
    to a local copy, the hub cannot be reached to check it, or the hub serves other rows (their
    `fingerprints.rows_sha256`; runs recorded before that have none and are compared by name only)."""
    complete = config.profile == "paper"
    where = f"the hub's {source['location']} {source['split']}"
    now, _ = data.locate(source["dataset"], source["split"], complete=complete)
    if now is not None:
        return (f"run {folder.name} trained on {where}, but {source['dataset']}/{source['split']} now resolves to "
                f"the local {now}; retrain with force=True (`compnb train --force`), or remove that copy")
    if not source.get("sha256"):
        return None
    try:
        current = data.current_source(source["dataset"], source["split"], complete)["sha256"]
    except data.DataNotFoundError as err:
        return (f"run {folder.name} trained on {where}, which cannot be reached now to check that it is unchanged "
                f"({err}); reuse it once the hub is back, provide a local copy and retrain with force=True")
    if current != source["sha256"]:
        return (f"run {folder.name} trained on {where} (rows {source['sha256'][5:17]}), but the hub now serves "
                f"other rows ({current[5:17]}); retrain with force=True (`compnb train --force`)")
    return None


def _eager_step(accelerator: Accelerator, model, parts: list[Batch], loss_fn: LossFn, config: TrainConfig,
                optimizer, scheduler, cpu_autocast: Callable[[], Any], window: LogWindow) -> None:
    """One optimizer step over the micro-batches `parts`, eagerly: each micro-batch's loss backward (gradients
    sync across processes on the last one only), clipping, the update; its logged values go to `window` on the
    device, with the step's examples on this process."""
    n = sum(len(part["labels"]) for part in parts)
    step_sums = None  # (keys,) float64: the micro-batches' logged values, weighted by their shares
    for j, part in enumerate(parts):
        share = len(part["labels"]) / n
        with accelerator.no_sync(model) if j + 1 < len(parts) else nullcontext():
            with cpu_autocast():
                loss, _, logs = loss_fn(model, part, config.loss_kwargs)
            accelerator.backward(loss * share)
        values = share * torch.stack([v.detach().double() for v in (loss, *logs.values())])
        step_sums = values if step_sums is None else step_sums + values
    if config.max_grad_norm is not None:
        accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    window.add(["loss", *logs], step_sums, n)


def train(config: TrainConfig, *, force: bool = False, runs_root: str | Path | None = None,
          callback: Callable[[TrainerState], None] | None = None) -> Path:
    """Train (or resume) the run of `config` and return its folder; a finished run returns at once unless
    `force`, which retrains from scratch. `callback(state)` runs after every optimizer step."""
    folder = run_dir(config, runs_root)
    if (folder / FINISHED).is_file() and not force:
        require_reusable(folder, config)
        return folder
    if config.profile == "paper":  # one message for a missing backbone and missing data, before anything is written
        profiles.require([config.model], [(config.dataset, "train"), (config.dataset, "validation")],
                         f"run {folder.name}")
    deterministic = determinism.enable()
    accelerator = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no",
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    main, procs = accelerator.is_main_process, accelerator.num_processes
    if main and folder.is_dir():
        _tidy(folder, fresh=force)
    accelerator.wait_for_everyone()
    resumed = _read_checkpoint(folder, config)
    start, spec = time.perf_counter(), data.spec(config.dataset)
    train_ds = data.subsample(data.load(config.dataset, "train", complete=config.profile == "paper"),
                              config.max_train_examples, config.seed)
    val_ds = validation_set(config)
    sources = [data.source_of(train_ds), data.source_of(val_ds)]
    extra = None if config.extra_train is None else data.from_parquet(extra_train_path(config.extra_train),
                                                                      config.dataset)
    if extra is not None:
        sources.insert(1, data.source_of(extra))
    set_seed(config.seed)
    weights_id = weights_fingerprint(models.resolve_backbone(config.model))  # what was loaded, for reuse checks
    model, tokenizer = models.SequenceClassifier.from_pretrained(config.model, len(spec.label_names), config.pooling,
                                                                 dtype=WEIGHT_DTYPES[config.weight_dtype])
    if config.lora is not None:
        add_lora(model, config.lora_kwargs)
    train_enc, val_enc = (encode(tokenizer, ds, spec.text_fields, config.max_length) for ds in (train_ds, val_ds))
    if extra is not None:  # after the training split, in its row order; pre-tokenized rows keep their ids
        train_enc += encode(tokenizer, extra, spec.text_fields, config.max_length)
    collate = PadCollator(tokenizer.pad_token_id, tokenizer.padding_side)
    engine = captured.engine_for(accelerator.device, procs > 1 or accelerator.distributed_type == DistributedType.FSDP,
                                 config.grad_accum)
    # Batches of batch_size × grad_accum examples, each split into micro-batches of batch_size; the captured
    # engine pads every batch to batch_size rows (zero-weight copies) and its length to a multiple of
    # captured.LENGTH_BUCKET, so that a few shapes cover the run.
    sampler = LengthBucketSampler(train_enc.lengths, config.batch_size * config.grad_accum, config.seed)
    batching = (captured.StaticBatches(PadCollator(tokenizer.pad_token_id, tokenizer.padding_side,
                                                   captured.LENGTH_BUCKET, config.batch_size, config.max_length))
                if engine == captured.GRAPHS else MicroBatches(collate, config.batch_size))
    # Own generator: creating a loader iterator must not draw from the global RNG (dropout), or resumes drift.
    loader = DataLoader(train_enc, batch_sampler=sampler, collate_fn=batching,
                        generator=torch.Generator())
    per_epoch = math.ceil(len(sampler) / procs)
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    sizes = (sum(p.numel() for p in model.parameters()), sum(p.numel() for p in trainable))
    # Fused AdamW (one kernel per update) on a GPU: the OPT-1.3B plain step drops from 105 to 77 ms on an H100
    # (benchmarks/bench_plain_step.py); torch's default elsewhere, and under FSDP (sharded parameters).
    fused = accelerator.device.type == "cuda" and accelerator.distributed_type != DistributedType.FSDP
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = (captured.capturable_adamw(groups, config.lr, accelerator.device) if engine == captured.GRAPHS
                 else torch.optim.AdamW(groups, lr=config.lr, fused=True if fused else None))
    # accelerate steps a prepared scheduler once per process per optimizer step.
    total = per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * total) * procs, total * procs)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    if main:
        folder.mkdir(parents=True, exist_ok=True)
        atomicio.write_json(folder / "config.json", config.to_dict())
        _save_backbone(folder, accelerator.unwrap_model(model), tokenizer)
    state = resumed or TrainerState()
    if resumed is not None:
        accelerator.load_state(str(folder / CHECKPOINT))
    wall0, loss_fn, labels = state.wall_s, LOSSES[config.loss], np.asarray(val_enc.labels)
    cpu_autocast = _cpu_autocast(accelerator, config)
    window = LogWindow(accelerator.device, state.loss_sums)  # a resumed window goes on from its saved sums
    # The captured engine steps the bare model (accelerate's own autocast wrapper would cache casts inside the
    # graph) and the bare optimizer; validation still runs under accelerate's autocast.
    step_graph = (captured.CapturedStep(accelerator.unwrap_model(model, keep_fp32_wrapper=False), optimizer.optimizer,
                                        loss_fn, config.loss_kwargs, config.max_grad_norm,
                                        torch.bfloat16 if accelerator.mixed_precision == "bf16" else None)
                  if engine == captured.GRAPHS else None)
    infer_autocast = accelerator.autocast if accelerator.mixed_precision != "no" else cpu_autocast

    def validate() -> None:
        probs = _gather_probs(accelerator, model, val_enc, config.batch_size, collate, infer_autocast)
        accuracy = float((probs.argmax(1) == labels).mean())
        epoch = round(state.step / per_epoch, 4)
        state.val_curve.append({"step": state.step, "epoch": epoch, "accuracy": accuracy})
        if accuracy > state.best_accuracy:
            state.best_accuracy, state.best_step, state.best_epoch, state.bad_evals = accuracy, state.step, epoch, 0
            weights = accelerator.get_state_dict(model)  # every rank: sharded weights are gathered together
            if main:
                _save_weights(_best_file(folder, state.step), weights)
        else:
            state.bad_evals += 1
            state.stopped = config.patience is not None and state.bad_evals >= config.patience
        bar.set_postfix(val_acc=f"{accuracy:.3f}")
        model.train()

    def read() -> None:
        examples, state.loss_sums = window.read(accelerator)
        state.examples += examples

    def log() -> None:
        read()
        means = {k: v / state.loss_count for k, v in state.loss_sums.items()}
        lr = scheduler.get_last_lr()[0]
        state.loss_curve.append({"step": state.step, "epoch": round(state.step / per_epoch, 4), "lr": lr, **means})
        state.loss_sums, state.loss_count = {}, 0
        window.clear()

    def save() -> None:
        read()
        state.wall_s = wall0 + time.perf_counter() - start
        _save_checkpoint(accelerator, folder, config, state)

    bar = tqdm(total=total, initial=state.step, desc=folder.name, disable=not accelerator.is_local_main_process)
    model.train()
    while state.epoch < config.epochs and not state.stopped:
        sampler.set_epoch(state.epoch)
        loader.set_epoch(state.epoch)
        batches = accelerator.skip_first_batches(loader, state.batches_done) if state.batches_done else loader
        tick = time.perf_counter()
        for parts in batches:
            if step_graph is not None:  # one replay: forward, loss, backward, clipping and the update
                (part,), n = parts
                out = step_graph(part)
                scheduler.step()
                window.add(list(out), torch.stack([v.double() for v in out.values()]), n)
            else:
                _eager_step(accelerator, model, parts, loss_fn, config, optimizer, scheduler, cpu_autocast, window)
            state.step, state.batches_done, state.loss_count = state.step + 1, state.batches_done + 1, state.loss_count + 1
            state.train_s += time.perf_counter() - tick
            bar.update()
            if state.step % config.log_every == 0:
                log()
                bar.set_postfix(loss=f"{state.loss_curve[-1]['loss']:.4f}")
            mid_epoch = state.batches_done < per_epoch
            if mid_epoch and config.eval_every and state.step % config.eval_every == 0:
                validate()
            if mid_epoch and (state.stopped or config.checkpoint_every and state.step % config.checkpoint_every == 0):
                save()
            if callback is not None:
                callback(state)
            if state.stopped:
                break
            tick = time.perf_counter()
        if not state.stopped:
            validate()
            state.epoch, state.batches_done = state.epoch + 1, 0
            save()
    bar.close()
    if state.loss_count:
        log()
    else:
        read()
    sharding.load_full_state_dict(accelerator.unwrap_model(model), load_file(_best_file(folder, state.best_step)))
    tick = time.perf_counter()
    probs = _gather_probs(accelerator, model, val_enc, config.batch_size, collate, infer_autocast)
    eval_s = time.perf_counter() - tick
    weights = accelerator.get_state_dict(model)
    if main:
        memory, memory_kind = _peak_memory_mb(accelerator.device)
        metrics = {
            "run_id": config.run_id(), "validation": classification_metrics(labels, probs, spec.label_names),
            "best_step": state.best_step, "best_epoch": state.best_epoch, "stopped_early": state.stopped,
            "steps": state.step, "epochs_run": round(state.step / per_epoch, 4), "train_loss": state.loss_curve,
            "val_accuracy": state.val_curve, "train_examples": len(train_enc), "eval_examples": len(val_enc),
            "wall_time_s": wall0 + time.perf_counter() - start, "train_time_s": state.train_s,
            "train_examples_per_s": state.examples / max(state.train_s, 1e-9),
            "eval_examples_per_s": len(val_enc) / max(eval_s, 1e-9), "peak_memory_mb": memory,
            "peak_memory_kind": memory_kind, "device": _device_name(accelerator.device), "num_processes": procs, "mixed_precision": accelerator.mixed_precision,
            "deterministic": deterministic, "engine": engine,
            "parameters": sizes[0], "trainable_parameters": sizes[1],
        }
        _save_weights(folder / "model.safetensors", weights)
        atomicio.atomic_write(folder / "val_probs.npy", lambda f: np.save(f, probs))
        record = run_record(config.to_dict(), config.seed, sources)
        record["weights"] = weights_id
        atomicio.write_json(folder / "run.json", record)
        atomicio.write_json(folder / FINISHED, metrics)
        shutil.rmtree(folder / CHECKPOINT, ignore_errors=True)
        for path in folder.glob("best-*.safetensors"):
            path.unlink()
    accelerator.wait_for_everyone()
    return folder


def train_with_weights(config: TrainConfig) -> Path:
    """`train`, but a run that finished elsewhere and whose weights were not kept (only its small files were
    committed) is retrained, so that its weights are at hand for measurements taken after training."""
    folder = run_dir(config)
    weightless = (folder / FINISHED).is_file() and not (folder / "model.safetensors").is_file()
    if weightless:
        print(f"{folder.name}: finished without its weights, which are needed now; retraining")
        drop_measurements(folder)
    return train(config, force=weightless)


MEASUREMENTS = ("eval-*.json", "probs-*.npy", "probs-*.json", "competency-k*.json", "analysis-k*", "ig-test-*.npz")


def drop_measurements(folder: Path) -> None:
    """Delete what was measured on a run's weights (evaluations, cached probabilities, analyses), so that
    retraining it cannot leave measurements of the old weights beside the new ones."""
    for pattern in MEASUREMENTS:
        for path in folder.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def load_run(folder: str | Path,
             dtype: torch.dtype = torch.float32) -> tuple[models.SequenceClassifier, Any, TrainConfig]:
    """(model in eval mode on the CPU, tokenizer, config) of a finished run folder, every weight in `dtype`
    (float32 holds a run with 16-bit weights exactly; its LoRA adapters are injected before loading)."""
    folder = Path(folder)
    if not (folder / FINISHED).is_file():
        raise FileNotFoundError(f"{str(folder)!r} is not a finished training run (no {FINISHED}); train it first")
    config = TrainConfig.from_json(folder / "config.json")
    tokenizer = AutoTokenizer.from_pretrained(folder / BACKBONE)
    model = models.SequenceClassifier.from_config(AutoConfig.from_pretrained(folder / BACKBONE),
                                                  len(data.spec(config.dataset).label_names), config.pooling)
    if config.lora is not None:
        add_lora(model, config.lora_kwargs)
    model.load_state_dict(load_file(folder / "model.safetensors"))
    return model.to(dtype).eval(), tokenizer, config


def evaluate(folder: str | Path, dataset: str, split: str = "validation", *,
             run: tuple[models.SequenceClassifier, Any, TrainConfig] | None = None) -> dict:
    """classification_metrics of a finished run on `dataset`/`split`, also written to `eval-<dataset>-<split>.json`
    in the run folder. The dataset must share the training set's labels (e.g. adv_mnli for an SNLI model).
    `run`, the run's `load_run` result when the caller already holds it, saves loading the weights again."""
    folder = Path(folder)
    target = data.spec(dataset)
    model, tokenizer, config = run if run is not None else load_run(folder)
    trained = data.spec(config.dataset)
    if target.label_names != trained.label_names:
        raise ValueError(f"dataset {dataset!r} has labels {list(target.label_names)}, but run {folder.name} was "
                         f"trained on {config.dataset!r} with labels {list(trained.label_names)}")
    ds = data.load(dataset, split, complete=config.profile == "paper")
    model.to(models.best_device())
    probs = predict(model, tokenizer, ds, target.text_fields, config.max_length, config.batch_size)
    result = {"run_id": config.run_id(), "dataset": dataset, "split": split, "source": data.source_of(ds),
              **classification_metrics(np.asarray(data.column(ds, "label")), probs, target.label_names)}
    atomicio.write_json(folder / f"eval-{dataset}-{split}.json", result)
    return result
