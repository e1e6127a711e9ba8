"""Writing files atomically — text, JSON, tables, torch objects, and files other libraries write by name — the one
implementation every record, report and figure of lossland goes through (temp file in the same directory, then
``os.replace``): :func:`atomic_path`. Figures are saved through it by :mod:`lossland.figures`; reading records back
is :mod:`lossland.runs`; the logger behind ``metrics.csv`` is :class:`lossland.loggers.RecordLogger`."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from lossland.cells import cell

# A run directory's record files (read back by lossland.runs).
SUMMARY_JSON = "summary.json"
METRICS_CSV = "metrics.csv"
CONFIG_YAML = Path(".hydra") / "config.yaml"


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file name beside ``path`` for a writer that needs a name (an animation writer, a checkpoint
    saver); on a clean exit it replaces ``path`` in one step, on an error it is removed and ``path`` is left as it
    was. ``suffix``: the temporary name's (a writer that chooses its format by the suffix needs ``path.suffix``;
    the default keeps temporary files out of globs such as ``*.ckpt``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """:func:`atomic_path` for bytes in hand, written through the temporary file's own descriptor (every
    record goes through here: fewer system calls per write)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            os.fchmod(f.fileno(), 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def torch_bytes(obj: Any) -> bytes:
    """What ``torch.save(obj, path)`` writes to the file."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    return atomic_write(path, torch_bytes(obj))


def finite_or_none(v):
    """JSON has no NaN/inf: non-finite floats become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: finite_or_none(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite_or_none(x) for x in v]
    return v


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write(path, json.dumps(finite_or_none(obj), indent=2, default=str) + "\n")


def write_csv(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    """``rows`` as CSV: the ``columns`` given, then every other key of the rows in order of appearance; a key a
    row lacks is an empty cell."""
    cols = dict.fromkeys(columns or [])
    for r in rows:
        cols.update(dict.fromkeys(k for k in r if k is not None))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(cols), lineterminator="\n", restval="")
    w.writeheader()
    w.writerows({k: v for k, v in r.items() if k is not None} for r in rows)
    return atomic_write(path, buf.getvalue())


def write_table(rows: list[dict], out: str | Path, stem: str, spec: str = ".4g") -> str:
    """A study table: ``<out>/<stem>.csv`` and ``<out>/<stem>.md`` (markdown, also returned; cells by
    :func:`lossland.cells.cell`, numbers in ``spec``)."""
    if not rows:
        raise ValueError(f"{stem}: nothing to tabulate")
    out, keys = Path(out), list(rows[0])
    write_csv(out / f"{stem}.csv", rows, keys)

    md = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n"
    md += "".join("| " + " | ".join(cell(r[k], spec) for k in keys) + " |\n" for r in rows)
    atomic_write(out / f"{stem}.md", md)
    return md
