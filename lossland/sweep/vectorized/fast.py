"""The stacked forward pass of an MLP without ``vmap``: each ``Linear`` of all members is one batched matrix
product (``torch.baddbmm`` on the stacked weights). For the small MLPs of the studies, ``vmap`` of
``functional_call`` costs more in Python than the arithmetic; this path gives the same numbers (to float
round-off) at a fraction of the cost. The exponential neuron around such an MLP (``augment=exp_neuron``,
:class:`lossland.models.ExpNeuron`: ``f(x) + a·exp(wᵀx + b)``) takes the same path. Models it does not know
fall back to ``vmap``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lossland.models import MLP
from lossland.models.exp_neuron import ExpNeuron

ELEMENTWISE = (nn.Sigmoid, nn.ReLU, nn.Tanh, nn.GELU, nn.Identity)


def stacked_mlp(model: nn.Module) -> Callable | None:
    """``forward(params, x, shared) -> (M, B, outputs)`` for a :class:`~lossland.models.MLP` made only of
    ``Flatten``, ``Linear`` and parameter-free elementwise activations, or an :class:`ExpNeuron` around one;
    None for any other model."""
    if type(model) is ExpNeuron:
        base = _mlp(model.base, "base.")
        if base is None:
            return None

        def forward(params: dict, x: torch.Tensor, shared: bool) -> torch.Tensor:
            w, a, b = params["w"], params["a"], params["b"]
            if shared:  # (B, D) @ (D, M) -> (M, B)
                z = (x.flatten(1) @ w.t()).t()
            else:
                z = torch.bmm(x.flatten(2), w.unsqueeze(2)).squeeze(2)
            return base(params, x, shared) + (a.unsqueeze(1) * torch.exp(z + b.unsqueeze(1))).unsqueeze(2)

        return forward
    return _mlp(model, "")


def _mlp(model: nn.Module, prefix: str) -> Callable | None:
    if type(model) is not MLP:
        return None
    plan: list[tuple[str, object]] = []
    for name, m in model.net.named_children():
        if isinstance(m, nn.Flatten):
            plan.append(("flatten", None))
        elif isinstance(m, nn.Linear) and m.bias is not None:
            plan.append(("linear", f"{prefix}net.{name}"))
        elif isinstance(m, ELEMENTWISE):
            plan.append(("act", m))
        else:
            return None

    def forward(params: dict, x: torch.Tensor, shared: bool) -> torch.Tensor:
        h = x
        for kind, what in plan:
            if kind == "flatten":
                h = h.flatten(1) if h is x and shared else h.flatten(2)
            elif kind == "linear":
                w, b = params[f"{what}.weight"], params[f"{what}.bias"]
                if h.ndim == 2:  # the members' shared batch
                    h = h.expand(w.shape[0], *h.shape)
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            else:
                h = what(h)
        return h

    return forward
