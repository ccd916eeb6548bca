"""Fine-tune one classifier per `TrainConfig` with `accelerate`, cached and resumable by run id.

`train` returns a finished run's folder at once (`compnb.run_cache`: run folders, checkpoints, reuse checks);
otherwise it sets the run up, trains it epoch by epoch and writes its files. Its checkpoint is replaced at each
epoch end and every `checkpoint_every` steps, so an interrupted run resumes where it stopped and ends with the
same metrics (exactly, on CPU). Losses live in `LOSSES`: a loss maps (model, batch, params) to (loss, logits
(batch, classes), logs: detached 0-d tensors), so new objectives plug in without touching the loop. A batch may
carry `weight` (batch,), 0.0 on padding rows (`PadCollator`'s `rows`): every loss's batch means are then
weighted (`compnb.penalties.batch_mean`). The loop sums what it logs on the device (`LogWindow`) and reads it on
the host only to log, before a checkpoint and at the end; at the same points it reads where the loss or gradient
norm first went non-finite (`compnb.divergence`) and stops a diverged run there, nothing marked finished and no
checkpoint written from the non-finite state. Batches come from `compnb.batching` and validation
from `compnb.inference` (static shapes). On one GPU each step replays `compnb.captured`'s graph and validation
replays captured forwards; metrics record the `engine`, the run id does not. The same code runs on a CPU, one
GPU or under `accelerate launch`.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import DistributedType, broadcast_object_list, set_seed
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoTokenizer, get_linear_schedule_with_warmup

from compnb import atomicio, batch_stats, captured, data, determinism, inference, models, profiles, run_cache, sharding
from compnb import divergence, preemption, run_integrity, run_lock, tweaks
from compnb.batching import Encoded, LengthBucketSampler, MicroBatches, PadCollator, encode
from compnb.evaluation import classification_metrics
from compnb.fingerprints import weights_fingerprint
from compnb.paths import project_root
from compnb.penalties import mean_cross_entropy, model_inputs
from compnb.provenance import run_record

TRAIN_DATASETS = ("sst2", "snli")
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
    the batch has one; logs it as a detached 0-d tensor. A part of a split batch (`batch_stats.part`) divides
    its sum by the whole batch's row count, so that parts of unequal size add up to the whole batch's mean."""
    logits = model(**model_inputs(batch))
    if batch_stats.is_split():
        rows = F.cross_entropy(logits.float(), batch["labels"], reduction="none")
        loss, (ce,) = batch_stats.split_loss(lambda mean: mean, (rows,), batch.get("weight"), linear=True)
        return loss, logits, {"ce": ce}
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


def validation_set(config: TrainConfig) -> datasets.Dataset:
    """The validation rows, in order, that the run of `config` validates on (a seed-0 subsample of at most
    `max_eval_examples`, the same for every training seed); they line up with the run's `val_probs.npy`. At the
    paper profile only the complete split will do (`data.load`'s `complete`)."""
    return data.subsample(data.load(config.dataset, "validation", complete=config.profile == "paper"),
                          config.max_eval_examples, 0)


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


def train(config: TrainConfig, *, force: bool = False, runs_root: str | Path | None = None,
          callback: Callable[[TrainerState], None] | None = None, verify: bool = False) -> Path:
    """Train (or resume) the run of `config` and return its folder; a finished run returns at once unless
    `force`, which retrains from scratch. One process trains a run at a time (`compnb.run_lock`, held by the
    main process): another asking for it meanwhile waits, then returns the run as the first left it (finished,
    or to resume). A finished run is checked first (`run_cache.require_reusable`: its files intact, `verify`
    hashing the weights too; its data and backbone unchanged). `callback(state)` runs after every optimizer
    step."""
    folder = run_cache.run_dir(config, runs_root)
    if (folder / run_cache.FINISHED).is_file() and not force:
        run_cache.require_reusable(folder, config, verify)
        return folder
    if config.profile == "paper":  # one message for a missing backbone and missing data, before anything is written
        profiles.require([config.model], [(config.dataset, "train"), (config.dataset, "validation")],
                         f"run {folder.name}")
    sets = _read_sets(config)  # bad data is refused here, before the lock or anything else is written
    deterministic = determinism.enable()
    accelerator = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no",
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    with ExitStack() as locked:
        done = False  # finished by another process while this one waited (or, unforced, before it got the lock)
        if accelerator.is_main_process:
            waited = locked.enter_context(run_lock.hold(folder))
            done = (folder / run_cache.FINISHED).is_file() and (waited or not force)
        if broadcast_object_list([done])[0]:
            run_cache.require_reusable(folder, config, verify)
            return folder
        if accelerator.is_main_process:
            run_cache.tidy(folder, fresh=force)
        accelerator.wait_for_everyone()
        run = _set_up(config, sets, folder, accelerator, run_cache.read_checkpoint(folder, config))
        _train_epochs(run, callback)
        _finish(run, deterministic)
        accelerator.wait_for_everyone()
    return folder


