"""Before a chapter trains: the runs it is about to train, an estimate of how long they take here, and a stop
on a CPU at the full or paper profile unless told to go on.

The estimate is measured, not guessed: each run's training examples (its training split's labelled rows, cut
to `max_train_examples`, plus its extra rows where they exist yet) times its epochs, divided by the median
`train_examples_per_s` that finished runs of the same kind (loss and saliency method or variant) recorded on
this kind of device (`results/*/runs/*/metrics.json`: the committed full-profile runs for a GPU, the smoke
runs trained here for a CPU). It counts training only (not evaluation or analyses), and is an upper bound
where early stopping ends a run sooner. Go on with `compnb chapter ... --yes`, `make chapter ... YES=1`, or
`COMPNB_YES=1` in the environment (a Jupyter kernel's included).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import torch

from compnb import data, run_cache, tweaks
from compnb.paths import project_root
from compnb.training import TrainConfig, extra_train_path

YES_ENV = "COMPNB_YES"
STOPPED_PROFILES = ("full", "paper")


class TrainingRefused(ValueError):
    """Training at the full or paper profile on a CPU, not confirmed."""


@dataclass(frozen=True)
class Record:
    """What one finished run measured: its device, kind, model, max length and examples per second."""

    device: str
    kind: str
    model: str
    max_length: int
    rate: float


def device() -> str:
    """This machine's device as runs record it: the first GPU's name, else 'CPU'."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"


def kind(config: TrainConfig) -> str:
    """'ce', 'competency/mask', 'ig_variance/detached', ...: what sets a run's cost per example."""
    params = config.loss_kwargs or {}
    detail = params.get("variant") or params.get("method")
    return f"{config.loss}/{detail}" if detail else config.loss


def device_class(name: str) -> str:
    """A run's recorded device as runs of the same cost group it: 'CPU' for any CPU ('CPU (2 threads)'), else the
    GPU's name."""
    return "CPU" if name.startswith("CPU") else name


def timed_runs(root: Path, pattern: str) -> Iterator[tuple[Path, dict, TrainConfig]]:
    """(folder, metrics, config) of each finished run whose `metrics.json` matches the glob `pattern` under `root`
    (sorted), that recorded a training speed and has its config."""
    for metrics in sorted(root.glob(pattern)):
        m = json.loads(metrics.read_text())
        if m.get("train_examples_per_s") and (metrics.parent / "config.json").is_file():
            yield metrics.parent, m, TrainConfig.from_json(metrics.parent / "config.json")


def records(root: Path) -> tuple[Record, ...]:
    """The finished runs under `root/results/*/runs/` that recorded a training speed."""
    return tuple(Record(device_class(m.get("device", "")), kind(config), config.model, config.max_length,
                        float(m["train_examples_per_s"]))
                 for _, m, config in timed_runs(root, "results/*/runs/*/metrics.json"))


def rate(config: TrainConfig, here: str, known: Sequence[Record] | None = None) -> tuple[float, str] | None:
    """(median examples/s, what it rests on) for `config` on device `here`, from the closest recorded runs of its
    kind on this kind of device (same backbone and max length if any, else same backbone, else any), or None.
    `known`: the `records` to choose from, when the caller has read them already."""
    known = records(project_root()) if known is None else known
    same = [r for r in known if r.kind == kind(config) and r.device == here]
    for chosen in ([r for r in same if r.model == config.model and r.max_length == config.max_length],
                   [r for r in same if r.model == config.model], same):
        if chosen:
            return statistics.median(r.rate for r in chosen), f"{len(chosen)} {kind(config)} runs"
    return None


def examples(config: TrainConfig) -> int:
    """Training examples per epoch (its extra rows included); a ValueError when the training split is not local
    (the hub), whose size is not known without downloading it."""
    location, _ = data.locate(config.dataset, "train", complete=config.profile == "paper")
    if location is None:
        raise ValueError(f"{config.dataset}/train is not local; its size is unknown")
    n = data.labelled_rows(location)
    n = n if config.max_train_examples is None else min(n, config.max_train_examples)
    if config.extra_train is None:
        return n
    return n + pq.read_metadata(extra_train_path(config.extra_train)).num_rows


