"""The book's reliability checks, run for real in its appendix: a training run killed mid-way resumes from
its checkpoint to the result of an uninterrupted run, and every CLI command refuses bad input with a clear
message, without a traceback and without leaving output behind; faults during training (`compnb.chapters.faults`)
and split batches (`compnb.chapters.split_exactness`) are tried beside them, and `tally` counts every case and
how many behaved as expected; and the book's GPU cost, from the chapters' invocation records
(`compnb.invocations`).
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from compnb import data, invocations, pieces, plots, run_cache
from compnb.chapters import competency
from compnb.training import TrainConfig

KILL_AT_STEP = 10
_TRAIN = ("import sys; from compnb import training; "
          "training.train(training.TrainConfig.from_json(sys.argv[1]), runs_root=sys.argv[2])")
# the interrupted process: train with a callback that kills the process itself (SIGKILL, no clean-up) at a step
_KILLER = """
import os, signal, sys
from compnb import training
config = training.TrainConfig.from_json(sys.argv[1])
def die(state):
    if state.step == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
training.train(config, runs_root=sys.argv[2], callback=die)
"""


def tiny_config() -> TrainConfig:
    """A CPU-sized SST-2 run: 96 training sentences, 2 epochs of 12 steps, a checkpoint every 4 steps, the
    loss logged every 2."""
    return TrainConfig(dataset="sst2", seed=3, epochs=2, batch_size=8, lr=5e-5, max_length=32,
                       max_train_examples=96, max_eval_examples=48, patience=None, checkpoint_every=4,
                       log_every=2, profile="smoke")


def _python(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env={**os.environ, **(env or {})})


def interrupted_training(workdir: str | Path, config: TrainConfig | None = None, kill_at: int = KILL_AT_STEP) -> dict:
    """Train `config` uninterrupted; train it again in a process killed (SIGKILL) at step `kill_at`, then
    rerun that. Returns what happened and whether the resumed run equals the uninterrupted one exactly
    (validation probabilities, the logged loss curve, the validation curve)."""
    config = config or tiny_config()
    workdir = Path(workdir)
    path = workdir / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config.to_dict()))
    # both runs in fresh processes, so neither inherits state (RNG, thread pools) from this one; they are
    # independent, so they run at the same time, one CPU thread each
    with ThreadPoolExecutor(max_workers=2) as pool:
        whole, killed = pool.map(lambda args: _python(*args, env={"OMP_NUM_THREADS": "1"}), [
            ("-c", _TRAIN, str(path), str(workdir / "uninterrupted")),
            ("-c", _KILLER, str(path), str(workdir / "interrupted"), str(kill_at))])
    if whole.returncode != 0:
        raise RuntimeError(f"the uninterrupted run failed:\n{whole.stderr[-2000:]}")
    folder = run_cache.run_dir(config, workdir / "interrupted")
    state = json.loads((folder / run_cache.CHECKPOINT / run_cache.STATE_FILE).read_text())
    after_kill = {"exit signal": -killed.returncode if killed.returncode < 0 else None,
                  "finished marker": (folder / run_cache.FINISHED).is_file(),
                  "checkpoint at step": state["step"]}
    resumed = _python("-c", _TRAIN, str(path), str(workdir / "interrupted"), env={"OMP_NUM_THREADS": "1"})
    if resumed.returncode != 0:
        raise RuntimeError(f"the resumed run failed:\n{resumed.stderr[-2000:]}")
    a, b = (run_cache.run_dir(config, workdir / name) for name in ("uninterrupted", "interrupted"))
    ma, mb = (json.loads((f / run_cache.FINISHED).read_text()) for f in (a, b))
    pa, pb = (np.load(f / "val_probs.npy") for f in (a, b))
    return {**after_kill, "killed at step": kill_at, "steps": ma["steps"],
            "validation accuracy (uninterrupted)": ma["validation"]["accuracy"],
            "validation accuracy (resumed)": mb["validation"]["accuracy"],
            "max |Δ probability|": float(np.abs(pa - pb).max()),
            "loss curves equal": ma["train_loss"] == mb["train_loss"],
            "validation curves equal": ma["val_accuracy"] == mb["val_accuracy"],
            "curves": {"uninterrupted": ma["train_loss"], "resumed": mb["train_loss"]}}


def resume_table(result: dict) -> pd.DataFrame:
    """`interrupted_training`'s findings as (check, value) rows, the loss curves left out, yes/no for booleans."""
    def shown(value) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        return f"{value:.4f}" if isinstance(value, float) else "none" if value is None else str(value)

    return pd.DataFrame([{"check": key, "value": shown(value)} for key, value in result.items() if key != "curves"])


