"""A run's records on disk: ``metrics.csv`` (every logged scalar with step and epoch), ``summary.json``,
checkpoints. Every file is written atomically (temp file in the same directory, then ``os.replace``).
The Lightning logger that writes ``metrics.csv`` is :class:`lossland.loggers.RecordLogger`."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"
METRICS = "metrics.csv"


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write(path, buf.getvalue())


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


def read_summary(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / SUMMARY).read_text())


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """Rows of ``metrics.csv`` as dicts of floats (empty cells omitted)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def __getattr__(name: str):  # ``from lossland.records import RecordLogger`` without importing Lightning eagerly
    if name == "RecordLogger":
        from lossland.loggers import RecordLogger

        return RecordLogger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
