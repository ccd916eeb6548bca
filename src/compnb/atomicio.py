"""Atomic writes: a result file is either complete or absent, never half-written.

Each writer writes to a temporary file in the target's folder, flushes it to disk, then renames it over
the target (`os.replace` is atomic on POSIX), so an interrupted run leaves no file a later run trusts.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pandas as pd


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call `write(file)` on a temporary binary file, then move it to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON atomically (numpy scalars and paths become plain values)."""
    return write_text(path, json_text(obj))


def json_text(obj: Any) -> str:
    """`obj` as the text `write_json` writes."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_plain) + "\n"


def close(a: Any, b: Any, rtol: float) -> bool:
    """Whether two JSON values are equal, floats within relative tolerance `rtol` (same keys, lengths, types)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rtol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, rtol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=rtol,
                                                                                             abs_tol=rtol)
    return a == b


def write_json_unless_close(path: str | Path, obj: Any, rtol: float = 1e-6) -> bool:
    """Write `obj` as `write_json` does unless `path` already holds the same record up to float rounding
    (`close`): results recomputed on another CPU then leave the committed file, and the tree, untouched.
    Returns whether it wrote."""
    path = Path(path)
    fresh = json.loads(json.dumps(obj, default=_plain))
    if path.is_file() and close(json.loads(path.read_text()), fresh, rtol):
        return False
    write_json(path, obj)
    return True


def write_csv(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write a DataFrame as CSV (no index) atomically."""
    return atomic_write(path, lambda f: frame.to_csv(f, index=False))


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