def resumed_as_expected(result: dict) -> bool:
    """Whether the killed run left no finished marker and resumed to the uninterrupted run exactly."""
    return (not result["finished marker"] and result["max |Δ probability|"] == 0 and result["loss curves equal"]
            and result["validation curves equal"])


def plot_resume(result: dict) -> plt.Axes:
    """The training loss of the uninterrupted and the killed-then-resumed run against the step, with the kill
    and the checkpoint it resumed from marked."""
    _, axes = plots.book_figure(3.4)
    ax = axes[0, 0]
    for name, style in (("uninterrupted", dict(lw=5, alpha=0.4, color=plots.PALETTE[0])),
                        ("resumed", dict(lw=1.2, marker="o", ms=4, color="black"))):
        curve = result["curves"][name]
        ax.plot([e["step"] for e in curve], [e["loss"] for e in curve], label=name, **style)
    ax.axvline(result["killed at step"], color=plots.PALETTE[3], ls="--", lw=1.2, label="killed (SIGKILL)")
    ax.axvline(result["checkpoint at step"], color=plots.GREY, ls=":", lw=1.5, label="checkpoint resumed from")
    ax.set(xlabel="optimizer step", ylabel="training loss (2-step window mean)")
    plots.legend_above(ax, ncols=2)
    return ax


@dataclass(frozen=True)
class BadInput:
    """One CLI call that must fail: what is wrong, the arguments, the text the error must contain, a config to
    write first (for `train`), and the project paths (relative to the root) the command would write to if it
    ran; the check watches those (and its own output folder), so that unrelated writes elsewhere at the same
    time cannot fail it."""

    what: str
    args: tuple[str, ...]
    expect: str
    config: dict | None = None
    writes: tuple[str, ...] = ()
    data: dict | None = None  # columns of an sst2/train.parquet the case writes under OUT/data (COMPNB_DATA_DIR)


