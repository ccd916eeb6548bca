"""Execute chapters with papermill and render the book with Jupyter Book (1.x).

Chapter sources are jupytext MyST notebooks in `notebooks/`. A chapter run converts its source to
`.ipynb`, lets papermill inject the parameters (`profile` and any overrides) and execute it, and moves
the executed notebook into place only when every cell succeeded. Full-profile chapters land in
`book/chapters/` (committed: the published book); smoke-profile chapters land in
`build/smoke/book/chapters/`, so a smoke run never overwrites full-profile outputs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import papermill

from compnb.paths import project_root
from compnb.profiles import check_profile

BOOK_SOURCES = ("intro.md", "api.md", "related-work.md", "references.bib", "_toc.yml")


def chapters() -> list[str]:
    """Chapter names, in book order: the stems of `notebooks/*.md`."""
    return sorted(p.stem for p in (project_root() / "notebooks").glob("[0-9][0-9]-*.md"))


def resolve_chapter(name: str) -> str:
    """Full chapter name for `name` or its number prefix ('01' → '01-artifact-mining')."""
    matches = [c for c in chapters() if c == name or c.split("-", 1)[0] == name]
    if len(matches) != 1:
        raise ValueError(f"unknown chapter {name!r}; allowed: {', '.join(chapters())} (or their numbers)")
    return matches[0]


def book_dir(profile: str) -> Path:
    """The book source folder a profile renders: `book/` (full) or the staged `build/smoke/book/`."""
    check_profile(profile)
    root = project_root()
    return root / "book" if profile == "full" else root / "build" / profile / "book"


def executed_path(chapter: str, profile: str) -> Path:
    """Where the executed notebook of `chapter` at `profile` lives."""
    return book_dir(profile) / "chapters" / f"{resolve_chapter(chapter)}.ipynb"


def run_chapter(chapter: str, profile: str, parameters: dict | None = None, *,
                prepare_only: bool = False) -> Path:
    """Execute one chapter (or, with `prepare_only`, only inject its parameters) and return the notebook.

    The output is written to a temporary file and moved into place only on success.
    """
    chapter = resolve_chapter(chapter)
    check_profile(profile)
    root = project_root()
    work = root / "build" / profile / ("prepared" if prepare_only else "work")
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"{chapter}.source.ipynb"
    jupytext.write(jupytext.read(root / "notebooks" / f"{chapter}.md"), source)
    target = work / f"{chapter}.ipynb" if prepare_only else executed_path(chapter, profile)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.partial.ipynb")
    params = {"profile": profile, **(parameters or {})}
    try:
        papermill.execute_notebook(str(source), str(partial), parameters=params, kernel_name="python3",
                                   cwd=str(root / "notebooks"), prepare_only=prepare_only, progress_bar=False)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
        source.unlink(missing_ok=True)
    return target


def _stage_smoke_book(profile: str) -> Path:
    """Copy the book's own sources next to the smoke chapters (whose executed notebooks are already there)."""
    staged = book_dir(profile)
    staged.mkdir(parents=True, exist_ok=True)
    for name in BOOK_SOURCES:
        shutil.copy2(project_root() / "book" / name, staged / name)
    return staged


def build_html(profile: str = "full") -> Path:
    """Render the executed chapters of `profile` into `book/_build/html` with Jupyter Book; return index.html."""
    check_profile(profile)
    root = project_root()
    source = root / "book" if profile == "full" else _stage_smoke_book(profile)
    missing = [c for c in chapters() if not executed_path(c, profile).is_file()]
    if missing:
        raise FileNotFoundError(f"chapters {missing} have no executed notebook for profile {profile!r}; "
                                f"run `make book PROFILE={profile}` first")
    html = root / "book" / "_build" / "html"
    shutil.rmtree(html, ignore_errors=True)
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(source), "--config", str(root / "_config.yml"),
           "--toc", str(source / "_toc.yml"), "--path-output", str(root / "book"), "--warningiserror",
           "--keep-going"]
    subprocess.run(cmd, check=True, cwd=root)
    return html / "index.html"
