"""The sphere study's figures beyond ``lossland report`` (seed 003: Figs 15-25), drawn from run records.

:func:`write_sphere_figures` reads every finished run under a sweep directory (:mod:`lossland.runs`) and writes
into ``<sweep>/sphere_figures/`` the figures its records allow:

- ``sphere_overview.png`` (≥ 2 elrs; seed Figs 1-2, 16-20): phase diagram (GM against train loss, log-log), the
  distribution of consecutive-weights cosines per elr (the cosine-based split of phases 1 and 2, Figs 10/17),
  and the final train loss / train error / test error / GM against elr (mean ± std over runs at one elr);
- ``sphere_curvature_phase.png`` (runs that logged ``fisher_trace`` or ``hessian_top_eig``; seed Figs 1, 22,
  23): the phase diagram with GM, tr F and the top Hessian eigenvalue on the y axis, one panel each;
- ``sphere_retraction_error.png`` (runs that logged ``retraction_error``; seed Fig 25): 1 − r over training per
  elr (log y), and its mean and maximum over training against elr, with the seed's 2 % level;
- ``sphere_baselines.png`` (runs that differ in ``optimizer.direction``; seed Fig 15): gradient / random walk /
  ascent overlaid: train loss, train error, GM, consecutive cosine and 1 − r over training.

Each ``plot_*`` function returns ``(figure, data)``: ``data`` holds the arrays exactly as plotted (one entry
per curve or point set), so tests and ``sphere_figures.json`` can compare them with the records. Colour
encodes elr on a log scale; runs at one elr (several seeds) share a colour.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from lossland.errors import LosslandError
from lossland.figures import figure, save_figure
from lossland.records import write_json
from lossland.runs import Run, load_runs
from lossland.studies.sphere.plots import DPI, at_common_steps

__all__ = ["CURVATURE_METRICS", "FINAL_METRICS", "plot_overview", "plot_curvature_phase",
           "plot_retraction_error", "plot_baselines", "write_sphere_figures", "direction_of"]

CMAP = "viridis"
CURVATURE_METRICS = {"gm": "GM (mean mini-batch gradient norm)", "fisher_trace": "tr F (empirical Fisher)",
                     "hessian_top_eig": "λmax (top Hessian eigenvalue)"}
FINAL_METRICS = ("train_loss", "train_error", "test_error", "gm")
BASELINE_METRICS = ("train_loss", "train_error", "gm", "cos_prev", "retraction_error")
DIRECTION_COLORS = {"gradient": "#d95f02", "random": "#1f78b4", "ascent": "#7570b3"}
SEED_RETRACTION_LEVEL = 0.02  # seed 003, App. 3: phases 1 and 2 stay within 2 % of lr


def _elr_cmap(runs: Sequence[Run]) -> ScalarMappable:
    good = sorted({r.elr for r in runs if r.elr is not None and r.elr > 0 and math.isfinite(r.elr)})
    if not good:
        return ScalarMappable(norm=Normalize(0, 1), cmap=CMAP)
    lo, hi = (good[0] / 2, good[0] * 2) if len(good) == 1 else (good[0], good[-1])
    return ScalarMappable(norm=LogNorm(lo, hi), cmap=CMAP)


def _by_elr(runs: Sequence[Run]) -> list[Run]:
    return sorted((r for r in runs if r.elr is not None), key=lambda r: (r.elr, str(r.path)))


def direction_of(run: Run) -> str | None:
    """The sphere optimizer's ``direction`` (gradient / random / ascent); None for other optimizers."""
    target = str(OmegaConf.select(run.config, "optimizer._target_", default="") or "")
    if "Sphere" not in target and "sphere" not in target:
        return None
    return str(OmegaConf.select(run.config, "optimizer.direction", default="gradient"))


def _log_axes(ax, xs: bool = True, ys: bool = True) -> None:
    if xs:
        ax.set_xscale("log")
    if ys:
        ax.set_yscale("log")


def _no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no run logged {what}", ha="center", va="center", transform=ax.transAxes)