@dataclass
class _Run:
    """One run while it trains: what `_set_up` built (the encoded sets, the model, optimizer, schedule and
    loader prepared by `accelerate`, the engine that steps and the forward that validates, both captured or
    both eager), its progress `state`, the device-side `window` of what it logs and `watch` for non-finite
    values, and its clock (`start`, this session's perf_counter origin; `wall0`, earlier sessions' wall
    seconds)."""

    config: TrainConfig
    folder: Path
    accelerator: Accelerator
    spec: data.DatasetSpec
    sources: list[dict]
    weights_id: str
    train_enc: Encoded
    val_enc: Encoded
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampler: LengthBucketSampler
    loader: DataLoader
    engine: str
    step_graph: captured.CapturedStep | None
    forward: inference.EagerForward | inference.CapturedForward
    val_collate: PadCollator
    per_epoch: int
    sizes: tuple[int, int]  # (parameters, trainable parameters)
    state: TrainerState
    window: LogWindow
    watch: divergence.Watch
    start: float
    wall0: float

    @property
    def main(self) -> bool:
        """Whether this is the main process, the one that writes the run's files."""
        return self.accelerator.is_main_process

    def wall_s(self) -> float:
        """Wall seconds of the run so far, earlier sessions included."""
        return self.wall0 + time.perf_counter() - self.start

    def step(self, parts: Any) -> None:
        """One optimizer step on a collated batch (the captured engine's `StaticBatches`, else `MicroBatches`);
        what it logs goes to the window on the device, and the watch notes the step if the window's sums are not
        finite (they turn so at the first non-finite value they add)."""
        self.watch.step = self.state.step + 1
        if self.step_graph is None:
            self._eager_step(parts)
        else:
            (part,), n = parts  # one replay: forward, loss, backward, clipping and the update
            out = self.step_graph(part)
            self.scheduler.step()
            self.watch.see(1, out.pop(captured.GRAD_NORM))
            self.window.add(list(out), torch.stack([v.double() for v in out.values()]), n)
        self.watch.see(0, self.window.sums)

    def _eager_step(self, parts: list[Batch]) -> None:
        """One optimizer step over the micro-batches `parts`, eagerly: each micro-batch's loss backward
        (gradients sync across processes on the last one only), clipping, the update; its logged values go to
        the window on the device, with the step's examples on this process. A batch split over processes or
        micro-batches runs each part inside `batch_stats.part`, so that a loss of batch means (competency,
        IG-variance) gives the whole batch's gradient and logs; with micro-batches, a loss non-linear in its means
        first takes the whole batch's sums in a statistics pass (`batch_stats.split_batch`: forwards only, the
        random state restored)."""
        accelerator, config, loss_fn = self.accelerator, self.config, LOSSES[self.config.loss]
        cpu_autocast = _cpu_autocast(accelerator, config)
        n = sum(len(part["labels"]) for part in parts)

        def loss_of(part: Batch) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
            with cpu_autocast():
                return loss_fn(self.model, part, config.loss_kwargs)

        split = None
        if accelerator.num_processes > 1 or config.grad_accum > 1:
            statistics = config.grad_accum > 1 and batch_stats.needs_statistics(loss_fn, config.loss_kwargs)
            with accelerator.no_sync(self.model):
                split = batch_stats.split_batch(parts, loss_of, accelerator.device, statistics)
        step_sums = None  # (keys,) float64: the micro-batches' logged values, weighted by their shares
        for j, part in enumerate(parts):
            share = len(part["labels"]) / n
            whole = batch_stats.part(split, share / accelerator.num_processes) if split is not None else nullcontext()
            with accelerator.no_sync(self.model) if j + 1 < len(parts) else nullcontext(), whole:
                loss, _, logs = loss_of(part)
                accelerator.backward(loss * share)
            values = share * torch.stack([v.detach().double() for v in (loss, *logs.values())])
            step_sums = values if step_sums is None else step_sums + values
        if config.max_grad_norm is not None:
            accelerator.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
        self.window.add(["loss", *logs], step_sums, n)

    def probabilities(self) -> np.ndarray:
        """Validation probabilities (n, classes) of the model as it is, in the validation set's order."""
        return inference.gather_probs(self.accelerator, self.forward, self.val_enc, self.config.batch_size,
                                      self.val_collate)

    def validate(self) -> float:
        """Validation accuracy now, added to the curve; a new best saves its weights, else counts towards
        early stopping. Leaves the model in train mode. Stops first if training has diverged."""
        self.check_finite(weights=True)
        state = self.state
        accuracy = float((self.probabilities().argmax(1) == np.asarray(self.val_enc.labels)).mean())
        epoch = round(state.step / self.per_epoch, 4)
        state.val_curve.append({"step": state.step, "epoch": epoch, "accuracy": accuracy})
        if accuracy > state.best_accuracy:
            state.best_accuracy, state.best_step, state.best_epoch, state.bad_evals = accuracy, state.step, epoch, 0
            weights = self.accelerator.get_state_dict(self.model)  # every rank: sharded weights are gathered together
            if self.main:
                run_cache.save_weights(run_cache.best_file(self.folder, state.step), weights)
        else:
            state.bad_evals += 1
            state.stopped = self.config.patience is not None and state.bad_evals >= self.config.patience
        self.model.train()
        return accuracy

    def read(self) -> None:
        """The window's sums and examples into `state` (one host sync)."""
        examples, self.state.loss_sums = self.window.read(self.accelerator)
        self.state.examples += examples

    def log(self) -> None:
        """A `loss_curve` point: the window's mean values and the learning rate; the window starts again. Stops
        first if training has diverged."""
        self.check_finite()
        state = self.state
        self.read()
        means = {k: v / state.loss_count for k, v in state.loss_sums.items()}
        lr = self.scheduler.get_last_lr()[0]
        state.loss_curve.append({"step": state.step, "epoch": round(state.step / self.per_epoch, 4), "lr": lr, **means})
        state.loss_sums, state.loss_count = {}, 0
        self.window.clear()

    def save(self) -> None:
        """A checkpoint of the run as it is; never of a diverged one."""
        self.check_finite(weights=True)
        self.read()
        self.state.wall_s = self.wall_s()
        run_cache.save_checkpoint(self.accelerator, self.folder, self.config, asdict(self.state))

    def check_finite(self, weights: bool = False) -> None:
        """Raise `divergence.DivergedError`, naming the run and the first step, if a step's loss or gradient norm
        was not finite, or (`weights`) the weights are not now; one gather and one host sync."""
        found = self.watch.read(self.accelerator, self.model if weights else None)
        if found is not None:
            saved = run_cache.read_checkpoint(self.folder, self.config)
            raise divergence.diverged(self.folder.name, *found, None if saved is None else saved["step"],
                                      self.config.lr, self.config.max_grad_norm)


