"""The logger behind ``metrics.csv``, and closing a job's loggers (kept apart from :mod:`lossland.records` so
that reading records does not import Lightning)."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from lightning.fabric.loggers.logger import Logger, rank_zero_experiment

from lossland.records import METRICS_CSV, atomic_write


class RecordLogger(Logger):
    """Keeps every logged scalar in memory (``rows``) and writes ``metrics.csv`` atomically when the trainer
    flushes (at every due step and checkpoint) and at the end. Columns: ``step``, ``epoch``, then metric names.
    ``save_dir=None``: in memory only (a study reading its rows back, e.g. the vanishing-gradient lab).

    ``rows``: the records of an interrupted run to continue (those up to its last checkpoint; the resumed
    run logs the later ones again).
    """

    def __init__(self, save_dir: str | Path | None, rows: list[dict[str, float]] | None = None):
        super().__init__()
        self._dir = Path(save_dir) if save_dir is not None else None
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
        return None if self._dir is None else str(self._dir)

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
        if self._dir is None:
            return
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



def close_loggers(loggers, status: str) -> dict:
    """Finish every logger at the end of a job (``metrics.csv`` written, a W&B run closed). Returns what the job's
    summary records of them: ``wandb`` (the W&B run's id, group and directory) and ``logger_errors`` (a tracker's
    failure never loses the local records)."""
    out: dict = {}
    for lg in loggers:
        try:
            lg.finalize("success" if status == "ok" else "failed")
            if type(lg).__name__ == "WandbLogger":
                out["wandb"] = {"id": lg.experiment.id, "group": lg.experiment.group, "dir": lg.experiment.dir}
        except Exception as e:  # noqa: BLE001 - see the docstring
            out.setdefault("logger_errors", []).append(f"{type(lg).__name__}: {e}")
    return out


def finish_wandb() -> None:
    """End the process's W&B run, if any, so that the next job of a multirun starts a new one."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
