"""The `compnb` command: `artifacts` mines lexical artifacts, `train` and `evaluate` fine-tune and score one run,
`chapter` executes a chapter with papermill (a tweak, i.e. other parameters than the defaults, into its own
folder), `html` renders the executed chapters into the book (or a tweak into a page), `plan` writes a
chapter's runs as configs for a scheduler and `execute` runs such a plan on a Dask cluster."""

from __future__ import annotations

import argparse
import ast
import os
import sys
from pathlib import Path

from compnb import atomicio, preemption
from compnb.data import DATASETS
from compnb.profiles import PROFILES


def _parameter(text: str) -> object:
    """A papermill-style parameter value: a Python literal where it parses as one, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _artifacts(args: argparse.Namespace) -> None:
    from compnb.artifacts import mine_dataset
    from compnb.provenance import run_record

    out = Path(args.out)
    if out.suffix != ".csv":
        raise ValueError(f"--out must name a .csv file, got {str(out)!r}")
    fields = tuple(f.strip() for f in args.fields.split(",")) if args.fields else None
    table, source = mine_dataset(args.dataset, args.split, fields, alpha=args.alpha, min_count=args.min_count,
                                 max_examples=args.max_examples, seed=args.seed)
    params = {"dataset": args.dataset, "split": args.split, "fields": table.attrs["fields"], "alpha": args.alpha,
              "min_count": args.min_count, "max_examples": args.max_examples}
    atomicio.write_csv(out, table)
    atomicio.write_json(out.with_name(out.name + ".run.json"), run_record(params, args.seed, [source]))
    artifacts = int(table["artifact"].sum())
    print(f"{len(table):,} (word, label) tests, {artifacts:,} artifacts → {out}")


def _chapter(args: argparse.Namespace) -> None:
    from papermill.exceptions import PapermillExecutionError

    from compnb import announce, parameters, tweaks
    from compnb.bookbuild import resolve_chapter, run_chapter
    from compnb.profiles import paper_backbones, require_inputs

    params = {name: _parameter(value) for name, value in args.parameter}
    chapter = resolve_chapter(args.chapter)
    parameters.check(chapter, params)  # before anything is prepared or run
    if args.profile == "paper":  # at the door: nothing is prepared, run or written while anything is missing
        if not args.prepare_only:
            require_inputs(chapter, args.profile)
        if paper_backbones(chapter) and "model" not in params:
            params["model"] = paper_backbones(chapter)[0]
    if args.yes:  # the chapter's kernel inherits it (`compnb.announce`)
        os.environ[announce.YES_ENV] = "1"
    try:
        notebook = run_chapter(chapter, args.profile, params, prepare_only=args.prepare_only)
    except PapermillExecutionError as err:  # the chapter's own error, not papermill's traceback of it
        raise ValueError(f"chapter {args.chapter} stopped in cell {err.exec_count} with {err.ename}: "
                         f"{err.evalue} (nothing was written)") from None
    print(notebook)
    tweak = None if args.prepare_only else tweaks.of(chapter, args.profile, params)
    if tweak is not None:
        folder = os.path.relpath(tweak.folder)
        print(f"a tweak ({tweak.describe()}): notebook and results in {folder}/; the published chapter is "
              f"untouched. Render it: compnb html --tweak {folder}")


def _train(args: argparse.Namespace) -> None:
    from accelerate import PartialState

    from compnb.training import TrainConfig, train

    folder = train(TrainConfig.from_json(args.config), force=args.force, runs_root=args.runs_root, verify=args.verify)
    if PartialState().is_main_process:
        print(folder)


def _evaluate(args: argparse.Namespace) -> None:
    import json

    from compnb.training import evaluate

    print(json.dumps(evaluate(args.run, args.dataset, args.split, verify=args.verify), indent=2, sort_keys=True))


def _plan(args: argparse.Namespace) -> None:
    from compnb.chapters import plans

    planned = plans.plan(args.chapter, args.profile, args.model)
    if not planned.todo:
        print(f"nothing to train: all {len(planned.done)} runs of {planned.chapter} at {args.profile} have finished")
        return
    manifest = plans.write(planned, args.out)
    print(f"{len(planned.todo)} runs to train ({len(planned.done)} finished) → {manifest.parent}; on Slurm:\n"
          f"  sbatch --array=0-{len(planned.todo) - 1} --gres=gpu:1 --wrap "
          f"'compnb train --config {manifest.parent}/$(printf %04d $SLURM_ARRAY_TASK_ID).json'")


def _execute(args: argparse.Namespace) -> None:
    from compnb.chapters import plans
    from compnb.executors import run_distributed

    resources = {"GPU": 1} if args.gpu_per_run else None
    for folder in run_distributed(plans.read(args.plan), args.scheduler, resources=resources):
        print(folder)


def _html(args: argparse.Namespace) -> None:
    if args.tweak is not None:
        from compnb.tweak_page import render

        print(render(args.tweak))
        return
    from compnb.bookbuild import build_html

    print(build_html(args.profile))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="compnb", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    mine = commands.add_parser("artifacts", help="mine lexical artifacts (Gardner et al.'s z-test) into a CSV")
    mine.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    mine.add_argument("--split", default="train")
    mine.add_argument("--fields", help="comma-separated text fields (default: sentence, or hypothesis for NLI)")
    mine.add_argument("--alpha", type=float, default=0.01)
    mine.add_argument("--min-count", type=int, default=1)
    mine.add_argument("--max-examples", type=int)
    mine.add_argument("--seed", type=int, default=0)
    mine.add_argument("--out", required=True, help="output CSV; its run record goes to OUT.run.json")
    mine.set_defaults(handler=_artifacts)

    chapter = commands.add_parser("chapter", help="execute one chapter with papermill")
    chapter.add_argument("chapter", help="chapter name or number, e.g. 01")
    chapter.add_argument("--profile", default="full", choices=PROFILES)
    chapter.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                         help="override a parameter of the chapter's parameter cell (repeatable)")
    chapter.add_argument("--prepare-only", action="store_true", help="inject parameters without executing")
    chapter.add_argument("--yes", action="store_true", help="train what the chapter announces even on a CPU at the "
                         "full or paper profile (the same as COMPNB_YES=1)")
    chapter.set_defaults(handler=_chapter)

    fit = commands.add_parser("train", help="fine-tune a classifier from a JSON TrainConfig (cached by run id); "
                              "prints the run folder. Runs under `accelerate launch` too")
    fit.add_argument("--config", required=True, help="JSON file with TrainConfig fields")
    fit.add_argument("--force", action="store_true", help="retrain even if the run has finished")
    fit.add_argument("--runs-root", help="folder of run folders (default: results/<profile>/runs)")
    fit.add_argument("--verify", action="store_true", help="hash every file of a finished run before reusing it, "
                     "the weights too (by default the weights' size and header are checked)")
    fit.set_defaults(handler=_train)

    score = commands.add_parser("evaluate", help="score a finished run on a dataset split; writes "
                                "eval-<dataset>-<split>.json in the run folder and prints it")
    score.add_argument("--run", required=True, help="run folder written by `compnb train`")
    score.add_argument("--dataset", required=True, help=f"one of {', '.join(sorted(DATASETS))}")
    score.add_argument("--split", default="validation")
    score.add_argument("--verify", action="store_true", help="hash the run's weights before loading them")
    score.set_defaults(handler=_evaluate)

    sweep = commands.add_parser("plan", help="write a chapter's unfinished training runs as JSON TrainConfigs "
                                "(OUT/0000.json, ...) and OUT/manifest.json, for `compnb train --config` under a "
                                "scheduler; chapter 3: stage 1, then, once it has finished, stage 2")
    sweep.add_argument("--chapter", required=True, help="02, 03 or 05 (or the chapter's name)")
    sweep.add_argument("--profile", default="full", choices=PROFILES)
    sweep.add_argument("--model", action="append", help="backbone (repeatable; default: the profile's)")
    sweep.add_argument("--out", required=True, help="a new or empty folder")
    sweep.set_defaults(handler=_plan)

    run = commands.add_parser("execute", help="train a plan's runs on a Dask cluster, one `compnb train` per "
                              "task (needs compnb[cluster]); prints the run folders")
    run.add_argument("--plan", required=True, help="folder written by `compnb plan`")
    run.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://node:8786 (default: a "
                     "local cluster, one worker per GPU)")
    run.add_argument("--gpu-per-run", action="store_true", help="reserve resource GPU=1 on a worker for each run "
                     "(workers started with --resources GPU=1)")
    run.set_defaults(handler=_execute)

    html = commands.add_parser("html", help="render executed chapters into book/_build/html, or one tweak's "
                               "notebook into a page in its folder")
    which = html.add_mutually_exclusive_group()
    which.add_argument("--profile", default="full", choices=PROFILES)
    which.add_argument("--tweak", metavar="FOLDER", help="a tweak folder printed by `compnb chapter`; writes "
                       "FOLDER/<chapter>.html")
    html.set_defaults(handler=_html)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.handler(args)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"compnb {args.command}: error: {err}", file=sys.stderr)
        return 2
    except preemption.Preempted as stop:
        print(f"compnb {args.command}: {stop}", file=sys.stderr)
        return preemption.EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())
