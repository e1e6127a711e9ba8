"""Loss-landscape slices (Li et al., "Visualizing the loss landscape of neural nets", NeurIPS 2018).

A slice evaluates L(θ + α·d₁ (+ β·d₂)) and the accuracy on a grid of (α, β), for directions given as
``{parameter name: tensor}`` over (a subset of) the trainable parameters; everything else (other
parameters, BN buffers) stays the model's own. Directions are either random Gaussian and
filter-normalized, or the difference to a second model (then α = 1 is that model's parameters).

Filter normalization: for every parameter with ≥ 2 dimensions, each filter d_f = d[i] (a conv
output channel, a row of a linear weight) is rescaled to ‖d_f‖ = ‖θ_f‖. One-dimensional parameters
(biases, BN weights/biases) follow ``bias_bn``: ``"ignore"`` (zeroed, the default in Li et al.),
``"filter"`` (normalized as a single filter) or ``"copy"`` (set to θ, as in Li et al.'s code).

Grid points are evaluated without copying the model: ``torch.func.functional_call`` on stacked
parameter tensors, ``points_per_call`` points at a time through ``vmap``, with a tqdm progress bar.
BN mode ``"eval"`` uses the model's running statistics, ``"train"`` the statistics of each
evaluation batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap
from tqdm.auto import tqdm

from lossland.metrics.bn import bn_mode
from lossland.metrics.params import as_batches, select_params

Direction = dict[str, torch.Tensor]


def normalize_direction(direction: Direction, weights: dict[str, torch.Tensor], norm: str = "filter",
                        bias_bn: str = "ignore") -> Direction:
    """Rescale ``direction`` to the scale of ``weights``: ``norm`` = "filter" | "layer" | "none"."""
    if norm not in ("filter", "layer", "none") or bias_bn not in ("ignore", "filter", "copy"):
        raise ValueError(f"norm must be filter|layer|none and bias_bn ignore|filter|copy, "
                         f"got {norm!r}, {bias_bn!r}")
    out = {}
    for name, d in direction.items():
        w = weights[name].detach()
        if w.dim() <= 1 and bias_bn == "ignore":
            out[name] = torch.zeros_like(d)
        elif w.dim() <= 1 and bias_bn == "copy":
            out[name] = w.clone()
        elif norm == "none":
            out[name] = d.clone()
        elif norm == "layer" or w.dim() <= 1:
            out[name] = d * (w.norm() / (d.norm() + 1e-10))
        else:
            dn = d.flatten(1).norm(dim=1).view(-1, *[1] * (d.dim() - 1))
            wn = w.flatten(1).norm(dim=1).view(-1, *[1] * (d.dim() - 1))
            out[name] = d * (wn / (dn + 1e-10))
    return out


def random_direction(model: nn.Module, params="all", seed: int = 0, norm: str = "filter",
                     bias_bn: str = "ignore") -> Direction:
    """Gaussian direction over the selected parameters (seeded), normalized as in Li et al."""
    gen = torch.Generator().manual_seed(seed)
    weights = {n: p.detach() for n, p in select_params(model, params).items()}
    raw = {n: torch.randn(w.shape, generator=gen, dtype=w.dtype).to(w.device) for n, w in weights.items()}
    return normalize_direction(raw, weights, norm, bias_bn)


def direction_to(model: nn.Module, other: nn.Module, params="all") -> Direction:
    """θ_other − θ_model over the selected parameters (matched by name)."""
    others = dict(other.named_parameters())
    return {n: (others[n].detach() - p.detach()) for n, p in select_params(model, params).items()}


def _evaluate(model, loss, batches, directions: list[Direction], coeffs: np.ndarray, bn: str,
              points_per_call: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss and accuracy at θ + Σ_k coeffs[i, k]·directions[k] for every row i."""
    names = list(directions[0])
    base = {n: p.detach() for n, p in model.named_parameters() if n in names}
    predict = getattr(loss, "predict", lambda o: o.argmax(dim=1))
    n_data = sum(len(x) for x, _ in batches)
    losses, accs = [], []

    def point(p, x, y):
        out = functional_call(model, p, (x,))
        return loss(out, y), (predict(out) == y).to(out.dtype).mean()

    chunks = range(0, len(coeffs), points_per_call)
    with bn_mode(model, bn, elementary=True), torch.no_grad():
        for start in tqdm(chunks, desc="landscape", disable=not progress, leave=False):
            c = torch.as_tensor(coeffs[start:start + points_per_call], dtype=next(iter(base.values())).dtype)
            c = c.to(next(iter(base.values())).device)
            stacked = {n: base[n] + sum(c[:, k].view(-1, *[1] * base[n].dim()) * d[n]
                                        for k, d in enumerate(directions)) for n in names}
            total_l = torch.zeros(len(c), dtype=c.dtype, device=c.device)
            total_a = torch.zeros_like(total_l)
            for x, y in batches:
                lv, av = vmap(point, in_dims=(0, None, None))(stacked, x, y)
                total_l += lv * (len(x) / n_data)
                total_a += av * (len(x) / n_data)
            losses.append(total_l.cpu())
            accs.append(total_a.cpu())
    return torch.cat(losses).double().numpy(), torch.cat(accs).double().numpy()


def slice_1d(model: nn.Module, loss, data, direction: Direction, alphas=None, bn: str = "eval",
             batch_size: int | None = None, points_per_call: int = 8, progress: bool = True) -> dict:
    """L and accuracy at θ + α·d: ``{"alphas", "loss", "accuracy"}`` (numpy arrays)."""
    alphas = np.linspace(-1, 1, 21) if alphas is None else np.asarray(alphas, dtype=float)
    loss_v, acc = _evaluate(model, loss, as_batches(data, batch_size), [direction], alphas[:, None], bn,
                            points_per_call, progress)
    return {"alphas": alphas, "loss": loss_v, "accuracy": acc}


def slice_2d(model: nn.Module, loss, data, d1: Direction, d2: Direction, alphas=None, betas=None,
             bn: str = "eval", batch_size: int | None = None, points_per_call: int = 8,
             progress: bool = True) -> dict:
    """L and accuracy at θ + α·d₁ + β·d₂: ``{"alphas", "betas", "loss", "accuracy"}``, grids [α, β]."""
    alphas = np.linspace(-1, 1, 21) if alphas is None else np.asarray(alphas, dtype=float)
    betas = np.linspace(-1, 1, 21) if betas is None else np.asarray(betas, dtype=float)
    grid = np.stack(np.meshgrid(alphas, betas, indexing="ij"), axis=-1).reshape(-1, 2)
    loss_v, acc = _evaluate(model, loss, as_batches(data, batch_size), [d1, d2], grid, bn, points_per_call,
                            progress)
    shape = (len(alphas), len(betas))
    return {"alphas": alphas, "betas": betas, "loss": loss_v.reshape(shape), "accuracy": acc.reshape(shape)}
