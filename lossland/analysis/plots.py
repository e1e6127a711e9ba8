"""Figures of the sphere study (docs/studies.md#s), drawn with matplotlib's object API (Agg canvas, no pyplot,
so the caller's backend is left alone). Each ``plot_*`` function returns a ``Figure``; :func:`save_figure`
writes it atomically.

Conventions: runs are :class:`lossland.runs.Run`; colour encodes elr on a log scale (viridis);
runs without an elr are skipped; several seeds at one elr share its colour and column.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from lossland.records import atomic_figure
from lossland.runs import Run

__all__ = ["PHASE_COLORS", "phase_bands", "plot_phase_diagram", "plot_final_metrics", "plot_cosines",
           "save_figure"]

PHASE_COLORS = {"1-converged": "#1b9e77", "1-not-converged": "#a6dba0", "2": "#fdb863", "3": "#e7298a",
                "diverged": "#555555", "failed": "#999999", "unknown": "#dddddd"}
CMAP = "viridis"


def _figure(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically."""
    return atomic_figure(fig, path, dpi=dpi)


def _elr_norm(elrs: Sequence[float]) -> Normalize:
    good = [e for e in elrs if e is not None and e > 0 and math.isfinite(e)]
    if not good:
        return Normalize(0, 1)
    lo, hi = min(good), max(good)
    if lo == hi:
        lo, hi = lo / 2, hi * 2
    return LogNorm(lo, hi)


def _colorbar(fig: Figure, ax, norm: Normalize) -> None:
    sm = ScalarMappable(norm=norm, cmap=CMAP)
    fig.colorbar(sm, ax=ax, label="elr")


