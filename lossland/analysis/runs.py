"""Read a sweep's run records for analysis (no pandas): ``summary.json`` + ``metrics.csv`` per run.

Conventions: a *run directory* is any directory holding a ``summary.json`` (runs still in progress, which
have not written it yet, are not runs). ``metrics.csv`` has columns ``step``, ``epoch`` and sparse metric
columns (empty cell = not logged in that row); it is read into one float64 array per column, NaN where
empty. Metric names containing ``/`` are also available under the name with ``_`` (``train/loss`` →
``train_loss``) unless that name exists. Analysis never parses directory names.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Run", "find_runs", "load_run", "load_runs"]

SUMMARY = "summary.json"
METRICS = "metrics.csv"


@dataclass
class Run:
    """One run's records: ``summary`` (dict) and ``metrics`` ({column: float64 array, NaN = missing})."""

    path: Path
    summary: dict
    metrics: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "ok"))

    @property
    def elr(self) -> float | None:
        """The run's elr: ``summary["elr"]``, else the first logged ``elr``, else ``summary["lr"]``."""
        for v in (self.summary.get("elr"), _first(self.metrics.get("elr")), self.summary.get("lr")):
            if v is not None:
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(v):
                    return v
        return None

    @property
    def final(self) -> dict:
        return dict(self.summary.get("final") or {})

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one metric, rows where it was logged; the last value wins on repeated steps."""
        v = self.metrics.get(name)
        if v is None or "step" not in self.metrics:
            return np.empty(0), np.empty(0)
        s = self.metrics["step"]
        keep = ~np.isnan(v)
        s, v = s[keep], v[keep]
        if s.size:
            # keep the last row of each step, in step order
            order = np.argsort(s, kind="stable")
            s, v = s[order], v[order]
            last = np.r_[s[1:] != s[:-1], True]
            s, v = s[last], v[last]
        return s, v

    def final_value(self, name: str) -> float:
        """``summary["final"][name]`` when present, else the last logged value, else NaN."""
        v = self.final.get(name)
        if v is not None:
            try:
                return float(v)
            except (TypeError, ValueError):
                pass
        _, vals = self.series(name)
        return float(vals[-1]) if vals.size else math.nan

    def history(self) -> dict[str, np.ndarray]:
        """The metrics as a dict of arrays (the form :func:`lossland.analysis.phases.assign_phase` takes)."""
        return self.metrics


def _first(a) -> float | None:
    if a is None:
        return None
    a = a[~np.isnan(a)]
    return float(a[0]) if a.size else None


def find_runs(root: str | Path) -> list[Path]:
    """Every directory under ``root`` (itself included) holding a ``summary.json``, sorted by path.

    Directories named ``report`` (our own output) and hidden directories (``.hydra``) are skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such directory: {root}")
    out = []
    for p in sorted(root.rglob(SUMMARY)):
        rel = p.parent.relative_to(root).parts
        if any(part.startswith(".") or part == "report" for part in rel):
            continue
        out.append(p.parent)
    return out


def _read_metrics(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            return {}
        cols: list[list[float]] = [[] for _ in header]
        for row in reader:
            if not row:
                continue
            for i in range(len(header)):
                cell = row[i].strip() if i < len(row) else ""
                try:
                    cols[i].append(float(cell) if cell else math.nan)
                except ValueError:
                    cols[i].append(math.nan)
    metrics = {name: np.asarray(c, dtype=np.float64) for name, c in zip(header, cols)}
    for name in list(metrics):
        alias = name.replace("/", "_")
        if alias != name and alias not in metrics:
            metrics[alias] = metrics[name]
    return metrics


def load_run(run_dir: str | Path) -> Run:
    """Read one run directory (``summary.json`` required, ``metrics.csv`` optional)."""
    run_dir = Path(run_dir)
    try:
        summary = json.loads((run_dir / SUMMARY).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"unreadable {run_dir / SUMMARY}: {e}") from e
    if not isinstance(summary, dict):
        raise ValueError(f"unreadable {run_dir / SUMMARY}: not a JSON object")
    return Run(path=run_dir, summary=summary, metrics=_read_metrics(run_dir / METRICS))


def load_runs(root: str | Path) -> tuple[list[Run], list[str]]:
    """Load every run under ``root``; returns (runs, one-line problems for runs that could not be read)."""
    runs, problems = [], []
    for d in find_runs(root):
        try:
            runs.append(load_run(d))
        except (ValueError, OSError) as e:
            problems.append(str(e))
    return runs, problems
