"""The integrity of a finished run's files: a run records the size and SHA-256 of each file it produced in its
`run.json` (`record`), and reuse and every reader check them, so that a damaged file stops with one line naming
it and the two ways on (`DamagedRunError`).

Checks compare every recorded file's size, and its SHA-256 when the file is at most `HASH_BYTES` (the JSON files,
the validation probabilities, the tokenizer) or when asked (`verify`: the weights too). Whatever the record says,
the JSON files must parse and the weights and probabilities must be whole (their headers fit their sizes). A
recorded file that is absent was not kept (the committed runs keep only their small files) and is no damage:
a reader that needs it says so. Runs finished before the record existed are checked for what can be checked
without it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from compnb.fingerprints import file_sha256

CONFIG, WEIGHTS, PROBS, RECORD, METRICS, BACKBONE = ("config.json", "model.safetensors", "val_probs.npy", "run.json",
                                                     "metrics.json", "backbone")
PRODUCED = (CONFIG, WEIGHTS, PROBS, METRICS)  # besides backbone/*; run.json holds the record, so is parsed only
KEY = "files"  # the record's key in run.json
HASH_BYTES = 32 << 20  # files up to this size are always hashed


class DamagedRunError(ValueError):
    """A file of a finished run that is not what the run wrote."""


def damaged(folder: Path, name: str, detail: str) -> DamagedRunError:
    """The one line for a damaged file `name` of the run in `folder`: the file, what is wrong, the two ways on."""
    return DamagedRunError(f"{folder / name} is damaged ({detail}); retrain run {folder.name} with `compnb train "
                           "--force` (force=True), or restore the file")


def record(folder: Path, pending: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    """{name: {"bytes", "sha256"}} of the files the run in `folder` produced (`PRODUCED` and the files in
    `backbone/`) that are there now, and of `pending`, files about to be written (name → their bytes)."""
    paths = [folder / name for name in PRODUCED if name not in pending] + sorted((folder / BACKBONE).glob("*"))
    files = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
             for p in paths if p.is_file()}
    return files | {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                    for name, data in pending.items()}


def require_intact(folder: Path, verify: bool = False) -> None:
    """Raise `DamagedRunError` for the first damaged file of the finished run in `folder`; `verify` hashes every
    recorded file, the weights too."""
    files = recorded(folder)
    for name in sorted(set(files) | set(PRODUCED)):
        check(folder, name, verify, files)


def recorded(folder: Path) -> dict[str, dict[str, Any]]:
    """The run's record of its files ({} for a run without one); a damaged run.json raises."""
    return read_json(folder, RECORD).get(KEY, {}) if (folder / RECORD).is_file() else {}


def check(folder: Path, name: str, verify: bool = False, files: Mapping[str, dict] | None = None) -> None:
    """Raise `DamagedRunError` if the run's file `name` is there and damaged (`files`: the record, read if not
    given)."""
    path = folder / name
    if not path.is_file():
        return
    _match(folder, name, verify, recorded(folder) if files is None else files)
    problem = _form_problem(path)
    if problem is not None:
        raise damaged(folder, name, problem)


def read_json(folder: Path, name: str = METRICS) -> Any:
    """The run's JSON file `name` (default metrics.json), checked against the record (run.json, which holds it,
    is only parsed)."""
    if name != RECORD and (folder / name).is_file():
        _match(folder, name, False, recorded(folder))
    text = (folder / name).read_bytes()
    try:
        return json.loads(text)
    except ValueError as err:
        raise damaged(folder, name, f"not valid JSON: {err}") from None


def load_probs(folder: Path) -> np.ndarray:
    """The run's validation probabilities (`val_probs.npy`), checked."""
    check(folder, PROBS)
    return np.load(folder / PROBS)


def load_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The run's weights (`model.safetensors`), checked; a FileNotFoundError says how to get them back when the
    run finished without them."""
    if not (folder / WEIGHTS).is_file():
        raise FileNotFoundError(f"run {folder.name} has no weights ({folder / WEIGHTS} was not kept: only the run's "
                                "small files were); retrain it with `compnb train --force` (force=True)")
    check(folder, WEIGHTS)
    return load_file(folder / WEIGHTS)


def _match(folder: Path, name: str, verify: bool, files: Mapping[str, dict]) -> None:
    """Raise `DamagedRunError` if the file `name` differs from its record in `files` (size; SHA-256 when small or
    `verify`)."""
    entry = files.get(name)
    if entry is None:
        return
    path = folder / name
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise damaged(folder, name, f"{size:,} bytes where {RECORD} records {entry['bytes']:,}")
    if verify or size <= HASH_BYTES:
        digest = file_sha256(path)
        if digest != entry["sha256"]:
            raise damaged(folder, name, f"SHA-256 {digest[:12]}… where {RECORD} records {entry['sha256'][:12]}…")


def _form_problem(path: Path) -> str | None:
    """What is wrong with a file's form (JSON that does not parse; a safetensors or .npy file whose header does not
    fit its size), or None."""
    try:
        if path.suffix == ".json":
            json.loads(path.read_bytes())
        elif path.suffix == ".safetensors":
            with safe_open(path, "pt"):
                pass
        elif path.suffix == ".npy":
            np.load(path, mmap_mode="r", allow_pickle=False)
    except SafetensorError as err:
        return f"not a whole safetensors file: {err}"
    except ValueError as err:  # JSON's errors are ValueErrors too
        kind = "valid JSON" if path.suffix == ".json" else "a whole NumPy array"
        return f"not {kind}: {err}"
    except EOFError as err:
        return f"not a whole NumPy array: {err}"
    return None
