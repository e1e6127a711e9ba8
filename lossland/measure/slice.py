"""Loss-landscape slice around a run's final weights (``lossland slice <run dir>``).

Directions (Li et al. 2018, :mod:`lossland.metrics.landscape`): random Gaussian, filter-normalized
(``dims=1``: d₁ with ``seed``; ``dims=2``: d₁, d₂ with ``seed``, ``seed + 1``), or, with ``to=<other
run>``, d₁ = θ_other − θ (α = 1 is the other run's weights; with ``dims=2`` d₂ is a random
filter-normalized direction). The loss and accuracy are evaluated on the first ``examples`` examples
of the run's fixed evaluation order (``dm.eval_batches``, the phase metrics' mini-batches; ``split=
"test"``: the first test examples), cut into the run's mini-batches; with BN in ``train`` mode (batch
statistics — the default, meaningful away from θ, where the running statistics do not belong) or
``eval`` mode (the run's running statistics).

Writes ``<name>.json`` (settings, grids, loss, accuracy) and ``<name>.png`` (line plot for 1-d,
contour plot of the loss for 2-d) into the run directory or ``out``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from lossland.callbacks.curvature import curvature_subset
from lossland.errors import LosslandError
from lossland.measure.slice_plots import plot_slice_1d, plot_slice_2d
from lossland.metrics.curvature import select_params
from lossland.metrics.landscape import direction_to, random_direction, slice_1d, slice_2d
from lossland.records import write_json
from lossland.runs import open_run


def slice_data(dm, examples: int | None, split: str = "train", eval_batches: int = 8):
    """``(x, y, batch_size)``: the fixed examples a slice is evaluated on (module docstring)."""
    if split not in dm.splits:
        raise LosslandError(f"the run's data has no {split!r} split; splits: {', '.join(dm.splits)}")
    if split == "train":
        k = max(eval_batches, math.ceil(examples / dm.batch_size)) if examples else len(dm.splits["train"][0])
        return curvature_subset(dm.eval_batches(k), examples)
    x, y = dm.splits[split]
    if examples:
        x, y = x[:examples], y[:examples]
    return x, y, min(dm.batch_size, len(x))


def _same_architecture(model, other, names, other_dir) -> None:
    theirs = dict(other.named_parameters())
    for n, p in model.named_parameters():
        if n in names and (n not in theirs or theirs[n].shape != p.shape):
            raise LosslandError(f"to={other_dir}: its model does not match this run's "
                                f"(parameter {n}: {tuple(p.shape)} vs "
                                f"{tuple(theirs[n].shape) if n in theirs else 'missing'})")


def _checked(cfg) -> dict:
    """``conf/slice.yaml``'s keys as a plain dict, refused in one line where a value is not valid."""
    c = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    if c["dims"] not in (1, 2):
        raise LosslandError(f"dims={c['dims']} is not valid: 1 or 2")
    if c["bn"] not in ("train", "eval"):
        raise LosslandError(f"bn={c['bn']} is not valid: 'train' or 'eval'")
    c["points"] = c["points"] or 21
    if c["points"] < 2:
        raise LosslandError(f"points={c['points']} is not valid: at least 2")
    return c


def _directions(model, c: dict, names, device) -> tuple[list, list[str]]:
    """d₁ (toward ``to``, or random) and, for ``dims=2``, d₂ (random); with their descriptions."""
    directions, described = [], []
    if c["to"] is not None:
        other = open_run(c["to"]).model()[0]
        _same_architecture(model, other, names, c["to"])
        directions.append(direction_to(model, other.to(device), c["params"]))
        described.append(f"to {Path(c['to'])}")
    while len(directions) < c["dims"]:
        s = c["seed"] + len(directions) - (1 if c["to"] is not None else 0)
        try:
            directions.append(random_direction(model, c["params"], seed=s, norm=c["norm"], bias_bn=c["bias_bn"]))
        except ValueError as e:
            raise LosslandError(str(e)) from None
        described.append(f"random ({c['norm']}-normalized, bias/BN {c['bias_bn']}, seed {s})")
    return directions, described


