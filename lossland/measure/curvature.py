"""Curvature of every saved checkpoint of a run (``lossland curvature <run dir>``).

For each checkpoint (:meth:`lossland.runs.Run.checkpoints`, in step order; a checkpoint whose step was
already measured, e.g. ``last.ckpt`` after the final ``step=`` checkpoint, is skipped) the weights are
loaded into the run's model and :func:`lossland.metrics.curvature.compute_curvature` is evaluated on a
fixed training subset: the first ``examples`` examples of the run's phase-metric evaluation
mini-batches (``dm.eval_batches``), cut into the same mini-batches — the same examples for every
checkpoint, and the same numbers the training-time callback (``metrics.curvature``) logs at that step.

Settings not given default to the run's ``metrics.curvature`` config (then to
``lossland.callbacks.curvature.DEFAULTS``). Results go to the run's records: one row per checkpoint
(``step`` = the checkpoint's global step, ``epoch``) appended to ``metrics.csv`` and ``curvature.json``
(selection, settings, per-checkpoint values). Running the command again replaces the rows its
previous run appended (identified through the previous ``curvature.json``).
"""

from __future__ import annotations

import copy
import csv
import json
import math
import time
from pathlib import Path

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm

from lossland.callbacks.curvature import DEFAULTS, curvature_subset, parse_selection
from lossland.errors import LosslandError
from lossland.metrics.curvature import compute_curvature
from lossland.records import METRICS_CSV, write_csv, write_json
from lossland.runs import load_checkpoint, load_weights, open_run
from lossland.untrusted import terminal_text

RESULT = "curvature.json"


def run_curvature_settings(cfg) -> dict:
    """The run's ``metrics.curvature`` block merged over the defaults (plain dict)."""
    node = cfg.get("metrics", {}).get("curvature") if cfg is not None else None
    own = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else (node or {})
    return {**DEFAULTS, **own}


def curvature_of_run(cfg, write: bool = True) -> list[dict]:
    """Measure the selected metrics at every checkpoint of ``cfg.run``; returns one dict per checkpoint:
    ``{"checkpoint": file name, "step", "epoch", <metric>: value, ...}``.

    ``cfg``: the keys of ``conf/curvature.yaml`` (a config node or a mapping). ``selection``: as
    :func:`lossland.callbacks.curvature.parse_selection` (names, ``"hessian_top:k=3"`` strings, or a mapping),
    with the run's configured per-metric options as defaults, overridden by ``options``
    (``{metric: {option: value}}``). ``examples`` (null: the run's setting; 0: all evaluation mini-batches),
    ``bn`` ("train" | "eval"), ``params`` ("all" | "si" | a module name) and ``seed`` default to the run's
    ``metrics.curvature``. ``write``: append the rows to ``metrics.csv`` and write ``curvature.json``.
    """
    c = _plain(cfg)
    run_dir = Path(c["run"])
    run = open_run(run_dir)
    if write and run.status == "running":  # the trainer rewrites metrics.csv from its own rows: ours would go
        raise LosslandError(f"{run_dir} is still training (pid {run.summary.get('pid')} on "
                            f"{run.summary.get('host')}); its next write of metrics.csv would erase the curvature "
                            "columns: measure it when it has finished")
    paths = run.checkpoints()
    if not paths:
        raise LosslandError(f"{run_dir} has no checkpoints (train with checkpoint.every_n_steps=N "
                            f"or checkpoint.log_spaced=true)")
    model, loss, dm = run.model(paths[0])
    model = copy.deepcopy(model).to(str(c.get("device") or "cpu"))  # the cached model stays as loaded
    chosen, s = _settings(run.config, c, dm.batch_size)
    x, y, batch_size = curvature_subset(dm.eval_batches(s["eval_batches"]), s["examples"])
    settings = {"params": s["params"], "bn": s["bn"], "examples": len(x), "batch_size": batch_size,
                "seed": s["seed"], "device": str(c.get("device") or "cpu"), "eval_batches": s["eval_batches"]}
    data = (x.to(settings["device"]), y.to(settings["device"]))
    rows, unreadable = _measure_checkpoints(run, paths, model, loss, data, chosen, settings, c, write)
    result = [{k: v for k, v in r.items() if k != "_wall_s"} for r in rows]
    if unreadable:
        raise UnreadableCheckpoints(result, unreadable)
    return result


def _plain(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)


def _settings(run_cfg, c: dict, batch_size: int) -> tuple[dict, dict]:
    """The parsed selection, and the settings: the command's values over the run's ``metrics.curvature``."""
    own = run_curvature_settings(run_cfg)
    try:
        merged = {k: dict(v or {}) for k, v in (own.get("options") or {}).items()}
        for name, opts in (c.get("options") or {}).items():
            merged.setdefault(name, {}).update(opts or {})
        chosen = parse_selection(own["selection"] if c.get("selection") is None else c["selection"], merged)
    except ValueError as e:
        raise LosslandError(str(e)) from None
    bn = c.get("bn") or own["bn"]
    if bn not in ("train", "eval"):
        raise LosslandError(f"bn={bn} is not valid: 'train' or 'eval'")
    examples = own["examples"] if c.get("examples") is None else (c["examples"] or None)
    eval_batches = int(run_cfg.metrics.get("eval_batches", 8))
    if c.get("examples"):  # more examples than the callback's mini-batches hold
        eval_batches = max(eval_batches, math.ceil(examples / batch_size))
    return chosen, {"params": own["params"] if c.get("params") is None else c["params"], "bn": bn,
                    "examples": examples, "seed": int(own["seed"] if c.get("seed") is None else c["seed"]),
                    "eval_batches": eval_batches}


