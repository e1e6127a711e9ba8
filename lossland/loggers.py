"""The Lightning logger behind ``metrics.csv`` (kept apart from :mod:`lossland.records` so that reading
records does not import Lightning)."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment

from lossland.records import METRICS, atomic_write


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
