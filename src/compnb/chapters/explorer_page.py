"""The λ explorer: a page after chapter 3 where the reader chooses a dataset, a saliency method and a form of
the competency loss, moves λ along the chapter's grid with a slider, and sees that run's scores against the
baseline's (a chart, a reading, a table) and its saliency maps of six validation examples.

`compnb html` writes the page as `<book>/_generated/lambda-explorer.ipynb` (`write`) before Jupyter Book runs:
a notebook whose outputs are the explorer (its controls and chart as a numbered figure, then the reading,
numbers and maps), with `compnb.explorer`'s data for the profile being rendered embedded in it, so the page
needs no request, not even from `file://`. The browser side is
`book/_static/compnb-explorer.js` (loaded on every page; it acts only where the explorer is), the chart is
plotly.js from the `plotly` package, which `copy_plotly` puts into the built site's `_static/`.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import shutil
from pathlib import Path

import nbformat

from compnb import atomicio, explorer, plots
from compnb import formatting as fmt
from compnb.chapters.competency import CHAPTER, MAP_EXAMPLES
from compnb.paths import published_results_dir

PAGE = "lambda-explorer"  # `_generated/lambda-explorer` in book/_toc.yml, a section of chapter 3
FIGURE = "fig-lambda-explorer"
PLOTLY = "plotly.min.js"
DATASET_NAMES = {"sst2": "SST-2", "snli": "SNLI"}
FORMS = {"inverse": "inverse, CE / (λH)", "exp_subtract": "exponential-subtract, exp(CE − λH)",
         "subtract": "subtract, CE − λH"}


def read(profile: str) -> dict | None:
    """Chapter 3's `explorer.json` at `profile`, or None before chapter 3 has written it."""
    path = published_results_dir(profile, CHAPTER) / explorer.FILE
    return json.loads(path.read_text()) if path.is_file() else None


def plotly_source() -> Path:
    """plotly.js as the `plotly` package ships it (its `package_data/plotly.min.js`)."""
    try:
        path = Path(str(importlib.resources.files("plotly"))) / "package_data" / PLOTLY
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise RuntimeError("plotly.js for the λ explorer is missing: `pip install plotly` (a dependency of compnb; "
                           "`make install` installs it)")
    return path


def copy_plotly(html: Path) -> Path:
    """Copy plotly.js into the built site's `_static/` (`html` is the site's folder); return the copy."""
    target = Path(html) / "_static" / PLOTLY
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(plotly_source(), target)
    return target


def _listed(values: list) -> str:
    """'0.1, 0.5 and 1' (numbers as `:g`)."""
    shown = [f"{v:g}" for v in values]
    return fmt.listing(shown)


def _points(data: dict) -> list[dict]:
    """Every run the explorer shows: each configuration's points and each dataset's baseline."""
    return ([p for d in data["datasets"] for c in d["configs"] for p in c["points"]]
            + [b for d in data["datasets"] for b in d["baseline"].values()])


def _examples(data: dict) -> int:
    """How many examples the stored maps hold (`MAP_EXAMPLES`, the number every run keeps, when none are stored)."""
    return max((len(p["maps"]) for p in _points(data) if p["maps"] is not None), default=MAP_EXAMPLES)


def _maps_sentence(data: dict) -> str:
    """What the map area shows when runs did not store their maps ('' when every run did)."""
    stored = [p["maps"] is not None for p in _points(data)]
    if all(stored):
        return ""
    if not any(stored):
        return (" None of these runs stored its maps (they were trained before chapter 3 kept them, and their "
                "weights are not committed), so the map area says so.")
    return " Runs trained before chapter 3 kept the maps have none; the map area then says so."


