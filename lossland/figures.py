"""The one figure helper: figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no global
backend switch, so the caller's backend is left alone) and saved as PNG atomically, through
:func:`lossland.records.atomic_write`. matplotlib is imported when a figure is made, not with this module."""

from __future__ import annotations

import io
from pathlib import Path

from lossland.records import atomic_write

__all__ = ["figure", "save_figure", "plain_log_ticks"]


def figure(width: float, height: float, layout: str | None = "constrained", **kwargs):
    """A ``matplotlib.figure.Figure`` of ``width`` × ``height`` inches on the Agg canvas (``layout``:
    ``"constrained"``, ``"tight"`` or None; ``kwargs`` go to ``Figure``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` as PNG (tight bounding box), atomically; returns the path. Drawn with mathtext
    off (``text.parse_math``: labels from records drawn as written), log axes get plain-text tick labels
    (:func:`plain_log_ticks`): matplotlib's are mathtext and would be drawn as ``$\\mathdefault{10^{3}}$``."""
    import matplotlib

    if not matplotlib.rcParams["text.parse_math"]:
        plain_log_ticks(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write(path, buf.getvalue())


_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


def power_of_ten(value: float, _pos=None, mantissas: tuple[int, ...] = (1,)) -> str:
    """A log-axis tick label without mathtext: ``10³``, ``10⁻²`` at powers of ten (and ``2·10⁻¹`` at the other
    ``mantissas``), else nothing."""
    import math

    if not value > 0 or not math.isfinite(value):
        return ""
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = round(value / 10.0 ** exponent)
    if mantissa not in mantissas or not math.isclose(value, mantissa * 10.0 ** exponent, rel_tol=1e-6):
        return ""
    power = "10" + str(exponent).translate(_SUPERSCRIPT)
    return power if mantissa == 1 else f"{mantissa}\u00b7{power}"


def plain_log_ticks(fig) -> None:
    """Plain-text tick labels (:func:`power_of_ten`) on every log-scaled axis of ``fig``, colour bars included:
    the powers of ten, and 2 and 5 times them where the axis spans less than two decades (as matplotlib does)."""
    from matplotlib.ticker import FuncFormatter

    def minor(axis):
        def label(value, pos=None):
            lo, hi = sorted(axis.get_view_interval())
            return power_of_ten(value, pos, (2, 5)) if lo > 0 and hi / lo < 100 else ""
        return label

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                axis.set_major_formatter(FuncFormatter(power_of_ten))
                axis.set_minor_formatter(FuncFormatter(minor(axis)))
