"""The width study (docs/studies.md#c): tables and plots over many ``connect.json`` files.

Everything is read from the ``connect.json`` files under a folder (never from directory names): the prior
and width of the connected runs and the method (path + alignment) are stored there by
:func:`lossland.studies.connect.run.run_connect`. The metric is a key path into the record's ``summary``, by default
``test.max_acc_loss`` (max over t of mean endpoint test accuracy minus accuracy at t, percentage points).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from pathlib import Path

from lossland.cells import MISSING, cell, pm
from lossland.errors import LosslandError
from lossland.figures import figure, save_figure
from lossland.records import atomic_write
from lossland.studies.connect import seed
from lossland.studies.connect.priors import PRIOR_ORDER, check_prior_trends, peak_rows, plot_priors, verdict

NAIVE_LINEAR = "linear"


def read_connect_records(root: str | Path) -> list[dict]:
    """Every ``connect.json`` with ``status: ok`` under ``root`` (recursively), in path order."""
    root = Path(root)
    if not root.is_dir():
        raise LosslandError(f"{root}: no such directory")
    out = []
    for p in sorted(root.rglob("connect.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if rec.get("status") == "ok":
            rec["_file"] = str(p)
            out.append(rec)
    return out


def metric_value(rec: dict, metric: str):
    """A key path into the record's ``summary`` (e.g. ``test.max_acc_loss``), None if absent. Derived:
    ``<split>.max_err`` = 100 − ``<split>.min_acc``, the maximum error along the path in % (the seed's
    "max accuracy loss", see :mod:`lossland.studies.connect.seed`)."""
    split, _, key = metric.rpartition(".")
    if key == "max_err":
        v = metric_value(rec, f"{split}.min_acc")
        return None if v is None else 100.0 - float(v)
    v = rec.get("summary", {})
    for part in metric.split("."):
        if not isinstance(v, dict) or part not in v:
            return None
        v = v[part]
    return v


def _width_key(w):
    return (0, w) if isinstance(w, (int, float)) else (1, str(w))


def _method_key(label: str):
    """Naive paths first (linear, arc, linear+WA, arc+WA, curves), then the same after each alignment."""
    path, _, align = label.partition(", ")
    order = {"linear": 0, "arc": 1, "linear+WA": 2, "arc+WA": 3, "bezier": 4, "polychain": 5}
    return (align != "", align, order.get(path, 9), path)


def width_table(root: str | Path | list[dict], metric: str = "test.max_acc_loss") -> list[dict]:
    """Rows ``{prior, method, width, n, mean, std, values, seeds}`` (one per prior × method × width), ``std``
    the sample standard deviation over pairs (0 for one pair), sorted by prior, method, width. ``root``: a
    folder of connect.json files or the records already read (:func:`read_connect_records`)."""
    groups: dict[tuple, list] = defaultdict(list)
    for rec in (root if isinstance(root, list) else read_connect_records(root)):
        v = metric_value(rec, metric)
        if v is None:
            continue
        width = rec.get("width")
        width = tuple(width) if isinstance(width, list) else width
        key = (rec.get("prior", "?"), rec.get("method", {}).get("label", "?"), width)
        groups[key].append((float(v), (rec.get("a", {}).get("seed"), rec.get("b", {}).get("seed"))))
    rows = []
    for (prior, method, width), vals in groups.items():
        xs = [v for v, _ in vals]
        n = len(xs)
        mean = sum(xs) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
        width = list(width) if isinstance(width, tuple) else width
        rows.append({"prior": prior, "method": method, "width": width,
                     "n": n, "mean": mean, "std": std, "values": xs, "seeds": [list(s) for _, s in vals]})
    prior_rank = {p: i for i, p in enumerate(PRIOR_ORDER)}
    rows.sort(key=lambda r: (prior_rank.get(r["prior"], 99), r["prior"], _method_key(r["method"]),
                             _width_key(r["width"])))
    return rows


def _grid(rows: list[dict]):
    """{prior: (methods, widths, {(method, width): row})} in table order."""
    out: dict[str, tuple] = {}
    for r in rows:
        methods, widths, cells = out.setdefault(r["prior"], ([], [], {}))
        if r["method"] not in methods:
            methods.append(r["method"])
        w = r["width"] if not isinstance(r["width"], list) else tuple(r["width"])
        if w not in widths:
            widths.append(w)
        cells[(r["method"], w)] = r
    for methods, widths, _ in out.values():
        methods.sort(key=_method_key)
        widths.sort(key=_width_key)
    return out


def _fmt(r: dict | None, missing: str = "") -> str:
    return missing if r is None else pm(r["mean"], r["std"])


def display_name(label: str) -> str:
    """The seed's name of a method (``Linear + OT``; lossland's extra weight matching: ``Linear + WM``), else
    the connect.json label."""
    return seed.seed_name(label) or label


def width_table_markdown(rows: list[dict], metric: str = "test.max_acc_loss") -> str:
    """One Markdown table per prior: methods (rows) × widths (columns), ``mean ± std (n)``."""
    parts = []
    for prior, (methods, widths, cells) in _grid(rows).items():
        ns = sorted({r["n"] for r in cells.values()})
        parts.append(f"### prior: {prior} — {metric} (points), mean ± std over "
                     f"{'/'.join(map(str, ns))} pairs\n")
        parts.append("| method | " + " | ".join(str(w) for w in widths) + " |")
        parts.append("|---|" + "---|" * len(widths))
        for m in methods:
            parts.append(f"| {display_name(m)} | " + " | ".join(_fmt(cells.get((m, w))) for w in widths) + " |")
        parts.append("")
    return "\n".join(parts)


def seed_table_rows(rows: list[dict]) -> dict[str, tuple[str, list[dict]]]:
    """Our ``test.max_err`` rows beside the seed's table (:mod:`lossland.studies.connect.seed`), per prior:
    (title, methods × widths rows with cells ``ours mean ± std [seed]``; ``[—]``: the seed has no value there).
    The seed's methods first, in its order, then lossland's extras."""
    names = {**seed.METHOD_LABELS, **seed.EXTRA_LABELS}
    out = {}
    for prior, (methods, widths, cells) in _grid(rows).items():
        ns = sorted({r["n"] for r in cells.values()})
        has_seed = prior in seed.TABLES
        title = (f"prior: {prior} — max test error along the path (%), ours mean ± std over "
                 f"{'/'.join(map(str, ns))} pairs" + (" [seed]" if has_seed else " (the seed has no table for "
                                                      "this prior)"))
        ordered = [lab for lab in names.values() if lab in methods] + [m for m in methods
                                                                       if m not in names.values()]
        table = []
        for m in ordered:
            row = {"method": display_name(m)}
            for w in widths:
                sv = seed.seed_value(prior, m, w)
                row[str(w)] = _fmt(cells.get((m, w)), MISSING) + ("" if not has_seed else f" [{cell(sv, '.2f')}]")
            table.append(row)
        out[prior] = (title, table)
    return out


def seed_table_markdown(rows: list[dict]) -> str:
    """:func:`seed_table_rows` as markdown, one table per prior under its title."""
    parts = [f"Unit: {seed.UNIT}. Seed setting: {seed.SETTING}.\n"]
    for title, table in seed_table_rows(rows).values():
        parts.append(f"### {title}\n")
        parts.append("| " + " | ".join(table[0]) + " |")
        parts.append("|---|" + "---|" * (len(table[0]) - 1))
        parts += ["| " + " | ".join(r.values()) + " |" for r in table]
        parts.append("")
    return "\n".join(parts)


_ADVANCED = ("Linear + WA", "Arc + WA", "Linear + OT", "Arc + OT")
_BASIC = ("Linear", "Arc")


def _seed_cells() -> dict:
    return {(p, seed.METHOD_LABELS[m], w): v for p, tab in seed.TABLES.items() for m, vals in tab.items()
            for w, v in zip(seed.WIDTHS, vals)}


def check_seed_trends(rows: list[dict]) -> list[str]:
    """The seed's claims on ``test.max_err`` rows, one line each per prior, with the same count on the seed's
    own table in brackets (over the same comparisons, where the seed has them): (1) every WA/OT method below
    both Linear and Arc at the same width; (2) each method's error lower at the widest than at the narrowest
    width; (3) dropout below no prior per method × width (un-normalized; the normalized comparison is
    :func:`lossland.studies.connect.priors.check_prior_trends`)."""
    ours = {(r["prior"], r["method"], r["width"]): r["mean"] for r in rows}
    ref = _seed_cells()
    lines = []
    for prior in _grid(rows):
        widths = sorted({w for (p, _, w) in ours if p == prior and isinstance(w, (int, float))})
        if widths:
            lines += _advanced_below_naive(ours, ref, prior, widths) + _falls_with_width(ours, ref, prior, widths)
    return lines + _dropout_below_none(ours, ref)


def _tally(ours: dict, ref: dict, test, keys) -> tuple[int, int, str]:
    """How many of the comparisons ``keys`` hold on ours (test → None: not comparable there), and the same count
    on the seed's table over the comparisons ours has, as `` [seed: k/n]`` (empty when it has none)."""
    hits = [h for h in (test(ours, k) for k in keys) if h is not None]
    seed_hits = [h for h in (test(ref, k) for k in keys if test(ours, k) is not None) if h is not None]
    return sum(hits), len(hits), f" [seed: {sum(seed_hits)}/{len(seed_hits)}]" if seed_hits else ""


