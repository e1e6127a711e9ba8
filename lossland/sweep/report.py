"""``write_report(sweep_dir)``: the sphere study's report for one sweep (docs/studies.md#s).

Reads every run under ``sweep_dir`` (``summary.json`` + ``metrics.csv``; see :mod:`lossland.runs`),
assigns each a phase (docs/sphere.md, :mod:`lossland.studies.sphere.phases`), groups the runs by setting (the keys
the sweep varied other than ``seed``; :mod:`lossland.analysis.settings`) and writes into
``<sweep_dir>/report/``:

- ``phase_diagram.png``: GM (log) against train loss (log), one trajectory per setting (mean over seeds)
  coloured by the x key, one panel per series;
- ``final_metrics.png``: final train loss / train error / test error / GM against x, mean ± std over seeds,
  with phase bands (majority phase) when there is one series;
- ``curves.png``: the same metrics against the step, mean ± std band per setting;
- ``cosines.png``: distribution of consecutive-weights cosines (``cos_prev``) per setting;
- ``phases.json``: the varied keys, the settings (phase counts, final metrics mean and std), the runs and
  the phase boundaries (and the brackets of the phase-boundary sweeper's ``boundaries.json``, drawn as hatched
  spans on ``final_metrics.png``, when the sweep has one);
- ``index.html``: the figures and those tables.

Every file is written atomically (temp file in the same directory, then ``os.replace``).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import NamedTuple

import matplotlib

from lossland.analysis.settings import (
    Sweep,
    format_counts,
    mean_std,
    phase_counts,
    run_values,
    sweep_settings,
)
from lossland.cells import cell, pm
from lossland.errors import LosslandError
from lossland.figures import save_figure
from lossland.records import atomic_write, write_json
from lossland.runs import Run, load_runs
from lossland.studies.sphere.phases import phase_boundaries, run_phase
from lossland.studies.sphere.plots import (
    DPI,
    PHASE_COLORS,
    plot_cosines,
    plot_curves,
    plot_final_metrics,
    plot_phase_diagram,
)

__all__ = ["ReportResult", "write_report", "run_table", "settings_table"]

FINAL_METRICS = ("train_loss", "train_error", "train_misclassified", "test_error", "gm")
PLOTTED = ("train_loss", "train_error", "test_error", "gm")
FIGURES = {"phase_diagram.png": "Phase diagram: GM against train loss, one trajectory per setting (mean over seeds)",
           "final_metrics.png": "Final metrics (mean ± std over seeds), shaded by the majority phase",
           "curves.png": "Metrics during training, mean ± std over seeds",
           "cosines.png": "Cosine between weights at consecutive evaluation points, per setting"}


class ReportResult(NamedTuple):
    """``files``: paths written; ``boundaries``: {phase: (smallest x, largest x)} over the settings' majority
    phases (keys ``"<phase> [<series>]"`` when the sweep has several series)."""

    files: list[Path]
    boundaries: dict[str, tuple[float, float]]
    x: str = "elr"
    settings: tuple[str, ...] = ()  # "<setting>: <phase counts>", one per setting
    left_out: tuple[str, ...] = ()  # "<run>: <status or why unreadable>", one per run not in the report



def _num(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def run_table(runs: list[Run], phases: list[str], root: Path, keys: list[str]) -> list[dict]:
    """One row per run: path (relative to ``root``), the varied ``keys``, status, phase, final metrics."""
    rows = []
    for r, p in zip(runs, phases):
        vals = run_values(r)
        row = {"run": str(r.path.relative_to(root)) if r.path.is_relative_to(root) else str(r.path)}
        row.update({k: vals.get(k) for k in keys})
        row.update({"seed": r.summary.get("seed"), "status": r.status, "phase": p, "steps": r.summary.get("steps")})
        row.update({m: _num(r.final_value(m)) for m in FINAL_METRICS})
        rows.append(row)
    return rows


def settings_table(sweep: Sweep) -> list[dict]:
    """One row per setting: its values, seeds, phase counts (majority first), final metrics mean and std."""
    rows = []
    for st in sweep.settings:
        counts = phase_counts(st.phases)
        row = {**st.values, "runs": len(st.runs), "seeds": st.seeds, "phase": counts[0][0] if counts else None,
               "phases": format_counts(st.phases)}
        for m in FINAL_METRICS:
            mu, sd, n = mean_std([r.final_value(m) for r in st.runs])
            row[m], row[f"{m}_std"] = _num(mu), _num(sd) if n > 1 else None
        rows.append(row)
    return rows


def _boundaries(sweep: Sweep) -> dict[str, tuple[float, float]]:
    if not sweep.x_numeric:
        return {}
    by_series: dict[str, tuple[list, list]] = {}
    for st, row in zip(sweep.settings, settings_table(sweep)):
        xs, ps = by_series.setdefault(sweep.series_label(st), ([], []))
        xs.append(float(st.values[sweep.x]))
        ps.append(row["phase"] or "unknown")
    out = {}
    for label, (xs, ps) in by_series.items():
        for k, v in phase_boundaries(xs, ps).items():
            out[f"{k} [{label}]" if len(by_series) > 1 else k] = v
    return out


def located_boundaries(root: Path, x: str) -> dict[str, tuple[float, float]]:
    """{boundary: (low, high)} from the phase-boundary sweeper's ``boundaries.json`` in ``root`` (docs/
    phase_boundary.md), for the brackets with both ends and the sweep's x key; {} without one."""
    path = root / "boundaries.json"
    try:
        record = json.loads(path.read_text()) if path.is_file() else {}
        if not isinstance(record, dict) or (record.get("settings") or {}).get("rate") != x:
            return {}
        out = {}
        for name, b in (record.get("boundaries") or {}).items():
            lo, hi = b.get("bracket") or (None, None)
            if all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                   for v in (lo, hi)):
                out[str(name)] = (float(lo), float(hi))
        return out
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise LosslandError(f"report: unreadable {path} ({type(e).__name__}: {e})") from None


