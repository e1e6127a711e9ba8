"""``lossland collect``: one table of a sweep, one row per run, from the runs' ``summary.json`` files."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from lossland.errors import LosslandError
from lossland.records import atomic_write, read_summary

FIRST = ("run", "overrides", "status", "phase", "seed", "elr", "lr", "steps", "epochs", "wall_s", "diverged_at_step")


def find_run_dirs(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise LosslandError(f"{root} is not a directory")
    return sorted((p.parent for p in root.rglob("summary.json")), key=lambda p: (len(p.parts), str(p)))


def run_row(run_dir: Path, root: Path) -> dict:
    s = read_summary(run_dir)
    row = {"run": run_dir.relative_to(root).as_posix() or ".", "overrides": " ".join(s.get("overrides", []))}
    row.update({k: s.get(k) for k in FIRST[2:] if k in s or k == "phase"})
    if row.get("phase") is None:
        row["phase"] = phase_of(run_dir, s)
    row.update({f"final_{k}": v for k, v in (s.get("final") or {}).items()})
    return row


def phase_of(run_dir: Path, summary: dict) -> str | None:
    """The phase label of a sphere-optimizer run (one that logged ``elr``); None for other runs."""
    try:
        from lossland.analysis.phases import assign_phase
        from lossland.analysis.runs import load_run

        run = load_run(run_dir)
        if "elr" not in run.metrics:
            return None
        return assign_phase(run.summary, run.history())
    except Exception:
        return None


def collect(root: str | Path) -> tuple[list[dict], Path]:
    """Write ``<root>/results.csv`` (atomically) and return its rows and path."""
    root = Path(root)
    dirs = find_run_dirs(root)
    if not dirs:
        raise LosslandError(f"no runs under {root} (no summary.json found)")
    rows = [run_row(d, root) for d in dirs]
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
    from rich.console import Console
    from rich.table import Table

    shown = ["run", "overrides", "status", "phase", "steps", "wall_s", "final_train_loss", "final_train_error",
             "final_test_error", "final_gm"]
    cols = [c for c in shown if any(r.get(c) not in (None, "") for r in rows)]
    table = Table(title=title)
    for c in cols:
        left = c in ("run", "overrides", "status")
        table.add_column(c.removeprefix("final_"), justify="left" if left else "right")
    for r in rows:
        table.add_row(*(_fmt(r.get(c)) for c in cols))
    Console(width=200).print(table)
