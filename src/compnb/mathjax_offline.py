"""Sphinx extension: the book serves MathJax 3 from its own `_static/` instead of a CDN, so equations
typeset in a browser without network access (a reader's laptop offline, this sandbox, an archived copy).

The files come from the `sphinx-mathjax-offline` PyPI package (MathJax 3's es5 bundle). Only the bundle
Sphinx loads by default, `tex-mml-chtml.js`, and its CHTML web fonts are copied (about 1.6 MB), not the
package's 24 MB; the typesetting is the same as with Sphinx's CDN default.
"""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path

from sphinx.application import Sphinx

BUNDLE = "tex-mml-chtml.js"
FONTS = Path("output") / "chtml" / "fonts" / "woff-v2"


def mathjax_source() -> Path:
    """The MathJax folder that `sphinx-mathjax-offline` ships (contains `BUNDLE` and `FONTS`)."""
    try:
        folder = Path(str(importlib.resources.files("sphinx-mathjax-offline"))) / "static" / "mathjax"
    except ModuleNotFoundError:
        folder = None
    if folder is None or not (folder / BUNDLE).is_file():
        raise RuntimeError("MathJax for the offline book is missing: `pip install sphinx-mathjax-offline` "
                           "(part of compnb's dev extras; `make install` installs it)")
    return folder


def _point_sphinx_at_local_copy(app: Sphinx, config) -> None:
    mathjax_source()  # fail before the build, not after it
    config.mathjax_path = f"mathjax/{BUNDLE}"  # relative: Sphinx serves it from _static/


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    (target / FONTS).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / BUNDLE, target / BUNDLE)
    shutil.copytree(source / FONTS, target / FONTS, dirs_exist_ok=True)


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _point_sphinx_at_local_copy)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