def plot_curvature_phase(runs: Sequence[Run],
                         metrics: Sequence[str] = tuple(CURVATURE_METRICS)) -> tuple[Figure, dict]:
    """Phase diagrams (seed Figs 1, 22, 23): each curvature metric (log) against train loss (log), one
    trajectory per run coloured by elr, a dot at its end. ``data[metric]``: [{run, elr, step, train_loss,
    value}]."""
    fig = figure(4.2 * len(metrics) + 1, 4.0)
    axes = fig.subplots(1, len(metrics), squeeze=False).ravel()
    cmap = _elr_cmap(runs)
    data: dict[str, list] = {m: [] for m in metrics}
    for ax, m in zip(axes, metrics):
        for r in _by_elr(runs):
            steps, loss, val = at_common_steps(r, "train_loss", m, positive=True)
            if not steps.size:
                continue
            c = cmap.to_rgba(r.elr)
            ax.plot(loss, val, "-", color=c, lw=1.2, alpha=0.9)
            ax.plot(loss[-1:], val[-1:], "o", color=c, ms=4)
            data[m].append({"run": str(r.path), "elr": r.elr, "step": steps, "train_loss": loss, "value": val})
        if data[m]:
            _log_axes(ax)
        else:
            _no_data(ax, m)
        ax.set_xlabel("train loss")
        ax.set_ylabel(CURVATURE_METRICS.get(m, m))
    fig.colorbar(cmap, ax=axes[-1], label="elr")
    fig.suptitle("Phase diagrams with curvature: GM, trace of the Fisher, top Hessian eigenvalue")
    return fig, data


def plot_retraction_error(runs: Sequence[Run]) -> tuple[Figure, dict]:
    """Seed Fig 25: the retraction error 1 − r over training per run (log y) and, per elr, its mean and
    maximum over training, with the seed's 2 % level. ``data["curves"]``: [{run, elr, step, value}];
    ``data["per_elr"]``: {"elr", "mean", "max"} arrays (all logged values of the runs at that elr pooled)."""
    fig = figure(10.5, 4.0)
    ax_t, ax_e = fig.subplots(1, 2)
    cmap = _elr_cmap(runs)
    curves, pooled = [], defaultdict(list)
    for r in _by_elr(runs):
        s, v = r.series("retraction_error")
        ok = np.isfinite(v)
        s, v = s[ok], v[ok]
        if not s.size:
            continue
        ax_t.plot(s, np.maximum(v, 1e-12), "-", color=cmap.to_rgba(r.elr), lw=1)
        curves.append({"run": str(r.path), "elr": r.elr, "step": s, "value": v})
        pooled[r.elr].extend(v.tolist())
    elrs = np.array(sorted(pooled), dtype=float)
    mean = np.array([np.mean(pooled[e]) for e in elrs])
    top = np.array([np.max(pooled[e]) for e in elrs])
    if curves:
        ax_t.set_yscale("log")
        ax_e.plot(elrs, np.maximum(mean, 1e-12), "o-", color="k", label="mean over training")
        ax_e.plot(elrs, np.maximum(top, 1e-12), "s--", color="grey", label="max over training")
        for ax in (ax_t, ax_e):
            ax.axhline(SEED_RETRACTION_LEVEL, color="#e7298a", ls=":", lw=1, label="2 % (seed: phases 1-2 below)")
        _log_axes(ax_e)
        ax_e.legend(fontsize=8)
    else:
        _no_data(ax_t, "retraction_error")
    ax_t.set_xlabel("step")
    ax_t.set_ylabel("retraction error 1 − r")
    ax_t.set_title("1 − r over training")
    ax_e.set_xlabel("elr")
    ax_e.set_ylabel("1 − r")
    ax_e.set_title("1 − r against elr")
    fig.colorbar(cmap, ax=ax_t, label="elr")
    return fig, {"curves": curves, "per_elr": {"elr": elrs, "mean": mean, "max": top}}