def overview(data: dict) -> str:
    """The page's opening (MyST Markdown): its title, what λ is, what the reader sees, which points are single
    runs and which carry intervals, what to look for, and where the numbers come from."""
    lams = sorted({p["lam"] for d in data["datasets"] for c in d["configs"] for p in c["points"]})
    k, seeds = data["k"], data["confirmation_seeds"]
    sizes = sorted({d["adv_n"] for d in data["datasets"]})
    one_example = "–".join(dict.fromkeys(f"{100 / n:.1f}" for n in (sizes[-1], sizes[0])))
    confirmation = (f"where an interval is shown, that λ (the one chosen for its form) and the baseline were also "
                    f"trained at the confirmation seeds {_listed(seeds)}, and the interval is their Student-t "
                    f"{data['confidence']:.0%} interval, the seed being the unit and the selection seed left out"
                    if seeds else "this profile has no confirmation seeds, so no interval is shown")
    smoke = ("\n\n*This page is built from the smoke profile: tiny data and a reduced grid that test the book; "
             "its numbers are not results.*" if data["profile"] == "smoke" else "")
    return (
        "# The λ explorer\n\n"
        f"In chapter 3's competency loss, $L = F\\big(\\mathrm{{CE}},\\ \\lambda\\, H(S_{{\\text{{top-}}k}})\\big)$, "
        f"λ weighs the entropy of the saliency distribution's top {k} tokens against cross-entropy: the larger λ, "
        "the harder training pushes a model to spread its saliency rather than rest it on a few tokens; λ = 0 is "
        "plain cross-entropy, the baseline. Here each run of {doc}`chapter 3 </chapters/03-modified-loss>` can be "
        "looked at on its own: choose a dataset, a saliency method and a form of $F$, and move λ along the grid the "
        f"chapter trained ({_listed(lams)}). The chart ({{numref}}`{FIGURE}`) follows validation and AdvGLUE "
        f"accuracy and F1 and the top-{k} entropy across λ, the table gives the numbers at the chosen λ beside the "
        f"baseline's, and the maps show how the model trained at that λ spreads its saliency over "
        f"{_examples(data)} fixed validation examples.{_maps_sentence(data)}\n\n"
        f"Every point is a single run at the selection seed {data['selection_seed']}, the seed that chose λ; "
        f"{confirmation}. Look for whether the entropy climbs above the baseline's as λ grows (the loss's aim; "
        f"it is at most log {k} = {math.log(k):.3f} nats), what that costs in validation accuracy, whether "
        f"AdvGLUE accuracy or F1 leaves the baseline's band (one example moves AdvGLUE accuracy by {one_example} "
        "points), and whether the maps' shading spreads over more tokens than the baseline's. F1 is paper 1's: "
        "binary (the positive class's) for SST-2 and adv-SST2, macro for SNLI and adv-MNLI. Nothing is computed "
        f"here: the page embeds `{explorer.FILE}`, which chapter 3 writes from its runs into "
        f"`results/{data['profile']}/{CHAPTER}/`.{smoke}\n")


def caption(data: dict) -> str:
    """The figure's caption: what each panel, colour, marker, line and band of the chart is, and what follows."""
    return (  # blue, orange, green: plots.PALETTE[:3], the chart's colours
        "The λ explorer for the chosen dataset, saliency method and form: validation accuracy "
        "(blue) and F1 (orange) at the top, the same on AdvGLUE in the middle (adv-SST2 for SST-2 models, "
        f"adv-MNLI for SNLI models), and the mean top-{data['k']} entropy of S after training (green, nats) "
        "at the bottom, against λ on a log axis. Circles: the selection-seed run at each λ; diamonds with bars: "
        "the mean and 95% interval over the confirmation seeds, where that λ was confirmed; dotted lines: the "
        "baseline at the selection seed, shaded bands: its confirmation seeds' 95% interval; black rings and "
        "the vertical line: the λ on the slider. Below: a reading, the numbers at that λ beside the baseline's, "
        "and the saliency maps of the run at that λ and of the baseline.")


