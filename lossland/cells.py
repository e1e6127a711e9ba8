"""The one formatter of table cells: every table lossland writes or prints (CSV / Markdown tables, terminal
tables, the report's HTML, the seed-beside-ours tables) renders its numbers through :func:`cell` and
:func:`mean_std`, so a missing value, a NaN and a mean ± std look the same everywhere."""

from __future__ import annotations

import math
import numbers

__all__ = ["MISSING", "cell", "mean_std"]

MISSING = "—"  # a value that does not exist (None, NaN)


def _absent(v) -> bool:
    return v is None or (isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral) and math.isnan(v))


def cell(v, spec: str = ".4g", missing: str = MISSING) -> str:
    """A non-integer number as ``format(v, spec)``; None and NaN as ``missing``; anything else (integers, text)
    as ``str(v)``."""
    if _absent(v):
        return missing
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):
        return format(float(v), spec)
    return str(v)


def mean_std(mean, std=None, spec: str = ".2f", std_spec: str | None = None, missing: str = MISSING) -> str:
    """``mean ± std`` (``std`` in ``std_spec``, default ``spec``); the mean alone when ``std`` is None or NaN;
    ``missing`` when the mean is."""
    if _absent(mean):
        return missing
    head = cell(mean, spec)
    return head if _absent(std) else f"{head} ± {cell(std, std_spec or spec)}"
