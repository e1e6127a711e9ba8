"""Our values beside the seed's: one side-by-side row per seed row (and per our row that stands beside none),
verdicts of the claimed trends, and a figure per table.

Cells keep the seed table's kind (:data:`lossland.paper.data.CELLS`): a number or text, ``[mean, std]``, or
``[loss sum, misclassified]``; ``None`` is "not measured" and shows as —.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from lossland.cells import cell, loss_count, pm
from lossland.paper.data import SeedTable

REPRODUCES, FAILS, NOT_MEASURED = "reproduces", "does not reproduce", "not measured"


@dataclass
class Ours:
    """One row of our values: ``key`` names our setting (our data set, width, ...), ``seed_key`` the seed row
    it stands beside (``None``: the same key), ``values`` {column: cell}."""

    key: tuple
    values: dict
    seed_key: tuple | None = None
    note: str = ""


@dataclass
class Verdict:
    trend: str
    verdict: str
    detail: str
    claim: str = field(default="", repr=False)


def judge(ok: bool | None, detail: str) -> tuple[str, str]:
    """``(verdict, detail)``: True → reproduces, False → does not reproduce, None → not measured."""
    return (NOT_MEASURED if ok is None else REPRODUCES if ok else FAILS), detail


def number(v, cell: str = "value") -> float:
    """The plotted / compared number of a cell: the value, the mean, or the misclassified count; NaN if none."""
    if v is None:
        return math.nan
    if isinstance(v, (list, tuple)):
        v = v[1] if cell == "loss_misclassified" else v[0]
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def fmt(v, kind: str = "value") -> str:
    """A cell of a seed table's kind (:data:`lossland.paper.data.CELLS`) as text (:mod:`lossland.cells`)."""
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return pm(*v) if kind == "mean_std" else loss_count(*v)
    return cell(v)


def seed_rows(table: SeedTable) -> list[Ours]:
    """The seed table itself as rows of "our" values (to check that the trend functions pass on the seed)."""
    return [Ours(key=k, values=dict(v)) for k, v in table.rows.items()]


def side_by_side(table: SeedTable, ours: list[Ours]) -> list[dict]:
    """Rows ``{key columns, "<col> (seed)", "<col> (ours)", ..., "ours row", info columns, "note"}``: every seed
    row in the seed's order (beside each of our rows matched to it, or —), then our rows matched to none."""
    def row(key, seed_vals, o: Ours | None):
        r = {str(k): ("" if v is None else str(v)) for k, v in zip(table.key, key)}
        for c in table.columns:
            r[f"{c} (seed)"] = fmt(None if seed_vals is None else seed_vals.get(c), table.cell)
            r[f"{c} (ours)"] = fmt(None if o is None else o.values.get(c), table.cell)
        r["ours row"] = "" if o is None or o.key == tuple(key) else " ".join(str(x) for x in o.key)
        info = table.row_info.get(tuple(key), {})
        r.update({str(i): str(info.get(i, "")) for i in table.info})
        r["note"] = "" if o is None else o.note
        return r

    out, used = [], set()
    for key, vals in table.rows.items():
        matched = [i for i, o in enumerate(ours) if tuple(o.seed_key or o.key) == key]
        used.update(matched)
        out += [row(key, vals, ours[i]) for i in matched] or [row(key, vals, None)]
    for i, o in enumerate(ours):
        if i not in used:
            out.append(row(o.seed_key or o.key, None, o))
    return out


def table_figure(table: SeedTable, ours: list[Ours]):
    """Seed (dashed, hatched) beside ours (solid): lines against the columns when they are numbers (widths),
    grouped bars otherwise; the plotted number of a cell is :func:`number`. ``None`` when nothing is numeric."""
    from lossland.figures import figure  # here: reading tables does not need matplotlib

    numeric_cols = all(isinstance(c, (int, float)) for c in table.columns)
    matched = {tuple(o.seed_key or o.key) for o in ours}
    series = []  # (label, values per column, is_seed, seed row): each seed row, then our rows beside it

    def values(cells):
        return [number(cells.get(c), table.cell) for c in table.columns]

    for key, vals in table.rows.items():
        if not numeric_cols and matched & set(table.rows) and key not in matched:
            continue  # bars: only the seed rows we stand beside (all of them when we stand beside none)
        name = " ".join(map(str, key))
        series.append((name, values(vals), True, name))
        series += [(" ".join(map(str, o.key)), values(o.values), False, name)
                   for o in ours if tuple(o.seed_key or o.key) == key]
    series += [(" ".join(map(str, o.key)), values(o.values), False, " ".join(map(str, o.key)))
               for o in ours if tuple(o.seed_key or o.key) not in table.rows]
    if not any(math.isfinite(x) for _, vals, _, _ in series for x in vals):
        return None
    fig = figure(7.5, 4.2, layout=None)
    ax = fig.add_subplot(1, 1, 1)
    if numeric_cols:
        colors: dict[str, str] = {}
        for label, vals, is_seed, group in series:
            pts = [(c, x) for c, x in zip(table.columns, vals) if math.isfinite(x)]
            if pts:
                ax.plot([c for c, _ in pts], [x for _, x in pts], ls="--" if is_seed else "-", marker="o", ms=3,
                        color=colors.setdefault(group, f"C{len(colors) % 10}"),
                        label=f"{'seed' if is_seed else 'ours'}: {label}")
        ax.set_xscale("log")
        ax.set_xlabel(table.column_name or "column")
    else:
        groups = [(f"{label}\n{c}", x, is_seed) for c in table.columns for label, vals, is_seed, _ in series
                  for cc, x in zip(table.columns, vals) if cc == c and math.isfinite(x)]
        ax.bar(range(len(groups)), [x for _, x, _ in groups], color=["C0" if s else "C1" for _, _, s in groups],
               hatch=None)
        for i, (_, _, s) in enumerate(groups):
            ax.patches[i].set_hatch("//" if s else "")
        ax.set_xticks(range(len(groups)), [g for g, _, _ in groups], fontsize=6, rotation=60, ha="right")
        ax.set_title("seed: hatched, ours: plain", fontsize=8)
    ax.set_ylabel(table.unit[:60] + ("…" if len(table.unit) > 60 else ""), fontsize=7)
    fig.suptitle(table.title, fontsize=9)
    if numeric_cols:
        ax.legend(fontsize=6, ncol=2)
    return fig


def header(table: SeedTable) -> str:
    return (f"**{table.title}** — unit: {table.unit}. Seed setting: {table.setting}. Source: {table.source}.\n\n")


def save_table_figure(table: SeedTable, ours: list[Ours], out: Path) -> Path | None:
    from lossland.figures import save_figure

    if "unit" in table.info:  # one unit per row: a shared axis would mislead (the study draws its own figure)
        return None
    fig = table_figure(table, ours)
    return None if fig is None else save_figure(fig, out / f"{table.id}.png")
