"""Figures of the sphere study (docs/studies.md#s), drawn with :mod:`lossland.figures`. Each ``plot_*`` function
returns a ``Figure``; :func:`lossland.figures.save_figure` writes it (at :data:`DPI`).

Conventions: a sweep is a :class:`lossland.analysis.settings.Sweep`: runs grouped by setting (the varied keys
other than seed), plotted against its ``x`` key (colour: viridis, log scale for a positive numeric x), one
panel or line per series (the other varied keys). Several seeds of a setting are drawn as their mean with a
± std band (curves) or error bar (final metrics); single runs thinly behind.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from itertools import cycle

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from lossland.analysis.settings import Setting, Sweep, mean_std, phase_counts
from lossland.figures import figure
from lossland.runs import Run

__all__ = ["PHASE_COLORS", "phase_bands", "plot_phase_diagram", "plot_final_metrics", "plot_cosines",
           "plot_curves", "DPI"]

PHASE_COLORS = {"1-converged": "#1b9e77", "1-not-converged": "#a6dba0", "2": "#fdb863", "3": "#e7298a",
                "diverged": "#555555", "failed": "#999999", "unknown": "#dddddd"}
CMAP = "viridis"
DPI = 110  # the study's figures (report, sphere_figures, finetune, interpolation)


def _norm(values: Sequence) -> Normalize:
    good = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if not good:
        return Normalize(0, 1)
    lo, hi = min(good), max(good)
    if lo > 0:
        return LogNorm(lo / 2, hi * 2) if lo == hi else LogNorm(lo, hi)
    return Normalize(lo - 1, hi + 1) if lo == hi else Normalize(lo, hi)


def _colors(sweep: Sweep) -> tuple[dict[int, tuple], ScalarMappable | None]:
    """A colour per setting (by x: viridis for numeric x, a qualitative cycle otherwise) and the colour map."""
    if sweep.x_numeric:
        sm = ScalarMappable(norm=_norm([s.values.get(sweep.x) for s in sweep.settings]), cmap=CMAP)
        return {id(s): sm.to_rgba(s.values.get(sweep.x)) for s in sweep.settings}, sm
    xs = list(dict.fromkeys(str(s.values.get(sweep.x)) for s in sweep.settings))
    palette = dict(zip(xs, cycle(f"C{i}" for i in range(10))))
    return {id(s): palette[str(s.values.get(sweep.x))] for s in sweep.settings}, None


def _panels(sweep: Sweep) -> list[tuple[str, list[Setting]]]:
    out: dict[str, list[Setting]] = {}
    for s in sweep.settings:
        out.setdefault(sweep.series_label(s), []).append(s)
    return list(out.items())


def at_common_steps(run: Run, a: str, b: str, positive: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps and values of metrics ``a`` and ``b`` at the steps where both were logged (``positive``: only where
    both are finite and > 0, for log axes)."""
    sa, va = run.series(a)
    sb, vb = run.series(b)
    steps, ia, ib = np.intersect1d(sa, sb, return_indices=True)
    x, y = va[ia], vb[ib]
    if positive:
        ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
        steps, x, y = steps[ok], x[ok], y[ok]
    return steps, x, y


