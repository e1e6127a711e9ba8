"""Figures of the optimizer lab (:mod:`lossland.figures`; animations written through
:func:`lossland.records.atomic_path`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from lossland.figures import figure
from lossland.records import atomic_path

COLORS = {"gd": "#1f77b4", "sgd": "#1f77b4", "noisy_gd": "#d62728", "momentum": "#2ca02c", "nesterov": "#17becf",
          "adagrad": "#9467bd", "rmsprop": "#ff7f0e", "adam": "#e377c2"}
_EXTRA = ["#8c564b", "#7f7f7f", "#bcbd22", "#000000"]


def color(name: str, i: int = 0) -> str:
    return COLORS.get(name, _EXTRA[i % len(_EXTRA)])


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
    fig = figure(12, 5.2)
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    contour(ax, fn)
    for i, t in enumerate(trajs):
        c = color(t.name, i)
        ax.plot(t.points[:, 0], t.points[:, 1], "-", color=c, lw=1.6, label=t.label, alpha=0.9)
        ax.plot(t.points[::max(1, len(t.points) // 25), 0], t.points[::max(1, len(t.points) // 25), 1], ".",
                color=c, ms=4)
        ax.plot(*t.points[-1], "o", color=c, ms=6, mec="k")
        steps = np.arange(len(t.losses))
        ax2.plot(steps, t.losses, color=c, label=t.label + (f" (stopped at {t.stopped})" if t.stopped else ""))
    start = trajs[0].points[0] if trajs else fn.start
    ax.plot(*start, "*", color="gold", ms=14, mec="k", zorder=6, label="start")
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    ax.set_title(title or fn.title)
    ax2.set_xlabel("step")
    ax2.set_ylabel("f(θ)")
    losses = np.concatenate([t.losses for t in trajs]) if trajs else np.zeros(1)
    finite = losses[np.isfinite(losses)]
    if finite.size and finite.min() > 0 and finite.max() / max(finite.min(), 1e-300) > 100:
        ax2.set_yscale("log")
    elif finite.size and np.abs(finite).max() > 100 * max(np.median(np.abs(finite)), 1e-12):
        ax2.set_yscale("symlog", linthresh=0.1, linscale=0.5)
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
    fig = figure(6, 5.2, layout=None)
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
        title.set_text(f"{fn.title}, step {k - 1}")
        return [*lines, *heads, title]

    anim = animation.FuncAnimation(fig, draw, frames=frames, blit=False)
    with atomic_path(path, suffix=path.suffix) as tmp:
        anim.save(tmp, writer=animation.writers[writer_name](fps=fps))
    return path


def escape_figure(fn, stats) -> Figure:
    """Left: empirical CDF of escape times per σ (at the middle λ); right: median escape time vs σ, one line
    per λ, with the 10–90% band and the strict-saddle prediction (dashed) where it applies."""
    from lossland.studies.optim.escape import predicted_median

    fig = figure(12, 4.8)
    ax, ax2 = fig.subplots(1, 2)
    j = len(stats.lrs) // 2
    cmap = __import__("matplotlib").colormaps["viridis"]
    for i, s in enumerate(stats.sigmas):
        t = np.sort(stats.times[i, j])
        t = t[np.isfinite(t)]
        if t.size:
            ax.step(t, np.arange(1, t.size + 1) / stats.runs, where="post",
                    color=cmap(i / max(1, len(stats.sigmas) - 1)), label=f"σ = {s:g}")
    ax.set_xscale("log")
    ax.set_xlabel("escape time (steps)")
    ax.set_ylabel(f"fraction of {stats.runs} runs escaped")
    ax.set_title(f"noisy GD at the saddle of {fn.title}, λ = {stats.lrs[j]:g}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    sig = np.asarray(stats.sigmas)
    pos = sig > 0
    for j, lr in enumerate(stats.lrs):
        c = f"C{j}"
        q = np.array([[np.quantile(t[np.isfinite(t)], p) if np.isfinite(t).any() else np.nan
                       for p in (0.1, 0.5, 0.9)] for t in stats.times[:, j]])
        ax2.plot(sig[pos], q[pos, 1], "o-", color=c, label=f"λ = {lr:g}")
        ax2.fill_between(sig[pos], q[pos, 0], q[pos, 2], color=c, alpha=0.15)
        pred = np.array([predicted_median(fn, lr, s, stats.radius) for s in sig[pos]])
        if np.isfinite(pred).any():
            ax2.plot(sig[pos], pred, "--", color=c, lw=1)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("σ (noise scale)")
    ax2.set_ylabel("escape time: median, 10–90% band")
    ttl = "escape time vs σ and λ"
    if any(np.isfinite(predicted_median(fn, lr, s, stats.radius)) for lr in stats.lrs for s in sig[pos]):
        ttl += " (dashed: strict-saddle prediction)"
    ax2.set_title(ttl)
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=8)
    return fig


def vanishing_figure(rows: list[dict], steps: int) -> Figure:
    """Top: per-layer gradient norm of the deepest nets (layer 1 = input) at init (solid) and after k steps
    (dashed), without / with BN; bottom: the input layer's gradient norm vs depth."""
    acts = list(dict.fromkeys(r["activation"] for r in rows))
    bns = list(dict.fromkeys(r["batch_norm"] for r in rows))
    deepest = max(r["depth"] for r in rows)
    fig = figure(5.5 * len(bns), 8.5)
    axes = np.atleast_2d(np.array(fig.subplots(2, len(bns), squeeze=False)))
    for col, bn in enumerate(bns):
        ax, ax2 = axes[0, col], axes[1, col]
        for i, act in enumerate(acts):
            for when, ls in (("init", "-"), ("k", "--")):
                sel = [r for r in rows if r["activation"] == act and r["batch_norm"] == bn and r["when"] == when]
                deep = sorted((r["layer"], r["norm"]) for r in sel if r["depth"] == deepest)
                lbl = f"{act}, {'init' if when == 'init' else f'after {steps} steps'}"
                ax.plot(*zip(*deep), ls, marker=".", color=f"C{i}", label=lbl)
                first = sorted((r["depth"], r["norm"]) for r in sel if r["layer"] == 1)
                ax2.plot(*zip(*first), ls, marker="o", color=f"C{i}", label=lbl)
        ax.set_yscale("log")
        ax.set_xlabel(f"layer (1 = input), depth {deepest} hidden layers")
        ax.set_ylabel("‖∇ layer‖")
        ax.set_title(f"per-layer gradient norm, {'with' if bn else 'without'} BN")
        ax2.set_yscale("log")
        ax2.set_xlabel("depth (hidden layers)")
        ax2.set_ylabel("‖∇ input layer‖")
        ax2.set_title(f"input-layer gradient norm vs depth, {'with' if bn else 'without'} BN")
        for a in (ax, ax2):
            a.grid(alpha=0.3, which="both")
            a.legend(fontsize=7)
    return fig