def plot_baselines(runs: Sequence[Run], metrics: Sequence[str] = BASELINE_METRICS) -> tuple[Figure, dict]:
    """Seed Fig 15: sphere SGD (gradient), random walk and gradient ascent overlaid, one panel per metric
    over training. ``data[metric]``: [{run, direction, elr, step, value}]."""
    fig = figure(3.6 * len(metrics), 3.6)
    axes = fig.subplots(1, len(metrics), squeeze=False).ravel()
    data: dict[str, list] = {m: [] for m in metrics}
    runs = sorted((r for r in runs if direction_of(r) is not None), key=lambda r: (direction_of(r), str(r.path)))
    seen: set[str] = set()
    for ax, m in zip(axes, metrics):
        for r in runs:
            d = direction_of(r)
            s, v = r.series(m)
            ok = np.isfinite(v)
            s, v = s[ok], v[ok]
            if not s.size:
                continue
            label = f"{d} (elr {r.elr:.3g})" if d not in seen else None
            seen.add(d)
            ax.plot(s, v, "-", color=DIRECTION_COLORS.get(d, "k"), lw=1, alpha=0.85, label=label)
            data[m].append({"run": str(r.path), "direction": d, "elr": r.elr, "step": s, "value": v})
        if not data[m]:
            _no_data(ax, m)
        elif m in ("gm", "train_loss", "retraction_error") and all((e["value"] > 0).all() for e in data[m]):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(m)
    handles = [h for ax in axes for h in ax.get_legend_handles_labels()[0]]
    if handles:
        fig.legend(handles=handles, loc="outside upper center", ncols=len(handles))
    return fig, data


def _final_stats(runs: Sequence[Run], metric: str) -> dict[str, np.ndarray]:
    by: dict[float, list[float]] = defaultdict(list)
    for r in runs:
        if r.elr is not None:
            by[r.elr].append(r.final_value(metric))
    elrs = np.array(sorted(by), dtype=float)
    vals = [np.array(by[e], dtype=float) for e in elrs]
    mean = np.array([np.nanmean(v) if np.isfinite(v).any() else np.nan for v in vals])
    std = np.array([np.nanstd(v) if np.isfinite(v).any() else np.nan for v in vals])
    return {"elr": elrs, "mean": mean, "std": std, "n": np.array([np.isfinite(v).sum() for v in vals])}


def plot_overview(runs: Sequence[Run], title: str = "") -> tuple[Figure, dict]:
    """Seed Figs 1-2 / 16-20 for one elr sweep: phase diagram, consecutive-cosine distributions per elr and
    final metrics against elr (mean ± std over runs at one elr). ``data``: ``phase`` [{run, elr, train_loss,
    gm}], ``cosines`` {elr: values}, ``final`` {metric: {elr, mean, std, n}}."""
    fig = figure(13, 6.4)
    grid = fig.subplots(2, 4)
    grid[0, 2].set_visible(False)
    grid[0, 3].set_visible(False)
    cmap = _elr_cmap(runs)
    data = {"phase": _overview_phase_diagram(grid[0, 0], runs, cmap),
            "cosines": _overview_cosines(grid[0, 1], runs, cmap),
            "final": _overview_final_metrics(grid[1], runs)}
    fig.colorbar(cmap, ax=grid[0, 0], label="elr")
    if title:
        fig.suptitle(title)
    return fig, data


def _overview_phase_diagram(ax, runs: Sequence[Run], cmap) -> list[dict]:
    drawn = []
    for r in _by_elr(runs):
        _, loss, gm = at_common_steps(r, "train_loss", "gm", positive=True)
        if loss.size:
            c = cmap.to_rgba(r.elr)
            ax.plot(loss, gm, "-", color=c, lw=1.2)
            ax.plot(loss[-1:], gm[-1:], "o", color=c, ms=4)
            drawn.append({"run": str(r.path), "elr": r.elr, "train_loss": loss, "gm": gm})
    if drawn:
        _log_axes(ax)
    ax.set(xlabel="train loss", ylabel="GM", title="Phase diagram")
    return drawn


