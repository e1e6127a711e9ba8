"""``lossland collect``: one table of a sweep, one row per run, from the runs' records (:mod:`lossland.runs`).
Runs that were killed or preempted are listed with status ``interrupted``. The keys the sweep varied
(:mod:`lossland.analysis.settings`) get a column each, with the rates the optimizers used (``elr`` only for
sphere optimizers); the phase is given to every finished run that logged phase metrics. A run whose records
cannot be read (truncated, random bytes, wrong types) gets a row with status ``unreadable`` and the reason; the
other runs are collected. Values from records are printed inert (:func:`lossland.untrusted.terminal_text`)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from lossland.analysis.settings import run_values, sweep_settings
from lossland.cells import cell
from lossland.errors import LosslandError
from lossland.records import write_csv
from lossland.runs import Run, find_runs
from lossland.studies.sphere.phases import phase_of
from lossland.untrusted import terminal_text

FIRST = ("run", "overrides", "status", "phase", "seed", "elr", "lr", "elr_final", "lr_final", "steps", "epochs",
         "wall_s", "diverged_at_step")


def run_row(run: Run, root: Path, varied: tuple[str, ...] = ()) -> dict:
    s = run.summary
    overrides = s.get("overrides", [])
    if not isinstance(overrides, list):
        raise TypeError("overrides is not a list")
    row = {"run": run.path.relative_to(root).as_posix() or ".", "overrides": " ".join(map(str, overrides)),
           "status": run.status}
    row.update({k: s.get(k) for k in FIRST[3:] if k in s or k == "phase"})
    row["steps"] = run.steps  # a killed run's summary says 0: the step its records reached
    vals = run_values(run)
    row.update({k: vals.get(k) for k in varied if k not in row})
    if row.get("phase") is None:
        row["phase"] = phase_of(run)
    if "error" in s:
        row["error"] = s["error"]
    row.update({f"final_{k}": v for k, v in (s.get("final") or {}).items()})
    return row


def collect(root: str | Path) -> tuple[list[dict], Path]:
    """Write ``<root>/results.csv`` (atomically) and return its rows and path."""
    root = Path(root)
    runs = [Run(d) for d in find_runs(root)]
    if not runs:
        raise LosslandError(f"no runs under {root} (no summary.json found)")
    rows, readable = {}, []
    for r in runs:
        try:  # an unreadable summary.json is that run's problem, not the sweep's
            run_values(r)
            readable.append(r)
        except LosslandError as e:
            rows[r.path] = _unreadable(r, root, str(e))
        except (TypeError, ValueError, AttributeError) as e:
            rows[r.path] = _unreadable(r, root, f"{r.path}: unreadable summary.json ({type(e).__name__}: {e})")
    varied = tuple(sweep_settings(readable).varied) if readable else ()
    for r in readable:
        try:
            rows[r.path] = run_row(r, root, varied)
        except (LosslandError, TypeError, ValueError, AttributeError, KeyError) as e:
            rows[r.path] = _unreadable(r, root, f"{r.path}: unreadable records ({type(e).__name__}: {e})")
    rows = [rows[r.path] for r in runs]
    return rows, write_csv(root / "results.csv", rows)


def _unreadable(run: Run, root: Path, why: str) -> dict:
    return {"run": run.path.relative_to(root).as_posix() or ".", "status": "unreadable", "error": why}


def print_table(rows: list[dict], title: str = "") -> None:
    """The runs with the keys the sweep varied (or the overrides when none did) and their final metrics."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    params = [k for k in keys if k in ("seed", "elr", "lr", "elr_final", "lr_final")
              or (k not in FIRST and k != "error" and not k.startswith("final_"))]
    varied = [k for k in params if len({repr(r.get(k)) for r in rows}) > 1]
    shown = ["run", *(varied or ["overrides"]), "status", "phase", "steps", "wall_s", "final_train_loss",
             "final_train_error", "final_train_misclassified", "final_test_error", "final_gm", "error"]
    cols = [c for c in shown if any(r.get(c) not in (None, "") for r in rows)]
    table = Table(title=terminal_text(title))
    for c in cols:
        left = c in ("run", "overrides", "status", "error")
        table.add_column(terminal_text(c.removeprefix("final_")), justify="left" if left else "right")
    for r in rows:
        table.add_row(*(terminal_text(cell(r.get(c), missing="")) for c in cols))
    Console(width=200).print(table)