def _json_script(obj: dict) -> str:
    """`obj` as JSON safe inside a <script> element (no '<', '>' or '&' that could end it)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _slider(suffix: str) -> str:
    """A λ slider with its value and the grid's λ under it (compnb-explorer.js keeps every slider in step)."""
    return (f'<div class="compnb-explorer-slider"><label for="compnb-explorer-lam{suffix}">λ = '
            f'<output class="compnb-explorer-lam-value" for="compnb-explorer-lam{suffix}"></output></label>'
            f'<input type="range" class="compnb-explorer-lam" id="compnb-explorer-lam{suffix}" min="0" max="0" step="1" '
            'value="0"><div class="compnb-explorer-ticks" aria-hidden="true"></div></div>')


def chart(data: dict) -> str:
    """The figure's HTML: the controls (dataset, method, form; the λ slider) over the chart, with the data and
    the chart's colours embedded and plotly.js loaded from the site (compnb-explorer.js draws and updates)."""
    embedded = {"explorer": data, "names": {"datasets": DATASET_NAMES, "forms": FORMS},
                "colours": {"accuracy": plots.PALETTE[0], "f1": plots.PALETTE[1], "H_topk": plots.PALETTE[2],
                            "grey": plots.GREY}}
    return (
        '<div id="compnb-explorer" class="compnb-explorer mathjax_ignore">'
        '<div class="compnb-explorer-controls">'
        '<label>dataset <select id="compnb-explorer-dataset"></select></label>'
        '<label>saliency <select id="compnb-explorer-method"></select></label>'
        '<label>form of F <select id="compnb-explorer-form"></select></label></div>'
        f'{_slider("")}<div id="compnb-explorer-chart" class="compnb-explorer-chart"></div>'
        f'<script type="application/json" id="compnb-explorer-data">{_json_script(embedded)}</script>'
        f'<script src="../_static/{PLOTLY}"></script></div>')


def details() -> str:
    """The HTML below the figure, for the λ on the slider: a reading, the numbers beside the baseline's, and the
    saliency maps under a second slider that moves with the first, so λ can be changed while reading them."""
    return ('<div class="compnb-explorer compnb-explorer-details mathjax_ignore">'
            '<p id="compnb-explorer-reading" class="compnb-explorer-reading" aria-live="polite"></p>'
            '<div class="compnb-explorer-table"><table id="compnb-explorer-numbers"></table></div>'
            '<p id="compnb-explorer-maps-title" class="compnb-explorer-maps-title"></p>'
            f'{_slider("-maps")}<div id="compnb-explorer-maps" class="compnb-explorer-maps"></div></div>')


def notebook(data: dict | None, profile: str) -> nbformat.NotebookNode:
    """The page as a notebook: the overview, the controls and chart as figure `FIGURE` with its caption, then the
    reading, numbers and maps; a note instead before chapter 3 has run at `profile`."""
    nb = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    if data is None:
        nb.cells = [nbformat.v4.new_markdown_cell(
            "# The λ explorer\n\n*The λ explorer appears once chapter 3 has run at this profile "
            f"(it reads `results/{profile}/{CHAPTER}/{explorer.FILE}`).*\n")]
        return nb
    source = "# written by compnb.chapters.explorer_page from explorer.json when the book is rendered; nothing runs here"
    figure = nbformat.v4.new_code_cell(source, metadata={
        "tags": ["remove-input"], "mystnb": {"figure": {"caption": caption(data), "name": FIGURE}}})
    figure.outputs = [nbformat.v4.new_output("display_data", {
        "text/html": chart(data), "text/plain": "The λ explorer's chart (interactive: open the page in a browser)"})]
    below = nbformat.v4.new_code_cell(source, metadata={"tags": ["remove-input"]})
    below.outputs = [nbformat.v4.new_output("display_data", {
        "text/html": details(), "text/plain": "The λ explorer's numbers and maps (open the page in a browser)"})]
    nb.cells = [nbformat.v4.new_markdown_cell(overview(data)), figure, below]
    return nb


def write(book: Path, profile: str) -> Path:
    """Write `<book>/_generated/lambda-explorer.ipynb` for `profile`; return it."""
    return atomicio.write_text(Path(book) / "_generated" / f"{PAGE}.ipynb",
                               nbformat.writes(notebook(read(profile), profile)))
