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
        if isinstance(m, nn.Flatten) and not plan:  # the data's flattening (the activations are feature-major)
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
    pass with plain SGD's update folded in.

    Activations are kept feature-major, ``(M, features, B)``: each layer is then ``W_i @ h_i`` with the weights
    as stored (``(M, out, in)``), which the batched products of these small shapes run faster than the
    batch-major ``h_i @ W_iᵀ`` (about a tenth less per step on the 16-point grid's shapes, ``docs/scale.md``); the
    output is handed out batch-major, as a view. On the members' shared batch the first layer's weight gradient
    (or update) is one matrix product for all, as its forward pass; a layer of one output propagates by an outer
    product (a batched product of inner dimension one costs several times more)."""

    def __init__(self, plan: list[tuple[str, object]]):
        self.plan = plan
        self.manual = all(type(m) in BACKWARD or type(m) is nn.Identity for kind, m in plan if kind == "act")
        self._saved: list | None = None

    def __call__(self, params: dict, x: torch.Tensor, shared: bool, save: bool = False) -> torch.Tensor:
        h = x  # the data: (B, ...) shared by all members, else (M, B, ...)
        saved = []
        fresh = False  # h is a linear layer's own output (an activation may then overwrite it)
        data = True  # h is still the data, batch-major (the first linear layer's input)
        for kind, what in self.plan:
            if kind == "flatten":  # first only (_mlp)
                h = h.flatten(1) if shared else h.flatten(2)
            elif kind == "linear":
                w, b = params[f"{what}.weight"], params[f"{what}.bias"]
                saved.append((kind, what, h))
                if not data:
                    h = torch.baddbmm(b.unsqueeze(2), w, h)  # (M, out, in) @ (M, in, B)
                elif shared:  # the members' shared batch: one matrix product for all, (M·out, D) @ (D, B)
                    m, out = w.shape[:2]
                    h = torch.addmm(b.reshape(-1, 1), w.reshape(m * out, -1), h.t()).view(m, out, -1)
                else:
                    h = torch.baddbmm(b.unsqueeze(2), w, h.transpose(1, 2))
                data = False
            else:
                h = IN_PLACE[type(what)](h) if fresh and type(what) in IN_PLACE else what(h)
                saved.append((kind, what, h))
            fresh = kind == "linear"
        self._saved = saved if save else None
        return h.transpose(1, 2)

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
        d = d.transpose(1, 2)  # feature-major, (M, outputs, B)
        for k in range(len(saved) - 1, -1, -1):
            kind, what, h = saved[k]
            if kind == "act":
                if type(what) is not nn.Identity:
                    d = BACKWARD[type(what)](d, h)
                continue
            w, b = params[f"{what}.weight"], params[f"{what}.bias"]
            below = None
            if k > 0:  # the layer's input is not the data: propagate (one output: an outer product, no bmm)
                below = w.transpose(1, 2) * d if w.shape[1] == 1 else torch.bmm(w.transpose(1, 2), d)
            if h.ndim == 2:  # the data, the members' shared batch: one product for all, as forward
                m, out = w.shape[:2]
                if step:  # (stacked weights are contiguous: a view)
                    w.view(m * out, -1).addmm_(d.reshape(m * out, -1), h, alpha=-1)
                else:
                    grads[f"{what}.weight"] = torch.mm(d.reshape(m * out, -1), h).view(w.shape)
            else:  # its input batch-major for the product (the data of each member's own batch already is)
                h = h.transpose(1, 2) if k > 0 else h
                if step:
                    w.baddbmm_(d, h, alpha=-1)
                else:
                    grads[f"{what}.weight"] = torch.bmm(d, h)
            if step:
                b.sub_(d.sum(2))
            else:
                grads[f"{what}.bias"] = d.sum(2)
            d = below
        return grads
