"""The book's figure style and its figures (seaborn/matplotlib, labelled axes, no titles but the names of
small multiples' panels: captions say the rest)."""

from __future__ import annotations

import itertools
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from compnb.artifacts import rejection_boundary

MIN_FONT_PT = 9  # no text of a figure is smaller (points)
FONT_PT = 10  # axis labels, titles, annotations (points)
FIG_WIDTH_IN = 7.0  # every figure is at most this wide (inches); at most 1.1 × as tall
MAX_ASPECT = 1.1  # height / width
DISPLAY_DPI = 100  # CSS pixels per inch of a notebook figure (its PNG holds twice as many: retina)
SAVE_DPI = 220  # dots per inch of a figure saved to a file
# Okabe–Ito, colorblind-safe; yellow last (weak on white)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
GREY = "#8C8C8C"  # references and context (expected counts, non-artifacts, the plain step)


def use_book_style() -> None:
    """One look for every chapter: the colorblind-safe `PALETTE`, text of at least `MIN_FONT_PT` points,
    `FIG_WIDTH_IN`-wide figures with constrained layout (nothing clipped) on white, notebook PNGs at twice
    `DISPLAY_DPI` (retina) and saved files at `SAVE_DPI`."""
    sns.set_theme(context="notebook", style="whitegrid", palette=list(PALETTE))
    plt.rcParams.update({
        "font.size": FONT_PT, "axes.labelsize": FONT_PT, "axes.titlesize": FONT_PT, "figure.titlesize": FONT_PT,
        "figure.labelsize": FONT_PT, "xtick.labelsize": MIN_FONT_PT, "ytick.labelsize": MIN_FONT_PT,
        "legend.fontsize": MIN_FONT_PT, "legend.title_fontsize": MIN_FONT_PT, "legend.frameon": False,
        "figure.figsize": (FIG_WIDTH_IN, 0.6 * FIG_WIDTH_IN), "figure.dpi": DISPLAY_DPI, "savefig.dpi": SAVE_DPI,
        "figure.constrained_layout.use": True, "savefig.bbox": "tight",
        "figure.facecolor": "white", "savefig.facecolor": "white", "axes.facecolor": "white",
        "errorbar.capsize": 3,
    })
    try:  # only inside IPython: outside it, set_matplotlib_formats would start a shell
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")


def book_figure(height: float, nrows: int = 1, ncols: int = 1, **kwargs) -> tuple[plt.Figure, np.ndarray]:
    """`plt.subplots` at the book's width, `height` inches tall (at most `MAX_ASPECT` × the width), constrained
    layout; axes always as a (nrows, ncols) array."""
    height = min(height, MAX_ASPECT * FIG_WIDTH_IN)
    return plt.subplots(nrows, ncols, figsize=(FIG_WIDTH_IN, height), layout="constrained", squeeze=False, **kwargs)


def fit_width(fig: plt.Figure) -> None:
    """Narrow a caller's figure to at most `FIG_WIDTH_IN` and `MAX_ASPECT` × that width tall."""
    width, height = fig.get_size_inches()
    width = min(width, FIG_WIDTH_IN)
    fig.set_size_inches(width, min(height, MAX_ASPECT * width))


def legend_above(where: plt.Axes | plt.Figure, handles: list | None = None, ncols: int | None = None) -> None:
    """A frameless legend above the axes (or above all panels of a figure, which needs constrained layout),
    off the data, its entries in reading order (row by row) under their artists' labels; `ncols` defaults to
    one row. Without handles, those of the (first) axes."""
    if handles is None:
        handles = (where if isinstance(where, plt.Axes) else where.axes[0]).get_legend_handles_labels()[0]
    ncols = ncols or len(handles)
    nrows = -(-len(handles) // ncols)
    order = [r * ncols + c for c in range(ncols) for r in range(nrows) if r * ncols + c < len(handles)]
    handles = [handles[i] for i in order]
    labels = [h.get_label() for h in handles]
    if isinstance(where, plt.Axes):
        where.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.02), ncols=ncols, frameon=False,
                     borderaxespad=0.0)
    else:
        where.legend(handles, labels, loc="outside upper center", ncols=ncols, frameon=False)


def wrap(text: str, width: int = 14) -> str:
    """`text` broken into lines of at most `width` characters at spaces and after underscores (a longer word
    stays whole)."""
    return "\n".join(line.replace("_ ", "_") for line in textwrap.wrap(text.replace("_", "_ "), width,
                                                                       break_long_words=False))


def artifact_scatter(table: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """n (examples containing the word, log x) against p̂(y|word): artifacts as large crosses in their label's
    colour, the other (word, label) pairs as small grey dots, with the Bonferroni rejection boundary as a
    curve and 1/c as a dashed line (the first paper's Figures 1–2). `table`: `artifacts.mine`'s."""
    ax = ax or plt.gca()
    fit_width(ax.figure)
    attrs = table.attrs
    plain, found = table[~table["artifact"]], table[table["artifact"]]
    ax.scatter(plain["n"], plain["p_hat"], s=5, color=GREY, alpha=0.35, linewidths=0, zorder=1, rasterized=True)
    n_grid = np.logspace(0, np.log10(max(table["n"].max(), 10)), 200)
    boundary = rejection_boundary(n_grid, attrs["num_labels"], attrs["alpha"], attrs["num_tests"])
    context = ax.plot(n_grid, boundary, color="black", lw=1.4, zorder=2,
                      label=f"rejection boundary (α = {attrs['alpha']}, Bonferroni m = {attrs['num_tests']:,})")
    context.append(ax.axhline(1.0 / attrs["num_labels"], color="black", ls="--", lw=1, zorder=2,
                              label=f"uniform 1/c = 1/{attrs['num_labels']}"))
    context.append(Line2D([], [], ls="", marker="o", ms=4, color=GREY, label="not an artifact"))
    crosses = []
    for label, colour in zip(dict.fromkeys(table["label"]), PALETTE):
        mine = found[found["label"] == label]
        ax.scatter(mine["n"], mine["p_hat"], s=30, marker="X", color=colour, edgecolors="black", linewidths=0.5,
                   zorder=3)
        crosses.append(Line2D([], [], ls="", marker="X", ms=8, color=colour, mec="black", mew=0.5,
                              label=f"artifact: {label}"))
    ax.set(xscale="log", ylim=(0, 1.02), xlabel="n: examples containing the word (log scale)",
           ylabel="p̂(label | word)")
    # two legend columns: the curves and the other pairs on the left, the artifacts on the right
    legend_above(ax, [h for row in itertools.zip_longest(context, crosses) for h in row if h is not None], ncols=2)
    return ax