def _below(cells: dict, low: tuple, high: tuple) -> bool | None:
    return cells[low] < cells[high] if low in cells and high in cells else None


def _advanced_below_naive(ours: dict, ref: dict, prior: str, widths: list) -> list[str]:
    adv = [seed.METHOD_LABELS[m] for m in _ADVANCED]
    basic = [seed.METHOD_LABELS[m] for m in _BASIC]
    keys = [(a, b, w) for a in adv for b in basic for w in widths]
    k, n, seed_part = _tally(ours, ref, lambda c, key: _below(c, (prior, key[0], key[2]), (prior, key[1], key[2])),
                             keys)
    return [f"{prior}: WA/OT below Linear and Arc in {k}/{n} comparisons{seed_part} ({verdict(k, n)})"] if n else []


def _falls_with_width(ours: dict, ref: dict, prior: str, widths: list) -> list[str]:
    lo, hi = min(widths), max(widths)
    if lo == hi:
        return []
    methods = [seed.METHOD_LABELS[m] for m in (*_ADVANCED, *_BASIC)]
    k, n, seed_part = _tally(ours, ref, lambda c, m: _below(c, (prior, m, hi), (prior, m, lo)), methods)
    return [f"{prior}: error lower at width {hi} than at {lo} for {k}/{n} methods{seed_part} ({verdict(k, n)})"]