@dataclass(frozen=True)
class _Sets:
    """The rows a run trains and validates on, read and checked before anything of the run is written."""

    train: datasets.Dataset  # the seed's subsample of the training split
    validation: datasets.Dataset  # `validation_set`
    extra: datasets.Dataset | None  # `config.extra_train`'s rows, appended after `train`


def _read_sets(config: TrainConfig) -> _Sets:
    """`config`'s training, validation and extra rows (`data.load` refuses bad files with a `DataError`)."""
    train_ds = data.subsample(data.load(config.dataset, "train", complete=config.profile == "paper"),
                              config.max_train_examples, config.seed)
    extra = None if config.extra_train is None else data.from_parquet(extra_train_path(config.extra_train),
                                                                      config.dataset)
    return _Sets(train_ds, validation_set(config), extra)


def _set_up(config: TrainConfig, sets: _Sets, folder: Path, accelerator: Accelerator,
            saved: dict[str, Any] | None) -> _Run:
    """Everything the run of `config` trains with on `sets`, in the order that fixes its random state: the seed,
    the model (with LoRA adapters), the encoded sets, the batches, the optimizer and schedule, prepared by
    `accelerate`; then `config.json` and `backbone/` in the run folder, and the checkpoint's state when `saved`
    (its progress, `read_checkpoint`) resumes the run."""
    start, spec, procs = time.perf_counter(), data.spec(config.dataset), accelerator.num_processes
    train_ds, val_ds, extra = sets.train, sets.validation, sets.extra
    sources = [data.source_of(train_ds), data.source_of(val_ds)]
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
    engine = captured.engine_for(accelerator.device, procs > 1 or accelerator.distributed_type == DistributedType.FSDP,
                                 config.grad_accum)
    sampler = LengthBucketSampler(train_enc.lengths, config.batch_size * config.grad_accum, config.seed)
    # Own generator: creating a loader iterator must not draw from the global RNG (dropout), or resumes drift.
    loader = DataLoader(train_enc, batch_sampler=sampler, collate_fn=_collator(config, tokenizer, engine),
                        generator=torch.Generator())
    per_epoch = math.ceil(len(sampler) / procs)
    sizes = (sum(p.numel() for p in model.parameters()), sum(p.numel() for p in model.parameters() if p.requires_grad))
    optimizer = _optimizer(model, config, accelerator, engine)
    # accelerate steps a prepared scheduler once per process per optimizer step.
    total = per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * total) * procs, total * procs)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        atomicio.write_json(folder / "config.json", config.to_dict())
        run_cache.save_backbone(folder, accelerator.unwrap_model(model), tokenizer)
    state = TrainerState() if saved is None else TrainerState(**saved)
    if saved is not None:
        accelerator.load_state(str(folder / run_cache.CHECKPOINT))
    # The captured engine steps and validates the bare model (accelerate's own autocast wrapper would cache casts
    # inside the graphs) with the bare optimizer; eagerly, validation runs the prepared model.
    autocast_dtype = _autocast_dtype(accelerator, config)
    if engine == captured.GRAPHS:
        bare = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
        step_graph = captured.CapturedStep(bare, optimizer.optimizer, LOSSES[config.loss], config.loss_kwargs,
                                           config.max_grad_norm, autocast_dtype)
        forward = inference.CapturedForward(bare, autocast_dtype)
    else:
        step_graph, forward = None, inference.EagerForward(accelerator.unwrap_model(model), autocast_dtype)
    val_collate = inference.static_collator(tokenizer, val_enc, config.batch_size)
    watch = divergence.Watch(accelerator.device, state.step)
    if step_graph is None:  # the captured step's gradients stay inside its graph
        watch.watch_gradients(optimizer.optimizer)
    return _Run(config, folder, accelerator, spec, sources, weights_id, train_enc, val_enc, model, optimizer,
                scheduler, sampler, loader, engine, step_graph, forward, val_collate, per_epoch, sizes, state,
                LogWindow(accelerator.device, state.loss_sums),  # a resumed window goes on from its saved sums
                watch, start, state.wall_s)