def bad_inputs(out: str) -> list[BadInput]:
    """The bad inputs tried, writing (if anything) under the folder `out`."""
    csv = f"{out}/artifacts.csv"
    cfg = f"{out}/config.json"
    ch3 = ("results/smoke/03-modified-loss", "results/smoke/runs", "build/smoke", "book/chapters/03-modified-loss.ipynb")
    tiny = {"profile": "smoke", "max_train_examples": 8, "max_eval_examples": 8}
    full_runs, smoke_runs = ("results/full/runs",), ("results/smoke/runs",)
    return [
        BadInput("unknown dataset", ("artifacts", "--dataset", "imdb", "--out", csv), "invalid choice: 'imdb'"),
        BadInput("α outside (0, 1)", ("artifacts", "--dataset", "sst2", "--alpha", "1.5", "--out", csv), "1.5"),
        BadInput("output not a CSV", ("artifacts", "--dataset", "sst2", "--out", f"{out}/artifacts.txt"), ".csv"),
        BadInput("unknown chapter", ("chapter", "99"), "unknown chapter '99'", writes=("results/full", "build/full")),
        BadInput("unknown profile", ("chapter", "03", "--profile", "fast"), "invalid choice: 'fast'", writes=ch3),
        BadInput("λ < 0 in a chapter", ("chapter", "03", "--profile", "smoke", "-p", "lam", "-0.5"),
                 "lam must be a finite number >= 0, got -0.5", writes=ch3),
        BadInput("training dataset unknown", ("train", "--config", cfg), "dataset must be one of", {"dataset": "imdb"},
                 writes=full_runs),
        BadInput("λ < 0 in a loss", ("train", "--config", cfg), "lam must be a finite number >= 0",
                 {"loss": "competency", "loss_params": {"lam": -1.0}}, full_runs),
        BadInput("k < 1", ("train", "--config", cfg), "k must be an integer >= 1",
                 {"loss": "competency", "loss_params": {"k": 0}}, full_runs),
        BadInput("unknown F", ("train", "--config", cfg), "unknown form 'divide'",
                 {"loss": "competency", "loss_params": {"form": "divide"}}, full_runs),
        BadInput("model that does not exist", ("train", "--config", cfg), "/no/such/model",
                 {"model": "/no/such/model", "profile": "smoke"}, smoke_runs),
        BadInput("run folder that does not exist", ("evaluate", "--run", f"{out}/no-run", "--dataset", "sst2"),
                 "is not a finished training run"),
        BadInput("evaluation set unknown", ("evaluate", "--run", f"{out}/no-run", "--dataset", "mnli"),
                 "unknown dataset 'mnli'"),
        BadInput("chapter parameter of the wrong type", ("chapter", "03", "--profile", "smoke", "-p", "k", "abc"),
                 "parameter k of chapter 03-modified-loss must be an integer (default 5), got 'abc'", writes=ch3),
        BadInput("chapter parameter that does not exist", ("chapter", "03", "--profile", "smoke", "-p", "lamda", "1"),
                 "unknown parameter 'lamda' for chapter 03-modified-loss", writes=ch3),
        BadInput("learning rate <= 0", ("train", "--config", cfg), "lr must be a number", {"lr": 0}, full_runs),
        BadInput("batch size 0", ("train", "--config", cfg), "batch_size must be an integer >= 1",
                 {"batch_size": 0}, full_runs),
        BadInput("unknown loss", ("train", "--config", cfg), "loss must be a registered loss", {"loss": "focal"},
                 full_runs),
        BadInput("unknown pooling", ("train", "--config", cfg), "pooling must be null or one of",
                 {"pooling": "max"}, full_runs),
        BadInput("unknown weight dtype", ("train", "--config", cfg), "weight_dtype must be one of",
                 {"weight_dtype": "int8"}, full_runs),
        BadInput("unknown config key", ("train", "--config", cfg), "unknown config key(s) ['epoch']",
                 {"epoch": 3}, full_runs),
        BadInput("training data without a label column", ("train", "--config", cfg),
                 "train.parquet: no column 'label'; sst2 needs columns sentence, label", tiny, smoke_runs,
                 {"sentence": ["a fine film", "dull"]}),
        BadInput("training labels outside the task", ("train", "--config", cfg),
                 "column 'label' has values [7]; allowed for sst2: 0..1", tiny, smoke_runs,
                 {"sentence": ["a fine film", "dull"], "label": [1, 7]}),
        BadInput("an empty training text", ("train", "--config", cfg),
                 "column 'sentence' is empty in 1 labelled row(s)", tiny, smoke_runs,
                 {"sentence": ["a fine film", "  "], "label": [1, 0]}),
        BadInput("artifact mining on data without labels", ("artifacts", "--dataset", "sst2", "--out", csv),
                 "train.parquet: no column 'label'", data={"sentence": ["a fine film", "dull"]}),
    ]


def _files(paths: Sequence[Path]) -> dict[str, int]:
    """Every file at or under `paths` (absolute paths) with its modification time."""
    found = {}
    for path in map(Path, paths):
        files = [path] if path.is_file() else path.rglob("*")
        found |= {str(p): p.stat().st_mtime_ns for p in files if p.is_file()}
    return found


