"""What every run records next to its results: parameters, seed, package versions, git commit, data."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from compnb.paths import project_root

PACKAGES = ("compnb", "torch", "transformers", "accelerate", "datasets", "numpy", "scipy", "pandas",
            "scikit-learn", "matplotlib", "seaborn", "captum")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None where it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


OUTPUTS = ("results", "book/chapters")  # written by runs and chapter executions, not part of the code


def git_state(root: Path | None = None) -> dict[str, str | bool | None]:
    """The commit checked out at `root` and whether its tracked code, notebooks or settings have uncommitted
    changes; what runs write (`results/`, the executed chapters in `book/chapters/`) does not count, so
    rendering one chapter after another from a clean commit records every one of them as clean."""
    root = root or project_root()

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    if os.environ.get("COMPNB_GIT_COMMIT"):
        # a copied work tree (a remote GPU machine), whose .git may be missing or stale: the launcher states
        # the commit it copied, and that wins
        return {"commit": os.environ["COMPNB_GIT_COMMIT"], "dirty": None, "from": "COMPNB_GIT_COMMIT"}
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", *(f":(exclude){p}" for p in OUTPUTS))
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def run_record(params: dict, seed: int | None, data_sources: list[dict] | None = None) -> dict:
    """One JSON-ready record of a run: its parameters, seed, data sources and software state."""
    return {
        "params": params,
        "seed": seed,
        "data_sources": data_sources or [],
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git": git_state(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
