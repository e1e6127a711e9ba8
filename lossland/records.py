"""A run's records on disk: ``metrics.csv`` (every logged scalar with step and epoch), ``summary.json``,
checkpoints. Every file is written atomically (temp file in the same directory, then ``os.replace``)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment

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


class RecordLogger(Logger):
    """Lightning logger keeping every logged scalar in memory and writing ``metrics.csv`` atomically
    (at most every ``flush_s`` seconds, and at the end). Columns: ``step``, ``epoch``, then metric names."""

    def __init__(self, save_dir: str | Path, flush_s: float = 10.0):
        super().__init__()
        self._dir = Path(save_dir)
        self.rows: list[dict[str, float]] = []
        self.flush_s, self._last_flush = flush_s, time.monotonic()
        self.epoch = 0

    @property
    def name(self):
        return "records"

    @property
    def version(self):
        return 0

    @property
    def save_dir(self):
        return str(self._dir)

    @property
    @rank_zero_experiment
    def experiment(self):
        return self

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None):
        row = {"step": step if step is not None else -1, "epoch": metrics.get("epoch", self.epoch)}
        row.update({k: float(v) for k, v in metrics.items() if k != "epoch"})
        self.epoch = row["epoch"]
        last = self.rows[-1] if self.rows else None
        if last is not None and last["step"] == row["step"] and last["epoch"] == row["epoch"] \
                and not (row.keys() - {"step", "epoch"}) & last.keys():
            last.update(row)  # one row per step where the metrics do not collide
        else:
            self.rows.append(row)
        if time.monotonic() - self._last_flush > self.flush_s:
            self.save()

    def save(self):
        cols: dict[str, None] = {"step": None, "epoch": None}
        for r in self.rows:
            cols.update(dict.fromkeys(r))
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=list(cols), lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: (int(v) if k in ("step", "epoch") else repr(v)) for k, v in r.items()})
        atomic_write(self._dir / METRICS, out.getvalue())
        self._last_flush = time.monotonic()

    def finalize(self, status: str = "success"):
        self.save()
