"""Where the project, its data and its results live."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The repository root: the nearest folder above the cwd (or this file) holding `_config.yml` and `src/compnb`."""
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / "_config.yml").is_file() and (folder / "src" / "compnb").is_dir():
                return folder
    return Path.cwd().resolve()


def data_search_paths() -> list[Path]:
    """Local data folders in resolution order: `$COMPNB_DATA_DIR`, the project's `data/`, then `../shared/data`."""
    root = project_root()
    paths = []
    if os.environ.get("COMPNB_DATA_DIR"):
        paths.append(Path(os.environ["COMPNB_DATA_DIR"]).expanduser().resolve())
    paths += [root / "data", (root.parent / "shared" / "data").resolve()]
    return paths


def results_dir(profile: str, chapter: str) -> Path:
    """Folder for one chapter's results at one profile (created): `published_results_dir`, or, while that
    chapter runs as a tweak (`compnb.tweaks`), the tweak's `results/` folder; other chapters' results stay
    the published ones."""
    from compnb import tweaks

    tweak = tweaks.active(profile, chapter)
    folder = tweak.results if tweak is not None else published_results_dir(profile, chapter)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def published_results_dir(profile: str, chapter: str) -> Path:
    """`results/<profile>/<chapter>/`, where a chapter run with its default parameters keeps its results
    (not created)."""
    return project_root() / "results" / profile / chapter