def _grid(model, loss, data, directions, c: dict, batch_size: int) -> dict:
    """The loss and accuracy on the slice's grid (module docstring for the default ranges)."""
    a_span = tuple(c["range"]) if c["range"] is not None else ((-0.5, 1.5) if c["to"] is not None else (-1.0, 1.0))
    b_span = tuple(c["range"]) if c["range"] is not None else (-1.0, 1.0)
    alphas = np.linspace(*a_span, c["points"])
    common = {"bn": c["bn"], "batch_size": batch_size, "points_per_call": c["points_per_call"],
              "progress": c["progress"]}
    if c["dims"] == 1:
        return slice_1d(model, loss, data, directions[0], alphas, **common)
    betas = np.linspace(*b_span, c["points"])
    return slice_2d(model, loss, data, directions[0], directions[1], alphas, betas, **common)


def slice_of_run(cfg) -> dict:
    """Compute a 1-d or 2-d slice around the weights of ``cfg.run`` (``checkpoint``, default ``last.ckpt``) and
    write ``<name>.json`` and ``<name>.png``. Returns the JSON record plus ``"files"``.

    ``cfg``: ``conf/slice.yaml`` composed (e.g. ``lossland.config.compose(["run=DIR"], "slice")``): ``points``
    per axis, ``range`` = [a, b], the coefficient range of every axis (default [-1, 1]; with ``to``: [-0.5, 1.5]
    along d₁, so both runs lie on the grid), ...
    """
    c = _checked(cfg)
    run_dir, t0 = Path(c["run"]), time.time()
    run = open_run(run_dir)
    run_cfg = run.config  # refuses a directory that is not a run
    model, loss, dm = run.model(c["checkpoint"])
    try:
        names = list(select_params(model, c["params"]))
    except ValueError as e:
        raise LosslandError(str(e)) from None
    x, y, batch_size = slice_data(dm, c["examples"] or None, c["split"], int(run_cfg.metrics.get("eval_batches", 8)))
    model.to(c["device"])
    data = (x.to(c["device"]), y.to(c["device"]))
    directions, described = _directions(model, c, names, c["device"])
    result = _grid(model, loss, data, directions, c, batch_size)
    return _write(run_dir, c, result, described, len(x), batch_size, time.time() - t0)


def _write(run_dir: Path, c: dict, result: dict, described: list[str], examples: int, batch_size: int,
           wall_s: float) -> dict:
    """``<name>.png`` and ``<name>.json`` into ``out`` (default: the run directory)."""
    out_dir = Path(c["out"]) if c["out"] is not None else run_dir
    to = c["to"]
    title = f"{run_dir.name}" + (f" → {Path(to).name}" if to is not None else "") + f" ({c['split']}, BN {c['bn']})"
    png = out_dir / f"{c['name']}.png"
    if c["dims"] == 1:
        plot_slice_1d(result, png, title=title, log_loss=c["log"])
    else:
        plot_slice_2d(result, png, title=title, log=c["log"])
    record = {"run": str(run_dir), "to": str(to) if to is not None else None, "dims": c["dims"],
              "checkpoint": str(c["checkpoint"]) if c["checkpoint"] is not None else "last.ckpt",
              "directions": described,
              "settings": {"split": c["split"], "examples": examples, "batch_size": batch_size, "bn": c["bn"],
                           "params": c["params"], "norm": c["norm"], "bias_bn": c["bias_bn"], "seed": c["seed"],
                           "points": c["points"]},
              **{k: np.asarray(v).tolist() for k, v in result.items()},
              "wall_s": round(wall_s, 3)}
    path = write_json(out_dir / f"{c['name']}.json", record)
    return {**record, "files": [str(path), str(png)]}


__all__ = ["slice_of_run", "slice_data"]
