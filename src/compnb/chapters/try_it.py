"""The "Try it" box at the opening of each chapter: a tweak to run on a CPU at the smoke profile with its
measured time, the full profile's command for a GPU with the GPU time its published runs took, and the
chapter's parameters with their defaults and meanings.

Times are measured, never guessed: the CPU time of each smoke command comes from `TIMES_FILE`, written by
`benchmarks/time_tweaks.py` (each command in a fresh process), and the GPU time from the invocation records
the chapters' training pipelines commit under `results/full/`. `glance.write_all` writes one box per chapter
into `<book>/_generated/try-it-<chapter>.md`.
"""

from __future__ import annotations

import io
import json
import tokenize
from pathlib import Path

import jupytext

from compnb import parameters
from compnb.paths import project_root, results_dir

TIMES_FILE = Path("benchmarks") / "try-it-times.json"  # relative to the project root; committed
# the tweak each chapter's box suggests: (parameter, value), or None for a chapter with only `profile`
TWEAKS: dict[str, tuple[str, object] | None] = {
    "01-artifact-mining": ("min_count", 5), "02-baseline-finetune": ("k", 3), "03-modified-loss": ("lam", 0.2),
    "04-adversarial-eval": ("long_words", 15), "05-ig-variance": ("lam", 0.3), "06-claims-ledger": None,
    "07-reliability": ("kill_at", 5), "08-paper-scale": None, "09-lab-notes": None}
# chapters whose full profile trains on a GPU, and where the engine comparison kept a whole retrain
TRAINS = {"02-baseline-finetune": "engines-chapter2", "03-modified-loss": None,
          "04-adversarial-eval": None, "05-ig-variance": "engines-chapter5"}


def command(chapter: str, profile: str = "smoke") -> str:
    """The make command of `chapter`'s tweak at `profile`: 'make chapter CH=03 PROFILE=smoke PARAMS="-p lam 0.2"'."""
    tweak = TWEAKS.get(chapter)
    params = f' PARAMS="-p {tweak[0]} {tweak[1]}"' if tweak else ""
    return f"make chapter CH={chapter[:2]} PROFILE={profile}{params}"


def duration(seconds: float) -> str:
    """'45 s', '3 min 59 s' or '1 h 2 min'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def parameter_docs(chapter: str) -> list[tuple[str, object, str]]:
    """(name, default, the comment on its line) for each assignment of `chapter`'s parameters cell, in order;
    the comment is '' where the line has none."""
    notebook = jupytext.read(project_root() / "notebooks" / f"{chapter}.md")
    cell = next((c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        return []
    comments = {t.start[0]: t.string.lstrip("#").strip()
                for t in tokenize.generate_tokens(io.StringIO(cell.source).readline) if t.type == tokenize.COMMENT}
    lines = {line.split("=")[0].strip(): number for number, line in enumerate(cell.source.splitlines(), 1)
             if "=" in line and not line.lstrip().startswith("#")}
    return [(name, value, comments.get(lines.get(name, 0), "")) for name, value in parameters.defaults(chapter).items()]


def cpu_times(root: Path | None = None) -> dict:
    """The measured smoke times (`TIMES_FILE`), or {} before `benchmarks/time_tweaks.py` has run."""
    path = (root or project_root()) / TIMES_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _chapter_runs(chapter: str) -> list[Path]:
    """The run folders a chapter's committed full-profile record lists."""
    record = results_dir("full", chapter) / "run.json"
    if not record.is_file():
        return []
    names = json.loads(record.read_text())["params"].get("runs", [])
    return [project_root() / "results" / "full" / "runs" / name for name in names]


def _invocations(chapter: str) -> list[dict]:
    """The committed records of a chapter's training invocations (params: runs, runs_trained, wall_time_s,
    devices, command), its own first."""
    from compnb import invocations
    from compnb.chapters import competency

    own = invocations.read("full", chapter)
    found = [own["params"]] if own else []
    if chapter == competency.CHAPTER:
        found += [r["params"] for r in competency.sweep_summary("full").values()]
    engines = TRAINS.get(chapter)
    if engines:
        found += [json.loads(p.read_text())["params"] for p in
                  sorted((project_root() / "results" / "full" / "paper-scale" / engines).glob("invocation-*.json"))]
    return found


