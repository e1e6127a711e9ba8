"""Gradient statistics at fixed weights: GM and the norm of the mean gradient (study S)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from lossland.metrics.bn import bn_mode


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def gradient_stats(model: nn.Module, loss: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                   params: Sequence[torch.Tensor] | None = None, mode: str = "train") -> dict[str, float]:
    """At the current weights, over mini-batches b (one forward+backward each, memory independent of
    their number):

    - ``gm`` = mean_b ‖∇_θ L_b(θ)‖ (GM of Kodryan et al.; BN in train mode, i.e. batch statistics),
    - ``grad_mean_norm`` = ‖mean_b ∇_θ L_b(θ)‖,
    - ``loss``, ``error``: example-weighted mean loss and error rate of the same forward passes.

    θ are ``params`` (default: all trainable parameters = the SI parameters of a scale-invariant net).
    """
    params = list(params) if params is not None else trainable(model)
    total = [torch.zeros_like(p) for p in params]
    norms, losses, errors, n = [], 0.0, 0, 0
    # the whole model in ``mode`` (dropout on in train mode), as in training; BN buffers untouched
    with bn_mode(model, mode, dropout=mode == "train"):
        for x, y in batches:
            out = model(x)
            batch_loss = loss(out, y)
            grads = torch.autograd.grad(batch_loss, params)
            norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
            torch._foreach_add_(total, grads)
            losses += float(batch_loss.detach()) * len(y)
            errors += int((loss.predict(out.detach()) != y).sum())
            n += len(y)
    mean_norm = torch.linalg.vector_norm(torch.stack([t.norm() for t in total])) / len(norms)
    return {"gm": float(torch.stack(norms).mean()), "grad_mean_norm": float(mean_norm),
            "loss": losses / n, "error": errors / n}


@torch.no_grad()
def evaluate(model: nn.Module, loss: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
             mode: str = "eval") -> dict[str, float]:
    """Example-weighted mean loss and error rate (fraction, 0-1) over ``batches``."""
    tot_loss = tot_err = n = 0
    with bn_mode(model, mode, dropout=mode == "train"):
        for x, y in batches:
            out = model(x)
            tot_loss += float(loss.per_sample(out, y).sum())
            tot_err += int((loss.predict(out) != y).sum())
            n += len(y)
    return {"loss": tot_loss / n, "error": tot_err / n}
