"""What a claim of the ledger is and what measuring it returns, with the readers every paper's claims share:
result tables, the chapters' run records (for the scope of each verdict) and the equivalence margins.

A claim's `measure(folder)` reads a chapter's result files and returns `Measured`: our estimate as text, the
evidence (one `verdicts.Evidence` per test; empty when nothing can be tested) and how its tests combine. The
ledger (`compnb.chapters.claims`) corrects every test over its chapter's family and decides the verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from compnb import formatting as fmt
from compnb import paper_numbers as pn
from compnb import run_integrity
from compnb.verdicts import Evidence

KINDS = ("direction", "equivalence", "absolute", "tolerance")
RUNS = Path("runs")  # run folders, relative to a profile's results folder

# Equivalence margins: the largest difference each claim of "comparable" / "not significantly different" /
# "nearly unchanged" can mean, in the metric's own units, with the reason for the size.
MARGINS = {
    "validation": (0.01, "one accuracy (or F1) point: paper 1 calls a 0.011 gain (Table 1) 'comparable/somewhat "
                         "higher', so the claim allows about that much, and less than the 0.02-0.05 gaps it calls "
                         "worse"),
    "adversarial": (0.03, "three points, about 4 of adv-SST2's 148 sentences: a smaller margin is below what "
                          "one such set resolves"),
    "test accuracy": (0.01, "one accuracy point, twice paper 3's own +0.0045 that it calls 'slightly higher, not "
                            "significant'"),
    "roc auc": (0.005, "half a ROC-AUC point, seven times paper 3's +0.0007"),
    "top-k share": (0.02, "two points of the artifacts' share of the top-5 slots (about 20%), a tenth of it"),
}


@dataclass(frozen=True)
class Measured:
    """Our side of one claim: the estimate as text; the tests (`evidence`) and how they combine ("one",
    "any", "all"); or, without tests, the verdict (`not testable here`, `not run`, or a tolerance check's) and
    why. `scope` names what the verdict rests on: backbone, epochs, training rows, seeds."""

    value: str
    evidence: Sequence[Evidence] = ()
    combine: str = "one"
    verdict: str | None = None
    why: str = ""
    scope: str = ""


@dataclass(frozen=True)
class Claim:
    """One claim as its paper states it: id, paper, where (section, table or figure), the claim in our words,
    the metric it is judged in, its kind (`KINDS`), the paper's number(s) as text, the chapter and the
    comparison of ours, the verdict rule, and the measurement. `aim`: a sanity check of a method's own aim,
    shown apart from the papers' claims and corrected in its own family; `margin`: the key of `MARGINS`
    for an equivalence claim."""

    id: str
    paper: int
    source: str
    claim: str
    metric: str
    kind: str
    paper_value: Callable[[], str]
    chapter: str
    recipe: str
    rule: str
    measure: Callable[[Path], Measured]
    aim: bool = False
    margin: str | None = None
    beyond: bool = field(default=False)  # the book goes beyond the paper (a test the paper did not make)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id}: kind {self.kind!r} is not one of {KINDS}")
        if (self.kind == "equivalence") != (self.margin is not None):
            raise ValueError(f"claim {self.id}: an equivalence claim needs a margin, and only it has one")


def csv(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name)


def cite(paper: int, source: str, row: str, column: str) -> Callable[[], str]:
    return lambda: pn.cite(paper, source, row, column)


def cites(*keys: tuple[int, str, str, str], sep: str = " → ") -> Callable[[], str]:
    return lambda: sep.join(pn.printed(*k) for k in keys) + f" (paper {keys[0][0]}, {keys[0][1]})"


def text(value: str) -> Callable[[], str]:
    return lambda: value


def estimate(e: Evidence, decimals: int = 3) -> str:
    """'+0.012 [−0.003, +0.027]' for a difference, '0.75 of 8 [0.35, 0.97]' for a share of wins."""
    if e.test.startswith("exact sign"):
        ties = f", {e.ties} tied dropped" if e.ties else ""
        return f"{e.estimate:.2f} of {e.n} {e.unit}{ties} {fmt.interval(e.low, e.high, 2)}"
    if "test of a share" in e.test:
        return f"{e.estimate:.3f} of {e.n:,} {e.unit} {fmt.interval(e.low, e.high, 3)}"
    return f"{fmt.signed(e.estimate, decimals)} {fmt.interval(e.low, e.high, decimals, with_sign=True)}"


def _run_facts(folder: Path, run: str) -> dict:
    run_dir = folder.parent / RUNS / run
    config, metrics = run_integrity.read_json(run_dir, "config.json"), run_integrity.read_json(run_dir)
    return {"model": config["model"].split("/")[-1], "dataset": config["dataset"], "seed": config["seed"],
            "epochs": config["epochs"], "rows": metrics.get("train_examples")}


def seeds_text(seeds: Sequence[int]) -> str:
    seeds = sorted(int(s) for s in seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def scope(folder: Path, runs: Sequence[str], seeds: Sequence[int], what: str = "") -> str:
    """'all-MiniLM-L6-v2 · 1 epoch · 16,000 sst2 training rows · seeds 1–3' from the runs' own records:
    `runs` the run folders the verdict reads (the first gives backbone, epochs and rows), `seeds` the ones
    it compares, `what` a qualifier such as 'selection seed alone'."""
    facts = _run_facts(folder, runs[0])
    epochs = f"{facts['epochs']} epoch{'s' if facts['epochs'] != 1 else ''}"
    rows = f"{facts['rows']:,} {facts['dataset']} training rows" if facts["rows"] else facts["dataset"]
    return " · ".join(p for p in (facts["model"], epochs, rows, seeds_text(seeds), what) if p)
