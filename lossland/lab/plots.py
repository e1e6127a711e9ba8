"""Figures of the optimizer lab (matplotlib, object-oriented API, Agg canvas; files written atomically)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from lossland.records import atomic_write

COLORS = {"gd": "#1f77b4", "sgd": "#1f77b4", "noisy_gd": "#d62728", "momentum": "#2ca02c", "nesterov": "#17becf",
          "adagrad": "#9467bd", "rmsprop": "#ff7f0e", "adam": "#e377c2"}
_EXTRA = ["#8c564b", "#7f7f7f", "#bcbd22", "#000000"]


def color(name: str, i: int = 0) -> str:
    return COLORS.get(name, _EXTRA[i % len(_EXTRA)])


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """PNG bytes via ``fig.savefig`` into memory, then an atomic write."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write(path, buf.getvalue())


def _grid(fn, xlim, ylim, n: int = 200):
    xs, ys = np.linspace(*xlim, n), np.linspace(*ylim, n)
    X, Y = np.meshgrid(xs, ys)
    with torch.no_grad():
        Z = fn(torch.as_tensor(np.stack([X, Y], axis=-1))).numpy()
    return X, Y, Z


def contour(ax, fn, levels: int = 30):
    """Filled contours of ``fn`` over its window (levels spread by quantiles, so that cubic and banana
    functions show structure near their critical points too)."""
    X, Y, Z = _grid(fn, fn.xlim, fn.ylim)
    finite = Z[np.isfinite(Z)]
    lv = np.unique(np.quantile(finite, np.linspace(0, 1, levels)))
    if len(lv) < 2:
        lv = np.linspace(finite.min() - 1, finite.max() + 1, levels)
    ax.contourf(X, Y, Z, levels=lv, cmap="Greys", alpha=0.55)
    ax.contour(X, Y, Z, levels=lv, colors="0.45", linewidths=0.4)
    for c in fn.critical:
        ax.plot(*c, marker="x", color="k", ms=8, mew=2, zorder=5)
    ax.set_xlim(*fn.xlim)
    ax.set_ylim(*fn.ylim)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")


def trajectories_figure(fn, trajs, title: str | None = None) -> Figure:
    """Left: every optimizer's path over the contour plot (one colour each); right: f vs step."""
    fig = Figure(figsize=(12, 5.2))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    contour(ax, fn)
    for i, t in enumerate(trajs):
        c = color(t.name, i)
        ax.plot(t.points[:, 0], t.points[:, 1], "-", color=c, lw=1.6, label=t.label, alpha=0.9)
        ax.plot(t.points[::max(1, len(t.points) // 25), 0], t.points[::max(1, len(t.points) // 25), 1], ".",
                color=c, ms=4)
        ax.plot(*t.points[-1], "o", color=c, ms=6, mec="k")
        steps = np.arange(len(t.losses))
        ax2.plot(steps, t.losses, color=c, label=t.label + (f" (left window at {t.stopped})" if t.stopped else ""))
    start = trajs[0].points[0] if trajs else fn.start
    ax.plot(*start, "*", color="gold", ms=14, mec="k", zorder=6, label="start")
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    ax.set_title(title or f"${fn.formula}$")
    ax2.set_xlabel("step")
    ax2.set_ylabel("f(θ)")
    losses = np.concatenate([t.losses for t in trajs]) if trajs else np.zeros(1)
    finite = losses[np.isfinite(losses)]
    if finite.size and finite.min() > 0 and finite.max() / max(finite.min(), 1e-300) > 100:
        ax2.set_yscale("log")
    elif finite.size and np.abs(finite).max() > 100 * max(np.median(np.abs(finite)), 1e-12):
        ax2.set_yscale("symlog", linthresh=max(1e-3, float(np.median(np.abs(finite)))))
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    ax2.set_title("loss vs step")
    return fig


def animate(fn, trajs, path: str | Path, fps: int = 20, max_frames: int = 120) -> Path | None:
    """An animated GIF (Pillow) or MP4 (ffmpeg) of the trajectories, by ``path``'s suffix; None if matplotlib
    has no writer for it here. Written to a temp file in the same folder, then renamed."""
    from matplotlib import animation

    path = Path(path)
    writer_name = "pillow" if path.suffix.lower() == ".gif" else "ffmpeg"
    if not animation.writers.is_available(writer_name):
        return None
    n = max(len(t.points) for t in trajs)
    frames = np.unique(np.linspace(1, n, min(max_frames, n)).astype(int))
    fig = Figure(figsize=(6, 5.2))
    ax = fig.subplots()
    contour(ax, fn)
    lines = [ax.plot([], [], "-", color=color(t.name, i), lw=1.6, label=t.label)[0] for i, t in enumerate(trajs)]
    heads = [ax.plot([], [], "o", color=color(t.name, i), mec="k")[0] for i, t in enumerate(trajs)]
    ax.legend(loc="best", fontsize=8)
    title = ax.set_title("")

    def draw(k):
        for t, ln, hd in zip(trajs, lines, heads):
            p = t.points[:k]
            ln.set_data(p[:, 0], p[:, 1])
            hd.set_data([p[-1, 0]], [p[-1, 1]])
        title.set_text(f"${fn.formula}$, step {k - 1}")
        return [*lines, *heads, title]

    anim = animation.FuncAnimation(fig, draw, frames=frames, blit=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        anim.save(tmp, writer=animation.writers[writer_name](fps=fps))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
