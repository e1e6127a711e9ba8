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
            raise LosslandError(f"--to {other_dir}: its model does not match this run's "
                                f"(parameter {n}: {tuple(p.shape)} vs "
                                f"{tuple(theirs[n].shape) if n in theirs else 'missing'})")


def slice_of_run(run_dir: str | Path, to: str | Path | None = None, dims: int = 1, points: int | None = None,
                 span: tuple[float, float] | None = None, examples: int | None = 1024, split: str = "train",
                 bn: str = "train", params="all", seed: int = 0, norm: str = "filter",
                 bias_bn: str = "ignore", out: str | Path | None = None, name: str = "slice",
                 checkpoint: str | Path | None = None, log: bool = False, device: str = "cpu",
                 points_per_call: int = 8, progress: bool = True) -> dict:
    """Compute a 1-d or 2-d slice around the run's weights (``checkpoint``, default ``last.ckpt``) and
    write ``<name>.json`` and ``<name>.png``. Returns the JSON record plus ``"files"``.

    ``points`` per axis (default 21); ``span`` = (a, b), the coefficient range of
    every axis (default (-1, 1); with ``to``: (-0.5, 1.5) along d₁, so both runs lie on the grid).
    """
    if dims not in (1, 2):
        raise LosslandError(f"--dims must be 1 or 2, got {dims}")
    if bn not in ("train", "eval"):
        raise LosslandError(f"--bn must be 'train' or 'eval', got {bn!r}")
    points = points or 21
    if points < 2:
        raise LosslandError(f"--points must be at least 2, got {points}")
    run_dir = Path(run_dir)
    t0 = time.time()
    run = open_run(run_dir)
    cfg = run.config  # refuses a directory that is not a run
    model, loss, dm = run.model(checkpoint)
    try:
        names = list(select_params(model, params))
    except ValueError as e:
        raise LosslandError(str(e)) from None
    x, y, batch_size = slice_data(dm, examples, split, int(cfg.metrics.get("eval_batches", 8)))
    model.to(device)
    x, y = x.to(device), y.to(device)

    directions, described = [], []
    if to is not None:
        other = open_run(to).model()[0]
        _same_architecture(model, other, names, to)
        directions.append(direction_to(model, other.to(device), params))
        described.append(f"to {Path(to)}")
    while len(directions) < dims:
        s = seed + len(directions) - (1 if to is not None else 0)
        try:
            directions.append(random_direction(model, params, seed=s, norm=norm, bias_bn=bias_bn))
        except ValueError as e:
            raise LosslandError(str(e)) from None
        described.append(f"random ({norm}-normalized, bias/BN {bias_bn}, seed {s})")

    a_span = tuple(span) if span is not None else ((-0.5, 1.5) if to is not None else (-1.0, 1.0))
    b_span = tuple(span) if span is not None else (-1.0, 1.0)
    alphas = np.linspace(*a_span, points)
    common = {"bn": bn, "batch_size": batch_size, "points_per_call": points_per_call, "progress": progress}
    if dims == 1:
        result = slice_1d(model, loss, (x, y), directions[0], alphas, **common)
    else:
        betas = np.linspace(*b_span, points)
        result = slice_2d(model, loss, (x, y), directions[0], directions[1], alphas, betas, **common)
    out_dir = Path(out) if out is not None else run_dir
    title = f"{run_dir.name}" + (f" → {Path(to).name}" if to is not None else "") + f" ({split}, BN {bn})"
    png = out_dir / f"{name}.png"
    if dims == 1:
        plot_slice_1d(result, png, title=title, log_loss=log)
    else:
        plot_slice_2d(result, png, title=title, log=log)
    record = {"run": str(run_dir), "to": str(to) if to is not None else None, "dims": dims,
              "checkpoint": str(checkpoint) if checkpoint is not None else "last.ckpt",
              "directions": described,
              "settings": {"split": split, "examples": len(x), "batch_size": batch_size, "bn": bn,
                           "params": params, "norm": norm, "bias_bn": bias_bn, "seed": seed,
                           "points": points},
              **{k: np.asarray(v).tolist() for k, v in result.items()},
              "wall_s": round(time.time() - t0, 3)}
    path = write_json(out_dir / f"{name}.json", record)
    return {**record, "files": [str(path), str(png)]}


__all__ = ["slice_of_run", "slice_data"]
