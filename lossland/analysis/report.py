"""``write_report(sweep_dir)``: the sphere study's report for one sweep (docs/studies.md#s).

Reads every run under ``sweep_dir`` (``summary.json`` + ``metrics.csv``; see :mod:`lossland.runs`),
assigns each a phase (:mod:`lossland.analysis.phases`) and writes into ``<sweep_dir>/report/``:

- ``phase_diagram.png``: GM (log) against train loss (log), one trajectory per run coloured by elr;
- ``final_metrics.png``: final train loss / train error / test error / GM against elr with phase bands;
- ``cosines.png``: distribution of consecutive-weights cosines (``cos_prev``) per elr;
- ``phases.json``: the table of runs and the phase boundaries;
- ``index.html``: the figures, the boundaries and the table of runs.

Every file is written atomically (temp file in the same directory, then ``os.replace``).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import NamedTuple

from lossland.analysis.phases import classify_run, phase_boundaries
from lossland.analysis.plots import (
    PHASE_COLORS,
    plot_cosines,
    plot_final_metrics,
    plot_phase_diagram,
    save_figure,
)
from lossland.errors import LosslandError
from lossland.records import atomic_write
from lossland.runs import Run, load_runs

__all__ = ["ReportResult", "write_report", "run_table"]

FINAL_METRICS = ("train_loss", "train_error", "test_error", "gm")
FIGURES = {"phase_diagram.png": "Phase diagram: GM against train loss, one trajectory per elr",
           "final_metrics.png": "Final metrics against elr, shaded by phase",
           "cosines.png": "Cosine between weights at consecutive evaluation points, per elr"}


class ReportResult(NamedTuple):
    """``files``: paths written; ``boundaries``: {phase: (smallest elr, largest elr)}."""

    files: list[Path]
    boundaries: dict[str, tuple[float, float]]



def _num(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def run_table(runs: list[Run], phases: list[str], root: Path) -> list[dict]:
    """One row per run (by elr): path (relative to ``root``), elr, seed, status, phase, final metrics."""
    rows = []
    for r, p in zip(runs, phases):
        row = {"run": str(r.path.relative_to(root)) if r.path.is_relative_to(root) else str(r.path),
               "elr": r.elr, "seed": r.summary.get("seed"), "status": r.status, "phase": p,
               "steps": r.summary.get("steps")}
        row.update({m: _num(r.final_value(m)) for m in FINAL_METRICS})
        rows.append(row)
    rows.sort(key=lambda row: (row["elr"] is None, row["elr"] or 0.0, str(row["seed"]), row["run"]))
    return rows


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _html(sweep_dir: Path, rows: list[dict], boundaries: dict, problems: list[str]) -> str:
    e = html.escape
    parts = ["<!doctype html>", "<html><head><meta charset='utf-8'>",
             f"<title>lossland report: {e(sweep_dir.name)}</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}</style>",
             "</head><body>", f"<h1>Sweep report: {e(str(sweep_dir))}</h1>",
             f"<p>{len(rows)} runs.</p>"]
    if problems:
        parts.append("<p>Unreadable runs:</p><ul>" + "".join(f"<li>{e(p)}</li>" for p in problems) + "</ul>")
    parts.append("<h2>Phase boundaries (elr ranges)</h2><table><tr><th>phase</th><th>smallest elr</th>"
                 "<th>largest elr</th></tr>")
    for p, (lo, hi) in boundaries.items():
        parts.append(f"<tr><td>{e(p)}</td><td>{lo:.3g}</td><td>{hi:.3g}</td></tr>")
    parts.append("</table>")
    for name, caption in FIGURES.items():
        parts.append(f"<h2>{e(caption)}</h2><img src='{e(name)}' alt='{e(caption)}'>")
    cols = ["elr", "seed", "status", "phase", "steps", *FINAL_METRICS, "run"]
    parts.append("<h2>Runs</h2><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>")
    for row in rows:
        color = PHASE_COLORS.get(row["phase"], "#ffffff")
        cells = [f"<td style='background:{color}'>{e(_fmt(row[c]))}</td>" if c == "phase"
                 else f"<td>{e(_fmt(row[c]))}</td>" for c in cols]
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table>")
    parts.append("<p>Phase rule: see <code>lossland.analysis.phases</code>.</p></body></html>")
    return "\n".join(parts) + "\n"


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None,
                 num_classes: int | None = None) -> ReportResult:
    """Assign phases to every run under ``sweep_dir``; write the figures, ``phases.json`` and ``index.html``.

    Args:
        sweep_dir: a directory holding run directories (any depth).
        out_dir: where to write; default ``<sweep_dir>/report``.
        num_classes: K for the chance error of the phase rule (default: from each summary, else 10).

    Returns:
        ``ReportResult(files, boundaries)``: written paths and {phase: (smallest elr, largest elr)}.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise LosslandError(f"report: no such directory: {root}")
    runs, problems = load_runs(root)
    if not runs:
        raise LosslandError(f"report: no runs under {root} (a run directory holds a summary.json)")
    unfinished = [r for r in runs if r.status not in ("ok", "diverged")]
    problems += [f"{r.path}: {r.status}" + (f" ({r.summary['error']})" if r.summary.get("error") else "")
                 for r in unfinished]
    runs = [r for r in runs if r.status in ("ok", "diverged")]
    if not runs:
        counts = ", ".join(f"{sum(r.status == s for r in unfinished)} {s}"
                           for s in sorted({r.status for r in unfinished}))
        raise LosslandError(f"report: no run under {root} finished ({counts}); nothing to report")
    out = Path(out_dir) if out_dir is not None else root / "report"
    phases = [classify_run(r.summary, r.metrics, num_classes).phase for r in runs]
    boundaries = phase_boundaries([r.elr for r in runs], phases)
    rows = run_table(runs, phases, root)

    files = []
    figs = {"phase_diagram.png": plot_phase_diagram(runs),
            "final_metrics.png": plot_final_metrics(runs, phases),
            "cosines.png": plot_cosines(runs)}
    for name, fig in figs.items():
        files.append(save_figure(fig, out / name))
    table = {"sweep_dir": str(root), "boundaries": {k: list(v) for k, v in boundaries.items()},
             "runs": rows, "problems": problems}
    files.append(atomic_write(out / "phases.json", json.dumps(table, indent=2, default=str) + "\n"))
    files.append(atomic_write(out / "index.html", _html(root, rows, boundaries, problems)))
    return ReportResult(files, boundaries)