def gpu_time(chapter: str) -> dict | None:
    """What the full profile's training of `chapter` took on a GPU, from its committed records: the first
    invocation that trained every run (`whole`: True), else the latest partial one with the sum of every
    run's own training wall time (`runs_sum_s`); None for a chapter that trains nothing."""
    if chapter not in TRAINS:
        return None
    found = _invocations(chapter)
    whole = next((r for r in found if r.get("runs_trained") == r.get("runs") and r.get("devices")), None)
    if whole:
        return {"whole": True, "wall_s": whole["wall_time_s"], "devices": whole["devices"], "runs": whole["runs"]}
    latest = found[0] if found else {}
    metrics = [json.loads((f / "metrics.json").read_text()) for f in _chapter_runs(chapter)
               if (f / "metrics.json").is_file()]
    return {"whole": False, "wall_s": latest.get("wall_time_s"), "devices": latest.get("devices", []),
            "runs": latest.get("runs", len(metrics)), "runs_trained": latest.get("runs_trained"),
            "runs_sum_s": sum(m["wall_time_s"] for m in metrics),
            "run_devices": sorted({m.get("device") or "" for m in metrics} - {""})}


def _gpu_line(chapter: str) -> str:
    """The measured GPU time of a chapter that trains (`gpu_time`), as a clause."""
    g = gpu_time(chapter)
    if g["whole"]:
        where = f"one {g['devices'][0]}" if len(g["devices"]) == 1 else " and ".join(g["devices"])
        return f"its {g['runs']} training runs took {duration(g['wall_s'])} on {where}"
    return (f"its {g['runs']} training runs took {duration(g['runs_sum_s'])} in all on "
            f"{' and '.join(g['run_devices'])} (each run's own time, added up; several ran at once)")


def _short(value: object) -> str:
    """A default as the box shows it: a long list by its first items and its length."""
    if isinstance(value, (list, tuple)) and len(value) > 3:
        return f"[{', '.join(map(repr, value[:3]))}, …] ({len(value)} items)"
    return repr(value)


def box(chapter: str, times: dict | None = None) -> str:
    """The chapter's "Try it" box as a MyST admonition of class tip (colon fence): the smoke command and its
    measured CPU time, the full profile's command and its GPU time, each in a code block (the book's prose
    code blocks wrap at phone width), where the output goes, and the parameters as a definition list."""
    times = cpu_times() if times is None else times
    smoke = times.get("chapters", {}).get(chapter)
    machine = times.get("machine", {})
    if smoke and smoke.get("rc") == 0:
        cached = smoke.get("cached_rerun", {})
        cpu = (f"{duration(smoke['wall_s'])} on {machine.get('nproc', '?')} shared CPU cores "
               f"({machine.get('cpu', 'CPU')}; load {smoke['load_average_at_start'][0]:.1f} at the start)"
               + (f", {duration(cached['wall_s'])} once its runs are cached" if cached.get("rc") == 0 else ""))
    elif smoke:
        cpu = "not measured: the last timing run stopped with an error (`benchmarks/time_tweaks.py`)"
    else:
        cpu = "not measured yet (`benchmarks/time_tweaks.py` measures it)"
    tweak = TWEAKS.get(chapter)
    what = f"with `{tweak[0]}` = `{tweak[1]}`" if tweak else "as published"
    gpu = (f"**On a GPU**, the full profile: {_gpu_line(chapter)}." if chapter in TRAINS
           else "**The full profile** trains nothing and needs no GPU:")
    where = ("Both write to their own folder under `build/`, never into the published book."
             if tweak else "At the smoke profile it writes under `build/smoke/`; at the full profile, with its "
             "defaults, it re-executes the published chapter.")
    lines = [":::{admonition} Try it", ":class: tip", "",
             f"**On a CPU**, the smoke profile (tiny data) {what}: {cpu}.", "",
             "```bash", command(chapter), "```", "", gpu, "", "```bash", command(chapter, "full"), "```", "",
             where, ""]
    docs = [d for d in parameter_docs(chapter) if d[0] != "profile"]
    if docs:
        lines += ["**Parameters** (`-p NAME VALUE`, repeatable):", ""]
        for name, value, comment in docs:
            lines += [f"`{name}` = `{_short(value)}`", f": {comment or 'described in the chapter'}", ""]
    else:
        lines += ["**Parameters**: only the profile.", ""]
    return "\n".join(lines + [":::", ""])


def write_all(book: Path, chapters: list[str]) -> None:
    """`<book>/_generated/try-it-<chapter>.md` for each of `chapters`."""
    out = book / "_generated"
    out.mkdir(parents=True, exist_ok=True)
    times = cpu_times()
    for chapter in chapters:
        (out / f"try-it-{chapter}.md").write_text(box(chapter, times))