def keskar_interp_figure(curves: list[dict], pairs: int = 1, batch_sizes=None) -> Figure:
    """Keskar et al.'s Fig. 3: cross-entropy (left axis, log) and accuracy (right axis) along
    α·x_LB + (1 − α)·x_SB; train solid, test dashed. The first ``pairs`` seed pairs are drawn boldly, the
    others thinly."""
    fig = figure(7.5, 4.8)
    ax = fig.subplots()
    ax2 = ax.twinx()
    for k, c in enumerate(curves):
        bold = k < max(1, pairs)
        kw = {"lw": 2.0 if bold else 0.8, "alpha": 1.0 if bold else 0.35}
        lab = (lambda s: s) if k == 0 else (lambda s: None)
        a = np.asarray(c["alphas"])
        ax.plot(a, c["train_loss"], "-", color="C0", label=lab("train loss"), **kw)
        ax.plot(a, c["test_loss"], "--", color="C0", label=lab("test loss"), **kw)
        ax2.plot(a, c["train_acc"], "-", color="C3", label=lab("train accuracy"), **kw)
        ax2.plot(a, c["test_acc"], "--", color="C3", label=lab("test accuracy"), **kw)
    ax.set_yscale("log")
    ax.set_xlabel("α  (θ = α·x_LB + (1 − α)·x_SB; 0 = SB minimum, 1 = LB minimum)")
    ax.set_ylabel("cross-entropy", color="C0")
    ax2.set_ylabel("accuracy (%)", color="C3")
    for x in (0, 1):
        ax.axvline(x, color="0.6", lw=0.8, ls=":")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper center")
    sizes = f" (SB {batch_sizes[0]}, LB {batch_sizes[1]})" if batch_sizes else ""
    ax.set_title(f"1-d interpolation between the SB and LB minima{sizes}, {len(curves)} seed pairs")
    return fig


def keskar_sharpness_figure(run_rows: list[dict], eps) -> Figure:
    """ε-sharpness of every run, SB vs LB, one panel per ε (log scale)."""
    fig = figure(4.2 * len(eps), 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(eps), squeeze=False)[0])
    for ax, e in zip(axes, eps):
        for i, regime in enumerate(("SB", "LB")):
            v = [r[f"sharpness_eps={e:g}"] for r in run_rows if r["regime"] == regime]
            ax.plot(np.full(len(v), i) + np.linspace(-0.08, 0.08, len(v)), v, "o", color=f"C{i}", alpha=0.8)
            if v:
                ax.plot([i - 0.2, i + 0.2], [np.mean(v)] * 2, "-", color="k", lw=2)
        ax.set_xticks([0, 1], ["SB", "LB"])
        ax.set_xlim(-0.6, 1.6)
        ax.set_yscale("log")
        ax.set_ylabel("ε-sharpness (%)")
        ax.set_title(f"ε = {e:g}")
        ax.grid(alpha=0.3, which="both", axis="y")
    return fig
