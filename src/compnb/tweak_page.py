"""A tweak's executed notebook as one standalone HTML page that loads nothing from the network.

nbconvert's `lab` template inlines its styles but loads require.js and MathJax 2 from cdnjs. The page drops
require.js (the chapters keep no widgets or JavaScript outputs; `bookbuild.finish` drops the progress bars)
and loads MathJax 3 from a copy beside it, the bundle the book itself serves (`compnb.mathjax_offline`),
configured for the notebooks' `$...$` inline math. MyST roles and directives in the prose (citations,
includes) show as written: the page is for reading the tweak's outputs, the book renders the rest.
"""

from __future__ import annotations

import shutil
from html import escape
from pathlib import Path

import nbformat

from compnb import atomicio, tweaks
from compnb.mathjax_offline import BUNDLE, FONTS, mathjax_source

MATHJAX_BLOCK = ("<!-- Load mathjax -->", "<!-- End of mathjax configuration -->")
NO_REQUIRE = '<script src=""></script>'
MATHJAX3 = ("<script>window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], "
            "processEscapes: true}};</script>\n"
            f'<script src="mathjax/{BUNDLE}"></script>')


def render(folder: str | Path) -> Path:
    """Render the tweak in `folder` (its `<chapter>.ipynb`) to `<folder>/<chapter>.html`, with MathJax copied
    to `<folder>/mathjax/`; return the page. A FileNotFoundError when the folder holds no executed notebook."""
    from nbconvert import HTMLExporter

    folder = Path(folder)
    tweak = tweaks.load(folder)
    notebook = folder / f"{tweak.chapter}.ipynb"
    if not notebook.is_file():
        raise FileNotFoundError(f"{notebook} does not exist: only `compnb chapter` writes a tweak's notebook "
                                f"(run `compnb chapter {tweak.chapter} --profile {tweak.profile} -p NAME VALUE`)")
    exporter = HTMLExporter(template_name="lab", require_js_url="")
    html, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    start, end = (html.find(marker) for marker in MATHJAX_BLOCK)
    if start < 0 or end < 0 or NO_REQUIRE not in html:
        raise RuntimeError("nbconvert's lab template no longer has the MathJax block or require.js tag this page "
                           "replaces; update compnb.tweak_page for the installed nbconvert")
    html = html[:start] + MATHJAX3 + html[end + len(MATHJAX_BLOCK[1]):]
    html = html.replace(NO_REQUIRE, "", 1)
    title = escape(f"{tweak.chapter} (tweak: {tweak.describe()})")
    html = html.replace("<title>Notebook</title>", f"<title>{title}</title>", 1)
    source, target = mathjax_source(), folder / "mathjax"
    (target / FONTS).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / BUNDLE, target / BUNDLE)
    shutil.copytree(source / FONTS, target / FONTS, dirs_exist_ok=True)
    return atomicio.write_text(folder / f"{tweak.chapter}.html", html)