def _check_case(root: Path, index: int, out: Path, validation: str) -> dict:
    """Run bad input number `index` of `bad_inputs(out)` with `out` as its own output folder; its table row."""
    case = bad_inputs(str(out))[index]
    out.mkdir(parents=True)
    if case.config is not None:
        (out / "config.json").write_text(json.dumps(case.config))
    env = {"HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    if case.data is not None:
        folder = out / "data" / "sst2"
        folder.mkdir(parents=True)
        pd.DataFrame(case.data).to_parquet(folder / "train.parquet")
        shutil.copy2(validation, folder / "validation.parquet")
        env["COMPNB_DATA_DIR"] = str(out / "data")
    watched = [out, *(root / p for p in case.writes)]
    before = _files(watched)
    done = _python("-m", "compnb.cli", *case.args, env=env)
    shutil.rmtree(out / "data", ignore_errors=True)
    written = sorted(set(_files(watched).items()) - set(before.items())) != []
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    error = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
    tmp = str(out)
    return {"input": case.what, "command": "compnb " + " ".join(a.replace(tmp, "OUT") for a in case.args),
            "exit code": done.returncode, "message": error.replace(tmp, "OUT"),
            "names the problem": case.expect.replace(tmp, "OUT") in error.replace(tmp, "OUT"),
            "traceback": "Traceback" in done.stderr, "files written": written}


def check_cli(root: Path, jobs: int = 2) -> pd.DataFrame:
    """Run every `bad_inputs` case through `python -m compnb.cli` (hub off) in the project at `root`, `jobs` at
    a time, each with its own output folder; one row per case: exit code, the error line, whether it names the
    expected text, whether a traceback was printed, and whether any file appeared or changed under the case's
    output folder or the paths it could write (cases that write nothing cannot blame each other)."""
    with tempfile.TemporaryDirectory() as tmp:
        validation = data.locate("sst2", "validation")[0]  # the real rows beside each bad training file
        count = len(bad_inputs(tmp))
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            rows = list(pool.map(lambda i: _check_case(root, i, Path(tmp) / f"case-{i}", validation), range(count)))
    return pd.DataFrame(rows)


def cli_as_expected(checks: pd.DataFrame) -> pd.Series:
    """Per `check_cli` row: refused (non-zero exit) with a message naming the problem, no traceback, no file."""
    return ((checks["exit code"] != 0) & checks["names the problem"] & ~checks["traceback"]
            & ~checks["files written"])


def yes_no(table: pd.DataFrame) -> pd.DataFrame:
    """`table` for display: its boolean columns (those whose every value present is a bool) as "yes" / "no"."""
    def boolean(column: pd.Series) -> bool:
        present = column.dropna()
        return len(present) > 0 and present.map(lambda v: isinstance(v, (bool, np.bool_))).all()

    return table.assign(**{c: table[c].map({True: "yes", False: "no"}) for c in table.columns if boolean(table[c])})


def escaped(table: pd.DataFrame) -> dict:
    """`tables.styled` formats that show `table`'s text columns as written (HTML-escaped: an expected line's
    `<pid>` or `<step>` stays visible instead of reading as a tag)."""
    return {c: html.escape for c in table.columns if pd.api.types.is_string_dtype(table[c])}


def tally(resume: dict, checks: pd.DataFrame, fault_rows: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """One row per group of the appendix's cases: how many were tried and how many behaved as expected (a fault:
    its expected line and nothing lost or half-written; a split batch: within its tolerance)."""
    faults_ok = fault_rows["as expected"] & fault_rows["nothing lost or half-written"]
    groups = [("killed-and-resumed run", 1, int(resumed_as_expected(resume))),
              ("bad CLI inputs", len(checks), int(cli_as_expected(checks).sum())),
              ("faults during training", len(fault_rows), int(faults_ok.sum())),
              ("split batches", len(split), int(split["within tolerance"].sum()))]
    return pd.DataFrame([{"cases": name, "tried": tried, "as expected": ok} for name, tried, ok in groups])


def tally_sentence(counts: pd.DataFrame) -> str:
    """The appendix's count of bad inputs and faults tried and of those that behaved as expected."""
    tried, ok = int(counts["tried"].sum()), int(counts["as expected"].sum())
    parts = ", ".join(f"{r['tried']} {r['cases']}" for _, r in counts.iterrows())
    sentence = (f"**{tried} bad inputs and faults were tried in this build, and {ok} of {tried} behaved as "
                f"expected** ({parts})")
    if ok == tried:
        return sentence + "."
    off = counts[counts["as expected"] < counts["tried"]]
    return sentence + ": " + "; ".join(f"{r['tried'] - r['as expected']} of the {r['cases']} did not"
                                        for _, r in off.iterrows()) + " (see the tables above)."


PIPELINES = ("02-baseline-finetune", "03-modified-loss", "04-adversarial-eval", "05-ig-variance")
# the chapter pipelines moved into compnb.chapters (commit dc150b7); records made before keep the old module path
MOVED = {f"-m compnb.{name} ": f"-m compnb.chapters.{name} "
         for name in ("baseline", "competency", "adversarial_eval", "ig_variance_eval")}


def current_command(command: str) -> str:
    """A recorded command with the pipeline's module path of today (`MOVED`)."""
    for old, new in MOVED.items():
        command = command.replace(old, new)
    return command


def book_cost(profile: str) -> pd.DataFrame:
    """One row per recorded GPU invocation of the chapters' pipelines at `profile` (chapter 3's per dataset
    selection, from its `sweep.json`): command, runs trained of the chapter's, wall minutes, devices, commit, and
    the number of pieces it took (`pieced`)."""
    rows = []
    for chapter in PIPELINES:
        found = ([invocations.read(profile, chapter)] if chapter != competency.CHAPTER
                 else list(competency.sweep_summary(profile).values()))
        logged = pieces.read(profile, chapter)
        for rec in (r for r in found if r is not None):
            p = rec["params"]
            command = p.get("command") or (f"python -m compnb.chapters.competency --profile {p['profile']} --workers "
                                           f"{p['workers']} --datasets {' '.join(p['datasets'])}")
            row = {"chapter": chapter, "command": current_command(command), "runs trained": p["runs_trained"],
                   "runs": p["runs"], "wall time (min)": p["wall_time_s"] / 60, "device": ", ".join(p["devices"]),
                   "commit": str(rec["git"].get("commit"))[:7], "pieces": 1}
            rows.append(row | pieced(p, rec["created"], logged))
    return pd.DataFrame(rows)


def pieced(params: dict, created: str, logged: list[dict]) -> dict:
    """The cost columns of an invocation record (`params`, written at `created`) that ended a pipeline trained in
    pieces (`compnb.pieces`; `logged` is the chapter's log), or {} when it has no pieces.

    Its pieces, up to its creation: the piece it was written in (`params["piece"]`), those that finished one of
    its runs (`run_names`), and those of the same command that finished nothing (cut short within a long run);
    not those before a piece that completed the pipeline (an earlier campaign over the same run names), nor
    another dataset's pieces in between. Their wall times add up; a run counts as trained when one of them, or
    the record's own invocation if it ran outside them, finished it."""
    names, own = set(params.get("run_names") or ()), params.get("piece")
    end = datetime.fromisoformat(created)
    before = [q for q in logged if datetime.fromisoformat(q["started"]) <= end]
    is_own = [bool(own) and q.get("id") == own for q in before]
    worked = [names & set(q["runs_finished"]) or o for q, o in zip(before, is_own)]
    commands = {q["command"] for q, w in zip(before, worked) if w}
    chosen = [(q, o) for q, o, w in zip(before, is_own, worked)
              if w or (not q["runs_finished"] and q["command"] in commands)]
    completed = [i for i, (q, o) in enumerate(chosen) if not q["cut_short"] and q["exit_code"] == 0 and not o]
    mine = [q for q, _ in chosen]
    start = completed[-1] + 1 if completed else 0
    mine, inside = mine[start:], any(o for _, o in chosen[start:])
    if not mine:
        return {}
    trained = set().union(*(set(q["runs_finished"]) for q in mine)) & names
    wall = sum(q["wall_time_s"] for q in mine)
    devices = set().union(*(q["devices"] for q in mine))
    if not inside:
        trained |= set(params.get("trained") or ())
        wall += params["wall_time_s"]
        devices |= set(params["devices"])
    return {"command": current_command(mine[-1]["command"]), "runs trained": len(trained),
            "wall time (min)": wall / 60, "device": ", ".join(sorted(devices)), "pieces": len(mine) + (not inside)}


def cost_sentence(table: pd.DataFrame) -> str:
    """The whole full profile's GPU wall time, stated only when every chapter's recorded invocations trained
    all of their runs; otherwise what is missing."""
    missing = [c for c in PIPELINES if c not in set(table.get("chapter", []))]
    partial = table[table["runs trained"] < table["runs"]] if len(table) else table
    if missing or len(partial):
        gaps = [f"Chapter {int(c[:2])} has no recorded invocation." for c in missing]
        if len(partial):
            gaps.append("The last recorded invocations reused cached runs (" + ", ".join(
                f"chapter {int(r['chapter'][:2])} trained {r['runs trained']} of its {r['runs']}"
                for _, r in partial.iterrows()) + "; the others came from the run cache).")
        return " ".join(["The whole book is not timed from scratch at this profile.", *gaps])
    total = table["wall time (min)"].sum()
    return (f"**Every run trained from scratch, chapter by chapter, the full profile took {total:.1f} minutes of GPU "
            f"wall time** ({', '.join(sorted(set(table['device'])))}); chapter 1 and the rendering of every chapter "
            f"from the cached runs take a few minutes on a CPU.")
