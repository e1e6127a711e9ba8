"""The one reader of the seed documents' values: a study's ``seed.yaml`` (package data of the study's package,
which the study names: ``load(__package__)``), loaded and checked.

A file holds ``study``, ``seed`` (the source file in ``shared/seeds``), ``title``, ``tables`` and ``trends``.
A table has ``title``, ``source`` (where in the seed), ``setting``, ``unit``, ``key`` (the names of the leading
columns of a row that identify it), ``columns`` (the value columns), optional ``info`` (trailing descriptive
columns), ``cell`` (how a value is written: ``value`` — a number or a string as printed; ``mean_std`` —
``[mean, std]``; ``loss_misclassified`` — ``[loss sum, count]``) and ``rows`` (lists: key, values, info).
A trend has ``id``, ``claim`` and ``source``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import yaml

from lossland.errors import LosslandError

CELLS = ("value", "mean_std", "loss_misclassified")
TABLE_FIELDS = ("title", "source", "setting", "unit", "key", "columns", "rows")


@dataclass
class SeedTable:
    id: str
    title: str
    source: str
    setting: str
    unit: str
    key: list[str]
    columns: list
    info: list[str]
    cell: str
    rows: dict[tuple, dict] = field(repr=False)       # key tuple -> {column: value}
    row_info: dict[tuple, dict] = field(repr=False)   # key tuple -> {info column: value}
    column_name: str = ""

    def value(self, key: tuple, column):
        return self.rows.get(tuple(key), {}).get(column)


@dataclass
class Trend:
    id: str
    claim: str
    source: str


@dataclass
class Seed:
    study: str
    seed: str
    title: str
    tables: dict[str, SeedTable]
    trends: list[Trend]
    raw: dict = field(repr=False)


def seed_text(package: str) -> str:
    """The text of ``seed.yaml`` in ``package`` (a study's package, e.g. ``lossland.studies.connect``)."""
    try:
        return (resources.files(package) / "seed.yaml").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        raise LosslandError(f"no seed data: {package} has no seed.yaml") from None


def problems(doc: dict) -> list[str]:
    """Everything wrong with a seed file's structure (empty when well-formed)."""
    out = []
    for k in ("study", "seed", "title", "tables", "trends"):
        if not doc.get(k):
            out.append(f"missing {k}")
    for tid, t in (doc.get("tables") or {}).items():
        for k in TABLE_FIELDS:
            if not t.get(k):
                out.append(f"table {tid}: missing {k}")
        cell = t.get("cell", "value")
        if cell not in CELLS:
            out.append(f"table {tid}: cell {cell} is not one of {', '.join(CELLS)}")
        width = len(t.get("key") or []) + len(t.get("columns") or []) + len(t.get("info") or [])
        for i, row in enumerate(t.get("rows") or []):
            if not isinstance(row, list) or len(row) != width:
                out.append(f"table {tid}: row {i} has {len(row) if isinstance(row, list) else '?'} cells, "
                           f"not {width} (key + columns + info)")
                continue
            values = row[len(t["key"]):len(t["key"]) + len(t["columns"])]
            for v in values:
                if cell != "value" and not (isinstance(v, list) and len(v) == 2):
                    out.append(f"table {tid}: row {i}: {v!r} is not a [a, b] pair ({cell})")
                if cell == "value" and not isinstance(v, (int, float, str)):
                    out.append(f"table {tid}: row {i}: {v!r} is not a number or text")
    ids = set()
    for i, tr in enumerate(doc.get("trends") or []):
        for k in ("id", "claim", "source"):
            if not tr.get(k):
                out.append(f"trend {i}: missing {k}")
        if tr.get("id") in ids:
            out.append(f"trend {tr['id']}: duplicate id")
        ids.add(tr.get("id"))
    return out


def parse(doc: dict) -> Seed:
    bad = problems(doc)
    if bad:
        raise LosslandError(f"seed data of {doc.get('study', '?')}: " + "; ".join(bad))
    tables = {}
    for tid, t in doc["tables"].items():
        nk, nc = len(t["key"]), len(t["columns"])
        info = list(t.get("info") or [])
        rows, row_info = {}, {}
        for row in t["rows"]:
            key = tuple(row[:nk])
            rows[key] = dict(zip(t["columns"], row[nk:nk + nc]))
            row_info[key] = dict(zip(info, row[nk + nc:]))
        tables[tid] = SeedTable(id=tid, title=t["title"], source=t["source"], setting=t["setting"], unit=t["unit"],
                                key=list(t["key"]), columns=list(t["columns"]), info=info,
                                cell=t.get("cell", "value"), rows=rows, row_info=row_info,
                                column_name=t.get("column_name", ""))
    trends = [Trend(tr["id"], tr["claim"], tr["source"]) for tr in doc["trends"]]
    return Seed(doc["study"], doc["seed"], doc["title"], tables, trends, doc)


def load(package: str) -> Seed:
    """The seed data of the study in ``package`` (its ``seed.yaml``), checked (:func:`problems`)."""
    return parse(yaml.safe_load(seed_text(package)))
