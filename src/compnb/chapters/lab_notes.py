"""The lab notes (the appendix's last page): the forensics behind the reliability and paper-scale appendices,
read back from results already written: the pairs of from-scratch GPU reruns and the trace of the one saliency
entropy whose last float32 bit moved (`compnb.chapters.paper_scale` reads those records), what the split-batch
tests cover, and how each of chapter 7's faults was caused with the facts checked after it. Nothing here
trains; a result that is not there at the profile being built is named in one sentence instead.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from compnb.paths import project_root

def absent(path: Path, made_by: str) -> str:
    """One sentence saying that `path` is not there and what writes it (`made_by`, a command or a folder)."""
    root = project_root()
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    return f"*This part reads `{shown}`, which is not there yet; {made_by} writes it.*"


def split_summary(split: pd.DataFrame) -> dict[str, float]:
    """Chapter 7's split-batch rows (its `split-batches.csv`) in three numbers: the largest relative gradient
    difference of a split step from the whole batch's, and of each part at its own means averaged, for the
    forms non-linear in their means and for `subtract`."""
    linear = split["form or variant"] == "subtract"
    before = "own means averaged (before): relative gradient difference"
    return {"split": float(split["split step: relative gradient difference"].max()),
            "own means, non-linear": float(split.loc[~linear, before].max()),
            "own means, subtract": float(split.loc[linear, before].max())}
