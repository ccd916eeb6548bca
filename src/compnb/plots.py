"""The book's figure style and its figures (seaborn/matplotlib, labelled axes, no titles: captions say it)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from compnb.artifacts import rejection_boundary


def use_book_style() -> None:
    """One consistent look for every chapter."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "figure.figsize": (7.0, 4.2),
                         "axes.titlesize": "medium"})


def artifact_scatter(table: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """n (examples containing the word, log x) against p̂(y|word), one colour per label, with the
    Bonferroni rejection boundary as a curve and 1/c as a dashed line (the first paper's Figures 1–2)."""
    ax = ax or plt.gca()
    attrs = table.attrs
    sns.scatterplot(data=table, x="n", y="p_hat", hue="label", style="artifact", markers={False: "o", True: "X"},
                    s=14, alpha=0.55, linewidth=0, ax=ax)
    n_grid = np.logspace(0, np.log10(max(table["n"].max(), 10)), 200)
    boundary = rejection_boundary(n_grid, attrs["num_labels"], attrs["alpha"], attrs["num_tests"])
    ax.plot(n_grid, boundary, color="black", lw=1.4,
            label=f"rejection boundary (α={attrs['alpha']}, Bonferroni m={attrs['num_tests']:,})")
    ax.axhline(1.0 / attrs["num_labels"], color="grey", ls="--", lw=1, label="uniform 1/c")
    ax.set(xscale="log", ylim=(0, 1.02), xlabel="n: examples containing the word (log scale)",
           ylabel="p̂(label | word)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return ax
