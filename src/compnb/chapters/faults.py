"""Faults during training, tried for real in chapter 7: trainings of one run started together, a lock holder
killed, locks left behind, a finished run's files damaged, a run that diverges. Each case (`FAULTS`) runs real
processes and gives one row (`try_faults`): the one line it must end in, the line it printed, whether they agree,
and whether anything was lost or half-written, with the facts that rest on.

The runs are those of a tiny world (`tiny_world`: a one-layer BERT of width 16 with the default backbone's
tokenizer, and a keyword rule in SST-2's shape), so a run of 12 steps trains in about a second on one CPU thread;
the processes fork from a server that imported `compnb.training` once (`processes`), so each starts in a fraction
of a second. The lines are shown as the reader would see them, with what changes from build to build replaced:
the work folder (OUT), the run's name (RUN: its id hashes the backbone's path), process ids, the host, clock times
and file hashes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import safetensors.torch
import torch

from compnb import cli, models, run_cache, run_integrity, run_lock
from compnb.training import TrainConfig, train

WORDS = "the a movie film plot actors story scenes it was is very quite rather".split()
STEPS = 12  # the tiny world's run: 96 sentences, batches of 16, 2 epochs
WAIT_S = 120.0  # the longest a case waits for a process before it fails


# ---------------------------------------------------------------------------------------------------- the world

def sentences(n: int, seed: int, most_words: int = 6) -> pd.DataFrame:
    """SST-2-shaped rows: label 1 iff the sentence says 'great' (else 'awful'), among 2 to `most_words` random
    filler words."""
    rng, rows = random.Random(seed), []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, most_words))]
        words.insert(rng.randint(0, len(words)), "great" if i % 2 else "awful")
        rows.append({"idx": i, "sentence": " ".join(words), "label": i % 2})
    return pd.DataFrame(rows)


def tiny_world(root: Path) -> SimpleNamespace:
    """Under `root`: a one-layer BERT backbone (hidden size 16, the default backbone's tokenizer) and a data folder
    (`COMPNB_DATA_DIR`) with 96 training and 32 validation sentences."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    root = Path(root)
    tokenizer = AutoTokenizer.from_pretrained(models.resolve_backbone(models.DEFAULT_BACKBONE))
    backbone, data = root / "tiny-bert", root / "data"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
                  ).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    (data / "sst2").mkdir(parents=True)
    sentences(96, 0).to_parquet(data / "sst2" / "train.parquet")
    sentences(32, 1).to_parquet(data / "sst2" / "validation.parquet")
    return SimpleNamespace(root=root, backbone=backbone, data=data)


def tiny_config(world: SimpleNamespace, **overrides) -> TrainConfig:
    """The tiny world's run: 6 steps per epoch, 2 epochs; the loss logged and a checkpoint written every 2 steps."""
    values = dict(model=str(world.backbone), epochs=2, batch_size=16, lr=3e-3, max_length=24, log_every=2,
                  checkpoint_every=2, patience=None, profile="smoke")
    return TrainConfig(**(values | overrides))


def processes() -> multiprocessing.context.BaseContext:
    """A multiprocessing context whose processes fork from a server that imported `compnb.training` once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["compnb.training", "compnb.cli", "compnb.chapters.faults"])
    return context


# ------------------------------------------------------------------------------- what the processes run

def run_cli(args: list[str], log: Path, env: dict[str, str]) -> None:
    """A process's target: `compnb <args>` with `env` set, stdout to `log`.out and stderr to `log`; its exit status
    is the command's."""
    _enter(env, log)
    sys.exit(cli.main(args))


def train_paused(config: Path, runs_root: Path, marker: Path, step: int, env: dict[str, str]) -> None:
    """A process's target: train `config` and, after `step`, create `marker` and sleep (to be killed while it holds
    the run's lock); stderr to `marker`.log."""
    def pause(state):
        if state.step == step:
            marker.write_text("")
            time.sleep(600)

    _enter(env, marker.with_suffix(".log"))
    train(TrainConfig.from_json(config), runs_root=runs_root, callback=pause)