def _joined(run: Run, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """Values of metrics ``a`` and ``b`` at the steps where both were logged."""
    sa, va = run.series(a)
    sb, vb = run.series(b)
    _, ia, ib = np.intersect1d(sa, sb, return_indices=True)
    return va[ia], vb[ib]


def plot_phase_diagram(runs: Sequence[Run]) -> Figure:
    """GM (log) against train loss (log): one trajectory per run, coloured by elr; a dot marks its end."""
    fig = _figure(6.4, 4.8)
    ax = fig.add_subplot()
    norm = _elr_norm([r.elr for r in runs])
    cmap = ScalarMappable(norm=norm, cmap=CMAP)
    drawn = 0
    for r in sorted(runs, key=lambda r: r.elr or 0):
        if r.elr is None:
            continue
        loss, gm = _joined(r, "train_loss", "gm")
        ok = (loss > 0) & (gm > 0) & np.isfinite(loss) & np.isfinite(gm)
        loss, gm = loss[ok], gm[ok]
        if not loss.size:
            continue
        c = cmap.to_rgba(r.elr)
        ax.plot(loss, gm, "-", color=c, lw=1.2, alpha=0.9)
        ax.plot(loss[-1:], gm[-1:], "o", color=c, ms=4)
        drawn += 1
    if drawn:
        ax.set_xscale("log")
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no run logged both train_loss and gm", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("train loss")
    ax.set_ylabel("GM (mean mini-batch gradient norm)")
    ax.set_title("Phase diagram")
    _colorbar(fig, ax, norm)
    return fig


def phase_bands(elrs: Sequence[float], phases: Sequence[str]) -> list[tuple[float, float, str]]:
    """Contiguous elr intervals of one phase: [(lo, hi, phase)], edges at geometric midpoints between
    consecutive distinct elrs (the ends extend half a log-step). At an elr with several runs, the most
    frequent phase wins."""
    by_elr: dict[float, list[str]] = defaultdict(list)
    for e, p in zip(elrs, phases):
        if e is not None and e > 0 and math.isfinite(e):
            by_elr[e].append(p)
    xs = sorted(by_elr)
    if not xs:
        return []
    labels = [max(set(by_elr[x]), key=by_elr[x].count) for x in xs]
    edges = [math.sqrt(a * b) for a, b in zip(xs, xs[1:])]
    half = math.sqrt(xs[1] / xs[0]) if len(xs) > 1 else 2.0
    edges = [xs[0] / half, *edges, xs[-1] * (math.sqrt(xs[-1] / xs[-2]) if len(xs) > 1 else 2.0)]
    bands: list[tuple[float, float, str]] = []
    for i, p in enumerate(labels):
        if bands and bands[-1][2] == p:
            bands[-1] = (bands[-1][0], edges[i + 1], p)
        else:
            bands.append((edges[i], edges[i + 1], p))
    return bands


def _draw_bands(ax, bands) -> None:
    for lo, hi, p in bands:
        ax.axvspan(lo, hi, color=PHASE_COLORS.get(p, "#eeeeee"), alpha=0.25, lw=0)


def plot_final_metrics(runs: Sequence[Run], phases: Sequence[str],
                       metrics: Sequence[str] = ("train_loss", "train_error", "test_error", "gm")) -> Figure:
    """Final ``metrics`` against elr (log x), one panel each, over shaded phase bands."""
    fig = _figure(9.6, 6.4)
    axes = fig.subplots(2, math.ceil(len(metrics) / 2), squeeze=False).ravel()
    elrs = [r.elr for r in runs]
    bands = phase_bands(elrs, phases)
    for ax, m in zip(axes, metrics):
        _draw_bands(ax, bands)
        pts = sorted((e, r.final_value(m)) for e, r in zip(elrs, runs) if e is not None)
        xs = np.array([p[0] for p in pts], dtype=float)
        ys = np.array([p[1] for p in pts], dtype=float)
        ok = np.isfinite(ys)
        if ok.any():
            ax.plot(xs[ok], ys[ok], "o", color="k", ms=4)
            uniq = np.unique(xs[ok])
            ax.plot(uniq, [np.mean(ys[ok][xs[ok] == u]) for u in uniq], "-", color="k", lw=1)
            if m in ("train_loss", "gm") and (ys[ok] > 0).all():
                ax.set_yscale("log")
        if xs.size and (xs > 0).all():
            ax.set_xscale("log")
        ax.set_xlabel("elr")
        ax.set_ylabel(f"final {m}")
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    present = list(dict.fromkeys(b[2] for b in bands))
    if present:
        fig.legend(handles=[Patch(color=PHASE_COLORS.get(p, "#eeeeee"), alpha=0.5, label=f"phase {p}")
                            for p in present], loc="outside upper center", ncols=len(present))
    return fig


def plot_cosines(runs: Sequence[Run], metric: str = "cos_prev") -> Figure:
    """Box plot of the cosines between consecutive evaluation points' weights (all logged values), per elr."""
    fig = _figure(max(6.4, 0.5 * len(runs) + 2), 4.4)
    ax = fig.add_subplot()
    by_elr: dict[float, list[float]] = defaultdict(list)
    for r in runs:
        if r.elr is None:
            continue
        _, v = r.series(metric)
        by_elr[r.elr].extend(v[np.isfinite(v)].tolist())
    xs = [e for e in sorted(by_elr) if by_elr[e]]
    if xs:
        norm = _elr_norm(xs)
        cmap = ScalarMappable(norm=norm, cmap=CMAP)
        bp = ax.boxplot([by_elr[e] for e in xs], positions=range(len(xs)), widths=0.6, patch_artist=True,
                        showfliers=False)
        for patch, e in zip(bp["boxes"], xs):
            patch.set_facecolor(cmap.to_rgba(e))
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([f"{e:.2g}" for e in xs], rotation=45)
    else:
        ax.text(0.5, 0.5, f"no run logged {metric}", ha="center", va="center", transform=ax.transAxes)
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("elr")
    ax.set_ylabel("cosine between consecutive weights")
    ax.set_title("Consecutive-weights cosine per elr")
    return fig
