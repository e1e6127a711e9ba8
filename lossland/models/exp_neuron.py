"""The exponential neuron of Liang, Sun, Lee, Srikant (2018), "Adding one neuron can eliminate all bad local
minima" (docs/exp_neuron.md): a binary model ``f`` becomes

    f̃(x) = f(x) + a·exp(wᵀx + b)

with ``x`` the flattened input and (a, w, b) trained with the rest of the net. The penalty λa²/2 (eq. 2 of the
seed) is :class:`lossland.regularizers.ExpNeuronPenalty`, added by the ``augment=exp_neuron`` config.

Initialization (a stated choice; the paper's theory holds at any point and its experiments do not fix one):
``a = a_init`` (default 0, so f̃ = f at the start and training begins from the base model's function),
``w ~ N(0, w_std²)`` per component (default 0.01: wᵀx stays O(0.1) on normalized 100-d inputs) and ``b = b_init``
(default 0). With a = 0 the gradients of w and b vanish at the first step; ``a`` moves first (its gradient is
Σ exp(wᵀx + b)·∂ℓ/∂f̃, non-zero), then w and b follow. ``w_init="linear"`` draws w and b as PyTorch's
``nn.Linear(d, 1)`` does, U(−1/√d, 1/√d) each (``w_std`` and ``b_init`` unused): what an implementation that
builds wᵀx + b from a Linear layer starts from (the stability protocol "at the seed's conditions").

:func:`perturb` adds N(0, σ²) noise with σ = ``scale`` · mean|weights of the neuron| to either the exponential
neuron (a, w, b) or one ordinary neuron of the net (the incoming weights and bias of unit ``index`` of the first
Linear / Conv layer) — the stability experiment of the seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from lossland.errors import LosslandError

__all__ = ["ExpNeuron", "perturb", "PERTURB_TARGETS"]


class ExpNeuron(nn.Module):
    """``base`` plus one exponential neuron on the flattened input. ``base`` must have a single output
    (a binary model: ``loss=hinge3``). Parameters: ``a`` (scalar), ``w`` (input_dim), ``b`` (scalar); the base
    model's parameters keep their names under ``base.``."""

    is_exp_neuron = True  # ExpNeuronPenalty finds the neuron by this mark (regularizers do not import models)

    def __init__(self, base: nn.Module, input_shape: Sequence[int], num_outputs: int, a_init: float = 0.0,
                 w_std: float = 0.01, b_init: float = 0.0, w_init: str = "normal"):
        super().__init__()
        if num_outputs != 1:
            raise LosslandError(f"augment=exp_neuron needs a binary model with one output (loss=hinge3 on "
                                f"2 classes); this model has {num_outputs} outputs")
        if w_std < 0:
            raise LosslandError(f"augment.model.w_std={w_std} is not valid: w_std must be a number ≥ 0")
        if w_init not in ("normal", "linear"):
            raise LosslandError(f"augment.model.w_init={w_init} is not valid; valid: normal, linear")
        self.base = base
        dim = math.prod(input_shape)
        self.a = nn.Parameter(torch.tensor(float(a_init)))
        if w_init == "linear":  # nn.Linear(dim, 1)'s default: w, b ~ U(-1/sqrt(dim), 1/sqrt(dim))
            bound = 1.0 / math.sqrt(dim)
            self.w = nn.Parameter(torch.empty(dim).uniform_(-bound, bound))
            self.b = nn.Parameter(torch.empty(()).uniform_(-bound, bound))
        else:
            self.w = nn.Parameter(torch.randn(dim) * float(w_std))
            self.b = nn.Parameter(torch.tensor(float(b_init)))

    def neuron(self, x: torch.Tensor) -> torch.Tensor:
        """a·exp(wᵀx + b), shape (N, 1)."""
        return (self.a * torch.exp(x.flatten(1) @ self.w + self.b)).unsqueeze(1)

    def forward(self, x):
        return self.base(x) + self.neuron(x)


# ------------------------------------------------------------------------------------------ perturbation
def _exp_neuron_params(model: nn.Module, index: int) -> list[torch.Tensor]:
    for m in model.modules():
        if getattr(m, "is_exp_neuron", False):
            return [m.a.data.reshape(1), m.w.data, m.b.data.reshape(1)]
    raise LosslandError("augment.perturb.target=exp_neuron needs the exponential neuron (augment=exp_neuron)")


def _hidden_neuron_params(model: nn.Module, index: int) -> list[torch.Tensor]:
    """Incoming weights and bias of unit ``index`` of the first Linear / Conv layer of the net."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if not 0 <= index < m.weight.shape[0]:
                raise LosslandError(f"augment.perturb.index={index} is not valid: the first layer has "
                                    f"{m.weight.shape[0]} units")
            out = [m.weight.data[index].view(-1)]
            if m.bias is not None:
                out.append(m.bias.data[index:index + 1])
            return out
    raise LosslandError("augment.perturb.target=hidden_neuron: the model has no Linear or Conv layer")


PERTURB_TARGETS = {"exp_neuron": _exp_neuron_params, "hidden_neuron": _hidden_neuron_params}


@torch.no_grad()
def perturb(model: nn.Module, target: str, scale: float, generator: torch.Generator, index: int = 0) -> dict:
    """Add N(0, σ²) to every weight of the chosen neuron, σ = ``scale`` · mean|weights| (in place).
    Returns ``{"target", "sigma", "mean_abs"}`` for the run's summary."""
    try:
        views = PERTURB_TARGETS[target](model, int(index))
    except KeyError:
        raise LosslandError(f"augment.perturb.target={target} is not valid; valid: "
                            f"{', '.join(PERTURB_TARGETS)} or null") from None
    mean_abs = float(torch.cat([v.reshape(-1) for v in views]).abs().mean())
    sigma = float(scale) * mean_abs
    for v in views:
        noise = torch.randn(v.shape, generator=generator, dtype=v.dtype, device="cpu").to(v.device)
        v.add_(noise * sigma)
    return {"target": target, "sigma": sigma, "mean_abs": mean_abs, "index": int(index)}