def run_cli_poisoned(args: list[str], log: Path, forward: int, env: dict[str, str]) -> None:
    """`run_cli`, with one weight of the classifier (its last parameter, the output layer's bias, which every row's
    logits add) set to NaN, as a flipped bit in memory would, just before its `forward`-th forward (1-based; one per
    optimizer step in the tiny run until its first validation)."""
    calls = [0]

    def poison(module, args):
        if isinstance(module, models.SequenceClassifier):
            calls[0] += 1
            if calls[0] == forward:
                with torch.no_grad():
                    list(module.parameters())[-1].view(-1)[0] = float("nan")

    torch.nn.modules.module.register_module_forward_pre_hook(poison)
    run_cli(args, log, env)


def _enter(env: dict[str, str], log: Path) -> None:
    """Set up a started process: `env`, one CPU thread, progress bars on, stdout to `log`.out, stderr to `log`."""
    os.environ.update(env)
    os.environ.pop("TQDM_DISABLE", None)
    torch.set_num_threads(1)
    for fd, path in ((1, log.with_suffix(".out")), (2, log)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(handle, fd)
        os.close(handle)


# ------------------------------------------------------------------------------------------- the trial

@dataclass(frozen=True)
class Done:
    """A finished process: its exit status, stdout and stderr."""

    code: int | None
    out: str
    err: str

    def lines(self) -> list[str]:
        """stderr's non-empty lines (a progress bar's redraws, split at carriage returns, count as lines)."""
        return [line.strip() for line in re.split(r"[\r\n]", self.err) if line.strip()]

    def last(self) -> str:
        lines = self.lines()
        return lines[-1] if lines else ""

    def first(self, text: str) -> str:
        """The first stderr line containing `text`, or ''."""
        return next((line for line in self.lines() if text in line), "")


class Trial:
    """The world and work folder the cases share: `config` (the tiny run) written to `config_path`, `reference`
    (that run's finished folder, once the first case has trained it), and the processes' environment."""

    def __init__(self, work: Path):
        self.work = Path(work)
        self.world = tiny_world(self.work / "world")
        self.config = tiny_config(self.world)
        self.config_path = self.write_config(self.config, self.work / "c.json")
        self.reference: Path | None = None
        self.context = processes()
        self.env = {"COMPNB_DATA_DIR": str(self.world.data), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        self.count = 0

    @staticmethod
    def write_config(config: TrainConfig, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config.to_dict()))
        return path

    def folder(self, case: str, config: TrainConfig | None = None) -> Path:
        """The run folder of `config` (default the tiny run) under the case's own runs root."""
        return run_cache.run_dir(config or self.config, self.work / case / "runs")

    def log(self, case: str) -> Path:
        self.count += 1
        (self.work / case).mkdir(parents=True, exist_ok=True)
        return self.work / case / f"stderr-{self.count}"

    def start(self, target: Callable, *args, env: dict[str, str] | None = None):
        child = self.context.Process(target=target, args=(*args, {**self.env, **(env or {})}))
        child.start()
        return child

    def cli(self, case: str, *args: str, env: dict[str, str] | None = None):
        """Start `compnb <args>` in a process; (process, its stderr log)."""
        log = self.log(case)
        return self.start(run_cli, list(args), log, env=env), log

    def train_args(self, case: str, config: Path | None = None) -> list[str]:
        return ["train", "--config", str(config or self.config_path), "--runs-root", str(self.work / case / "runs")]

    @staticmethod
    def done(child, log: Path) -> Done:
        child.join(WAIT_S)
        if child.exitcode is None:
            child.kill()
            child.join()
        out = log.with_suffix(".out")
        return Done(child.exitcode, out.read_text() if out.is_file() else "", log.read_text() if log.is_file() else "")

    def run(self, case: str, *args: str, env: dict[str, str] | None = None) -> Done:
        """`compnb <args>` run to its end in a process."""
        return self.done(*self.cli(case, *args, env=env))

    def plain(self, text: str) -> str:
        return plain(text, self.work)


def plain(text: str, work: Path) -> str:
    """`text` as the book shows it, what changes from build to build replaced (module docstring): the folder `work`
    by OUT, a run's name by RUN, this host's process ids and name, UTC clock times, and SHA-256 prefixes."""
    text = re.sub(r"\bsst2-[a-z_]+-[0-9a-f]{12}\b", "RUN", text.replace(str(work), "OUT"))
    text = re.sub(rf"process \d+ on {re.escape(socket.gethostname())}\b", "process <pid> on <host>", text)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "<time>", text)
    return re.sub(r"\b[0-9a-f]{12}…", "<sha256>…", text)


