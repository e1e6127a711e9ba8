"""Log a sweep report to the sweep's W&B group: one run of job type ``report`` holding the report's figures
(``wandb.Image``), the sweep's results table (``results.csv`` as a ``wandb.Table``) and the phase boundaries.

Where it goes is the choice of the person running ``lossland report``, never of the records read: the project,
entity, mode and verbosity come from the arguments (``lossland report DIR logger.wandb.project=mine
logger.wandb.offline=false``, the keys a training job takes), else W&B's own environment variables of this process
(``WANDB_PROJECT``, ``WANDB_ENTITY``, ``WANDB_MODE``), else project ``lossland``, offline, quiet. A received
sweep's ``summary.json`` / ``.hydra/config.yaml`` could otherwise send it to a stranger's project online (or expand
``${oc.env:...}`` into it). Only the group name is taken from the records, as a plain label.

The report run's id is derived from the project and the group: reporting a sweep again continues the same W&B run
(its table and figures at the next step), so the group holds one report run per sweep.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from pathlib import Path

from lossland.errors import LosslandError
from lossland.untrusted import file_stem

MODES = ("offline", "online", "disabled")
# `lossland report` arguments: the W&B keys of a training job's logger (conf/logger/wandb.yaml) a report honours.
SETTINGS = ("project", "entity", "offline", "quiet")


def parse_settings(args: list[str]) -> dict:
    """``logger.wandb.<key>=<value>`` arguments (:data:`SETTINGS`) as keyword arguments of :func:`log_report`;
    anything else is refused in one line."""
    out: dict = {}
    for a in args:
        key, eq, value = a.partition("=")
        name = key.removeprefix("logger.wandb.")
        if not eq or not key.startswith("logger.wandb.") or name not in SETTINGS:
            raise LosslandError(f"report: unexpected argument {a!r}; W&B settings are "
                                + ", ".join(f"logger.wandb.{k}=..." for k in SETTINGS))
        if name in ("offline", "quiet"):
            if value.lower() not in ("true", "false"):
                raise LosslandError(f"report: logger.wandb.{name} must be true or false, not {value!r}")
            out[name] = value.lower() == "true"
        else:
            out[name] = None if value.lower() in ("null", "none", "") else value
    return out


def _group(sweep_dir: Path) -> str | None:
    """The W&B group the sweep's runs logged to (from the first readable summary that has one)."""
    for p in sorted(sweep_dir.rglob("summary.json")):
        try:
            s = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        info = s.get("wandb") if isinstance(s, dict) else None
        if isinstance(info, dict) and isinstance(info.get("group"), str) and info["group"]:
            return info["group"][:128]
    return None


def results_table(path: Path):
    """``results.csv`` as a ``wandb.Table``: a column whose cells all read as numbers holds numbers (empty
    cells None), any other column text."""
    import wandb

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return None
    header, body = rows[0], [r + [""] * (len(rows[0]) - len(r)) for r in rows[1:]]
    columns = list(zip(*body)) if body else [() for _ in header]
    typed = [_numbers(col) or [c or None for c in col] for col in columns]
    return wandb.Table(columns=header, data=[list(r) for r in zip(*typed)] if body else [])


def _numbers(col) -> list | None:
    out = []
    for c in col:
        if c == "":
            out.append(None)
            continue
        try:
            v = float(c)
        except ValueError:
            return None
        out.append(v if math.isfinite(v) else None)
    return out


def log_report(sweep_dir: str | Path, files, results: str | Path | None = None, config: dict | None = None,
               project: str | None = None, entity: str | None = None, offline: bool | None = None,
               quiet: bool = True, mode: str | None = None) -> str | None:
    """If the sweep's runs logged to W&B, log every PNG of ``files`` (as images), ``results`` (a
    ``results.csv``, as the table ``results``) and ``config`` (the report's x key, boundaries, ...) to the report
    run of the sweep's group, in the project / entity / mode of this user (module docstring; offline and quiet by
    default). Returns the W&B run id, or None when the sweep has no W&B group."""
    sweep_dir = Path(sweep_dir)
    group = _group(sweep_dir)
    if group is None:
        return None
    if mode is None:
        mode = ("offline" if offline else "online") if offline is not None else os.environ.get("WANDB_MODE")
    if mode not in MODES:
        mode = "offline"
    project = project or os.environ.get("WANDB_PROJECT") or "lossland"
    import wandb

    run = wandb.init(project=project, entity=entity or os.environ.get("WANDB_ENTITY") or None, group=group,
                     job_type="report", name="report", dir=str(sweep_dir / "report"), mode=mode,
                     id=hashlib.sha1(f"{project}\n{group}".encode()).hexdigest()[:16], resume="allow",
                     reinit="create_new", config=dict(config or {}),
                     settings=wandb.Settings(silent=quiet, quiet=quiet, show_warnings=not quiet, console="off"))
    try:
        data = {file_stem(Path(f).stem): wandb.Image(str(f)) for f in files if str(f).endswith(".png")}
        table = results_table(Path(results)) if results is not None else None
        if table is not None:
            data["results"] = table
        run.log(data)
        return run.id
    finally:
        run.finish()
