"""Execute chapters with papermill and render the book with Jupyter Book (1.x).

Chapter sources are jupytext MyST notebooks in `notebooks/`. A chapter run converts its source to
`.ipynb`, lets papermill inject the parameters (`profile` and any overrides) and execute it, and moves
the executed notebook into place only when every cell succeeded. Full-profile chapters land in
`book/chapters/` (committed: the published book); smoke-profile chapters land in
`build/smoke/book/chapters/`, so a smoke run never overwrites full-profile outputs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import papermill
import yaml

from compnb import tweaks
from compnb.chapters import explorer_page, glance
from compnb.paths import project_root
from compnb.profiles import check_profile

# what the book holds besides its chapters: files and folders (the API reference, a page per module; the
# stylesheet; the templates)
BOOK_SOURCES = ("intro.md", "related-work.md", "references.bib", "_toc.yml", "api", "_static", "_templates")


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
    """Execute one chapter (or, with `prepare_only`, only inject its parameters) and return the notebook:
    `executed_path` with the chapter's default parameters, the tweak's notebook (`compnb.tweaks`) with any
    other value, so that only a run with the defaults publishes.

    The output is written to a temporary file and moved into place only on success.
    """
    chapter = resolve_chapter(chapter)
    check_profile(profile)
    root = project_root()
    work = root / "build" / profile / ("prepared" if prepare_only else "work")
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"{chapter}.source.ipynb"
    jupytext.write(jupytext.read(root / "notebooks" / f"{chapter}.md"), source)
    tweak = tweaks.of(chapter, profile, parameters or {})
    if prepare_only:
        target = work / f"{chapter}.ipynb"
    else:
        target = tweak.notebook if tweak is not None else executed_path(chapter, profile)
    # A tweak's folder made by this run goes again if the run fails: a refused tweak leaves nothing behind.
    fresh = tweak.folder if tweak is not None and not prepare_only and not tweak.folder.exists() else None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.partial.ipynb")
    params = {"profile": profile, **(parameters or {})}
    try:
        papermill.execute_notebook(str(source), str(partial), parameters=params, kernel_name="python3",
                                   cwd=str(root / "notebooks"), prepare_only=prepare_only, progress_bar=False)
        if not prepare_only:
            nb = nbformat.read(partial, as_version=4)
            finish(nb)
            nbformat.write(nb, partial)
        os.replace(partial, target)
    except BaseException:
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
        raise
    finally:
        partial.unlink(missing_ok=True)
        source.unlink(missing_ok=True)
    return target


PROGRESS_MIME = "application/vnd.jupyter.widget-view+json"
ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<value>.*?)(?P<comment>\s+#.*)?$")


def merge_parameters(nb: nbformat.NotebookNode) -> None:
    """One parameters cell showing the values that ran: papermill's injected assignments replace the defaults
    of the same names in the `parameters` cell (their comments stay), new names are appended, and the
    injected cell is dropped. Both cells hold one-line assignments."""
    cells = nb.cells
    injected = next((c for c in cells if "injected-parameters" in c.metadata.get("tags", [])), None)
    defaults = next((c for c in cells if "parameters" in c.metadata.get("tags", [])), None)
    if injected is None or defaults is None:
        return
    values = {m["name"]: m["value"] for m in map(ASSIGNMENT.match, injected.source.splitlines()) if m}
    lines = []
    for line in defaults.source.splitlines():
        m = ASSIGNMENT.match(line)
        if m and m["name"] in values:
            line = f"{m['name']} = {values.pop(m['name'])}{m['comment'] or ''}"
        lines.append(line)
    defaults.source = "\n".join(lines + [f"{name} = {value}" for name, value in values.items()])
    cells.remove(injected)


def finish(nb: nbformat.NotebookNode) -> None:
    """Make an executed chapter ready for the book: one parameters cell (`merge_parameters`), progress-bar
    widgets dropped (their HTML would load scripts from CDNs; the bars are not content), and every figure's
    caption as its image's alt text."""
    merge_parameters(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in cell.outputs if PROGRESS_MIME not in o.get("data", {})]
        caption = cell.metadata.get("mystnb", {}).get("figure", {}).get("caption")
        if caption:
            cell.metadata["mystnb"].setdefault("image", {})["alt"] = " ".join(caption.split())
    nb.metadata.pop("widgets", None)


REPOSITORY_ENV = "COMPNB_REPOSITORY_URL"


def effective_config(source: Path, target: Path) -> Path:
    """`_config.yml` with the repository and launch buttons from one setting: the repository URL
    (`$COMPNB_REPOSITORY_URL`, else `repository.url`). Set, the repository button and the Binder and Colab
    launch buttons point at it; unset (the default: this book has no public repository yet), all of them are
    off, so no button leads nowhere. Written to `target`; returns it."""
    config = yaml.safe_load(source.read_text())
    url = os.environ.get(REPOSITORY_ENV) or (config.get("repository") or {}).get("url") or ""
    html = config.setdefault("html", {})
    if url:
        config["repository"] = {"path_to_book": "book", "branch": "main", **(config.get("repository") or {}), "url": url}
        html["use_repository_button"] = True
        config["launch_buttons"] = {"notebook_interface": "classic", "binderhub_url": "https://mybinder.org",
                                    "colab_url": "https://colab.research.google.com"}
    else:
        config.pop("repository", None)
        html["use_repository_button"] = False
        config["launch_buttons"] = {"binderhub_url": "", "colab_url": "", "jupyterhub_url": "", "thebe": False}
    html["use_issues_button"] = False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return target


def _stage_smoke_book(profile: str) -> Path:
    """Copy the book's own sources (`BOOK_SOURCES`) next to the smoke chapters (whose executed notebooks are
    already there); a staged folder is replaced whole, so a page removed from the book leaves it too."""
    staged = book_dir(profile)
    staged.mkdir(parents=True, exist_ok=True)
    for name in BOOK_SOURCES:
        source, target = project_root() / "book" / name, staged / name
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    return staged


def build_html(profile: str = "full") -> Path:
    """Render the executed chapters of `profile` into `book/_build/html` with Jupyter Book, with the pages
    generated from its results (the glance blocks, the λ explorer); return index.html."""
    check_profile(profile)
    root = project_root()
    source = root / "book" if profile == "full" else _stage_smoke_book(profile)
    missing = [c for c in chapters() if not executed_path(c, profile).is_file()]
    if missing:
        raise FileNotFoundError(f"chapters {missing} have no executed notebook for profile {profile!r}; "
                                f"run `make book PROFILE={profile}` first")
    glance.write_all(source, profile, chapters())
    explorer_page.write(source, profile)
    html = root / "book" / "_build" / "html"
    shutil.rmtree(html, ignore_errors=True)
    config = effective_config(root / "_config.yml", root / "build" / "_config.effective.yml")
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(source), "--config", str(config),
           "--toc", str(source / "_toc.yml"), "--path-output", str(root / "book"), "--warningiserror",
           "--keep-going"]
    subprocess.run(cmd, check=True, cwd=root)
    explorer_page.copy_plotly(html)
    return html / "index.html"
