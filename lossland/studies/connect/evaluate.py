"""Evaluating a path: loss and accuracy at points along it, barriers and summaries; ``connect.json``.

Conventions: accuracies are in percent and accuracy differences in percentage points; losses are batch means
of the given loss; ``t`` is the path's own parameter (its ``t_range``, e.g. [0, 2] for weight adjustment), and
"the straight line between endpoint losses" uses the normalised s = (t − t0)/(t1 − t0) ∈ [0, 1]. The midpoint
is t = (t0 + t1)/2 (added to the grid if ``num_points`` misses it).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from itertools import islice

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lossland.data import TensorBatches
from lossland.metrics.gradients import evaluate, gradient_stats
from lossland.records import write_json
from lossland.studies.connect.bn import has_bn, recompute_bn

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


def _param_vector(model: nn.Module, state: dict) -> torch.Tensor:
    return torch.cat([state[k].detach().reshape(-1).double() for k, _ in model.named_parameters()])


def summarize(t: np.ndarray, loss: np.ndarray, acc: np.ndarray, t_range, cum_length: np.ndarray) -> dict:
    """Barrier summaries of one split along a path (see module doc for units and conventions)."""
    t0, t1 = t_range
    s = (t - t0) / (t1 - t0)
    loss_a, loss_b, acc_a, acc_b = loss[0], loss[-1], acc[0], acc[-1]
    mid = int(np.argmin(np.abs(s - 0.5)))
    total = cum_length[-1]
    mean_loss = float(_trapezoid(loss, cum_length) / total) if total > 0 else float(np.mean(loss))
    return {
        "loss_a": float(loss_a), "loss_b": float(loss_b), "acc_a": float(acc_a), "acc_b": float(acc_b),
        "max_acc_loss": float(np.max(0.5 * (acc_a + acc_b) - acc)),
        "loss_barrier": float(np.max(loss - ((1 - s) * loss_a + s * loss_b))),
        "mid_loss_barrier": float(loss[mid] - 0.5 * (loss_a + loss_b)),
        "mid_acc_barrier": float(0.5 * (acc_a + acc_b) - acc[mid]),
        "mean_loss": mean_loss,
        "max_loss": float(np.max(loss)),
        "min_acc": float(np.min(acc)),
    }


def evaluate_path(path, model_template: nn.Module, loss: nn.Module, train: tuple, test: tuple | None = None,
                  num_points: int = 21, bn_batches: Iterable | torch.Tensor | None = None,
                  bn_max_batches: int | None = None, batch_size: int = 1024, progress: bool = True,
                  desc: str | None = None, gm_batches: list | None = None) -> dict:
    """Evaluate ``path`` at ``num_points`` evenly spaced t in its ``t_range`` (plus the midpoint).

    At each point the state is loaded into a copy of ``model_template``; where the net has BN, its running
    statistics are recomputed (:func:`recompute_bn`) on ``bn_batches`` (default: the training inputs in
    ``batch_size`` slices, at most ``bn_max_batches``). Returns per-point lists (``t``, ``train_loss``,
    ``train_acc``, ``test_loss``, ``test_acc``, ``length`` = cumulative parameter-space distance) and
    ``summary`` = {``path_length``, ``train``: {...}, ``test``: {...}} (see :func:`summarize`): max accuracy
    loss (points), loss barrier, midpoint loss/accuracy barriers, length-weighted mean loss.

    ``gm_batches`` (a list of (x, y) mini-batches): also GM = mean_b ‖∇_θ L_b‖ at each point, BN in train mode
    (:func:`lossland.metrics.gradients.gradient_stats`, study S's curvature proxy): per-point ``gm`` and
    ``summary["gm"]`` = {a, b, max, mid}. Pass a run's fixed evaluation mini-batches and GM at the endpoints
    equals the GM that run logged at the same weights."""
    if num_points < 2:
        raise ValueError("num_points must be >= 2")
    t0, t1 = (float(v) for v in path.t_range)
    model = copy.deepcopy(model_template)
    splits = {"train": train, **({"test": test} if test is not None else {})}
    rec: dict[str, list] = {"t": [], "length": [], **{f"{k}_{m}": [] for k in splits for m in ("loss", "acc")}}
    prev, length = None, 0.0
    for t in tqdm(_grid(t0, t1, num_points), desc=desc or f"path {getattr(path, 'name', '')}", disable=not progress,
                  leave=False):
        state = path(float(t))
        _load_point(model, state, train, bn_batches, bn_max_batches, batch_size)
        vec = _param_vector(model, state)
        length += 0.0 if prev is None else float(torch.linalg.vector_norm(vec - prev))
        prev = vec
        rec["t"].append(float(t))
        rec["length"].append(length)
        _measure_point(rec, model, loss, splits, batch_size, gm_batches)
    return {"path": getattr(path, "name", type(path).__name__), "t_range": [t0, t1], **rec,
            "summary": _summary(rec, splits, (t0, t1), length)}


def _grid(t0: float, t1: float, num_points: int) -> np.ndarray:
    """``num_points`` evenly spaced t in [t0, t1], plus the midpoint when they miss it."""
    grid = np.linspace(t0, t1, num_points)
    mid = 0.5 * (t0 + t1)
    return grid if np.any(np.isclose(grid, mid)) else np.sort(np.append(grid, mid))


def _load_point(model: nn.Module, state: dict, train: tuple, bn_batches, bn_max_batches, batch_size: int) -> None:
    """The path's weights at t into ``model``, with BN statistics recomputed where the net has BN."""
    model.load_state_dict({k: v.detach() for k, v in state.items()})
    if has_bn(model):
        batches = bn_batches if bn_batches is not None else islice(TensorBatches(*train, batch_size), bn_max_batches)
        recompute_bn(model, batches, batch_size=batch_size)


def _measure_point(rec: dict, model: nn.Module, loss, splits: dict, batch_size: int, gm_batches) -> None:
    """Loss and accuracy (%) on each split (BN in eval mode: the statistics just recomputed), GM if asked."""
    for k, (x, y) in splits.items():
        m = evaluate(model, loss, TensorBatches(x, y, batch_size), mode="eval")
        rec[f"{k}_loss"].append(m["loss"])
        rec[f"{k}_acc"].append(100.0 * (1.0 - m["error"]))
    if gm_batches is not None:
        rec.setdefault("gm", []).append(gradient_stats(model, loss, gm_batches, mode="train")["gm"])


def _summary(rec: dict, splits: dict, t_range: tuple[float, float], length: float) -> dict:
    t_arr, cum = np.asarray(rec["t"]), np.asarray(rec["length"])
    summary = {"path_length": length}
    if "gm" in rec:
        gm = np.asarray(rec["gm"])
        mid = int(np.argmin(np.abs(t_arr - 0.5 * sum(t_range))))
        summary["gm"] = {"a": float(gm[0]), "b": float(gm[-1]), "max": float(gm.max()), "mid": float(gm[mid])}
    for k in splits:
        summary[k] = summarize(t_arr, np.asarray(rec[f"{k}_loss"]), np.asarray(rec[f"{k}_acc"]), t_range, cum)
    return summary


def _builtin(obj):
    """``obj`` with numpy and torch values turned into Python lists and numbers (for JSON)."""
    if isinstance(obj, dict):
        return {str(k): _builtin(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_builtin(v) for v in obj]
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return _builtin(obj.tolist())
    return obj


def write_connect_json(result: dict, path: str | os.PathLike) -> None:
    """Write ``result`` as JSON atomically (:func:`lossland.records.write_json`: non-finite numbers become
    null)."""
    write_json(path, _builtin(result))
