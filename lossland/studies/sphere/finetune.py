"""``lossland finetune <dir>``: study S's fine-tuning experiment (seed 003, Figs 4-9, 11, 12) from the runs of
``sweeps/sphere_finetune.sh``.

A *pretrain* is a run without ``init_from``; a *fine-tune* is a run whose ``init_from`` names a pretrain (found
below ``<dir>``, or at that path). For every pretrain with fine-tunes, into ``<dir>/finetune/`` (or ``--out``):

- ``elr_<e>_metrics.png``: train loss, train error, test error and GM against one step axis — the pretrain's
  steps, then each fine-tune's steps shifted by the pretrain's length (a fine-tune's step 0 is the pretrain's
  last weights, so its curves start where the pretrain's end);
- ``elr_<e>_phase.png``: the phase diagram (GM against train loss, log-log) of the pretrain (black), its
  fine-tunes, and dashed, any from-scratch run below ``<dir>`` at a fine-tune's elr (where a trajectory that
  "returns to the from-scratch curve" should land);
- ``elr_<e>_paths.png``: the linear path from the original to each fine-tuned model (``connect.json`` files
  below ``<dir>`` whose A is the pretrain; :mod:`lossland.studies.sphere.along_path`);
- ``finetune.{csv,md}``: one row per fine-tune: elrs and factor, final errors and GM before and after, and
  the connectivity check (peak ratio of the train loss along the path, error rises, ``connected``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lossland.errors import LosslandError
from lossland.figures import figure, save_figure
from lossland.records import write_table
from lossland.runs import Run, load_runs, locate, open_run
from lossland.studies.sphere.along_path import MAX_ERR_RISE, MAX_RATIO, load_paths, path_row, plot_along_path
from lossland.studies.sphere.plots import DPI

METRICS = (("train_loss", "train loss $L_T$", True, 1.0), ("train_error", "train error $E_T$ (%)", False, 100.0),
           ("test_error", "test error $E_t$ (%)", False, 100.0), ("gm", "GM", True, 1.0))


def _origin(run: Run, pretrains: dict[Path, Run], root: Path) -> Run | None:
    """The pretrain a fine-tune started from (``init_from``, found again below ``root`` if the sweep moved)."""
    src = locate(str(run.config.init_from), root)
    if src.resolve() in pretrains:
        return pretrains[src.resolve()]
    try:
        return open_run(src) if src.is_dir() else None
    except LosslandError:
        return None


def group_runs(root: str | Path) -> tuple[list[tuple[Run, list[Run]]], list[Run]]:
    """([(pretrain, its fine-tunes sorted by elr)], every from-scratch run) below ``root``."""
    runs, _ = load_runs(root)
    runs = [r for r in runs if r.status == "ok"]
    scratch = [r for r in runs if not r.config.get("init_from")]
    pretrains = {r.path.resolve(): r for r in scratch}
    children: dict[Path, list[Run]] = {}
    origin: dict[Path, Run] = {}
    for r in runs:
        if r.config.get("init_from"):
            pre = _origin(r, pretrains, Path(root))
            if pre is None:
                raise LosslandError(f"{r.path}: init_from={r.config.init_from} is not a run below {root}")
            key = pre.path.resolve()
            origin[key] = pre
            children.setdefault(key, []).append(r)
    groups = [(origin[k], sorted(v, key=lambda r: r.elr or 0)) for k, v in children.items()]
    return sorted(groups, key=lambda g: g[0].elr or 0), scratch


def length(run: Run) -> int:
    """A run's last step (``summary.steps``, else the largest logged step)."""
    steps = run.summary.get("steps")
    if steps is not None:
        return int(steps)
    s = run.metrics.get("step")
    return int(np.nanmax(s)) if s is not None and s.size else 0