def _dropout_below_none(ours: dict, ref: dict) -> list[str]:
    priors = {p for p, _, _ in ours}
    if not {"dropout", "none"} <= priors:
        return []
    widths = sorted({w for (_, _, w) in ours if isinstance(w, (int, float))})
    keys = [(seed.METHOD_LABELS[m], w) for m in (*_ADVANCED, *_BASIC) for w in widths]
    k, n, seed_part = _tally(ours, ref, lambda c, key: _below(c, ("dropout", *key), ("none", *key)), keys)
    return [f"dropout below no prior (max error) in {k}/{n} method x width cells{seed_part} ({verdict(k, n)})"] \
        if n else []


def width_table_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["prior", "method", "width", "n", "mean", "std", "values"])
    for r in rows:
        w.writerow([r["prior"], r["method"], r["width"], r["n"], f"{r['mean']:.6g}", f"{r['std']:.6g}",
                    " ".join(f"{v:.6g}" for v in r["values"])])
    return buf.getvalue()


def plot_width(rows: list[dict], out: str | Path, metric: str = "test.max_acc_loss") -> Path:
    """Max accuracy loss against width (log x), one line per method (error bars: std), one panel per prior."""

    grid = _grid(rows)
    fig = figure(5.2 * max(1, len(grid)), 4.2, layout=None)
    axes = fig.subplots(1, max(1, len(grid)), squeeze=False, sharey=True)
    for ax, (prior, (methods, widths, cells)) in zip(axes[0], grid.items()):
        for i, m in enumerate(methods):
            pts = [(w, cells[(m, w)]) for w in widths if (m, w) in cells and isinstance(w, (int, float))]
            if not pts:
                continue
            ls = "--" if ", " not in m else "-"
            ax.errorbar([w for w, _ in pts], [r["mean"] for _, r in pts], yerr=[r["std"] for _, r in pts],
                        ls=ls, marker="o", ms=3, capsize=2, color=f"C{i % 10}", label=m)
        ax.set_xscale("log")
        ax.set(title=f"prior: {prior}", xlabel="hidden width")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{metric} (points)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out, dpi=120)


