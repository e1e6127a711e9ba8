"""Figures of the search (:mod:`lossland.figures`)."""

from __future__ import annotations

import math
from pathlib import Path

from lossland.figures import figure, save_figure

__all__ = ["dynamics_figure", "entropy_figure", "robustness_figure"]


def dynamics_figure(history: list[dict], op_names: list[str], title: str, path: Path) -> Path:
    """softmax(gamma) of every edge over training: one panel per edge (rows: cell types), one line per op."""
    kinds = sorted({k.split("/")[1] for k in history[0] if k.startswith("mix/")}, key=["normal", "reduce"].index)
    n_edges = 1 + max(int(k.split("/")[2][1:]) for k in history[0] if k.startswith("mix/"))
    fig = figure(2.6 * n_edges, 2.3 * len(kinds) + 0.8)
    axes = fig.subplots(len(kinds), n_edges, squeeze=False, sharex=True, sharey=True)
    steps = [r["step"] for r in history]
    for a, kind in enumerate(kinds):
        for e in range(n_edges):
            ax = axes[a][e]
            for name in op_names:
                ax.plot(steps, [r[f"mix/{kind}/e{e}/{name}"] for r in history], label=name, lw=1.2)
            ax.set_title(f"{kind} edge {e}", fontsize=8)
            ax.set_ylim(0, 1)
            ax.tick_params(labelsize=7)
            if a == len(kinds) - 1:
                ax.set_xlabel("step", fontsize=8)
        axes[a][0].set_ylabel("softmax(γ)", fontsize=8)
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def entropy_figure(histories: dict[str, list[dict]], n_ops: int, path: Path) -> Path:
    """Entropy of every edge's mixture over training, one panel per prior (log K dashed: uniform)."""
    fig = figure(4.2 * len(histories), 3.2)
    axes = fig.subplots(1, len(histories), squeeze=False)[0]
    for ax, (prior, hist) in zip(axes, histories.items()):
        steps = [r["step"] for r in hist]
        for key in [k for k in hist[0] if k.startswith("entropy/")]:
            ax.plot(steps, [r[key] for r in hist], lw=0.9, alpha=0.7, label=key.removeprefix("entropy/"))
        ax.axhline(math.log(n_ops), ls="--", c="k", lw=0.8)
        ax.set_title(f"prior={prior}")
        ax.set_xlabel("step")
        ax.set_ylabel("edge entropy (nats)")
        ax.set_ylim(bottom=0)
    axes[-1].legend(fontsize=5, ncol=2)
    return save_figure(fig, path)


def robustness_figure(curves: dict[str, dict], where: str, path: Path) -> Path:
    """Accuracy vs noise sigma, one curve per prior (mean ± std over draws); panels: supernet, discrete."""
    fig = figure(9, 3.4)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, net in zip(axes, ("supernet", "discrete")):
        for prior, c in curves.items():
            rows = c[net][where]
            s = [r["sigma"] for r in rows]
            m = [r["mean"] for r in rows]
            sd = [r["std"] for r in rows]
            ax.errorbar(s, m, yerr=sd, marker="o", ms=3, capsize=2, label=f"prior={prior}")
        ax.set_title(f"{net}: noise on the {where}")
        ax.set_xlabel("σ")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return save_figure(fig, path)
