"""What a change of design did to the ledger: the verdicts that moved between an earlier ledger and today's.

An earlier ledger is frozen, with the commit it was read from and a line on its design, under
`results/<profile>/06-claims-ledger/earlier/<label>/` (`ledger.csv` and `source.json`):

    python -m compnb.chapters.ledger_moves --commit 1ec1dd4 --label three-seeds \
        --what "3 confirmation seeds; chapter 3 on 16,000 SST-2 sentences for one epoch"

Comparing two ledgers is descriptive, not a test: each verdict is already the outcome of its own test, and a
move says what the new design's evidence decided that the old one could not (or decided otherwise).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from compnb import atomicio
from compnb.paths import project_root, results_dir

CHAPTER = "06-claims-ledger"
EARLIER = "earlier"
DECISIONS = ("reproduced", "contradicted")
# How a verdict can move, in the order the table lists them.
MOVES = ("decided", "flipped", "undecided", "other", "new claim", "claim removed", "unchanged")
COLUMNS = ["id", "group", "claim", "move", "before", "after", "p adjusted before", "p adjusted after",
           "units for 80% power before", "scope before", "scope after"]


@dataclass(frozen=True)
class Earlier:
    """A frozen earlier ledger: its folder's label, the commit it was read from, its design in words, its table."""

    label: str
    commit: str
    what: str
    ledger: pd.DataFrame


def move(before: str | None, after: str | None) -> str:
    """How one claim's verdict moved: 'decided' (inconclusive → reproduced or contradicted), 'flipped'
    (reproduced ↔ contradicted), 'undecided' (a decision → inconclusive), 'new claim', 'claim removed',
    'unchanged', or 'other' (to or from 'not run' or 'not testable here')."""
    if before is None and after is None:
        raise ValueError("a move needs a verdict before or after")
    if before is None:
        return "new claim"
    if after is None:
        return "claim removed"
    if before == after:
        return "unchanged"
    if before == "inconclusive" and after in DECISIONS:
        return "decided"
    if before in DECISIONS and after in DECISIONS:
        return "flipped"
    if before in DECISIONS and after == "inconclusive":
        return "undecided"
    return "other"


