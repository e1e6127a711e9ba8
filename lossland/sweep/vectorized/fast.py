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


def _mlp(model: nn.Module, prefix: str) -> StackedMLP | None:
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
    return StackedMLP(plan)


# ∂L/∂(activation's input) from ∂L/∂(its output) and the output: torch's own backward kernels (one call each,
# the formulas autograd applies)
BACKWARD: dict[type, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    nn.Sigmoid: torch.ops.aten.sigmoid_backward,
    nn.Tanh: torch.ops.aten.tanh_backward,
    nn.ReLU: lambda d, r: torch.ops.aten.threshold_backward(d, r, 0),
}
# the same activations in place, on a layer's fresh output (the backward pass needs only the activation's output)
IN_PLACE: dict[type, Callable[[torch.Tensor], torch.Tensor]] = {
    nn.Sigmoid: torch.sigmoid_, nn.Tanh: torch.tanh_, nn.ReLU: torch.relu_}


class StackedMLP:
    """``self(params, x, shared) -> (M, B, outputs)``, and, when every activation is one of
    :data:`BACKWARD` (or the identity) and flattening comes only first, :meth:`backward`: the parameter
    gradients of the last forward pass taken with ``save=True``, by the chain rule through the batched matrix
    products. Without autograd's graph a step of a small MLP costs about a fifth less; the gradients equal
    autograd's to float round-off (``tests/test_stacked_backward.py``). :meth:`sgd_step` is the same backward
    pass with plain SGD's update folded in."""

    def __init__(self, plan: list[tuple[str, object]]):
        self.plan = plan
        first = next(k for k, (kind, _) in enumerate(plan) if kind != "flatten")
        self.manual = all(kind != "flatten" for kind, _ in plan[first:]) and all(
            type(m) in BACKWARD or type(m) is nn.Identity for kind, m in plan if kind == "act")
        self._saved: list | None = None

    def __call__(self, params: dict, x: torch.Tensor, shared: bool, save: bool = False) -> torch.Tensor:
        h = x
        saved = []
        fresh = False  # h is a linear layer's own output (an activation may then overwrite it)
        for kind, what in self.plan:
            if kind == "flatten":
                h = h.flatten(1) if h is x and shared else h.flatten(2)
            elif kind == "linear":
                w, b = params[f"{what}.weight"], params[f"{what}.bias"]
                saved.append((kind, what, h))
                if h.ndim == 2:  # the members' shared batch: one matrix product for all (M, B, out)
                    m, out = w.shape[:2]
                    h = torch.addmm(b.reshape(-1), h, w.reshape(m * out, -1).t()).view(len(h), m, out).transpose(0, 1)
                else:
                    h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            else:
                h = IN_PLACE[type(what)](h) if fresh and type(what) in IN_PLACE else what(h)
                saved.append((kind, what, h))
            fresh = kind == "linear"
        self._saved = saved if save else None
        return h

    def backward(self, params: dict, d: torch.Tensor) -> dict[str, torch.Tensor]:
        """The gradients of ``Σ_i L_i`` with respect to every stacked parameter, given ``d = ∂ΣL/∂output``
        (M, B, outputs) of the last ``save=True`` forward pass."""
        return self._backward(params, d, step=False)

    def sgd_step(self, params: dict, d: torch.Tensor) -> None:
        """Plain SGD's step ``θ ← θ − lr·∂ΣL/∂θ`` of every member, in place, given ``d = lr·∂ΣL/∂output`` of the
        last ``save=True`` forward pass (each member's rate folded into its rows, as every parameter of a member
        takes its rate). Each layer is updated once the gradient has been propagated through its weights: the
        backward pass and the update in one pass, without the gradients kept (they equal
        :meth:`backward`'s times the rate to float round-off; ``tests/test_stacked_optim.py``)."""
        self._backward(params, d, step=True)

    @torch.no_grad()
    def _backward(self, params: dict, d: torch.Tensor, step: bool) -> dict[str, torch.Tensor]:
        saved, self._saved = self._saved, None
        grads = {}
        for k in range(len(saved) - 1, -1, -1):
            kind, what, h = saved[k]
            if kind == "act":
                if type(what) is not nn.Identity:
                    d = BACKWARD[type(what)](d, h)
                continue
            if h.ndim == 2:  # the members' shared batch
                h = h.expand(d.shape[0], *h.shape)
            w, b = params[f"{what}.weight"], params[f"{what}.bias"]
            below = torch.bmm(d, w) if k > 0 else None  # the layer's input is not the data: propagate
            if step:
                w.baddbmm_(d.transpose(1, 2), h, alpha=-1)
                b.sub_(d.sum(1))
            else:
                grads[f"{what}.weight"] = torch.bmm(d.transpose(1, 2), h)
                grads[f"{what}.bias"] = d.sum(1)
            d = below
        return grads
