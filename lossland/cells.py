"""The one formatter of table cells: every table lossland writes or prints (CSV / Markdown tables, terminal
tables, the report's HTML, the seed-beside-ours tables) renders its numbers through :func:`cell` and
:func:`pm`, so a missing value, a NaN and a mean ± std look the same everywhere."""

from __future__ import annotations

import math
import numbers

__all__ = ["MISSING", "cell", "pm", "loss_count"]

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


def pm(mean, std=None, spec: str = ".2f", std_spec: str | None = None, missing: str = MISSING) -> str:
    """``mean ± std`` (``std`` in ``std_spec``, default ``spec``); the mean alone when ``std`` is None or NaN;
    ``missing`` when the mean is."""
    if _absent(mean):
        return missing
    head = format(float(mean), spec)
    return head if _absent(std) else f"{head} ± {format(float(std), std_spec or spec)}"


def loss_count(loss_sum, count) -> str:
    """Study E's unit, ``loss \\ misclassified``: the loss summed over a split (the seed's digits: ``0``, one decimal
    from 1 on, three below; ``inf`` when not finite) and the count of misclassified examples."""
    if _absent(loss_sum) or _absent(count):
        return MISSING
    loss_sum = float(loss_sum)
    text = ("inf" if not math.isfinite(loss_sum) else "0" if loss_sum == 0 else f"{loss_sum:.1f}" if loss_sum >= 1
            else f"{loss_sum:.3f}")
    return f"{text}\\{int(count)}"
