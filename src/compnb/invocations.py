"""Wall-time records of the GPU pipelines that train a chapter's runs, so the book can state what its full
profile costs from measurements rather than from notes.

A pipeline notes `finished_runs(profile)` before it starts and calls `record` when done: the record names the
command, how many of the chapter's runs it trained (a run counts as trained when its `metrics.json` is new
or changed), the wall time and the devices, and is written to `results/<profile>/<chapter>/invocation.json`
with the usual provenance. Only an invocation that trained every run times the chapter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from compnb import atomicio, training
from compnb.paths import project_root, results_dir
from compnb.provenance import run_record

FILE = "invocation.json"


def finished_runs(profile: str) -> dict[str, int]:
    """Run folder name → modification time (ns) of its finished marker, for every finished run at `profile`."""
    root = project_root() / "results" / profile / "runs"
    return {p.parent.name: p.stat().st_mtime_ns for p in root.glob(f"*/{training.FINISHED}")}


def record(profile: str, chapter: str, command: str, run_dirs: list[Path], before: dict[str, int],
           wall_s: float) -> dict:
    """Write (atomically) and return the invocation record of one pipeline run over `run_dirs`."""
    trained = [d for d in run_dirs if before.get(Path(d).name) != (Path(d) / training.FINISHED).stat().st_mtime_ns]
    devices = sorted({json.loads((Path(d) / training.FINISHED).read_text()).get("device", "") for d in trained})
    result = run_record({"command": command, "profile": profile, "runs": len(run_dirs), "runs_trained": len(trained),
                         "wall_time_s": wall_s, "devices": devices}, None)
    atomicio.write_json(results_dir(profile, chapter) / FILE, result)
    return result


def read(profile: str, chapter: str) -> dict | None:
    """The chapter's last invocation record at `profile`, or None."""
    path = results_dir(profile, chapter) / FILE
    return json.loads(path.read_text()) if path.is_file() else None


PIPELINES = ("02-baseline-finetune", "03-modified-loss", "04-adversarial-eval", "05-ig-variance")


def book_cost(profile: str) -> pd.DataFrame:
    """One row per recorded GPU invocation of the chapters' pipelines at `profile` (chapter 3's per dataset
    selection, from its `sweep.json`): command, runs trained of the chapter's, wall minutes, devices, commit."""
    from compnb import competency

    rows = []
    for chapter in PIPELINES:
        found = ([read(profile, chapter)] if chapter != competency.CHAPTER
                 else list(competency.sweep_summary(profile).values()))
        for rec in (r for r in found if r is not None):
            p = rec["params"]
            command = p.get("command") or (f"python -m compnb.competency --profile {p['profile']} --workers "
                                           f"{p['workers']} --datasets {' '.join(p['datasets'])}")
            rows.append({"chapter": chapter, "command": command, "runs trained": p["runs_trained"], "runs": p["runs"],
                         "wall time (min)": p["wall_time_s"] / 60, "device": ", ".join(p["devices"]),
                         "commit": str(rec["git"].get("commit"))[:7]})
    return pd.DataFrame(rows)


def cost_sentence(table: pd.DataFrame) -> str:
    """The whole full profile's GPU wall time, stated only when every chapter's recorded invocations trained
    all of their runs; otherwise what is missing."""
    missing = [c for c in PIPELINES if c not in set(table.get("chapter", []))]
    partial = table[table["runs trained"] < table["runs"]] if len(table) else table
    if missing or len(partial):
        gaps = [f"{c}: no recorded invocation" for c in missing] + [
            f"{r['chapter']}: {r['runs trained']} of {r['runs']} runs trained (the rest came from the cache)"
            for _, r in partial.iterrows()]
        return "The whole book is not timed from scratch at this profile: " + "; ".join(gaps) + "."
    total = table["wall time (min)"].sum()
    return (f"**Every run trained from scratch, chapter by chapter, the full profile took {total:.1f} minutes of GPU "
            f"wall time** ({', '.join(sorted(set(table['device'])))}); chapter 1 and the rendering of every chapter "
            f"from the cached runs take a few minutes on a CPU.")
