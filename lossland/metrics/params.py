"""What every metric at fixed weights is measured over: a parameter selection and data batches.

Shared by curvature (:mod:`lossland.metrics.curvature`), sharpness and landscape slices; it sits below
all of them (it imports nothing from lossland), so each can use it without importing another.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from lossland.batches import TensorBatches

Batches = list[tuple[torch.Tensor, torch.Tensor]]


def select_params(model: nn.Module, which="all") -> dict[str, nn.Parameter]:
    """Named parameters to measure, in model order.

    ``which``: ``"all"`` — every trainable (``requires_grad``) parameter; ``"si"`` — the
    scale-invariant parameters, which in lossland's SI models are exactly the trainable ones (the
    last layer is frozen), so the same as ``"all"``; a module name such as ``"features.0"`` — that
    module's trainable parameters; a list of parameter names or module names; or a dict
    ``{name: parameter}`` (returned as is).
    """
    if isinstance(which, dict):
        return dict(which)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if which in ("all", "si"):
        chosen = named
    else:
        keys = [which] if isinstance(which, str) else list(which)
        chosen = [(n, p) for n, p in named if any(n == k or n.startswith(k + ".") for k in keys)]
    if not chosen:
        raise ValueError(f"no trainable parameters match {which!r}; "
                         f"trainable: {', '.join(n for n, _ in named) or 'none'}")
    return dict(chosen)


def layer_groups(params: dict[str, nn.Parameter]) -> dict[str, dict[str, nn.Parameter]]:
    """Group named parameters by owning module (``"net.0.weight"`` → layer ``"net.0"``)."""
    groups: dict[str, dict[str, nn.Parameter]] = {}
    for name, p in params.items():
        groups.setdefault(name.rpartition(".")[0] or name, {})[name] = p
    return groups


def as_batches(data, batch_size: int | None = None) -> Batches:
    """``(x, y)`` → list of batches of ``batch_size`` (``None``: one batch); a list passes through."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        return list(TensorBatches(*data, batch_size))
    return list(data)


def flatten(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors (in dict order) into one flat vector."""
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def unflatten(vec: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Split a flat vector into tensors shaped like ``like`` (views of ``vec``, same names)."""
    parts = vec.split([t.numel() for t in like.values()])
    return {n: v.view(t.shape) for (n, t), v in zip(like.items(), parts)}


def functional_loss(model: nn.Module, loss, batches: Batches,
                    params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sample-weighted mean loss over ``batches`` with the model's ``params`` replaced (differentiable).

    Call inside :func:`lossland.metrics.bn.bn_mode`; parameters not in ``params`` and buffers are the
    model's own.
    """
    n = sum(len(x) for x, _ in batches)
    return sum(loss(functional_call(model, params, (x,)), y) * (len(x) / n) for x, y in batches)


def per_sample_losses(loss, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample losses (vmap-friendly for lossland's losses); a loss without ``per_sample`` is looped."""
    if hasattr(loss, "per_sample"):
        return loss.per_sample(output, target)
    return torch.stack([loss(output[i:i + 1], target[i:i + 1]) for i in range(len(output))])


def detached(params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in params.items()}


__all__ = ["Batches", "select_params", "layer_groups", "as_batches", "flatten", "unflatten", "functional_loss",
           "per_sample_losses", "detached"]