def _stack(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(common steps, values[run, step]) of several runs' curves (the steps all of them logged)."""
    curves = [c for c in curves if c[0].size]
    if not curves:
        return np.empty(0), np.empty((0, 0))
    steps = curves[0][0]
    for s, _ in curves[1:]:
        steps = np.intersect1d(steps, s)
    return steps, np.array([v[np.searchsorted(s, steps)] for s, v in curves])


def _xlabel(sweep: Sweep) -> str:
    return sweep.x


def plot_phase_diagram(sweep: Sweep) -> Figure:
    """GM (log) against train loss (log), one panel per series: each setting's geometric-mean trajectory
    over its seeds (thick, coloured by x; a dot at its end) over its single runs (thin)."""
    panels = _panels(sweep)
    fig = figure(5.2 * len(panels) + 1.2, 4.6)
    axes = fig.subplots(1, len(panels), squeeze=False).ravel()
    colors, sm = _colors(sweep)
    for ax, (title, settings) in zip(axes, panels):
        drawn = 0
        for st in settings:
            c = colors[id(st)]
            curves = []
            for r in st.runs:
                steps, loss, gm = at_common_steps(r, "train_loss", "gm", positive=True)
                if steps.size:
                    if len(st.runs) > 1:
                        ax.plot(loss, gm, "-", color=c, lw=0.6, alpha=0.35)
                    curves.append((steps, np.stack([np.log(loss), np.log(gm)], axis=1)))
            steps, vals = _stack(curves)
            if steps.size:
                mean = np.exp(vals.mean(axis=0))
                lbl = None if sm is not None else f"{sweep.x}={st.values.get(sweep.x)}"
                ax.plot(mean[:, 0], mean[:, 1], "-", color=c, lw=1.6, label=lbl)
                ax.plot(mean[-1:, 0], mean[-1:, 1], "o", color=c, ms=4)
                drawn += 1
        if drawn:
            ax.set_xscale("log")
            ax.set_yscale("log")
            if sm is None:
                ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no run logged both train_loss and gm", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_xlabel("train loss")
        ax.set_ylabel("GM (mean mini-batch gradient norm)")
        ax.set_title("Phase diagram" + (f": {title}" if title else ""))
    if sm is not None:
        fig.colorbar(sm, ax=list(axes), label=_xlabel(sweep))
    return fig


def phase_bands(elrs: Sequence[float], phases: Sequence[str]) -> list[tuple[float, float, str]]:
    """Contiguous x intervals of one phase: [(lo, hi, phase)], edges at geometric midpoints between
    consecutive distinct x values (the ends extend half a log-step). At an x with several runs, the most
    frequent phase wins."""
    by_elr: dict[float, list[str]] = defaultdict(list)
    for e, p in zip(elrs, phases):
        if e is not None and e > 0 and math.isfinite(e):
            by_elr[e].append(p)
    xs = sorted(by_elr)
    if not xs:
        return []
    labels = [phase_counts(by_elr[x])[0][0] for x in xs]
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


def _positions(sweep: Sweep) -> tuple[dict[int, float], list[str] | None]:
    """x position of every setting; tick labels when x is categorical."""
    if sweep.x_numeric:
        return {id(s): float(s.values.get(sweep.x)) for s in sweep.settings}, None
    xs = list(dict.fromkeys(str(s.values.get(sweep.x)) for s in sweep.settings))
    return {id(s): float(xs.index(str(s.values.get(sweep.x)))) for s in sweep.settings}, xs


def plot_final_metrics(sweep: Sweep,
                       metrics: Sequence[str] = ("train_loss", "train_error", "test_error", "gm"),
                       boundaries: dict[str, tuple[float, float]] | None = None) -> Figure:
    """Final ``metrics`` against x, one panel each: per series, the mean over seeds with ± std error bars
    over the single runs (dots); shaded by the majority phase when there is one series. ``boundaries``:
    {name: (low, high)} brackets located by the phase-boundary sweeper, drawn as hatched spans."""
    fig = figure(9.6, 6.4)
    axes = fig.subplots(2, math.ceil(len(metrics) / 2), squeeze=False).ravel()
    pos, ticks = _positions(sweep)
    panels = _panels(sweep)
    bands = []
    if len(panels) == 1 and ticks is None:
        xs = [pos[id(s)] for s in sweep.settings for _ in s.phases]
        bands = phase_bands(xs, [p for s in sweep.settings for p in s.phases])
    markers = cycle("osD^v")
    styles = {title: next(markers) for title, _ in panels}
    for ax, m in zip(axes, metrics):
        _draw_bands(ax, bands)
        positive = _final_metric_panel(ax, m, panels, styles, pos)
        if m in ("train_loss", "gm") and positive and ax.has_data():
            ax.set_yscale("log")
        if ticks is not None:
            ax.set_xticks(range(len(ticks)))
            ax.set_xticklabels(ticks, rotation=30)
        elif all(v > 0 for v in pos.values()) and pos:
            ax.set_xscale("log")
        ax.set_xlabel(_xlabel(sweep))
        ax.set_ylabel(f"final {m}")
        if ticks is None:
            _draw_boundaries(ax, boundaries or {})
        if len(panels) > 1:
            ax.legend(fontsize=7)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    present = list(dict.fromkeys(b[2] for b in bands))
    if present:
        fig.legend(handles=[Patch(color=PHASE_COLORS.get(p, "#eeeeee"), alpha=0.5, label=f"phase {p}")
                            for p in present], loc="outside upper center", ncols=len(present))
    return fig


def _draw_boundaries(ax, boundaries: dict[str, tuple[float, float]]) -> None:
    """Each located boundary's bracket: a hatched span between its ends, named at the top."""
    for name, (lo, hi) in boundaries.items():
        ax.axvspan(lo, hi, facecolor="none", edgecolor="k", hatch="////", linewidth=0.8)
        ax.annotate(name, ((lo * hi) ** 0.5 if lo > 0 else (lo + hi) / 2, 1.0), xycoords=("data", "axes fraction"),
                    ha="center", va="bottom", fontsize=7)


def _final_metric_panel(ax, metric: str, panels, styles: dict, pos: dict) -> bool:
    """One metric of :func:`plot_final_metrics`: single runs (dots) and each series' mean ± std; returns whether
    every value drawn is positive (a log axis then fits)."""
    positive = True
    for i, (title, settings) in enumerate(panels):
        color = "k" if len(panels) == 1 else f"C{i}"
        xs, means, stds = [], [], []
        for st in settings:
            vals = [r.final_value(metric) for r in st.runs]
            mu, sd, n = mean_std(vals)
            good = [v for v in vals if math.isfinite(v)]
            positive &= all(v > 0 for v in good)
            ax.plot([pos[id(st)]] * len(good), good, styles[title], color=color, ms=3, alpha=0.4)
            if n:
                xs.append(pos[id(st)])
                means.append(mu)
                stds.append(sd)
        if xs:
            ax.errorbar(xs, means, yerr=stds, fmt="-" + styles[title], color=color, ms=4, lw=1, capsize=3,
                        label=title or None)
    return positive


def plot_curves(sweep: Sweep, metrics: Sequence[str] = ("train_loss", "train_error", "test_error", "gm")) -> Figure:
    """Each metric against the step, one line per setting: the mean over its seeds with a ± std band."""
    fig = figure(10.4, 6.4)
    axes = fig.subplots(2, math.ceil(len(metrics) / 2), squeeze=False).ravel()
    colors, sm = _colors(sweep)
    styles = dict(zip((t for t, _ in _panels(sweep)), cycle(["-", "--", ":", "-."])))
    for ax, m in zip(axes, metrics):
        positive = True
        for st in sweep.settings:
            steps, vals = _stack([r.series(m) for r in st.runs])
            if not steps.size:
                continue
            mu = np.nanmean(vals, axis=0)
            sd = np.nanstd(vals, axis=0, ddof=1) if vals.shape[0] > 1 else np.zeros_like(mu)
            positive &= bool((vals > 0).all())
            lbl = st.label() if sm is None or sweep.series else None
            ax.plot(steps, mu, styles[sweep.series_label(st)], color=colors[id(st)], lw=1.2, label=lbl)
            ax.fill_between(steps, mu - sd, mu + sd, color=colors[id(st)], alpha=0.2, lw=0)
        if m in ("train_loss", "gm") and positive and ax.has_data():
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(m)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    if sm is not None:
        fig.colorbar(sm, ax=list(axes), label=_xlabel(sweep))
    handles, labels = axes[0].get_legend_handles_labels()
    if labels and len(labels) <= 12:
        axes[0].legend(fontsize=6)
    return fig


def plot_cosines(sweep: Sweep, metric: str = "cos_prev") -> Figure:
    """Box plot of the cosines between consecutive evaluation points' weights (all logged values of all
    seeds), per setting."""
    fig = figure(max(6.4, 0.6 * len(sweep.settings) + 2), 4.4)
    ax = fig.add_subplot()
    colors, _ = _colors(sweep)
    data = []
    for st in sweep.settings:
        vals = []
        for r in st.runs:
            _, v = r.series(metric)
            vals.extend(v[np.isfinite(v)].tolist())
        if vals:
            data.append((st, vals))
    if data:
        bp = ax.boxplot([v for _, v in data], positions=range(len(data)), widths=0.6, patch_artist=True,
                        showfliers=False)
        for patch, (st, _) in zip(bp["boxes"], data):
            patch.set_facecolor(colors[id(st)])
        ax.set_xticks(range(len(data)))
        ax.set_xticklabels([st.label() for st, _ in data], rotation=45, ha="right", fontsize=7)
    else:
        ax.text(0.5, 0.5, f"no run logged {metric}", ha="center", va="center", transform=ax.transAxes)
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("cosine between consecutive weights")
    ax.set_title("Consecutive-weights cosine per setting")
    return fig