def check_width_trends(rows: list[dict], min_width: int = 50) -> list[str]:
    """Study C's expectations, one line each (``ok`` / ``FAILS``) per prior: every aligned path has a lower
    mean max accuracy loss than the naive linear path at every width ≥ ``min_width``, and the naive linear
    path's loss is lower at the widest than at the narrowest width."""
    lines = []
    for prior, (methods, widths, cells) in _grid(rows).items():
        num = [w for w in widths if isinstance(w, (int, float))]
        if not num or all((NAIVE_LINEAR, w) not in cells for w in num):
            continue
        bad = []
        for m in (m for m in methods if ", " in m):
            for w in num:
                if w >= min_width and (m, w) in cells and (NAIVE_LINEAR, w) in cells \
                        and not cells[(m, w)]["mean"] < cells[(NAIVE_LINEAR, w)]["mean"]:
                    bad.append(f"{m}@{w}")
        lines.append(f"{prior}: aligned < naive linear at every width >= {min_width}: "
                     + ("ok" if not bad else "FAILS (" + ", ".join(bad) + ")"))
        lo, hi = min(num), max(num)
        if lo != hi and (NAIVE_LINEAR, lo) in cells and (NAIVE_LINEAR, hi) in cells:
            a, b = cells[(NAIVE_LINEAR, lo)]["mean"], cells[(NAIVE_LINEAR, hi)]["mean"]
            lines.append(f"{prior}: naive linear falls from width {lo} ({a:.2f}) to width {hi} ({b:.2f}): "
                         + ("ok" if b < a else "FAILS"))
    return lines


def all_checks(rows: list[dict], err_rows: list[dict], peaks: list[dict]) -> list[str]:
    """Every check line of the width study: :func:`check_width_trends` on ``rows`` (a ``test.max_acc_loss``
    table), :func:`check_seed_trends` on ``err_rows`` (``test.max_err``) and the priors' normalized-error
    comparison on ``peaks`` (:func:`~lossland.studies.connect.priors.peak_rows`)."""
    return check_width_trends(rows) + check_seed_trends(err_rows) + check_prior_trends(peaks)


def write_width_table(root: str | Path, out: str | Path | None = None,
                      metric: str = "test.max_acc_loss") -> dict:
    """Write into ``out`` (default ``root``): ``width_table.csv`` / ``.md`` and ``width_plot.png`` (``metric``),
    ``seed_table.md`` (max test error beside the seed's table), ``peak_normalized_error.csv`` and
    ``priors.png`` (the seed's panels c–h, :mod:`lossland.studies.connect.priors`); returns {rows, files, markdown,
    seed_markdown, checks}. The checks (also appended to width_table.md) state per claim whether it holds."""
    records = read_connect_records(root)
    rows = width_table(records, metric)
    if not rows:
        raise LosslandError(f"{root}: no connect.json with status ok (and metric {metric}) below it")
    out = Path(out) if out is not None else Path(root)
    md = width_table_markdown(rows, metric)
    err_rows = width_table(records, "test.max_err")
    seed_md = seed_table_markdown(err_rows)
    peaks = peak_rows(records)
    checks = all_checks(rows, err_rows, peaks)
    files = [atomic_write(out / "width_table.csv", width_table_csv(rows)),
             atomic_write(out / "width_table.md", md + ("\n" + "\n".join(f"- {c}" for c in checks) + "\n"
                                                        if checks else "")),
             plot_width(rows, out / "width_plot.png", metric),
             atomic_write(out / "seed_table.md", seed_md),
             atomic_write(out / "peak_normalized_error.csv", width_table_csv(peaks))]
    if peaks:
        files.append(plot_priors(records, out / "priors.png"))
    return {"rows": rows, "files": [str(f) for f in files], "markdown": md, "seed_markdown": seed_md,
            "checks": checks}
