"""PNG figures of loss and accuracy along one or several paths (:mod:`lossland.figures`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from lossland.figures import figure, save_figure


def plot_paths(results: Mapping[str, dict] | Sequence[dict] | dict, out: str | os.PathLike,
               splits: Sequence[str] = ("train", "test"), normalize_t: bool = True, title: str | None = None):
    """Loss (left) and accuracy in % (right) against t for each result of
    :func:`lossland.studies.connect.evaluate.evaluate_path`; one line per (path, split). ``results``: one result, a
    list (labelled by their ``path`` field) or a {label: result} mapping. With ``normalize_t`` every path is
    drawn over t ∈ [0, 1] (a [0, 2] weight-adjustment path is rescaled). Writes a PNG to ``out``; returns
    the file name."""
    if isinstance(results, dict) and "t" in results:
        results = {results.get("path", "path"): results}
    elif not isinstance(results, Mapping):
        results = {f"{r.get('path', 'path')}" + (f" #{i}" if i else ""): r for i, r in enumerate(results)}
    fig = figure(10, 4, layout=None)
    ax_loss, ax_acc = fig.subplots(1, 2)
    styles = {"train": "-", "test": "--", "val": ":"}
    for i, (label, r) in enumerate(results.items()):
        t0, t1 = r.get("t_range", [min(r["t"]), max(r["t"])])
        t = [(v - t0) / (t1 - t0) for v in r["t"]] if normalize_t else r["t"]
        color = f"C{i % 10}"
        for split in splits:
            if f"{split}_loss" not in r:
                continue
            ls = styles.get(split, "-.")
            ax_loss.plot(t, r[f"{split}_loss"], ls, color=color, marker=".", label=f"{label} ({split})")
            ax_acc.plot(t, r[f"{split}_acc"], ls, color=color, marker=".", label=f"{label} ({split})")
    xlabel = "t (normalised to [0, 1])" if normalize_t else "t"
    ax_loss.set(xlabel=xlabel, ylabel="loss", title="loss along the path")
    ax_acc.set(xlabel=xlabel, ylabel="accuracy (%)", title="accuracy along the path")
    ax_loss.legend(fontsize=7)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return os.fspath(save_figure(fig, out, dpi=120))