def moves(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """One row per claim of either ledger (matched by id): its verdict before and after and how it moved,
    with the adjusted p, the power estimate and the scope of each; moved rows first, in `MOVES` order."""
    for name, table in (("before", before), ("after", after)):
        missing = {"id", "verdict"} - set(table.columns)
        if missing:
            raise ValueError(f"the {name} ledger lacks column(s) {sorted(missing)}")
        if table["id"].duplicated().any():
            raise ValueError(f"the {name} ledger repeats claim id(s) "
                             f"{sorted(table.loc[table['id'].duplicated(), 'id'])}")
    old, new = before.set_index("id"), after.set_index("id")
    ids = list(after["id"]) + [i for i in before["id"] if i not in new.index]

    def cell(table: pd.DataFrame, claim: str, column: str) -> str | None:
        if claim not in table.index or column not in table.columns:
            return None
        value = table.at[claim, column]
        return None if pd.isna(value) or value == "" else str(value)

    rows = []
    for claim in ids:
        source = new if claim in new.index else old
        rows.append({"id": claim, "group": cell(source, claim, "group"), "claim": cell(source, claim, "claim"),
                     "move": move(cell(old, claim, "verdict"), cell(new, claim, "verdict")),
                     "before": cell(old, claim, "verdict"), "after": cell(new, claim, "verdict"),
                     "p adjusted before": cell(old, claim, "p adjusted"),
                     "p adjusted after": cell(new, claim, "p adjusted"),
                     "units for 80% power before": cell(old, claim, "units for 80% power"),
                     "scope before": cell(old, claim, "scope"), "scope after": cell(new, claim, "scope")})
    table = pd.DataFrame(rows, columns=COLUMNS)
    order = table["move"].map(MOVES.index)
    return table.iloc[order.argsort(kind="stable")].reset_index(drop=True)


def for_reading(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that moved, for the book: id, claim, move, verdicts and adjusted p before → after, and the seeds
    or pairs the earlier ledger said 80% power would need; '—' where a cell is empty."""
    moved = table[table["move"] != "unchanged"]
    shown = pd.DataFrame({
        "id": moved["id"], "claim": moved["claim"], "move": moved["move"],
        "verdict": moved["before"].fillna("—") + " → " + moved["after"].fillna("—"),
        "p adjusted": moved["p adjusted before"].fillna("—") + " → " + moved["p adjusted after"].fillna("—"),
        "80% power needed (before)": moved["units for 80% power before"].fillna("—")})
    return shown.reset_index(drop=True)


def counts(table: pd.DataFrame) -> dict[str, int]:
    """Rows per move, every move of `MOVES` present (0 where none)."""
    return {name: int((table["move"] == name).sum()) for name in MOVES}


def sentence(table: pd.DataFrame, earlier: Earlier) -> str:
    """The moves in one paragraph, against the earlier ledger named by its label, commit and design."""
    n = counts(table)
    decided = table[table["move"] == "decided"]
    to = ", ".join(f"{int((decided['after'] == v).sum())} {v}" for v in DECISIONS if (decided["after"] == v).any())
    parts = [f"{n['decided']} moved from inconclusive to a decision" + (f" ({to})" if to else ""),
             f"{n['flipped']} flipped between reproduced and contradicted",
             f"{n['undecided']} went from a decision back to inconclusive",
             f"{n['other']} moved to or from 'not run' or 'not testable here'",
             f"{n['new claim']} {'is' if n['new claim'] == 1 else 'are'} new",
             f"{n['claim removed']} {'was' if n['claim removed'] == 1 else 'were'} removed"]
    named = [part for part, key in zip(parts, MOVES) if n[key]]
    head = f"Against the ledger of commit {earlier.commit} ({earlier.what}; frozen as '{earlier.label}'), "
    if not named:
        return head + f"no verdict moved: all {len(table)} rows kept theirs."
    kept = f"{n['unchanged']} kept {'its' if n['unchanged'] == 1 else 'their'} verdict"
    return head + f"of the {len(table)} rows, " + "; ".join(named) + f"; {kept}."


def folder(profile: str) -> Path:
    """Where a profile's earlier ledgers are frozen."""
    return results_dir(profile, CHAPTER) / EARLIER


def earlier(profile: str) -> list[Earlier]:
    """The frozen earlier ledgers of `profile`, in the order they were frozen."""
    found = []
    for source in sorted(folder(profile).glob("*/source.json")):
        meta = json.loads(source.read_text())
        ledger = pd.read_csv(source.parent / "ledger.csv", dtype=str, keep_default_na=False).replace("", None)
        found.append((meta["frozen"], Earlier(source.parent.name, meta["commit"], meta["what"], ledger)))
    return [e for _, e in sorted(found, key=lambda pair: pair[0])]


def ledger_at(commit: str, profile: str, root: Path | None = None) -> str:
    """The text of `results/<profile>/06-claims-ledger/ledger.csv` at `commit` of the repository at `root`."""
    root = root or project_root()
    path = f"results/{profile}/{CHAPTER}/ledger.csv"
    done = subprocess.run(["git", "-C", str(root), "show", f"{commit}:{path}"], capture_output=True, text=True)
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"git exited {done.returncode}"
        raise ValueError(f"cannot read {path} at commit {commit!r} ({reason}); name a commit of this repository "
                         "that has a ledger at that profile")
    return done.stdout


def freeze(commit: str, label: str, what: str, profile: str = "full", root: Path | None = None) -> Path:
    """Copy the ledger at `commit` into `earlier/<label>/` with its source; returns the folder. Refuses a label
    already frozen, a label that is not one plain folder name, and an empty description."""
    if not label or label in (".", "..") or any(c in label for c in "/\\ "):
        raise ValueError(f"--label must be one folder name without spaces or slashes, got {label!r}")
    if not what.strip():
        raise ValueError("--what must say in words what design the earlier ledger had")
    target = folder(profile) / label
    if (target / "source.json").exists():
        raise ValueError(f"{target} is already frozen; choose another --label or remove that folder")
    text = ledger_at(commit, profile, root)
    table = pd.read_csv(io.StringIO(text), dtype=str)
    if not {"id", "verdict"} <= set(table.columns):
        raise ValueError(f"the ledger at commit {commit!r} has no 'id' and 'verdict' columns; it is not a ledger")
    full = subprocess.run(["git", "-C", str(root or project_root()), "rev-parse", commit], capture_output=True,
                          text=True).stdout.strip()
    atomicio.write_text(target / "ledger.csv", text)
    atomicio.write_json(target / "source.json", {
        "commit": full[:12] or commit, "what": what.strip(), "profile": profile, "claims": len(table),
        "frozen": datetime.now(timezone.utc).isoformat(timespec="seconds")})  # source.json last: it marks done
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="freeze the claims ledger of an earlier commit, so that chapter 6 "
                                                 "lists the verdicts that moved since")
    parser.add_argument("--commit", required=True, help="the commit whose committed ledger to freeze")
    parser.add_argument("--label", required=True, help="a folder name for it, such as three-seeds")
    parser.add_argument("--what", required=True, help="its design in words, shown beside the comparison")
    parser.add_argument("--profile", default="full", help="the profile whose ledger (default full)")
    args = parser.parse_args(argv)
    try:
        target = freeze(args.commit, args.label, args.what, args.profile)
    except ValueError as error:
        parser.exit(2, f"{error}\n")
    print(f"froze the ledger of {args.commit} in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