def _html(sweep_dir: Path, sweep: Sweep, rows: list[dict], settings: list[dict], boundaries: dict,
          problems: list[str], located: dict | None = None) -> str:
    e = html.escape
    parts = ["<!doctype html>", "<html><head><meta charset='utf-8'>",
             f"<title>lossland report: {e(sweep_dir.name)}</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}</style>",
             "</head><body>", f"<h1>Sweep report: {e(str(sweep_dir))}</h1>",
             f"<p>{len(rows)} runs in {len(settings)} settings. Varied: "
             f"{e(', '.join(sweep.varied) or 'nothing')}; x axis: {e(sweep.x)}"
             + (f"; series: {e(', '.join(sweep.series))}" if sweep.series else "") + ".</p>"]
    if problems:
        parts.append("<p>Unreadable runs:</p><ul>" + "".join(f"<li>{e(p)}</li>" for p in problems) + "</ul>")
    if boundaries:
        parts.append(_bounds_table(f"Phase boundaries ({e(sweep.x)} ranges, majority phase per setting)",
                                   ["phase", f"smallest {sweep.x}", f"largest {sweep.x}"], boundaries, ".3g"))
    if located:
        parts.append(_bounds_table("Located boundaries (hydra/sweeper=phase_boundary: boundaries.json)",
                                   ["boundary", f"last {sweep.x} below", f"first {sweep.x} above"], located, ".4g"))
    keys = [sweep.x, *sweep.series]
    cols = [*keys, "runs", "phases", *FINAL_METRICS]
    parts.append("<h2>Settings (mean ± std over seeds)</h2><table><tr>"
                 + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>")
    for row in settings:
        color = PHASE_COLORS.get(row["phase"], "#ffffff")
        cells = [f"<td style='background:{color}'>{e(row[c])}</td>" if c == "phases"
                 else f"<td>{e(pm(row.get(c), row.get(c + '_std'), '.4g', '.2g'))}</td>" if c in FINAL_METRICS
                 else f"<td>{e(cell(row.get(c)))}</td>" for c in cols]
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table>")
    for name, caption in FIGURES.items():
        parts.append(f"<h2>{e(caption)}</h2><img src='{e(name)}' alt='{e(caption)}'>")
    cols = [*keys, "seed", "status", "phase", "steps", *FINAL_METRICS, "run"]
    parts.append("<h2>Runs</h2><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>")
    for row in rows:
        color = PHASE_COLORS.get(row["phase"], "#ffffff")
        cells = [f"<td style='background:{color}'>{e(cell(row[c]))}</td>" if c == "phase"
                 else f"<td>{e(cell(row.get(c)))}</td>" for c in cols]
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table>")
    parts.append("<p>Phase rule: docs/sphere.md, section Phases (<code>lossland.studies.sphere.phases</code>).</p>"
                 "</body></html>")
    return "\n".join(parts) + "\n"


def _finished_runs(root: Path) -> tuple[list[Run], list[str]]:
    """The runs under ``root`` that finished (ok or diverged), and a line per problem (unreadable, unfinished)."""
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
    return runs, problems


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None,
                 num_classes: int | None = None, **thresholds) -> ReportResult:
    """Assign phases to every run under ``sweep_dir``; write the figures, ``phases.json`` and ``index.html``.

    Args:
        sweep_dir: a directory holding run directories (any depth).
        out_dir: where to write; default ``<sweep_dir>/report``.
        num_classes: K for the chance error of the phase rule (default: from each run's config, else 10).
        thresholds: keyword arguments of :func:`lossland.studies.sphere.phases.classify_run` (e.g.
            ``converged_max_errors=15``, the seed's observed sub-phase boundary).

    Returns:
        ``ReportResult(files, boundaries)``: written paths and {phase: (smallest elr, largest elr)}.
    """
    root = Path(sweep_dir)
    runs, problems = _finished_runs(root)
    out = Path(out_dir) if out_dir is not None else root / "report"
    phases = [run_phase(r, num_classes, **thresholds) or "unknown" for r in runs]
    sweep = sweep_settings(runs, phases)
    order = {id(r): i for i, st in enumerate(sweep.settings) for r in st.runs}
    ranked = sorted(zip(runs, phases), key=lambda rp: (order[id(rp[0])], str(rp[0].summary.get("seed"))))
    rows = run_table([r for r, _ in ranked], [p for _, p in ranked], root, [sweep.x, *sweep.series])
    settings = settings_table(sweep)
    boundaries = _boundaries(sweep)
    located = located_boundaries(root, sweep.x)

    files = []
    # labels come from the records: shown as written, never parsed as mathtext (an unbalanced "$x^$" would
    # stop the report)
    with matplotlib.rc_context({"text.parse_math": False}):
        figs = {"phase_diagram.png": plot_phase_diagram(sweep),
                "final_metrics.png": plot_final_metrics(sweep, PLOTTED, located),
                "curves.png": plot_curves(sweep, PLOTTED),
                "cosines.png": plot_cosines(sweep)}
        for name, fig in figs.items():
            files.append(save_figure(fig, out / name, dpi=DPI))
    table = {"sweep_dir": str(root), "varied": sweep.varied, "x": sweep.x, "series": sweep.series,
             "boundaries": {k: list(v) for k, v in boundaries.items()},
             "located_boundaries": {k: list(v) for k, v in located.items()}, "settings": settings, "runs": rows,
             "problems": problems}
    files.append(write_json(out / "phases.json", table))
    files.append(atomic_write(out / "index.html", _html(root, sweep, rows, settings, boundaries, problems, located)))
    lines = tuple(f"{st.label()}: {row['phases'] or 'no phase'}" for st, row in zip(sweep.settings, settings))
    return ReportResult(files, boundaries, sweep.x, lines, tuple(problems))


def _bounds_table(title: str, headers: list[str], ranges: dict, fmt: str) -> str:
    """An HTML table of named (low, high) rate ranges under a heading (``title`` already escaped)."""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(f"<tr><td>{e(str(k))}</td><td>{lo:{fmt}}</td><td>{hi:{fmt}}</td></tr>"
                   for k, (lo, hi) in ranges.items())
    return f"<h2>{title}</h2><table><tr>{head}</tr>{body}</table>"
