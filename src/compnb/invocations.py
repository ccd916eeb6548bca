"""Wall-time records of the GPU pipelines that train a chapter's runs, so the book can state what its full
profile costs from measurements rather than from notes.

A pipeline notes `finished_runs(profile)` before it starts and calls `record` when done: the record names the
command, the chapter's runs and those it trained (a run counts as trained when its `metrics.json` is new
or changed), the wall time and the devices, and is written to `results/<profile>/<chapter>/invocation.json`
with the usual provenance. Only an invocation that trained every run times the chapter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


from compnb import atomicio, run_cache
from compnb.paths import project_root, results_dir
from compnb.provenance import run_record

FILE = "invocation.json"
PIECE_ENV = "COMPNB_PIECE"  # set by `compnb.pieces` to the id of the piece a pipeline runs in


def piece_id() -> str | None:
    """The id of the `compnb.pieces` piece this process runs in, or None."""
    return os.environ.get(PIECE_ENV) or None


def finished_runs(profile: str) -> dict[str, int]:
    """Run folder name → modification time (ns) of its finished marker, for every finished run at `profile`."""
    root = project_root() / "results" / profile / "runs"
    return {p.parent.name: p.stat().st_mtime_ns for p in root.glob(f"*/{run_cache.FINISHED}")}


def devices(run_dirs: list[Path]) -> list[str]:
    """The devices that trained the finished runs in `run_dirs`, as their finished markers record them."""
    return sorted({json.loads((Path(d) / run_cache.FINISHED).read_text()).get("device", "") for d in run_dirs})


def record(profile: str, chapter: str, command: str, run_dirs: list[Path], before: dict[str, int],
           wall_s: float) -> dict:
    """Write (atomically) and return the invocation record of one pipeline run over `run_dirs`."""
    trained = [d for d in run_dirs if before.get(Path(d).name) != (Path(d) / run_cache.FINISHED).stat().st_mtime_ns]
    result = run_record({"command": command, "profile": profile, "runs": len(run_dirs), "runs_trained": len(trained),
                         "wall_time_s": wall_s, "devices": devices(trained), "run_names": sorted(Path(d).name for d in run_dirs),
                         "trained": sorted(Path(d).name for d in trained), "piece": piece_id()}, None)
    atomicio.write_json(results_dir(profile, chapter) / FILE, result)
    return result


def read(profile: str, chapter: str) -> dict | None:
    """The chapter's last invocation record at `profile`, or None."""
    path = results_dir(profile, chapter) / FILE
    return json.loads(path.read_text()) if path.is_file() else None
