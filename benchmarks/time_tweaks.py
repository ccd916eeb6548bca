"""Time each chapter's "Try it" smoke command (`compnb.chapters.try_it.command`) in a fresh process, one after
another, and write the wall seconds with the machine (cores, CPU model, load average at the start of each
command) and the commit into `compnb.chapters.try_it.TIMES_FILE`, which the boxes read.

    .venv/bin/python benchmarks/time_tweaks.py                  # every chapter, in order
    .venv/bin/python benchmarks/time_tweaks.py 03-modified-loss  # some; the others' times are kept
    .venv/bin/python benchmarks/time_tweaks.py --cached 03-modified-loss  # again, its runs now cached

The JSON is rewritten after every chapter, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone

from compnb import atomicio
from compnb.chapters import try_it
from compnb.paths import project_root
from compnb.provenance import git_state


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", default=list(try_it.TWEAKS), help="chapters to time (default: all)")
    parser.add_argument("--cached", action="store_true",
                        help="a rerun whose runs are already cached: kept apart (cached_rerun), beside the first")
    args = parser.parse_args(argv)
    root = project_root()
    record = try_it.cpu_times(root) or {"chapters": {}}
    record["machine"] = {"nproc": os.cpu_count(), "cpu": cpu_model(), "platform": platform.platform()}
    codes = {}  # chapter → the return code of its command, as timed in this run
    for chapter in args.chapters:
        command = try_it.command(chapter)
        load = os.getloadavg()
        start = time.perf_counter()
        done = subprocess.run(shlex.split(command), cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "YES": ""})
        wall = time.perf_counter() - start
        entry = {"command": command, "wall_s": round(wall, 1), "rc": done.returncode,
                 "load_average_at_start": [round(x, 2) for x in load], "commit": git_state(root)["commit"],
                 "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 **({"stderr_tail": done.stderr[-2000:]} if done.returncode else {})}
        if args.cached:
            record["chapters"].setdefault(chapter, {})["cached_rerun"] = entry
        else:
            record["chapters"][chapter] = entry
        atomicio.write_json(root / try_it.TIMES_FILE, record)
        codes[chapter] = done.returncode
        print(f"{chapter}: {wall:.0f} s (rc {done.returncode}, load {load[0]:.2f}) {command}", flush=True)
    sys.exit(any(codes.values()))


if __name__ == "__main__":
    main()
