"""The logger behind ``metrics.csv``, a job's W&B run (:class:`WandbLogger`), and closing a job's loggers (kept
apart from :mod:`lossland.records` so that reading records does not import Lightning)."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from lightning.fabric.loggers.logger import Logger, rank_zero_experiment
from lightning.fabric.utilities.rank_zero import rank_zero_only

from lossland.records import METRICS_CSV, atomic_write

log = logging.getLogger("lossland")


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
        self._dirty = True  # rows logged since metrics.csv was last written
        self._cols: dict[str, None] = {"step": None, "epoch": None}  # metrics.csv's columns so far
        self._lines: list[str] = []  # its lines of rows[:len(_lines)], which no longer change

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
        self._dirty = True
        last = self.rows[-1] if self.rows else None
        if last is not None and last["step"] == row["step"] and last["epoch"] == row["epoch"] \
                and all(k in last and last[k] == v for k, v in row.items()):
            return  # logged again by a resumed run (an epoch's end after a checkpoint of its last step): kept once
        if last is not None and last["step"] == row["step"] and last["epoch"] == row["epoch"] \
                and not (row.keys() - {"step", "epoch"}) & last.keys():
            last.update(row)  # one row per step where the metrics do not collide
        else:
            self.rows.append(row)

    def save(self):
        if self._dir is None or not self._dirty:  # nothing new: the file on disk is up to date
            return
        atomic_write(self._dir / METRICS_CSV, self.csv_text())
        self._dirty = False

    def csv_text(self) -> str:
        """``metrics.csv``: a header of every column, then a line per row (``step`` and ``epoch`` as integers,
        metrics as ``repr`` of the float, an empty cell for a metric the row lacks). A row before the last no
        longer changes, so its line is kept from the previous call unless a new column has appeared since."""
        if len(self._lines) >= len(self.rows):  # (rows are only appended to, or their last one completed)
            self._lines = []
        cols = dict(self._cols)
        for r in self.rows[len(self._lines):]:
            cols.update(dict.fromkeys(r))
        if list(cols) != list(self._cols):  # a new column: every line gains a cell
            self._cols, self._lines = cols, []
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=list(cols), lineterminator="\n")
        w.writeheader()
        header = out.tell()
        ends = []
        for r in self.rows[len(self._lines):]:
            w.writerow({k: (int(v) if k in ("step", "epoch") else repr(v)) for k, v in r.items()})
            ends.append(out.tell())
        text = out.getvalue()
        new = [text[a:b] for a, b in zip([header, *ends[:-1]], ends)]
        self._lines += new[:-1]  # the last row's line is made again next time
        return text[:header] + "".join(self._lines) + "".join(new[-1:])

    def finalize(self, status: str = "success"):
        self.save()



# ---------------------------------------------------------------------------------------------- W&B
STEP_KEY = "trainer/global_step"  # the x axis of every logged metric (Lightning's name, kept for old dashboards)
# Entries of summary.json that are not results: where and how the job ran, or kept elsewhere in W&B (config).
NOT_IN_TRACKER = ("pid", "host", "overrides", "wandb", "scheduler_job", "data_order", "genotype", "logger_errors")


def tracker_summary(summary: Mapping) -> dict:
    """The W&B run summary of a job's ``summary.json``: every scalar entry (``status``, ``steps``, ``epochs``,
    ``wall_s``, ``diverged_at_step``, ``diverged_cause``, the rates used ``elr`` / ``lr`` / ``*_final``,
    ``stopped_early``, ``converged_step``, NAS accuracies, ...) under its own name, and every scalar of a nested
    record under ``<record>/<name>``: ``final/test_error``, ``grid/index``. Lists and :data:`NOT_IN_TRACKER` are
    left out; ``None`` stays (W&B keeps it as null, and NaN as null too)."""
    def scalar(v):
        return v is None or isinstance(v, bool | int | float | str)

    out: dict = {}
    for key, value in summary.items():
        if key in NOT_IN_TRACKER:
            continue
        if isinstance(value, Mapping):
            out.update({f"{key}/{k}": v for k, v in value.items() if scalar(v)})
        elif scalar(value):
            out[key] = value
    return out


class WandbLogger(Logger):
    """A job's W&B run (``conf/logger/wandb.yaml``): offline by default, the job's config, every logged scalar
    against ``trainer/global_step``, and at the end the job's record as the run summary (:meth:`end_job`).

    One W&B run per job, across resumes: the job binds its run id (:meth:`bind`), and a resumed job continues that
    W&B run (``resume="allow"``; offline, a second ``offline-run-*`` directory with the same id, which ``wandb
    sync`` uploads after the first). Its history continues where the W&B run's ends: the steps it already holds
    are not logged again, and the local records it lacks (a killed process loses what W&B had not yet written)
    are logged first. Each logger has its own W&B run (``reinit="create_new"``), so the members of a vectorized
    grid, trained in one process, are one W&B run each.

    ``summary``: more run-summary entries, each a callable of the finished run (a :class:`lossland.runs.Run`)
    returning a value or None (left out); ``conf/logger/wandb.yaml`` names the sphere study's ``phase``: the core
    never imports a study, the config names the rule. Other keyword arguments go to ``wandb.init`` (``tags``,
    ``notes``, ...)."""

    def __init__(self, save_dir: str | Path = ".", project: str | None = "lossland", entity: str | None = None,
                 offline: bool = True, group: str | None = None, name: str | None = None, job_type: str = "train",
                 config: dict | None = None, summary: Mapping[str, Callable] | None = None, id: str | None = None,
                 **init):
        super().__init__()
        self._dir = Path(save_dir)
        self._init = {"project": project, "entity": entity, "group": group, "name": name, "job_type": job_type,
                      "config": config, "dir": str(self._dir), "mode": "offline" if offline else "online", **init}
        self.fields = {k: f for k, f in (summary or {}).items() if f is not None}
        self._id: str | None = id
        self._run = None
        self._held: int | None = None  # the last step the W&B run already holds (a resumed job)
        self._held_keys: set[str] | None = None  # what it holds at that step (None: everything)
        self._backlog: list[dict] = []  # the job's local records so far (a resumed job)

    @property
    def name(self) -> str:
        return "wandb"

    @property
    def version(self) -> str | None:
        return self._id

    @property
    def root_dir(self) -> str:
        return str(self._dir)

    def bind(self, run_id: str, rows: list[dict] | None = None) -> None:
        """Log to the W&B run ``run_id`` (the job's run id, the same across its resumes). ``rows``: the job's local
        records so far (a resumed job's ``metrics.csv`` rows), logged first where the W&B run lacks them."""
        if self._run is not None:
            if self._run.id != run_id:
                raise RuntimeError(f"W&B run {self._run.id} already started; cannot bind it to job {run_id}")
            return
        self._id, self._backlog = run_id, list(rows or [])

    @property
    @rank_zero_experiment
    def experiment(self):
        """The W&B run, started on first use."""
        if self._run is None:
            import wandb

            self._run = wandb.init(id=self._id, resume="allow" if self._id else None, reinit="create_new",
                                   **self._init)
            self._run.define_metric(STEP_KEY)
            self._run.define_metric("*", step_metric=STEP_KEY, step_sync=True)
            self._catch_up()
        return self._run

    def _catch_up(self) -> None:
        """A resumed job: log the local records the W&B run lacks (after the last step it holds, and at that step
        the metrics it lacks), and remember where the W&B run now ends (:meth:`log_metrics` starts after it)."""
        backlog, self._backlog = self._backlog, []
        if not backlog:
            return
        held, held_keys = wandb_holds(self._run, self._dir)
        for row in backlog:
            step, values = int(row["step"]), {k: v for k, v in row.items() if k != "step"}
            if held is not None and step == held:
                values = {k: v for k, v in values.items() if held_keys is not None and k not in held_keys}
            if (held is None or step >= held) and values.keys() - {"epoch"}:
                self._run.log({**values, "epoch": row.get("epoch"), STEP_KEY: step})
        last = int(backlog[-1]["step"])
        at_last = {k for r in backlog if int(r["step"]) == last for k in r} - {"step", "epoch"}
        if held is None or held < last:
            self._held, self._held_keys = last, at_last
        else:  # W&B holds as far as the local records or further
            self._held = held
            self._held_keys = None if held_keys is None else held_keys | (at_last if held == last else set())

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        self.experiment.config.update(dict(params), allow_val_change=True)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        run = self.experiment
        if step is not None and self._held is not None and step <= self._held:
            # the job's earlier attempt logged this step (a resumed job re-runs the steps after its checkpoint),
            # except, at the checkpoint's own step, what came after the checkpoint (an epoch's end)
            new = {} if step < self._held or self._held_keys is None else \
                {k: v for k, v in metrics.items() if k not in self._held_keys}
            if not new.keys() - {"epoch"}:
                return
            metrics = new
        run.log(dict(metrics) if step is None else {**metrics, STEP_KEY: step})

    def end_job(self, summary: Mapping, run=None) -> None:
        """Write the job's record into the run summary (:func:`tracker_summary`) plus the :attr:`fields`, each
        computed from ``run``: the finished run directory read back (a :class:`lossland.runs.Run`, its
        ``summary.json`` and ``metrics.csv`` written)."""
        entries = tracker_summary(summary)
        if run is not None:
            for key, field in self.fields.items():
                try:
                    value = field(run)
                except Exception as e:  # noqa: BLE001 - a summary entry never costs the job its record
                    log.warning("%s: W&B summary entry %r not computed (%s: %s)", run, key, type(e).__name__, e)
                    continue
                if value is not None:
                    entries[key] = value
        self.experiment.summary.update(entries)

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        """Finish the W&B run (state ``finished``, or ``failed`` for a failed or interrupted job)."""
        if self._run is not None:
            self._run.finish(exit_code=0 if status == "success" else 1)


def wandb_holds(run, save_dir: Path) -> tuple[int | None, set[str] | None]:
    """How far the W&B run ``run`` goes from earlier attempts of its job: its last ``trainer/global_step`` and the
    metrics it holds at that step (None: not known, take it as all). Online, the resumed run's summary; offline,
    the earlier ``offline-run-*`` directories of the same id, read with W&B's own reader
    (:func:`read_offline_run`). ``(None, None)`` when it holds nothing (or they cannot be read)."""
    if run.resumed:
        return _int(run.summary.get(STEP_KEY)), None
    current = Path(run.dir).parent.name
    held, keys = None, set()
    for p in sorted((save_dir / "wandb").glob(f"offline-run-*-{run.id}")):
        if p.name == current:
            continue
        for rec in read_offline_run(p, records=True) or []:
            item = rec.get("history", {}).get("item", {}) if rec.get("type") == "history" else {}
            step = _int(item.get(STEP_KEY))
            if step is None or (held is not None and step < held):
                continue
            if held is None or step > held:
                held, keys = step, set()
            keys |= {k for k in item if not k.startswith("_")} - {STEP_KEY, "epoch"}
    return held, (keys if held is not None else None)


def read_offline_run(run_dir: str | Path, records: bool = False, timeout: float = 60) -> dict | list | None:
    """An offline W&B run (``offline-run-*`` directory or its ``.wandb`` file) read back by W&B's own reader:
    its state, config and summary (``wandb leet inspect --summary --json``), or with ``records=True`` every
    record of its transaction log (history rows, summary updates, ...). None if it cannot be read."""
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", *([] if records else ["--summary"]),
           str(run_dir)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if res.returncode != 0:
            return None
        if records:
            return [json.loads(ln) for ln in res.stdout.splitlines() if ln.strip()]
        return json.loads(res.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def _int(v) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def bind_loggers(loggers, run_id: str) -> None:
    """Give the job's run id, and its local records so far, to the loggers that keep a run of their own (W&B):
    one tracker run per job, whose history a resumed job continues."""
    rows = next((list(lg.rows) for lg in loggers if isinstance(lg, RecordLogger)), [])
    for lg in loggers:
        if callable(getattr(lg, "bind", None)):
            lg.bind(run_id, rows)


def close_loggers(loggers, summary: Mapping, run=None) -> dict:
    """Finish every logger at the end of a job: first the local records (``metrics.csv`` written), then the
    trackers, each given the job's final record and its directory read back (``run``, a
    :class:`lossland.runs.Run`; :meth:`WandbLogger.end_job`) before it closes. Returns what the job's summary
    records of them: ``wandb`` (the W&B run's id, group and directory) and ``logger_errors`` (a tracker's failure
    never loses the local records)."""
    out: dict = {}
    status = "success" if summary.get("status") in ("ok", "diverged") else "failed"
    trackers = [lg for lg in loggers if callable(getattr(lg, "end_job", None))]
    for lg in [*(lg for lg in loggers if lg not in trackers), *trackers]:
        try:
            if lg in trackers:
                lg.end_job(summary, run)
                tracked = lg.experiment
                out["wandb"] = {"id": tracked.id, "group": tracked.group, "dir": tracked.dir}
            lg.finalize(status)
        except Exception as e:  # noqa: BLE001 - see the docstring
            out.setdefault("logger_errors", []).append(f"{type(lg).__name__}: {e}")
    return out


def finish_wandb() -> None:
    """End the process's W&B run, if any, so that the next job of a multirun starts a new one."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
