"""Content fingerprints of what a run reads: data files, data from the hub, and model weights.

A training run records the SHA-256 of every data file it trained or validated on (of the rows themselves
for a split that came from the hub, `rows_sha256`) and of its backbone's weight files (`compnb.training`
writes them into the run's `run.json`); a finished run is reused only while the same names still hold the
same content (`compnb.run_cache.reuse_problem`). Hashes are cached per process by (path, size, mtime), so
checking eighty cached runs reads each file once.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt")
CHUNK = 1 << 20


@lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of one file's bytes."""
    stat = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def files_sha256(paths: list[Path]) -> str:
    """One SHA-256 over several files: of their names and hashes in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(f"{path.name}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def data_sha256(location: str) -> str:
    """The fingerprint of a local data source: a Parquet file's hash, or, for a folder (the offline SNLI
    sample), one hash over its Parquet files; '' for a source that is not a local path (the hub)."""
    path = Path(location)
    if path.is_file():
        return file_sha256(path)
    if path.is_dir():
        return files_sha256(sorted(path.glob("*.parquet")))
    return ""


def rows_sha256(frame) -> str:
    """'rows:' + the SHA-256 of a table's content (a pandas DataFrame): its column names in sorted order, each
    with its values as text; for data that has no file of its own (a hub split), equal exactly when every
    cell is."""
    digest = hashlib.sha256()
    for column in sorted(frame.columns):
        digest.update(f"{column}\x1e".encode())
        digest.update("\x1f".join(map(str, frame[column].tolist())).encode())
    return "rows:" + digest.hexdigest()


def weights_fingerprint(resolved: str) -> str:
    """The fingerprint of a backbone at `resolved` (`models.resolve_backbone`'s answer): one hash over a local
    folder's weight files, or 'hub:<name>@<commit>' for a hub name found in the local hub cache ('hub:<name>'
    when it is not cached yet: the hub decides what it serves)."""
    folder = Path(resolved)
    if folder.is_dir():
        files = [p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern)]
        return "sha256:" + files_sha256(files) if files else "empty folder"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(resolved, "config.json")
    except (ImportError, ValueError):  # no hub client, or not a hub id: the name is all we know
        cached = None
    if isinstance(cached, str) and "/snapshots/" in cached:
        return f"hub:{resolved}@{cached.split('/snapshots/')[1].split('/')[0]}"
    return f"hub:{resolved}"
