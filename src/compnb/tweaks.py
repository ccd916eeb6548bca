"""Tweaks: chapter runs with parameters other than the chapter's defaults, and where they go.

Only a chapter run with its defaults publishes: its notebook goes to the book (`book/chapters/` at the full
profile) and its results to `results/<profile>/<chapter>/`. A run with any other value (a tweak) writes its
executed notebook and its chapter results to `build/<profile>/tweaks/<chapter>-<hash>/` instead, the hash
being the first 8 hex digits of the SHA-256 of the changed parameters; training runs still go to the shared
run cache, which is keyed by config. The defaults are the `parameters` cell's values, with the papers'
first backbone as `model` at the paper profile (what `compnb chapter` injects there); `profile` and
`workers` (how many processes train, not what they compute) never make a tweak.

A chapter's first code cell decides (`parameters.check_cell` calls `activate`), so `compnb chapter`, `make
chapter` and a notebook edited in Jupyter agree. The active tweak is kept in `$COMPNB_TWEAK`, which the
worker processes a chapter spawns inherit; `paths.results_dir` reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from compnb import atomicio
from compnb.paths import project_root

ENV = "COMPNB_TWEAK"
NOT_TWEAKS = ("profile", "workers")
RECORD = "tweak.json"


@dataclass(frozen=True)
class Tweak:
    """A chapter run at `profile` whose parameters `changed` (name → value) differ from the defaults."""

    chapter: str
    profile: str
    changed: Mapping[str, object] = field(hash=False)

    @property
    def digest(self) -> str:
        """The first 8 hex digits of the SHA-256 of the changed parameters (canonical JSON)."""
        return hashlib.sha256(json.dumps(dict(self.changed), sort_keys=True).encode()).hexdigest()[:8]

    @property
    def folder(self) -> Path:
        """`build/<profile>/tweaks/<chapter>-<digest>/`."""
        return project_root() / "build" / self.profile / "tweaks" / f"{self.chapter}-{self.digest}"

    @property
    def notebook(self) -> Path:
        """Where the tweak's executed notebook goes: `<folder>/<chapter>.ipynb`."""
        return self.folder / f"{self.chapter}.ipynb"

    @property
    def results(self) -> Path:
        """Where the tweak's chapter results go: `<folder>/results/`."""
        return self.folder / "results"

    def describe(self) -> str:
        """'lam=0.3, k=3'."""
        return ", ".join(f"{name}={value!r}" for name, value in self.changed.items())


def reference(chapter: str, profile: str) -> dict[str, object]:
    """The values that make no tweak: the parameters cell's defaults, `model` being the papers' first
    backbone at the paper profile."""
    from compnb.parameters import defaults
    from compnb.profiles import paper_backbones

    values = dict(defaults(chapter))
    if profile == "paper" and paper_backbones(chapter) and "model" in values:
        values["model"] = paper_backbones(chapter)[0]
    return values


def _canonical(value: object, default: object) -> object:
    """`value` as the JSON the digest hashes: a float where the default is a float, lists for tuples."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def of(chapter: str, profile: str, values: Mapping[str, object]) -> Tweak | None:
    """The tweak that `values` (some or all of `chapter`'s parameters) make at `profile`, or None when every
    one of them is its default (names in `NOT_TWEAKS` are ignored)."""
    base = reference(chapter, profile)
    changed = {}
    for name in sorted(values):
        if name in NOT_TWEAKS:
            continue
        value = _canonical(values[name], base.get(name))
        default = _canonical(base.get(name), base.get(name))
        if name not in base or value != default or type(value) is not type(default):
            changed[name] = value
    return Tweak(chapter, profile, changed) if changed else None


def activate(tweak: Tweak | None) -> None:
    """Make `tweak` this process's (and its children's) active tweak, recorded in `<folder>/tweak.json`; None
    clears any (a chapter run with its defaults after a tweak in the same Jupyter kernel)."""
    if tweak is None:
        os.environ.pop(ENV, None)
        return
    record = {"chapter": tweak.chapter, "profile": tweak.profile, "changed": dict(tweak.changed)}
    path = tweak.folder / RECORD
    if not path.is_file() or json.loads(path.read_text()) != record:  # a rerun of one tweak rewrites nothing
        atomicio.write_json(path, record)
    os.environ[ENV] = json.dumps(record)


def _from_record(text: str) -> Tweak:
    """The tweak that a record (`activate`'s JSON, in `$COMPNB_TWEAK` and `tweak.json`) describes."""
    record = json.loads(text)
    return Tweak(record["chapter"], record["profile"], record["changed"])


def active(profile: str, chapter: str) -> Tweak | None:
    """The active tweak when it is `chapter`'s at `profile`, else None."""
    tweak = current()
    return tweak if tweak is not None and (tweak.profile, tweak.chapter) == (profile, chapter) else None


def current() -> Tweak | None:
    """The active tweak of whichever chapter, or None."""
    text = os.environ.get(ENV)
    return _from_record(text) if text else None


def load(folder: str | Path) -> Tweak:
    """The tweak recorded in `folder` (its `tweak.json`); a FileNotFoundError naming the folder otherwise."""
    path = Path(folder) / RECORD
    if not path.is_file():
        raise FileNotFoundError(f"{str(folder)!r} is not a tweak folder (no {RECORD}); tweak folders are "
                                f"build/<profile>/tweaks/<chapter>-<hash>/, printed by `compnb chapter`")
    return _from_record(path.read_text())


def refuse_retrain(run: Path) -> None:
    """A ValueError when a tweak is active: retraining the finished run in `run` (kept without its weights)
    would replace files that the published chapters read."""
    tweak = current()
    if tweak is not None:
        raise ValueError(f"the tweak {tweak.describe()} of {tweak.chapter} needs the weights of run {run.name}, "
                         "which was kept without them; retraining it would replace files the published chapters "
                         "read. Tweak at the smoke profile, or where the runs' weights are kept")
