"""The logger behind ``metrics.csv`` (kept apart from :mod:`lossland.records` so that reading records does not
import Lightning)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from lightning.fabric.loggers.logger import Logger, rank_zero_experiment

from lossland.records import METRICS_CSV, atomic_write


class RecordLogger(Logger):
    """Keeps every logged scalar in memory and writes ``metrics.csv`` atomically when the trainer flushes
    (at every due step and checkpoint) and at the end. Columns: ``step``, ``epoch``, then metric names.

    ``rows``: the records of an interrupted run to continue (those up to its last checkpoint; the resumed
    run logs the later ones again).
    """

    def __init__(self, save_dir: str | Path, rows: list[dict[str, float]] | None = None):
        super().__init__()
        self._dir = Path(save_dir)
        self.rows: list[dict[str, float]] = list(rows or [])
        self.epoch = self.rows[-1]["epoch"] if self.rows else 0

    @property
    def name(self):
        return "records"

    @property
    def version(self):
        return 0

    @property
    def root_dir(self):
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

    def save(self):
        cols: dict[str, None] = {"step": None, "epoch": None}
        for r in self.rows:
            cols.update(dict.fromkeys(r))
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=list(cols), lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: (int(v) if k in ("step", "epoch") else repr(v)) for k, v in r.items()})
        atomic_write(self._dir / METRICS_CSV, out.getvalue())

    def finalize(self, status: str = "success"):
        self.save()

