"""Priors compared with normalized errors: the connectivity seed's panels c–h in one figure.

*Normalized error* along a path: the test error at each point divided by the straight line between the
endpoints' test errors, e(s) / ((1 − s)·e_A + s·e_B), over the normalised s = (t − t0)/(t1 − t0) ∈ [0, 1];
1 at both ends, and 1 along the path means "no worse than the endpoints". Normalizing removes the prior's
effect on the endpoints themselves (dropout nets have another endpoint error than plain ones), so the priors
are compared on connectivity alone. The seed does not
define its normalization; this is lossland's reading. The *peak* normalized error of a path is its maximum.

Panels (as in the seed): c — Arc at a narrow width (50), d — Arc + OT at a wide width (1000), the normalized
error along the path, one line per prior (mean over pairs, band ± std); e–h — Linear, Arc, Linear + OT,
Arc + OT: the peak normalized error against width, one line per prior (error bars: std over pairs). A width
missing from the records is replaced by the nearest one present (the panel title says which).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from lossland.figures import figure, save_figure
from lossland.studies.connect.seed import METHOD_LABELS

PRIOR_ORDER = ("none", "weight_decay", "dropout", "weight_decay+dropout")
CURVE_PANELS = (("c", "Arc", 50), ("d", "Arc + OT", 1000))
PEAK_PANELS = (("e", "Linear"), ("f", "Arc"), ("g", "Linear + OT"), ("h", "Arc + OT"))


def normalized_error(rec: dict, split: str = "test") -> tuple[np.ndarray, np.ndarray] | None:
    """(s, normalized error at s) of one connect.json record (module doc), None without per-point accuracies
    or with an endpoint error of 0."""
    res = rec.get("result") or {}
    acc = res.get(f"{split}_acc")
    if not acc or "t" not in res:
        return None
    t = np.asarray(res["t"], dtype=float)
    t0, t1 = res.get("t_range", [t[0], t[-1]])
    err = 100.0 - np.asarray(acc, dtype=float)
    if not (err[0] > 0 and err[-1] > 0):
        return None
    s = (t - t0) / (t1 - t0)
    return s, err / ((1 - s) * err[0] + s * err[-1])


def verdict(k: int, n: int) -> str:
    """A claim holding in k of n comparisons: all -> reproduces, a majority -> partly, else does not."""
    return "reproduces" if k == n else ("partly" if 2 * k > n else "does not reproduce")


def _mean_std(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    mean = sum(xs) / n
    return mean, (math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0)


def peak_rows(records: list[dict], split: str = "test") -> list[dict]:
    """Rows {prior, method (label), width, n, mean, std, values} of the peak normalized error per prior ×
    method × width (one-hidden-layer widths only)."""
    groups: dict[tuple, list] = defaultdict(list)
    for rec in records:
        curve = normalized_error(rec, split)
        if curve is None or not isinstance(rec.get("width"), (int, float)):
            continue
        groups[(rec.get("prior", "?"), rec["method"]["label"], rec["width"])].append(float(curve[1].max()))
    rows = []
    for (prior, method, width), xs in groups.items():
        mean, std = _mean_std(xs)
        rows.append({"prior": prior, "method": method, "width": width, "n": len(xs), "mean": mean,
                     "std": std, "values": xs})
    rank = {p: i for i, p in enumerate(PRIOR_ORDER)}
    rows.sort(key=lambda r: (rank.get(r["prior"], 99), r["prior"], r["method"], r["width"]))
    return rows


def _priors(records) -> list[str]:
    rank = {p: i for i, p in enumerate(PRIOR_ORDER)}
    return sorted({r.get("prior", "?") for r in records}, key=lambda p: (rank.get(p, 99), p))


def _nearest(widths, want):
    return min(widths, key=lambda w: (abs(math.log(w / want)), w)) if widths else None


def plot_priors(records: list[dict], out: str | Path, split: str = "test") -> Path:
    """The seed's panels c–h (module doc) from connect.json records; writes a PNG, returns its path."""
    priors = _priors(records)
    colors = {p: f"C{i}" for i, p in enumerate(priors)}
    fig = figure(15, 8.4, layout=None)
    axes = fig.subplots(2, 3).ravel()
    for ax, (panel, name, want) in zip(axes[:2], CURVE_PANELS):
        label = METHOD_LABELS[name]
        widths = sorted({r["width"] for r in records if r["method"]["label"] == label
                         and isinstance(r.get("width"), (int, float))})
        width = _nearest(widths, want)
        for prior in priors:
            curves = [normalized_error(r, split) for r in records if r["method"]["label"] == label
                      and r.get("width") == width and r.get("prior") == prior]
            curves = [c for c in curves if c is not None]
            if not curves or len({len(c[0]) for c in curves}) != 1:
                continue
            s = curves[0][0]
            ys = np.stack([c[1] for c in curves])
            m, sd = ys.mean(0), (ys.std(0, ddof=1) if len(ys) > 1 else np.zeros(len(s)))
            ax.plot(s, m, color=colors[prior], marker=".", label=f"{prior} (n={len(ys)})")
            ax.fill_between(s, m - sd, m + sd, color=colors[prior], alpha=0.15)
        ax.axhline(1.0, color="k", lw=0.6, ls=":")
        ax.set(title=f"({panel}) {name}, hidden {width}", xlabel="t (normalised)",
               ylabel=f"normalized {split} error")
    peaks = peak_rows(records, split)
    for ax, (panel, name) in zip(axes[2:], PEAK_PANELS):
        label = METHOD_LABELS[name]
        for prior in priors:
            pts = sorted((r["width"], r) for r in peaks if r["method"] == label and r["prior"] == prior)
            if pts:
                ax.errorbar([w for w, _ in pts], [r["mean"] for _, r in pts], yerr=[r["std"] for _, r in pts],
                            color=colors[prior], marker="o", ms=3, capsize=2, label=prior)
        ax.axhline(1.0, color="k", lw=0.6, ls=":")
        ax.set_xscale("log")
        present = sorted({r["width"] for r in peaks if r["method"] == label})
        if present:
            ax.set_xticks(present, [str(w) for w in present])
            ax.minorticks_off()
        ax.set(title=f"({panel}) {name}: peak over the path", xlabel="hidden width",
               ylabel=f"peak normalized {split} error")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)
    fig.suptitle("Priors compared: normalized test error e(s) / ((1-s) e_A + s e_B) (seed 001, panels c–h)")
    fig.tight_layout()
    return save_figure(fig, out, dpi=110)


def check_prior_trends(rows: list[dict], methods=tuple(METHOD_LABELS)) -> list[str]:
    """Per prior other than none: in how many (method, width) cells of the seed's methods its mean peak
    normalized error is below the no-prior one (the seed: a prior makes minima more connected)."""
    cells = {(r["prior"], r["method"], r["width"]): r["mean"] for r in rows}
    labels = {METHOD_LABELS[m] for m in methods}
    lines = []
    for prior in _priors(rows):
        if prior == "none":
            continue
        pairs = [(v, cells[("none", m, w)]) for (p, m, w), v in cells.items()
                 if p == prior and m in labels and ("none", m, w) in cells]
        if not pairs:
            continue
        better = sum(v < ref for v, ref in pairs)
        lines.append(f"{prior} vs none: lower peak normalized error in {better}/{len(pairs)} method x width "
                     f"cells ({verdict(better, len(pairs))})")
    return lines