def _collator(config: TrainConfig, tokenizer, engine: str) -> Callable[[list[dict[str, Any]]], Any]:
    """How a sampled batch of batch_size × grad_accum items is collated: for the captured engine, one batch padded
    to batch_size rows (zero-weight copies) and a length in multiples of captured.LENGTH_BUCKET, so that a few
    shapes cover the run; else micro-batches of batch_size, each padded to its longest item."""
    if engine == captured.GRAPHS:
        return captured.StaticBatches(PadCollator(tokenizer.pad_token_id, tokenizer.padding_side,
                                                  captured.LENGTH_BUCKET, config.batch_size, config.max_length))
    return MicroBatches(PadCollator(tokenizer.pad_token_id, tokenizer.padding_side), config.batch_size)


def _optimizer(model: torch.nn.Module, config: TrainConfig, accelerator: Accelerator,
               engine: str) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, weight decay on matrices only: capturable for the captured engine;
    else fused (one kernel per update) on a GPU without FSDP, where the OPT-1.3B plain step drops from 105 to 77
    ms on an H100 (benchmarks/bench_plain_step.py), and torch's default elsewhere and under FSDP (sharded
    parameters)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]
    if engine == captured.GRAPHS:
        return captured.capturable_adamw(groups, config.lr, accelerator.device)
    fused = accelerator.device.type == "cuda" and accelerator.distributed_type != DistributedType.FSDP
    return torch.optim.AdamW(groups, lr=config.lr, fused=True if fused else None)


def _train_epochs(run: _Run, callback: Callable[[TrainerState], None] | None) -> None:
    """The epochs from where `run.state` stands until the last one or an early stop: a step per batch, a log
    point every `log_every` steps, validation every `eval_every` steps and at each epoch's end, a checkpoint
    every `checkpoint_every` steps, at an early stop and at each epoch's end; `callback(state)` after every step;
    on SIGTERM, a checkpoint of the step and `preemption.Preempted` (`compnb.preemption`, one process only).
    Ends with the last log point written (or the window read). The progress bar is closed before an error (a
    diverged run's, say) goes on, so that its one line comes last."""
    config, state = run.config, run.state
    with tqdm(total=run.per_epoch * config.epochs, initial=state.step, desc=run.folder.name,
              disable=not run.accelerator.is_local_main_process) as bar, \
            preemption.on_sigterm(enabled=run.accelerator.num_processes == 1):
        _epochs(run, callback, bar)
    if state.loss_count:
        run.log()
    else:
        run.read()


