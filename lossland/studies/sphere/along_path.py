"""Metrics along linear paths between two runs of study S, read from ``connect.json`` records (seed 003,
Figs 3, 5, 6): train loss, train error, test error and GM against α, and the seed's "linearly connected" test.

The seed calls two models linearly connected when the curves along α ∈ [0, 1] have no pronounced extremum
inside the segment. Its figures are on log axes, so lossland measures peaks as ratios: ``peak_ratio`` = max over
interior points of the train loss / the larger endpoint train loss, ``gm_peak_ratio`` the same for GM; error
rises are in percentage points (max over α of the error minus the larger endpoint error). A pair is
*connected* when both ratios are ≤ ``max_ratio`` (default 2: at most a doubling between the ends) and neither
the train nor the test error rises by more than ``max_err_rise`` points (default 2) inside the path. Train
metrics are full-pass with BN statistics recomputed at each point (``lossland connect``); GM is measured on run
A's fixed evaluation mini-batches (``lossland connect A B gm=true``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lossland.errors import LosslandError
from lossland.figures import figure
from lossland.runs import locate, open_run

MAX_RATIO = 2.0
MAX_ERR_RISE = 2.0


def load_paths(root: str | Path) -> list[dict]:
    """Every ``connect.json`` below ``root`` with status ok, each with ``file`` (its path) added and its ends'
    run directories found again below ``root`` if the sweep was moved (:func:`lossland.runs.locate`)."""
    out = []
    for f in sorted(Path(root).rglob("connect.json")):
        if any(p.startswith(".") for p in f.relative_to(root).parts):
            continue
        try:
            rec = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise LosslandError(f"unreadable {f}: {e}") from None
        if rec.get("status") == "ok" and "result" in rec:
            for end in ("a", "b"):
                if isinstance(rec.get(end), dict) and rec[end].get("dir"):
                    rec[end]["dir"] = str(locate(rec[end]["dir"], root))
            out.append({**rec, "file": str(f)})
    return out


def alpha(rec: dict) -> np.ndarray:
    """The path parameter normalised to [0, 1] (α: 0 = run A, 1 = run B)."""
    r = rec["result"]
    t0, t1 = r.get("t_range", [min(r["t"]), max(r["t"])])
    return (np.asarray(r["t"], float) - t0) / (t1 - t0)


def curves(rec: dict) -> dict[str, np.ndarray]:
    """α and the per-point curves of one record: train_loss, train_error and test_error (in %), gm (NaN when
    the record has none)."""
    r = rec["result"]
    n = len(r["t"])
    out = {"alpha": alpha(rec), "train_loss": np.asarray(r["train_loss"], float),
           "train_error": 100.0 - np.asarray(r["train_acc"], float)}
    out["test_error"] = 100.0 - np.asarray(r["test_acc"], float) if "test_acc" in r else np.full(n, np.nan)
    out["gm"] = np.asarray(r["gm"], float) if "gm" in r else np.full(n, np.nan)
    return out


def _rise(v: np.ndarray) -> float:
    """max over α of v minus the larger endpoint value (≥ 0 up to noise)."""
    return float(np.nanmax(v) - max(v[0], v[-1])) if np.isfinite(v).any() else math.nan


def _peak(v: np.ndarray) -> float:
    """max over interior points / the larger endpoint (NaN without interior points or values)."""
    ends, inner = max(v[0], v[-1]), v[1:-1]
    return float(np.nanmax(inner) / ends) if inner.size and ends > 0 and np.isfinite(inner).any() else math.nan


def path_row(rec: dict, max_ratio: float = MAX_RATIO, max_err_rise: float = MAX_ERR_RISE) -> dict:
    """The connectivity summary of one path: endpoint elrs, peak ratios of train loss and GM, error rises
    (points), GM at the ends and its maximum, and ``connected`` (see the module doc; a NaN GM or test curve
    is left out of the test)."""
    c = curves(rec)
    loss, gm = c["train_loss"], c["gm"]
    peak, gm_peak = _peak(loss), _peak(gm)
    train_rise, test_rise = _rise(c["train_error"]), _rise(c["test_error"])
    ok = (peak <= max_ratio and not gm_peak > max_ratio and train_rise <= max_err_rise
          and not test_rise > max_err_rise)
    return {"elr_a": _elr(rec["a"]["dir"]), "elr_b": _elr(rec["b"]["dir"]),
            "train_loss_a": float(loss[0]), "train_loss_b": float(loss[-1]),
            "peak_ratio": peak, "gm_peak_ratio": gm_peak, "train_err_rise": train_rise, "test_err_rise": test_rise,
            "gm_a": float(gm[0]), "gm_b": float(gm[-1]), "gm_max": float(np.nanmax(gm)) if np.isfinite(gm).any()
            else math.nan,
            "connected": "yes" if ok else ("no" if math.isfinite(peak) else "?")}


def _elr(run_dir: str) -> float:
    try:
        v = open_run(run_dir).elr
    except LosslandError:
        return math.nan
    return math.nan if v is None else float(v)


PANELS = (("train_loss", "train loss $L_T$", True), ("train_error", "train error $E_T$ (%)", True),
          ("test_error", "test error $E_t$ (%)", False), ("gm", "GM", True))


def plot_along_path(records: Sequence[dict], labels: Sequence[str], title: str | None = None) -> Figure:
    """One row of four panels (train loss, train error, test error, GM) against α, one line per record. Log
    axes as in the seed; zero train errors are not drawn (the seed's convention)."""
    fig = figure(14, 3.4)
    axes = fig.subplots(1, len(PANELS))
    for i, (rec, label) in enumerate(zip(records, labels)):
        c = curves(rec)
        for ax, (key, _, log) in zip(axes, PANELS):
            v = c[key].copy()
            if log:
                v[v <= 0] = np.nan
            ax.plot(c["alpha"], v, marker=".", color=f"C{i % 10}", label=label)
    for ax, (_, name, log) in zip(axes, PANELS):
        ax.set(xlabel="α (0 = A, 1 = B)", title=name)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig
