"""PNG plots of loss-landscape slices (results of ``lossland.metrics.landscape``).

Drawn and saved with :mod:`lossland.figures`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lossland.figures import figure, save_figure


def plot_slice_1d(result: dict, path, title: str | None = None, log_loss: bool = False) -> Path:
    """Line plot of a 1-d slice: loss (left axis) and accuracy (right axis) against α."""
    fig = figure(5, 3.5, layout=None)
    ax = fig.add_subplot()
    ax.plot(result["alphas"], result["loss"], color="tab:blue", label="loss")
    ax.set_xlabel("α")
    ax.set_ylabel("loss", color="tab:blue")
    if log_loss:
        ax.set_yscale("log")
    ax2 = ax.twinx()
    acc = 100 * np.asarray(result["accuracy"])
    ax2.plot(result["alphas"], acc, color="tab:red", ls="--", label="accuracy")
    ax2.set_ylabel("accuracy (%)", color="tab:red")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def plot_slice_2d(result: dict, path, metric: str = "loss", levels: int = 30, title: str | None = None,
                  log: bool = False) -> Path:
    """Contour plot of a 2-d slice (``metric`` = "loss" or "accuracy") over (α, β)."""
    z = np.asarray(result[metric], dtype=float)
    if log:
        z = np.log10(np.maximum(z, 1e-12))
    fig = figure(5, 4.2, layout=None)
    ax = fig.add_subplot()
    cs = ax.contour(result["alphas"], result["betas"], z.T, levels=levels, cmap="viridis")
    ax.clabel(cs, inline=True, fontsize=7)
    fig.colorbar(cs, ax=ax, label=f"log10 {metric}" if log else metric)
    ax.plot([0], [0], "k*", ms=8)
    ax.set_xlabel("α")
    ax.set_ylabel("β")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