def _overview_cosines(ax, runs: Sequence[Run], cmap) -> dict:
    by_elr: dict = {}
    for r in _by_elr(runs):
        _, cos = r.series("cos_prev")
        by_elr.setdefault(r.elr, []).extend(cos[np.isfinite(cos)].tolist())
    xs = [e for e in sorted(by_elr) if by_elr[e]]
    cosines = {e: np.array(by_elr[e]) for e in xs}
    if xs:
        bp = ax.boxplot([cosines[e] for e in xs], positions=range(len(xs)), widths=0.6, patch_artist=True,
                        showfliers=False)
        for patch, e in zip(bp["boxes"], xs):
            patch.set_facecolor(cmap.to_rgba(e))
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([f"{e:.2g}" for e in xs], rotation=45)
    else:
        _no_data(ax, "cos_prev")
    ax.set(xlabel="elr", ylabel="cos(θ_t, θ_t-1) between evaluation points", title="Consecutive-weights cosine")
    return cosines


def _overview_final_metrics(axes, runs: Sequence[Run]) -> dict:
    final = {}
    for ax, m in zip(axes, FINAL_METRICS):
        st = final[m] = _final_stats(runs, m)
        ok = np.isfinite(st["mean"])
        if ok.any():
            ax.errorbar(st["elr"][ok], st["mean"][ok], yerr=st["std"][ok], fmt="o-", color="k", ms=4, capsize=3)
            ax.set_xscale("log")
            if m in ("train_loss", "gm") and (st["mean"][ok] > 0).all():
                ax.set_yscale("log")
        ax.set(xlabel="elr", ylabel=f"final {m}")
    return final


def _has(runs: Sequence[Run], metric: str) -> bool:
    return any(np.isfinite(r.series(metric)[1]).any() for r in runs)


def _title(runs: Sequence[Run]) -> str:
    def one(key, default=None):
        vals = {str(OmegaConf.select(r.config, key, default=default)) for r in runs}
        return vals.pop() if len(vals) == 1 else "mixed"

    return (f"loss {one('loss._target_').rsplit('.', 1)[-1]}, data {one('data._target_').rsplit('.', 1)[-1]}"
            f" fraction {one('data.fraction', 1.0)}, {one('trainer.max_steps')} steps")


def write_sphere_figures(sweep_dir: str | Path, out_dir: str | Path | None = None) -> dict:
    """Write every figure the records under ``sweep_dir`` allow (module docstring) into ``out_dir``
    (default ``<sweep_dir>/sphere_figures``), plus ``sphere_figures.json`` with the plotted arrays.
    Returns ``{"files": [paths], "data": {figure: data}}``; no finished run is a one-line error."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise LosslandError(f"sphere-figures: no such directory: {root}")
    runs, _ = load_runs(root)
    runs = [r for r in runs if r.status in ("ok", "diverged")]
    if not runs:
        raise LosslandError(f"sphere-figures: no finished run under {root}")
    out = Path(out_dir) if out_dir is not None else root / "sphere_figures"
    plots = {}
    gradient = [r for r in runs if direction_of(r) in (None, "gradient")]
    if len({r.elr for r in gradient if r.elr is not None}) >= 2:
        plots["sphere_overview"] = plot_overview(gradient, _title(gradient))
    if _has(gradient, "fisher_trace") or _has(gradient, "hessian_top_eig"):
        plots["sphere_curvature_phase"] = plot_curvature_phase(gradient)
    if _has(gradient, "retraction_error"):
        plots["sphere_retraction_error"] = plot_retraction_error(gradient)
    if len({direction_of(r) for r in runs} - {None}) >= 2:
        plots["sphere_baselines"] = plot_baselines(runs)
    if not plots:
        raise LosslandError(f"sphere-figures: the runs under {root} allow no figure (one elr, one direction, "
                            "no curvature or retraction error logged)")
    files = [save_figure(fig, out / f"{name}.png", dpi=DPI) for name, (fig, _) in plots.items()]
    data = {name: d for name, (_, d) in plots.items()}
    files.append(write_json(out / "sphere_figures.json", _jsonable(data)))
    return {"files": files, "data": data}


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v