def _wait_for(condition: Callable[[], bool], what: str, children=()) -> None:
    """Wait until `condition()`; a TimeoutError after `WAIT_S` seconds, or at once if one of `children` (processes)
    has ended meanwhile."""
    end = time.monotonic() + WAIT_S
    while not condition():
        ended = [c for c in children if c.exitcode is not None]
        if ended or time.monotonic() > end:
            why = f"process {ended[0].pid} ended with status {ended[0].exitcode}" if ended else "timed out"
            raise TimeoutError(f"{why} waiting for {what}")
        time.sleep(0.05)


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root`: (size, modification time)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def leftovers(root: Path) -> list[str]:
    """What a run cut short or a writer interrupted could leave under `root`: a lock, a takeover guard, a checkpoint
    being replaced, an atomic write's temporary file."""
    names = (run_lock.LOCK, f"{run_lock.LOCK}.takeover", f"{run_cache.CHECKPOINT}.tmp", f"{run_cache.CHECKPOINT}.old")
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name in names or p.name.endswith(".tmp"))


def intact(folder: Path) -> str | None:
    """Why the finished run in `folder` is not whole (every file checked against its record, the weights hashed
    too; nothing left over), or None."""
    try:
        run_integrity.require_intact(folder, verify=True)
    except run_integrity.DamagedRunError as err:
        return str(err)
    if not (folder / run_cache.FINISHED).is_file():
        return "no finished marker"
    extra = leftovers(folder.parent)
    return f"left over: {', '.join(extra)}" if extra else None


def same_probabilities(folder: Path, reference: Path) -> bool:
    """Whether two runs' validation probabilities are bit-identical."""
    return bool(np.array_equal(run_integrity.load_probs(folder), run_integrity.load_probs(reference)))


def matches(expected: str, observed: str) -> bool:
    """Whether `observed` is the line `expected`, where a step number (`<step>`) may be any."""
    return re.fullmatch(re.escape(expected).replace("<step>", r"\d+"), observed) is not None


def _row(trial: Trial, fault: str, command: str, expected: str, observed: str, agree: bool, whole: bool,
         facts: list[str]) -> dict:
    expected, observed = trial.plain(expected), trial.plain(observed)
    return {"fault": fault, "command": trial.plain(command), "expected": expected, "observed": observed,
            "as expected": bool(agree and matches(expected, observed)), "nothing lost or half-written": bool(whole),
            "facts": trial.plain("; ".join(facts))}


# ------------------------------------------------------------------------------------------- the cases

def _concurrent(trial: Trial, n: int) -> dict:
    """`n` `compnb train` of the tiny run started while the run's lock is held here, so that every one is waiting
    when it is let go: one trains, the others return its finished folder."""
    case = f"concurrent-{n}"
    folder = trial.folder(case)
    waiting = f"{folder.name}: waiting for process {os.getpid()} on "
    with run_lock.hold(folder, say=lambda line: None):
        started = [trial.cli(case, *trial.train_args(case)) for _ in range(n)]
        _wait_for(lambda: all(log.is_file() and waiting in log.read_text() for _, log in started),
                  f"{n} processes to wait", [child for child, _ in started])
    done = [trial.done(*pair) for pair in started]
    trained = sum(f"{folder.name}: 100%|" in d.err for d in done)
    printed = [d.out for d in done]
    codes = [d.code for d in done]
    problem = intact(folder)
    if trial.reference is None and problem is None:
        trial.reference = folder
    observed = done[0].first(": waiting for")
    expected = (f"{folder.name}: waiting for process <pid> on <host>, which has been training this run since <time>")
    facts = [f"exit codes {', '.join(map(str, codes))}",
             f"{sum(p.strip() == str(folder) for p in printed)} of {n} printed {folder}",
             f"{sum(bool(d.first(': waiting for')) for d in done)} of {n} waited",
             f"trained {trained} time{'s' * (trained != 1)}",
             "a traceback" if any("Traceback" in d.err for d in done) else "no traceback",
             problem or "every file matches run.json, no lock or temporary file left"]
    agree = (codes == [0] * n and printed == [f"{folder}\n"] * n and trained == 1
             and all(trial.plain(d.first(": waiting for")) == trial.plain(expected) for d in done)
             and not any("Traceback" in d.err for d in done))
    return _row(trial, f"{n} trainings of one config started together",
                f"compnb train --config c.json, {n} processes at once", expected, observed, agree, problem is None,
                facts)


def concurrent_two(trial: Trial) -> dict:
    return _concurrent(trial, 2)


def concurrent_four(trial: Trial) -> dict:
    return _concurrent(trial, 4)


def killed_holder(trial: Trial) -> dict:
    """The process training the run is killed (SIGKILL) at step 3, after its checkpoint of step 2, while another
    waits for it: the waiting one takes the lock over, resumes from the checkpoint and finishes the run as an
    uninterrupted one."""
    case = "killed-holder"
    folder, marker = trial.folder(case), trial.work / case / "paused"
    marker.parent.mkdir(parents=True, exist_ok=True)
    holder = trial.start(train_paused, trial.config_path, trial.work / case / "runs", marker, 3)
    _wait_for(marker.is_file, "the first process to reach step 3", [holder])
    waiter, log = trial.cli(case, *trial.train_args(case))
    _wait_for(lambda: log.is_file() and f"waiting for process {holder.pid} on" in log.read_text(),
              "the second process to wait", [holder, waiter])
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    done = trial.done(waiter, log)
    observed = done.first(": taking over")
    expected = (f"{folder.name}: taking over the training lock of process <pid> on <host> (taken <time>): "
                "that process is gone")
    problem = intact(folder)
    steps = run_integrity.read_json(folder)["steps"] if problem is None else None
    same = problem is None and trial.reference is not None and same_probabilities(folder, trial.reference)
    facts = [f"holder killed by signal {-holder.exitcode}" if holder.exitcode and holder.exitcode < 0
             else f"holder exit code {holder.exitcode}",
             f"waiter exit code {done.code}", f"it printed {done.out.strip() or 'nothing'}",
             f"the run finished after {steps} of {STEPS} steps",
             "validation probabilities bit-identical to an uninterrupted run's" if same
             else "validation probabilities differ from an uninterrupted run's",
             problem or "every file matches run.json, no lock or temporary file left"]
    agree = done.code == 0 and done.out == f"{folder}\n" and "Traceback" not in done.err
    return _row(trial, "the process training a run killed (SIGKILL) while another waits for it",
                "compnb train --config c.json, a second process; the first killed at step 3", expected, observed,
                agree, problem is None and steps == STEPS and same, facts)


def _planted_lock(trial: Trial, case: str, fault: str, holder: dict | None, age_s: float, expected: str) -> dict:
    """A lock file planted in the run folder (`holder`, or empty), `age_s` seconds old; `compnb train` must take it
    over with `expected` and train the run."""
    folder = trial.folder(case)
    folder.mkdir(parents=True)
    lock = folder / run_lock.LOCK
    lock.write_text("" if holder is None else json.dumps(holder))
    old = time.time() - age_s + 0.45  # the message rounds the age to whole seconds: `age_s` up to 0.95 s from now
    os.utime(lock, (old, old))
    done = trial.run(case, *trial.train_args(case))
    observed = done.first(": taking over")
    problem = intact(folder)
    same = problem is None and trial.reference is not None and same_probabilities(folder, trial.reference)
    facts = [f"exit code {done.code}", f"it printed {done.out.strip() or 'nothing'}",
             "validation probabilities bit-identical to an uninterrupted run's" if same
             else "validation probabilities differ from an uninterrupted run's",
             problem or "every file matches run.json, no lock or temporary file left"]
    agree = done.code == 0 and done.out == f"{folder}\n" and "Traceback" not in done.err
    return _row(trial, fault, "compnb train --config c.json", f"{folder.name}: {expected}", observed, agree,
                problem is None and same, facts)


def other_host_lock(trial: Trial) -> dict:
    """A lock of a process on another host that has given no sign of life (heartbeat) for an hour, past the limit
    of 10 minutes (`COMPNB_LOCK_STALE_S`)."""
    since = time.time() - 3600
    return _planted_lock(
        trial, "other-host-lock", "a lock left by a process on another host, silent for an hour",
        {"host": "another-host", "pid": 4321, "pid_start": None, "since": since}, 3600,
        "taking over the training lock of process 4321 on another-host (taken <time>): no sign of life from "
        "that host for 3600 s, more than the limit of 600 s (COMPNB_LOCK_STALE_S)")


def empty_lock(trial: Trial) -> dict:
    """A lock file left empty a minute ago by a process that died between creating it and writing its name."""
    return _planted_lock(trial, "empty-lock", "an empty lock left by a process that died creating it", None, 60,
                         "taking over an empty training lock: it has named no holder for 60 s")


def _damaged(trial: Trial, case: str, fault: str, name: str, damage: Callable[[Path], str], evaluate: bool = False
             ) -> dict:
    """A copy of the finished tiny run with its file `name` damaged by `damage(path)` (which returns the detail
    the one line must give); `compnb train` with the run's config (`evaluate`: `compnb evaluate` of the run) must
    stop with that line, exit 2 and change no file."""
    folder = trial.folder(case)
    shutil.copytree(trial.reference, folder)
    detail = damage(folder / name)
    before = _files(folder.parent)
    if evaluate:
        args = ["evaluate", "--run", str(folder), "--dataset", "sst2"]
        shown = "compnb evaluate --run RUN --dataset sst2"
    else:
        args, shown = trial.train_args(case), "compnb train --config c.json"
    done = trial.run(case, *args)
    expected = (f"compnb {args[0]}: error: {folder / name} is damaged ({detail}); retrain run {folder.name} with "
                "`compnb train --force` (force=True), or restore the file")
    changed = sorted({path for path, _ in set(_files(folder.parent).items()) ^ set(before.items())})
    lines = done.lines()
    facts = [f"exit code {done.code}", f"{len(lines)} line{'s' * (len(lines) != 1)} on stderr",
             "a traceback" if "Traceback" in done.err else "no traceback",
             f"changed: {', '.join(changed)}" if changed
             else f"no file written or changed; the damaged {name} left as it was, for inspection"]
    agree = done.code == 2 and len(lines) == 1 and "Traceback" not in done.err
    return _row(trial, fault, shown, expected, done.last(), agree, not changed and not leftovers(folder.parent), facts)


def _truncate(size: int) -> Callable[[Path], str]:
    def cut(path: Path) -> str:
        whole = path.stat().st_size
        path.write_bytes(path.read_bytes()[:size])
        return f"{size:,} bytes where run.json records {whole:,}"
    return cut


def _flip_last_byte(path: Path) -> str:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    return "SHA-256 <sha256>… where run.json records <sha256>…"


def truncated_weights_train(trial: Trial) -> dict:
    return _damaged(trial, "weights-train", "a finished run's weights cut to 1,000 bytes, then trained again",
                    run_integrity.WEIGHTS, _truncate(1000))


def truncated_weights_evaluate(trial: Trial) -> dict:
    return _damaged(trial, "weights-evaluate", "a finished run's weights cut to 1,000 bytes, then evaluated",
                    run_integrity.WEIGHTS, _truncate(1000), evaluate=True)


def truncated_metrics(trial: Trial) -> dict:
    return _damaged(trial, "metrics-train", "a finished run's metrics.json cut to 100 bytes, then trained again",
                    run_integrity.METRICS, _truncate(100))


def flipped_probabilities(trial: Trial) -> dict:
    return _damaged(trial, "probs-train", "one byte of a finished run's validation probabilities changed (same "
                    "size), then trained again", run_integrity.PROBS, _flip_last_byte)


def truncated_record(trial: Trial) -> dict:
    def cut(path: Path) -> str:
        path.write_bytes(path.read_bytes()[:1])
        return "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    return _damaged(trial, "record-train", "a finished run's record (run.json) cut to its first byte, then trained "
                    "again", run_integrity.RECORD, cut)


def force_retrains(trial: Trial) -> dict:
    """The first way on from damaged weights: `compnb train --force` retrains the run in place."""
    case = "weights-force"
    folder = trial.folder(case)
    shutil.copytree(trial.reference, folder)
    _truncate(1000)(folder / run_integrity.WEIGHTS)
    done = trial.run(case, *trial.train_args(case), "--force")
    problem = intact(folder)
    same = problem is None and same_probabilities(folder, trial.reference)
    expected = str(folder)
    facts = [f"exit code {done.code}", "a traceback" if "Traceback" in done.err else "no traceback",
             "validation probabilities bit-identical to the run before the damage" if same
             else "validation probabilities differ from the run before the damage",
             problem or "every file matches run.json, no lock or temporary file left"]
    agree = done.code == 0 and "Traceback" not in done.err
    return _row(trial, "the same damaged weights, then trained with --force (the first way on)",
                "compnb train --config c.json --force", f"{expected} (on stdout)", f"{done.out.strip()} (on stdout)",
                agree, problem is None and same, facts)


def _stopped(folder: Path, line: str) -> tuple[bool, list[str]]:
    """Whether the diverged run in `folder` lost nothing and half-wrote nothing (no finished marker, no lock, the
    checkpoint its one `line` says is kept there, from before the step it names, and every weight file finite),
    and the facts."""
    steps = [int(n) for n in re.findall(r"step (\d+)", line)]
    state = folder / run_cache.CHECKPOINT / run_cache.STATE_FILE
    kept = json.loads(state.read_text())["step"] if state.is_file() else None
    finite = all(torch.isfinite(w).all() for path in folder.rglob("*.safetensors")
                 for w in safetensors.torch.load_file(path).values())
    facts = ["a finished marker (metrics.json)" if (folder / run_cache.FINISHED).exists() else "no finished marker",
             "a lock left" if (folder / run_lock.LOCK).exists() else "no lock left",
             f"checkpoint of step {kept} on disk" if kept is not None else "no checkpoint on disk",
             "every weight file finite" if finite else "a weight file with non-finite values"]
    whole = (not (folder / run_cache.FINISHED).exists() and not leftovers(folder.parent) and finite
             and len(steps) == 2 and kept == steps[1] and kept < steps[0])
    return whole, facts


def diverging(trial: Trial) -> dict:
    """lr 10⁴ without clipping or warm-up: the tiny run's loss goes non-finite within a few steps."""
    case = "diverging"
    config = tiny_config(trial.world, lr=1e4, max_grad_norm=None, warmup_ratio=0.0)
    path = trial.write_config(config, trial.work / case / "c.json")
    folder = trial.folder(case, config)
    done = trial.run(case, *trial.train_args(case, path))
    expected = (f"compnb train: error: run {folder.name} diverged: its loss was not finite at step <step>; training "
                "stopped, nothing is marked finished and its checkpoint of step <step> is kept; lower lr (now "
                "10000) or clip gradients with max_grad_norm (now null) in its config")
    whole, facts = _stopped(folder, done.last())
    agree = done.code == 2 and "Traceback" not in done.err
    return _row(trial, "a run that diverges: lr 10⁴, no clipping, no warm-up",
                "compnb train --config c.json", expected, done.last(), agree, whole,
                [f"exit code {done.code}", "a traceback" if "Traceback" in done.err else "no traceback", *facts])


def nan_weight(trial: Trial) -> dict:
    """One weight set to NaN before step 4's forward (as a flipped bit in memory would): the loss of step 4 is
    NaN; the checkpoint of step 2 is kept, and the rerun resumes from it to the uninterrupted run's result."""
    case = "nan-weight"
    folder, log = trial.folder(case), trial.log(case)
    done = trial.done(trial.start(run_cli_poisoned, trial.train_args(case), log, 4), log)
    expected = (f"compnb train: error: run {folder.name} diverged: its loss was not finite at step 4; training "
                "stopped, nothing is marked finished and its checkpoint of step 2 is kept; lower lr (now 0.003) or "
                "clip gradients with max_grad_norm (now 1) in its config")
    whole, facts = _stopped(folder, done.last())
    rerun = trial.run(case, *trial.train_args(case))
    problem = intact(folder)
    same = problem is None and trial.reference is not None and same_probabilities(folder, trial.reference)
    facts += [f"rerun: exit code {rerun.code}",
              "it resumed from step 2 to validation probabilities bit-identical to an uninterrupted run's" if same
              else "the rerun's validation probabilities differ from an uninterrupted run's",
              problem or "every file matches run.json, no lock or temporary file left"]
    agree = done.code == 2 and "Traceback" not in done.err
    return _row(trial, "a weight turned NaN in memory before step 4", "compnb train --config c.json, then again",
                expected, done.last(), agree, whole and rerun.code == 0 and same,
                [f"exit code {done.code}", "a traceback" if "Traceback" in done.err else "no traceback", *facts])


FAULTS: tuple[Callable[[Trial], dict], ...] = (
    concurrent_two, concurrent_four, killed_holder, other_host_lock, empty_lock, truncated_weights_train,
    truncated_weights_evaluate, truncated_metrics, flipped_probabilities, truncated_record, force_retrains,
    diverging, nan_weight)


def try_faults(work: str | Path) -> pd.DataFrame:
    """Every case of `FAULTS` in turn in the folder `work` (module docstring): one row each, with `seconds`, its
    wall time. They run in a fresh interpreter (`python -c`), whose processes can fork from a server whatever
    runs this one (a script, a notebook's kernel)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    out = work / "faults.json"
    done = subprocess.run([sys.executable, "-c", "import sys; from compnb.chapters import faults; "
                           "faults.write_faults(sys.argv[1], sys.argv[2])", str(work / "cases"), str(out)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the fault cases could not run:\n{done.stderr[-3000:]}")
    return pd.DataFrame(json.loads(out.read_text()))


def write_faults(work: str | Path, out: str | Path, cases: tuple[Callable[[Trial], dict], ...] = FAULTS) -> None:
    """Run `cases` in turn in the folder `work` (the first trains the run the others compare with or damage) and
    write their rows to the JSON file `out`; a case that raises gives a row saying so."""
    trial, rows = Trial(Path(work)), []
    for case in cases:
        start = time.perf_counter()
        try:
            row = case(trial)
        except Exception as err:  # the row says what went wrong; the chapter's check then fails the build
            doc = (case.__doc__ or case.__name__).split(".")[0]
            row = {"fault": doc, "command": "", "expected": "", "observed": trial.plain(f"{type(err).__name__}: {err}"),
                   "as expected": False, "nothing lost or half-written": False, "facts": "the case itself failed"}
        rows.append(row | {"seconds": round(time.perf_counter() - start, 2)})
    Path(out).write_text(json.dumps(rows, indent=1))