def _measure_checkpoints(run, paths, model, loss, data, chosen, settings, c, write) -> tuple[list, list]:
    """Every checkpoint the run owns, once per step: its rows (written as soon as each exists, so partial work
    is kept) and the problems of the unreadable ones."""
    rows, seen, unreadable, t0 = [], set(), [], time.time()
    bar = tqdm(paths, desc="curvature", unit="ckpt", disable=not c.get("progress", True))
    for path in bar:
        try:
            ckpt = load_checkpoint(path)
        except LosslandError as e:
            unreadable.append(str(e))
            continue
        step = int(ckpt.get("global_step", -1))
        if not run.owns(ckpt) or step in seen:  # left by an earlier run in the directory, or measured already
            continue
        seen.add(step)
        bar.set_postfix(step=step)
        load_weights(model, ckpt, path)
        t = time.time()
        try:
            values = compute_curvature(model, loss, *data, chosen, params=settings["params"], bn=settings["bn"],
                                       batch_size=settings["batch_size"], seed=settings["seed"])
        except ValueError as e:
            raise LosslandError(f"curvature of {path.name}: {e}") from None
        rows.append({"checkpoint": path.name, "step": step, "epoch": int(ckpt.get("epoch", 0)), **values,
                     "_wall_s": round(time.time() - t, 3)})
        if write:
            record_curvature(run.path, rows, chosen, settings, wall_s=round(time.time() - t0, 3))
    bar.close()
    return rows, unreadable


def curvature_command(cfg) -> list[dict]:
    """``lossland curvature``: measure, then print the table (also of the checkpoints measured when others
    could not be read)."""
    title = f"{cfg.run}: curvature (appended to metrics.csv, curvature.json)"
    try:
        rows = curvature_of_run(cfg)
    except UnreadableCheckpoints as e:
        print_rows(e.rows, title=title)
        raise
    print_rows(rows, title=title)
    return rows


class UnreadableCheckpoints(LosslandError):
    """Some checkpoints could not be read; the others were measured and written (``rows``)."""

    def __init__(self, rows: list[dict], problems: list[str]):
        super().__init__(f"{len(problems)} checkpoint(s) could not be read (the others were measured): "
                         + "; ".join(problems))
        self.rows = rows


def _is_previous(row: dict[str, str], entry: dict) -> bool:
    """Is this ``metrics.csv`` row (strings) the one written for ``entry`` of a previous curvature.json?"""
    filled = {k for k, v in row.items() if k not in ("step", "epoch") and v not in ("", None)}
    values = entry.get("values", {})
    if not row.get("step") or int(float(row["step"])) != entry.get("step") or filled != set(values):
        return False
    for k, v in values.items():
        cell = float(row[k])
        if v is None and math.isfinite(cell):
            return False
        if v is not None and cell != float(v):
            return False
    return True


def append_rows(run_dir: str | Path, rows: list[dict], previous: list[dict] | None = None) -> Path:
    """Append metric rows (``step``, ``epoch``, metrics) to ``metrics.csv`` (atomic rewrite keeping every
    existing row and column, new columns at the end); rows matching an entry of ``previous`` (earlier
    ``curvature.json`` checkpoints) are dropped first."""
    path = Path(run_dir) / METRICS_CSV
    header, old = ["step", "epoch"], []
    if path.exists():
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or header)
            old = [r for r in reader]
    if previous:
        old = [r for r in old if not any(_is_previous(r, e) for e in previous)]
    new = [{k: (int(v) if k in ("step", "epoch") else repr(float(v))) for k, v in r.items()} for r in rows]
    return write_csv(path, old + new, header)


def record_curvature(run_dir: str | Path, rows: list[dict], selection: dict, settings: dict,
                     wall_s: float | None = None) -> Path:
    """Write ``curvature.json`` and append ``rows`` to ``metrics.csv`` (replacing a previous run's rows)."""
    run_dir = Path(run_dir)
    prev_path = run_dir / RESULT
    previous = []
    if prev_path.exists():
        try:
            previous = json.loads(prev_path.read_text()).get("checkpoints", [])
        except (json.JSONDecodeError, AttributeError):
            previous = []
    meta = ("checkpoint", "step", "epoch", "_wall_s")
    entries = [{"checkpoint": r["checkpoint"], "step": r["step"], "epoch": r["epoch"],
                "wall_s": r.get("_wall_s"), "values": {k: v for k, v in r.items() if k not in meta}}
               for r in rows]
    csv_rows = [{"step": e["step"], "epoch": e["epoch"], **e["values"]} for e in entries]
    append_rows(run_dir, csv_rows, previous)
    return write_json(prev_path, {"selection": selection, "settings": settings, "wall_s": wall_s,
                                  "checkpoints": entries})


def print_rows(rows: list[dict], title: str | None = None) -> None:
    """A rich table of the per-checkpoint values."""
    metrics = list(dict.fromkeys(k for r in rows for k in r if k not in ("checkpoint", "step", "epoch")))
    table = Table(title=None if title is None else terminal_text(title))
    for col in ("step", "epoch", *metrics):
        table.add_column(terminal_text(col), justify="right", overflow="fold")
    for r in rows:
        table.add_row(terminal_text(r["step"]), terminal_text(r["epoch"]),
                      *(f"{r[m]:.6g}" if m in r else "" for m in metrics))
    Console().print(table)


__all__ = ["curvature_of_run", "curvature_command", "append_rows", "record_curvature", "run_curvature_settings",
           "print_rows"]