def estimate(configs: Sequence[TrainConfig], here: str | None = None) -> tuple[str, str]:
    """(how long training `configs` one after another takes on device `here` (default: this machine's), e.g.
    '12 min', 'at least 12 min' or 'no estimate'; what it rests on). Runs of kinds never timed on this device,
    and runs on a training split still on the hub (its size unknown), are not estimated, and named."""
    here = here or device()
    known = records(project_root())  # read once, not once per config
    seconds, bases, untimed, unsized = 0.0, {}, set(), set()
    for config in configs:
        found = rate(config, here, known)
        if found is None:
            untimed.add(kind(config))
            continue
        try:
            seconds += examples(config) * config.epochs / found[0]
        except ValueError:  # a training split on the hub
            unsized.add(config.dataset)
            continue
        bases[kind(config)] = found[1]
    basis = (f"from the median examples/s of recorded runs on {here} ({', '.join(bases.values())}) × examples "
             f"× epochs, training only" if bases else "")
    if untimed:
        basis += ("; " if basis else "") + (f"no {', '.join(sorted(untimed))} run was ever timed on {here}: "
                                            "not estimated (run the smoke profile here to time some)")
    if unsized:
        basis += ("; " if basis else "") + (f"the size of {', '.join(f'{d}/train' for d in sorted(unsized))} is "
                                            "not known before it is downloaded: not estimated")
    if not bases:
        return "no estimate", basis
    return ("at least " if untimed or unsized else "") + duration(seconds), basis


def longest_first(configs: Sequence[TrainConfig], here: str | None = None,
                  known: Sequence[Record] | None = None) -> list[TrainConfig]:
    """`configs` by expected training time, longest first, so that parallel workers do not end a stage waiting on
    one long run: examples × epochs / the recorded examples/s of each kind on device `here` (`rate`), or
    examples × epochs alone when some kind was never timed there; ties keep their order, and so does everything
    when a training split is not local (on the hub its size is unknown without downloading it)."""
    try:
        work = [examples(config) * config.epochs for config in configs]
    except ValueError:
        return list(configs)
    here = here or device()
    known = records(project_root()) if known is None else known
    rates = [rate(config, here, known) for config in configs]
    if all(rates):
        work = [w / r[0] for w, r in zip(work, rates)]
    order = sorted(range(len(configs)), key=lambda i: -work[i])
    return [configs[i] for i in order]


def duration(seconds: float) -> str:
    """'45 s', '12 min', '3.4 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def go_on() -> bool:
    """Whether training on a CPU at the full or paper profile was confirmed (`$COMPNB_YES` is 1)."""
    return os.environ.get(YES_ENV, "") == "1"


def _say(line: str) -> None:
    """Print `line`; inside a Jupyter kernel (papermill's too) also on the terminal that started the kernel, so
    that `compnb chapter` shows the list while the chapter runs, not only in its notebook."""
    print(line)
    if sys.stdout is not sys.__stdout__ and sys.__stderr__ is not None:
        print(line, file=sys.__stderr__, flush=True)


def announce(chapter: str, profile: str, todo: Sequence[TrainConfig], cached: int, stage: str = "",
             later: Sequence[TrainConfig] = ()) -> None:
    """Print the runs of `chapter` about to train (`todo`, each named; `cached` counted) with their estimated
    time here; then, on a CPU at the full or paper profile, raise `TrainingRefused` unless `go_on`. `later`
    stands for runs whose names are not known yet (their extra training rows are made by earlier runs): each
    is counted and estimated as its config without those rows. Nothing is printed when nothing is to train.
    During a tweak, a run to retrain because it was kept without its weights stops it first
    (`tweaks.refuse_retrain`)."""
    total = len(todo) + len(later)
    if not total:
        return
    for config in todo:  # a tweak needing a published run's weights stops before anything trains
        folder = run_cache.run_dir(config)
        if (folder / run_cache.FINISHED).is_file():
            tweaks.refuse_retrain(folder)
    here = device()
    time, basis = estimate([*todo, *later], here)
    names = ", ".join(run_cache.run_dir(c).name for c in todo)
    if later:
        names += (", and " if names else "") + (f"{len(later)} more whose training sets are made first (their "
                                                "names, and their extra rows in the estimate, follow from them)")
    where = f"{chapter}{f' ({stage})' if stage else ''}"
    _say(f"{where}: {total} runs to train ({cached} cached) at the {profile} profile: {names}. Training "
         f"time on this machine ({here}): {time}; {basis}.")
    if profile in STOPPED_PROFILES and here == "CPU" and not go_on():
        raise TrainingRefused(f"not training {total} runs of {chapter} at the {profile} profile on a CPU "
                              f"({time}); try the smoke profile (--profile smoke), or go on "
                              f"with `compnb chapter ... --yes`, `make chapter ... YES=1` or {YES_ENV}=1")


def to_train(configs: Sequence[TrainConfig]) -> list[TrainConfig]:
    """Of runs that need work, those that train: not finished, or finished without their weights (kept
    without them, and retrained for the measurements that need them)."""
    out = []
    for config in configs:
        folder = run_cache.run_dir(config)
        if not (folder / run_cache.FINISHED).is_file() or run_cache.weightless(folder):
            out.append(config)
    return out
