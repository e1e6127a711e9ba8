"""PNG plots of loss-landscape slices (results of ``lossland.metrics.landscape``).

Rendered with matplotlib's Agg canvas directly (no pyplot, no global backend switch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lossland.records import atomic_figure


def _save(fig: Figure, path) -> Path:
    FigureCanvasAgg(fig)
    return atomic_figure(fig, path)


def plot_slice_1d(result: dict, path, title: str | None = None, log_loss: bool = False) -> Path:
    """Line plot of a 1-d slice: loss (left axis) and accuracy (right axis) against α."""
    fig = Figure(figsize=(5, 3.5))
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
    return _save(fig, path)


def plot_slice_2d(result: dict, path, metric: str = "loss", levels: int = 30, title: str | None = None,
                  log: bool = False) -> Path:
    """Contour plot of a 2-d slice (``metric`` = "loss" or "accuracy") over (α, β)."""
    z = np.asarray(result[metric], dtype=float)
    if log:
        z = np.log10(np.maximum(z, 1e-12))
    fig = Figure(figsize=(5, 4.2))
    ax = fig.add_subplot()
    cs = ax.contour(result["alphas"], result["betas"], z.T, levels=levels, cmap="viridis")
    ax.clabel(cs, inline=True, fontsize=7)
    fig.colorbar(cs, ax=ax, label=f"log10 {metric}" if log else metric)
    ax.plot([0], [0], "k*", ms=8)
    ax.set_xlabel("α")
    ax.set_ylabel("β")
    if title:
        ax.set_title(title)
    return _save(fig, path)
