"""Cached measurements of a finished run, trusted only while the run and what they read are unchanged.

Chapters measure finished runs and cache the results in the run's folder (`run_cache.MEASUREMENTS`: AdvGLUE
scores, test-split probabilities, IG attributions, S entropies, analyses). A cached measurement is reused only
when (1) the run itself could be reused (`run_cache.require_reusable`: the data it trained and validated on and
its weights are unchanged; else `run_cache.StaleRunError`), and (2) every data source it
read beyond those still has the SHA-256 recorded when it was measured: `record` keeps them in the run's
`measured.json` (an AdvGLUE score keeps its own in the score file's `source`). A measurement whose source
changed is stale (`stale` says why) and is measured again.
"""

from __future__ import annotations

import json
from pathlib import Path

from compnb import atomicio, data

RECORD = "measured.json"


def record(folder: str | Path, name: str, sources: list[dict], complete: bool = False) -> None:
    """Note in `folder`'s `measured.json` that measurement `name` read `sources` (`DataSource` dicts)."""
    path = Path(folder) / RECORD
    kept = json.loads(path.read_text()) if path.is_file() else {}
    kept[name] = [{"dataset": s["dataset"], "split": s["split"], "location": s["location"], "rows": s["rows"],
                   "sha256": s["sha256"], "complete": complete} for s in sources]
    atomicio.write_json(path, kept)


def changed(recorded: dict, now: dict) -> str | None:
    """Why a measurement that read `recorded` (a source dict) cannot stand for what `now` holds, or None. One
    recorded before fingerprints (no SHA-256) is compared by its labelled row count, as `training` does for runs;
    one that recorded neither has nothing to compare."""
    if recorded.get("sha256") and recorded["sha256"] == now.get("sha256"):
        return None
    if not recorded.get("sha256") and recorded.get("rows") in (None, now.get("rows")):
        return None
    return (f"{now['dataset']}/{now['split']} was {recorded.get('location', 'unknown')} (sha256 "
            f"{(recorded.get('sha256') or 'unknown')[:12]}) and is now {now['location']} (sha256 {now['sha256'][:12]})")


def stale(folder: str | Path, name: str) -> str | None:
    """Why measurement `name` of the run in `folder` is out of date, or None (also for one measured before
    records were kept, which is checked through its run only)."""
    path = Path(folder) / RECORD
    for source in (json.loads(path.read_text()) if path.is_file() else {}).get(name, []):
        why = changed(source, data.current_source(source["dataset"], source["split"], source.get("complete", False)))
        if why is not None:
            return f"{Path(folder).name}'s {name}: {why}"
    return None
