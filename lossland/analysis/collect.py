"""``lossland collect``: one table of a sweep, one row per run, from the runs' records (:mod:`lossland.runs`).
Runs that were killed or preempted are listed with status ``interrupted``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lossland.analysis.phases import assign_phase
from lossland.errors import LosslandError
from lossland.records import atomic_write
from lossland.runs import Run, find_runs

FIRST = ("run", "overrides", "status", "phase", "seed", "elr", "lr", "steps", "epochs", "wall_s", "diverged_at_step")


def run_row(run: Run, root: Path) -> dict:
    s = run.summary
    row = {"run": run.path.relative_to(root).as_posix() or ".", "overrides": " ".join(s.get("overrides", [])),
           "status": run.status}
    row.update({k: s.get(k) for k in FIRST[3:] if k in s or k == "phase"})
    if row.get("phase") is None:
        row["phase"] = phase_of(run)
    if "error" in s:
        row["error"] = s["error"]
    row.update({f"final_{k}": v for k, v in (s.get("final") or {}).items()})
    return row


def phase_of(run: Run) -> str | None:
    """The phase label of a sphere-optimizer run that finished (one that logged ``elr``); None otherwise."""
    if run.status not in ("ok", "diverged") or "elr" not in run.metrics:
        return None
    try:
        return assign_phase(run.summary, run.history())
    except (ValueError, KeyError):
        return None


def collect(root: str | Path) -> tuple[list[dict], Path]:
    """Write ``<root>/results.csv`` (atomically) and return its rows and path."""
    root = Path(root)
    runs = [Run(d) for d in find_runs(root)]
    if not runs:
        raise LosslandError(f"no runs under {root} (no summary.json found)")
    rows = [run_row(r, root) for r in runs]
    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return rows, atomic_write(root / "results.csv", buf.getvalue())


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def print_table(rows: list[dict], title: str = "") -> None:
    shown = ["run", "overrides", "status", "phase", "steps", "wall_s", "final_train_loss", "final_train_error",
             "final_test_error", "final_gm", "error"]
    cols = [c for c in shown if any(r.get(c) not in (None, "") for r in rows)]
    table = Table(title=title)
    for c in cols:
        left = c in ("run", "overrides", "status", "error")
        table.add_column(c.removeprefix("final_"), justify="left" if left else "right")
    for r in rows:
        table.add_row(*(_fmt(r.get(c)) for c in cols))
    Console(width=200).print(table)
