"""Run folders and their reuse: where the run of a `TrainConfig` lives, the files that mark its progress, and
whether a finished run may be reused.

A run lives in `results/<profile>/runs/<dataset>-<loss>-<run_id>/`. `metrics.json` (`FINISHED`), written last,
marks it finished. `checkpoint/` (accelerate state plus `trainer_state.json`) is replaced atomically through
`checkpoint.tmp` and `checkpoint.old`, so a run cut short anywhere resumes from a whole checkpoint; the best
validation weights so far wait in `best-<step>.safetensors`; `backbone/` keeps the backbone's config and
tokenizer, so a finished run loads without the hub. A finished run records the SHA-256 of the data it read and
of its backbone's weights (`compnb.fingerprints`); `reuse_problem` says why it may not be reused when any of
them has changed. It also records the size and SHA-256 of each file it wrote (`compnb.run_integrity`), and
`require_reusable` refuses a damaged run before anything else. One process trains a run at a time
(`compnb.run_lock`). What chapters measured on a run's weights (`MEASUREMENTS`) is dropped before it retrains.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from accelerate import Accelerator
from safetensors.torch import save as safetensors_bytes

from compnb import atomicio, data, models, run_integrity
from compnb.fingerprints import data_sha256, weights_fingerprint
from compnb.paths import project_root

if TYPE_CHECKING:
    from compnb.training import TrainConfig

FINISHED, BACKBONE = run_integrity.METRICS, run_integrity.BACKBONE
CHECKPOINT, STATE_FILE = "checkpoint", "trainer_state.json"
MEASUREMENTS = ("eval-*.json", "probs-*.npy", "probs-*.json", "competency-k*.json", "analysis-k*", "ig-test-*.npz")


def run_dir(config: TrainConfig, runs_root: str | Path | None = None) -> Path:
    """`<runs_root>/<dataset>-<loss>-<run_id>`; runs_root defaults to `results/<profile>/runs`."""
    root = Path(runs_root) if runs_root is not None else project_root() / "results" / config.profile / "runs"
    return root / f"{config.dataset}-{config.loss}-{config.run_id()}"


class StaleRunError(ValueError):
    """A finished run whose data or weights have changed under the same names since it trained."""


def reuse_problem(folder: Path, config: TrainConfig) -> str | None:
    """Why the finished run in `folder` must not be reused for `config`, or None. A run records the SHA-256
    of each data file it read and of its backbone's weights (`compnb.fingerprints`); each must still match
    what the same names resolve to now. A run recorded before fingerprints compares the labelled row count
    of each local file instead."""
    record = run_integrity.read_json(folder, run_integrity.RECORD) if (folder / run_integrity.RECORD).is_file() else {}
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


def require_reusable(folder: Path, config: TrainConfig, verify: bool = False) -> None:
    """Raise `run_integrity.DamagedRunError` when a file of the finished run in `folder` is damaged (`verify`:
    hash every recorded file, the weights too), and `StaleRunError` (`reuse_problem`'s reason) when the run
    may not be reused."""
    run_integrity.require_intact(folder, verify)
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


def best_file(folder: Path, step: int) -> Path:
    """Where the best validation weights so far wait while the run trains: `best-<step>.safetensors`."""
    return folder / f"best-{step}.safetensors"


def save_weights(path: Path, state_dict: dict[str, torch.Tensor]) -> None:
    """`state_dict`'s tensors, copied to the CPU, into a safetensors file written atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomicio.atomic_write(path, lambda f: f.write(safetensors_bytes(tensors)))


def tidy(folder: Path, fresh: bool) -> None:
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


def read_checkpoint(folder: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The progress saved in this run's checkpoint (`save_checkpoint`'s `progress`), None without a checkpoint;
    a ValueError if the checkpoint belongs to another config."""
    path = folder / CHECKPOINT / STATE_FILE
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    other = type(config).from_dict(saved.pop("config"))
    if other != config:
        raise ValueError(f"checkpoint {folder / CHECKPOINT} belongs to run {other.run_id()}, not to this "
                         f"config's run {config.run_id()}; delete it or train with force=True")
    return saved


def save_checkpoint(accelerator: Accelerator, folder: Path, config: TrainConfig, progress: Mapping[str, Any]) -> None:
    """accelerate state + trainer_state.json (the config and `progress`, the loop's JSON-ready state with its
    `best_step`) into checkpoint.tmp, then swapped in for checkpoint/ by renames; best weights of other steps
    are deleted."""
    ckpt, tmp, old = folder / CHECKPOINT, folder / f"{CHECKPOINT}.tmp", folder / f"{CHECKPOINT}.old"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomicio.write_json(tmp / STATE_FILE, {"config": config.to_dict(), **progress})
        if ckpt.is_dir():
            os.replace(ckpt, old)
        os.replace(tmp, ckpt)
        shutil.rmtree(old, ignore_errors=True)
        for path in folder.glob("best-*.safetensors"):
            if path != best_file(folder, progress["best_step"]):
                path.unlink()
    accelerator.wait_for_everyone()


def save_backbone(folder: Path, model: models.SequenceClassifier, tokenizer) -> None:
    """Backbone config and tokenizer into `backbone/` (via a temporary folder), so `load_run` needs no hub."""
    target, tmp = folder / BACKBONE, folder / f"{BACKBONE}.tmp"
    if target.is_dir():
        return
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(tmp)
    model.backbone.config.save_pretrained(tmp)
    os.replace(tmp, target)


def weightless(folder: Path) -> bool:
    """Whether the run in `folder` finished without its weights (only its small files were kept), so that a
    measurement needing them retrains it first."""
    return (folder / FINISHED).is_file() and not (folder / run_integrity.WEIGHTS).is_file()


def drop_measurements(folder: Path) -> None:
    """Delete what was measured on a run's weights (evaluations, cached probabilities, analyses), so that
    retraining it cannot leave measurements of the old weights beside the new ones."""
    for pattern in MEASUREMENTS:
        for path in folder.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