def _epochs(run: _Run, callback: Callable[[TrainerState], None] | None, bar: tqdm) -> None:
    """`_train_epochs`'s loop, showing its progress on `bar`."""
    config, accelerator, state = run.config, run.accelerator, run.state
    run.model.train()
    while state.epoch < config.epochs and not state.stopped:
        run.sampler.set_epoch(state.epoch)
        run.loader.set_epoch(state.epoch)
        batches = accelerator.skip_first_batches(run.loader, state.batches_done) if state.batches_done else run.loader
        tick = time.perf_counter()
        for parts in batches:
            run.step(parts)
            state.step, state.batches_done, state.loss_count = state.step + 1, state.batches_done + 1, state.loss_count + 1
            state.train_s += time.perf_counter() - tick
            bar.update()
            if state.step % config.log_every == 0:
                run.log()
                bar.set_postfix(loss=f"{state.loss_curve[-1]['loss']:.4f}")
            mid_epoch = state.batches_done < run.per_epoch
            if mid_epoch and config.eval_every and state.step % config.eval_every == 0:
                bar.set_postfix(val_acc=f"{run.validate():.3f}")
            if mid_epoch and (state.stopped or config.checkpoint_every and state.step % config.checkpoint_every == 0):
                run.save()
            if callback is not None:
                callback(state)
            if preemption.requested():
                run.save()
                raise preemption.Preempted(f"run {run.folder.name} stopped by SIGTERM after step {state.step}; its "
                                           "checkpoint of that step is kept: the same command resumes it")
            if state.stopped:
                break
            tick = time.perf_counter()
        if not state.stopped:
            bar.set_postfix(val_acc=f"{run.validate():.3f}")
            state.epoch, state.batches_done = state.epoch + 1, 0
            run.save()


def _finish(run: _Run, deterministic: bool) -> None:
    """The finished run's files: the best validation weights loaded back and validated once more, then (main
    process) `model.safetensors`, `val_probs.npy`, `run.json` (with the size and SHA-256 of each file the run
    wrote, `compnb.run_integrity`) and, last, `metrics.json`; the checkpoint and the best-step weights go."""
    accelerator, config, folder, state = run.accelerator, run.config, run.folder, run.state
    best = load_file(run_cache.best_file(folder, state.best_step))
    sharding.load_full_state_dict(accelerator.unwrap_model(run.model), best)
    tick = time.perf_counter()
    probs = run.probabilities()
    eval_s = time.perf_counter() - tick
    weights = accelerator.get_state_dict(run.model)
    if not run.main:
        return
    labels, n_val = np.asarray(run.val_enc.labels), len(run.val_enc)
    memory, memory_kind = _peak_memory_mb(accelerator.device)
    metrics = {
        "run_id": config.run_id(), "validation": classification_metrics(labels, probs, run.spec.label_names),
        "best_step": state.best_step, "best_epoch": state.best_epoch, "stopped_early": state.stopped,
        "steps": state.step, "epochs_run": round(state.step / run.per_epoch, 4), "train_loss": state.loss_curve,
        "val_accuracy": state.val_curve, "train_examples": len(run.train_enc), "eval_examples": n_val,
        "wall_time_s": run.wall_s(), "train_time_s": state.train_s,
        "train_examples_per_s": state.examples / max(state.train_s, 1e-9),
        "eval_examples_per_s": n_val / max(eval_s, 1e-9), "peak_memory_mb": memory,
        "peak_memory_kind": memory_kind, "device": _device_name(accelerator.device),
        "num_processes": accelerator.num_processes, "mixed_precision": accelerator.mixed_precision,
        "deterministic": deterministic, "engine": run.engine,
        "parameters": run.sizes[0], "trainable_parameters": run.sizes[1],
    }
    run_cache.save_weights(folder / run_integrity.WEIGHTS, weights)
    atomicio.atomic_write(folder / run_integrity.PROBS, lambda f: np.save(f, probs))
    text = atomicio.json_text(metrics)
    record = run_record(config.to_dict(), config.seed, run.sources)
    record["weights"] = run.weights_id
    record[run_integrity.KEY] = run_integrity.record(folder, {run_cache.FINISHED: text.encode()})
    atomicio.write_json(folder / run_integrity.RECORD, record)
    atomicio.write_text(folder / run_cache.FINISHED, text)
    shutil.rmtree(folder / run_cache.CHECKPOINT, ignore_errors=True)
    for path in folder.glob("best-*.safetensors"):
        path.unlink()