def joined(pre: Run, tuned: Run, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(step, value) of ``name`` for the fine-tune on the joined axis: its steps shifted by the pretrain's
    length."""
    s, v = tuned.series(name)
    return s + length(pre), v


def _label(pre: Run, tuned: Run) -> str:
    return f"elr {tuned.elr:.3g} (x{tuned.elr / pre.elr:.3g})"


def plot_joined(pre: Run, tuned: list[Run]) -> Figure:
    """Pretrain (black) and each fine-tune on one step axis; one panel per metric; the join is dotted."""
    fig = figure(14, 3.4)
    axes = fig.subplots(1, len(METRICS))
    for ax, (name, title, log, scale) in zip(axes, METRICS):
        s, v = pre.series(name)
        ax.plot(s, v * scale, color="k", lw=1.5, label=f"pretrain elr {pre.elr:.3g}")
        for i, t in enumerate(tuned):
            s, v = joined(pre, t, name)
            ax.plot(s, v * scale, color=f"C{i % 10}", lw=1, label=_label(pre, t))
        ax.axvline(length(pre), color="0.5", ls=":", lw=1)
        ax.set(xlabel="step (pretrain, then fine-tune)", title=title)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"fine-tuning from elr {pre.elr:.3g}")
    return fig


def _trajectory(run: Run) -> tuple[np.ndarray, np.ndarray]:
    sl, loss = run.series("train_loss")
    sg, gm = run.series("gm")
    _, il, ig = np.intersect1d(sl, sg, return_indices=True)
    loss, gm = loss[il], gm[ig]
    ok = (loss > 0) & (gm > 0) & np.isfinite(loss) & np.isfinite(gm)
    return loss[ok], gm[ok]


def plot_phase(pre: Run, tuned: list[Run], scratch: list[Run]) -> Figure:
    """Phase diagram (GM against train loss, log-log): pretrain black, fine-tunes in colour (a dot at the end),
    from-scratch runs at the fine-tunes' elrs dashed in the same colour."""
    fig = figure(6.4, 4.8)
    ax = fig.add_subplot()
    loss, gm = _trajectory(pre)
    ax.plot(loss, gm, color="k", lw=1.5, label=f"pretrain elr {pre.elr:.3g}")
    for i, t in enumerate(tuned):
        loss, gm = _trajectory(t)
        ax.plot(loss, gm, color=f"C{i % 10}", lw=1, label=_label(pre, t))
        if loss.size:
            ax.plot(loss[-1], gm[-1], "o", color=f"C{i % 10}", ms=4)
        for ref in scratch:
            if ref is not pre and ref.elr is not None and math.isclose(ref.elr, t.elr, rel_tol=1e-6):
                loss, gm = _trajectory(ref)
                ax.plot(loss, gm, color=f"C{i % 10}", lw=1, ls="--", alpha=0.7,
                        label=f"from scratch, elr {ref.elr:.3g}")
    ax.set(xscale="log", yscale="log", xlabel="train loss $L_T$", ylabel="GM",
           title=f"phase diagram: fine-tuning from elr {pre.elr:.3g}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _final(run: Run, name: str) -> float:
    return run.final_value(name)


def finetune_rows(groups, paths: list[dict], max_ratio: float = MAX_RATIO,
                  max_err_rise: float = MAX_ERR_RISE) -> list[dict]:
    """One row per fine-tune (see the module doc); errors in %, path columns from its connect.json (— if none)."""
    by_pair = {(str(Path(p["a"]["dir"]).resolve()), str(Path(p["b"]["dir"]).resolve())): p for p in paths}
    rows = []
    for pre, tuned in groups:
        for t in tuned:
            rec = by_pair.get((str(pre.path.resolve()), str(t.path.resolve())))
            pr = path_row(rec, max_ratio, max_err_rise) if rec else {}
            rows.append({
                "pretrain_elr": pre.elr, "factor": t.elr / pre.elr, "finetune_elr": t.elr,
                "pre_train_err": 100 * _final(pre, "train_error"), "ft_train_err": 100 * _final(t, "train_error"),
                "pre_test_err": 100 * _final(pre, "test_error"), "ft_test_err": 100 * _final(t, "test_error"),
                "pre_gm": _final(pre, "gm"), "ft_gm": _final(t, "gm"),
                "peak_ratio": pr.get("peak_ratio", math.nan), "gm_peak_ratio": pr.get("gm_peak_ratio", math.nan),
                "path_train_err_rise": pr.get("train_err_rise", math.nan),
                "path_test_err_rise": pr.get("test_err_rise", math.nan),
                "path_gm_max": pr.get("gm_max", math.nan), "connected": pr.get("connected", "—")})
    return rows


def join_check(groups) -> float:
    """Largest relative difference between a fine-tune's step-0 train loss / GM and its pretrain's last ones
    (the same weights and evaluation batches: ~0 when the join is right)."""
    worst = 0.0
    for pre, tuned in groups:
        for t in tuned:
            for name in ("train_loss", "gm"):
                _, a = pre.series(name)
                s, b = t.series(name)
                if a.size and b.size and s[0] == 0:
                    worst = max(worst, abs(b[0] - a[-1]) / max(abs(a[-1]), 1e-12))
    return worst


def write_finetune(root: str | Path, out: str | Path | None = None, max_ratio: float = MAX_RATIO,
                   max_err_rise: float = MAX_ERR_RISE) -> dict:
    """Every figure and the table of the module doc; returns {markdown, files, checks}."""
    root = Path(root)
    out = Path(out) if out else root / "finetune"
    groups, scratch = group_runs(root)
    if not groups:
        raise LosslandError(f"{root}: no fine-tune runs (runs with init_from=<a run below it>)")
    paths = load_paths(root)
    files = []
    for pre, tuned in groups:
        stem = f"elr_{pre.elr:g}"
        files.append(save_figure(plot_joined(pre, tuned), out / f"{stem}_metrics.png", dpi=DPI))
        files.append(save_figure(plot_phase(pre, tuned, scratch), out / f"{stem}_phase.png", dpi=DPI))
        mine = [p for p in paths if Path(p["a"]["dir"]).resolve() == pre.path.resolve()]
        by_dir = {str(t.path.resolve()): t for t in tuned}
        mine = sorted((p for p in mine if str(Path(p["b"]["dir"]).resolve()) in by_dir),
                      key=lambda p: by_dir[str(Path(p["b"]["dir"]).resolve())].elr)  # colours as in the other figures
        if mine:
            labels = [_label(pre, by_dir[str(Path(p["b"]["dir"]).resolve())]) for p in mine]
            fig = plot_along_path(mine, labels, f"linear path: original (α=0, elr {pre.elr:.3g}) to fine-tuned (α=1)")
            files.append(save_figure(fig, out / f"{stem}_paths.png", dpi=DPI))
    rows = finetune_rows(groups, paths, max_ratio, max_err_rise)
    md = write_table(rows, out, "finetune")
    files += [out / "finetune.csv", out / "finetune.md"]
    checks = [f"join: fine-tune step 0 vs pretrain end, max relative difference in train loss / GM "
              f"{join_check(groups):.2g}"]
    return {"markdown": md, "files": [str(f) for f in files], "checks": checks}
