"""What a sweep varied, and its runs grouped by setting with the seeds aggregated.

A sweep's *varied keys* are the Hydra override keys whose values differ between its runs (``hydra.*`` keys
left out). The rate keys ``elr`` / ``lr`` are read from ``summary.json``, which records the rate the optimizer
used (sphere runs: elr and lr = elr·ρ0²; the others: lr only), never a default the optimizer did not read.
A *setting* is one combination of the varied keys other than ``seed``; runs that differ only in ``seed`` are
its repetitions. The report plots against one varied key, ``x`` (the varied rate if any, else the first
varied numeric key, else the first varied key, else the rate), with one series per value of the other
varied keys (e.g. ``lr`` on x, one series per ``regularizer.coef``: the VGG16-BN lr × wd sweep).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from omegaconf import OmegaConf

from lossland.cells import cell
from lossland.errors import LosslandError
from lossland.runs import Run

__all__ = ["Setting", "Sweep", "override_values", "run_values", "sweep_settings", "phase_counts",
           "format_counts", "mean_std", "run_config", "RATE_KEYS"]

RATE_KEYS = ("elr", "lr")


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None}.get(text.lower(), text)


def override_values(overrides: Sequence[str]) -> dict:
    """``["elr=0.001", "+x=a", "hydra.sweep.dir=..."]`` → ``{"elr": 0.001, "x": "a"}`` (hydra.* dropped, and
    ``metrics.early_stop.*``: a run that stopped once its phase was certain and its full-length confirmation,
    docs/phase_boundary.md, are the same setting)."""
    out = {}
    for o in overrides or ():
        key, sep, val = str(o).lstrip("+~").partition("=")
        if sep and not key.startswith(("hydra.", "metrics.early_stop.")):
            out[key] = _value(val)
    return out


def run_values(run: Run) -> dict:
    """The run's override values, with ``elr`` / ``lr`` replaced by the rates its summary records as used
    (``elr`` dropped when the optimizer has none, ``lr`` when it has one) and ``seed`` from the summary."""
    s = run.summary
    vals = override_values(s.get("overrides", []))
    for k in RATE_KEYS:
        if k in s:
            if s[k] is None:
                vals.pop(k, None)
            else:
                vals[k] = s[k]
    if vals.get("elr") is not None:
        vals.pop("lr", None)  # on the sphere lr = elr·ρ0² follows from elr: not a key of its own
    if s.get("seed") is not None:
        vals["seed"] = s["seed"]
    return vals


def _numeric(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class Setting:
    """Runs that differ only in ``seed``: ``values`` holds the varied keys other than seed."""

    values: dict
    runs: list[Run] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)

    def label(self, keys: Sequence[str] | None = None) -> str:
        keys = list(self.values) if keys is None else keys
        return ", ".join(f"{k}={cell(self.values.get(k), missing='None')}" for k in keys) or "all runs"

    @property
    def seeds(self) -> list:
        return [r.summary.get("seed") for r in self.runs]


@dataclass
class Sweep:
    """``varied``: the varied keys (seed included if it varied); ``x``: the key plotted on the x axis;
    ``series``: the other varied keys (one line per combination); ``settings`` sorted by series, then x."""

    varied: list[str]
    x: str
    series: list[str]
    settings: list[Setting]

    @property
    def x_numeric(self) -> bool:
        return all(_numeric(s.values.get(self.x)) for s in self.settings)

    def series_label(self, setting: Setting) -> str:
        return setting.label(self.series) if self.series else ""


def sweep_settings(runs: Sequence[Run], phases: Sequence[str] | None = None) -> Sweep:
    """Group ``runs`` (with their ``phases``) by setting; see the module docstring for x and the series."""
    vals = [run_values(r) for r in runs]
    keys = list(dict.fromkeys(k for v in vals for k in v))
    varied = [k for k in keys if len({repr(v.get(k)) for v in vals}) > 1]
    others = [k for k in varied if k != "seed"]
    rate = next((k for k in RATE_KEYS if any(v.get(k) is not None for v in vals)), "elr")
    numeric = [k for k in others if all(_numeric(v.get(k)) for v in vals)]
    x = next((k for k in RATE_KEYS if k in others), None) or (numeric or others or [rate])[0]
    if x not in others and x != rate:
        x = rate
    series = [k for k in others if k != x]
    shown = [x, *series] if x in others or x == rate else series
    groups: dict[tuple, Setting] = {}
    for i, (r, v) in enumerate(zip(runs, vals)):
        values = {k: v.get(k) for k in shown}
        key = tuple(repr(values[k]) for k in shown)
        st = groups.setdefault(key, Setting(values))
        st.runs.append(r)
        st.phases.append(phases[i] if phases is not None else "")

    def order(s: Setting):
        xv = s.values.get(x)
        return (tuple(_sortable(s.values.get(k)) for k in series), _sortable(xv))

    return Sweep(varied, x, series, sorted(groups.values(), key=order))


def _sortable(v):
    return (0, float(v), "") if _numeric(v) else (1, 0.0, str(v))


def phase_counts(phases: Sequence[str]) -> list[tuple[str, int]]:
    """Phase labels by frequency (ties: the order they first appear): the first is the majority."""
    return Counter(p for p in phases if p).most_common()


def format_counts(phases: Sequence[str]) -> str:
    """``"2 (3/4), 1-converged (1/4)"``."""
    n = sum(1 for p in phases if p)
    return ", ".join(f"{p} ({c}/{n})" for p, c in phase_counts(phases))


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean and sample standard deviation (ddof = 1; 0 for one value) of the finite values, and their count."""
    a = np.asarray([v for v in values if v is not None], dtype=float)
    a = a[np.isfinite(a)]
    if not a.size:
        return math.nan, math.nan, 0
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0, int(a.size)


def run_config(run: Run):
    """The run's config, or an empty one when it cannot be read."""
    try:
        return run.config
    except (LosslandError, OSError, ValueError):
        return OmegaConf.create({})
