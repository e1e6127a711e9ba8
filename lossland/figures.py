"""The one figure helper: figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no global
backend switch, so the caller's backend is left alone) and saved as PNG atomically, through
:func:`lossland.records.atomic_write`. matplotlib is imported when a figure is made, not with this module."""

from __future__ import annotations

import io
from pathlib import Path

from lossland.records import atomic_write

__all__ = ["figure", "save_figure"]


def figure(width: float, height: float, layout: str | None = "constrained", **kwargs):
    """A ``matplotlib.figure.Figure`` of ``width`` × ``height`` inches on the Agg canvas (``layout``:
    ``"constrained"``, ``"tight"`` or None; ``kwargs`` go to ``Figure``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` as PNG (tight bounding box), atomically; returns the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write(path, buf.getvalue())
