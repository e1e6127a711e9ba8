"""The curvature-metric registry: metric name → function, and :func:`compute_curvature` over a selection.

Modules register their metrics with :func:`register_metric` (``lossland.metrics.curvature`` the Hessian
and Fisher metrics, ``lossland.metrics.sharpness`` Keskar sharpness); ``compute_curvature`` dispatches
through :data:`METRICS`. Importing :mod:`lossland.metrics.curvature` loads every built-in metric.

A metric function is called as ``fn(model, loss, data, params=, bn=, batch_size=, seed=, **options)``
with ``data`` an ``(x, y)`` pair, and returns a flat ``{logged name: float}``. The options it accepts are
declared at registration; others are refused (a typo in a config should not pass silently).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

COMMON = ("params", "bn", "batch_size")  # settings every metric takes, overridable per metric


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[..., dict[str, float]]
    options: tuple[str, ...]
    order: int = 100


METRICS: dict[str, Metric] = {}


def register_metric(name: str, options: tuple[str, ...] = (), order: int = 100):
    """Decorator: register ``fn`` as the curvature metric ``name`` accepting ``options``.

    ``METRICS`` lists metrics by ``order`` (then registration), whatever order modules are imported in.
    """
    def decorate(fn):
        old = METRICS.get(name)
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"curvature metric {name!r} is already registered by {old.fn.__module__}")
        METRICS[name] = Metric(name, fn, tuple(options), order)
        ordered = sorted(METRICS.values(), key=lambda m: m.order)
        METRICS.clear()
        METRICS.update((m.name, m) for m in ordered)
        return fn
    return decorate


def compute_curvature(model: nn.Module, loss, x: torch.Tensor, y: torch.Tensor, selection: dict,
                      params="all", bn: str = "eval", batch_size: int | None = None,
                      seed: int = 0) -> dict[str, float]:
    """Compute a selection of registered metrics on (x, y); returns flat ``{metric name: float}``.

    ``selection`` maps a metric name to its options (``None``/``{}``: defaults); each may also override
    ``params``/``bn``/``batch_size``. The names, options and logged values are listed in
    ``docs/curvature.md`` (and in each metric function's docstring).
    """
    unknown = set(selection) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown curvature metrics {sorted(unknown)}; valid: {', '.join(METRICS)}")
    defaults = {"params": params, "bn": bn, "batch_size": batch_size}
    out: dict[str, float] = {}
    for name, opts in selection.items():
        metric, o = METRICS[name], dict(opts or {})
        common = {k: o.pop(k, v) for k, v in defaults.items()}
        bad = sorted(set(o) - set(metric.options))
        if bad:
            raise ValueError(f"unknown option(s) {', '.join(bad)} for curvature metric {name}; "
                             f"valid: {', '.join(metric.options + COMMON)}")
        out.update(metric.fn(model, loss, (x, y), seed=seed, **common, **o))
    return out


__all__ = ["COMMON", "Metric", "METRICS", "register_metric", "compute_curvature"]