def _autocast_dtype(accelerator: Accelerator, config: TrainConfig) -> torch.dtype | None:
    """The dtype a forward autocasts to: bf16 under accelerate's mixed precision (a GPU), else the weight dtype
    when it is 16-bit (a CPU), else None (no autocast)."""
    if accelerator.mixed_precision == "bf16":
        return torch.bfloat16
    return None if config.weight_dtype == "float32" else WEIGHT_DTYPES[config.weight_dtype]


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


def _device_name(device: torch.device) -> str:
    """'NVIDIA H100 80GB HBM3', say, or 'CPU (16 threads)'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def train_with_weights(config: TrainConfig) -> Path:
    """`train`, but a run that finished elsewhere and whose weights were not kept (only its small files were
    committed) is retrained, so that its weights are at hand for measurements taken after training; during a
    tweak (`compnb.tweaks`) such a run is refused instead (a ValueError)."""
    folder = run_cache.run_dir(config)
    weightless = run_cache.weightless(folder)
    if weightless:
        tweaks.refuse_retrain(folder)  # a tweak never replaces a published run's files
        print(f"{folder.name}: finished without its weights, which are needed now; retraining")
        run_cache.drop_measurements(folder)
    return train(config, force=weightless)


def load_run(folder: str | Path, dtype: torch.dtype = torch.float32, *,
             verify: bool = False) -> tuple[models.SequenceClassifier, Any, TrainConfig]:
    """(model in eval mode on the CPU, tokenizer, config) of a finished run folder, every weight in `dtype`
    (float32 holds a run with 16-bit weights exactly; its LoRA adapters are injected before loading). A damaged
    file raises `run_integrity.DamagedRunError` (`verify`: hash the weights too)."""
    folder = Path(folder)
    if not (folder / run_cache.FINISHED).is_file():
        raise FileNotFoundError(f"{str(folder)!r} is not a finished training run (no {run_cache.FINISHED}); "
                                "train it first")
    run_integrity.require_intact(folder, verify)
    config = TrainConfig.from_json(folder / "config.json")
    tokenizer = AutoTokenizer.from_pretrained(folder / run_cache.BACKBONE)
    model = models.SequenceClassifier.from_config(AutoConfig.from_pretrained(folder / run_cache.BACKBONE),
                                                  len(data.spec(config.dataset).label_names), config.pooling)
    if config.lora is not None:
        add_lora(model, config.lora_kwargs)
    model.load_state_dict(run_integrity.load_weights(folder))
    return model.to(dtype).eval(), tokenizer, config


def evaluate(folder: str | Path, dataset: str, split: str = "validation", *,
             run: tuple[models.SequenceClassifier, Any, TrainConfig] | None = None, verify: bool = False) -> dict:
    """classification_metrics of a finished run on `dataset`/`split`, also written to `eval-<dataset>-<split>.json`
    in the run folder. The dataset must share the training set's labels (e.g. adv_mnli for an SNLI model).
    `run`, the run's `load_run` result when the caller already holds it, saves loading the weights again
    (`verify`: `load_run`'s)."""
    folder = Path(folder)
    target = data.spec(dataset)
    model, tokenizer, config = run if run is not None else load_run(folder, verify=verify)
    trained = data.spec(config.dataset)
    if target.label_names != trained.label_names:
        raise ValueError(f"dataset {dataset!r} has labels {list(target.label_names)}, but run {folder.name} was "
                         f"trained on {config.dataset!r} with labels {list(trained.label_names)}")
    ds = data.load(dataset, split, complete=config.profile == "paper")
    model.to(models.best_device())
    probs = inference.predict(model, tokenizer, ds, target.text_fields, config.max_length, config.batch_size)
    result = {"run_id": config.run_id(), "dataset": dataset, "split": split, "source": data.source_of(ds),
              **classification_metrics(np.asarray(data.column(ds, "label")), probs, target.label_names)}
    atomicio.write_json(folder / f"eval-{dataset}-{split}.json", result)
    return result
