"""The one-implementation utilities: atomic writes (lossland.records), figures (lossland.figures) and table cells
(lossland.cells)."""

import math

import numpy as np
import pytest

from lossland.cells import cell, pm
from lossland.figures import figure, save_figure
from lossland.records import atomic_path, atomic_write


def test_atomic_path_replaces_in_one_step_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "a.gif"
    with atomic_path(target, suffix=".gif") as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".gif" and tmp != target
        tmp.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "new" and sorted(p.name for p in target.parent.iterdir()) == ["a.gif"]
    assert atomic_write(tmp_path / "b.txt", "x").read_text() == "x"
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_figures_are_drawn_on_agg_and_saved_as_png(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figure(3, 2)
    assert isinstance(fig.canvas, FigureCanvasAgg) and fig.get_layout_engine() is not None
    assert figure(3, 2, layout=None).get_layout_engine() is None
    fig.subplots().plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "f.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("value, kwargs, expected", [
    (0.123456, {}, "0.1235"), (3, {}, "3"), ("text", {}, "text"), (None, {}, "—"), (math.nan, {}, "—"),
    (np.float32(2.5), {"spec": ".1f"}, "2.5"), (None, {"missing": ""}, ""), (math.inf, {}, "inf"), (True, {}, "True"),
])
def test_cell(value, kwargs, expected):
    assert cell(value, **kwargs) == expected


def test_mean_std():
    assert pm(98.031, 0.0712) == "98.03 ± 0.07"
    assert pm(0.5, 0.01234, spec=".4g", std_spec=".2g") == "0.5 ± 0.012"
    assert pm(1.0) == pm(1.0, math.nan) == "1.00"
    assert pm(math.nan, 1.0) == pm(None) == "—"
