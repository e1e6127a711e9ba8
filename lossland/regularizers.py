"""Regularizers: modules mapping a model to a scalar added to the training loss."""

from __future__ import annotations

import torch
from torch import nn


class NoRegularizer(nn.Module):
    def forward(self, model: nn.Module) -> torch.Tensor | float:
        return 0.0


class WeightDecay(nn.Module):
    """L2 penalty (coef/2)·Σ‖θ‖² over trainable parameters (the Gaussian prior of study C). With plain SGD
    this equals ``weight_decay=coef`` in ``torch.optim.SGD``; it also works with every other optimizer.
    ``include_bias=False`` leaves biases (1-d parameters) unpenalized."""

    def __init__(self, coef: float = 1e-4, include_bias: bool = True):
        super().__init__()
        if coef < 0:
            raise ValueError(f"regularizer.coef must be ≥ 0, got {coef}")
        self.coef, self.include_bias = coef, include_bias

    def forward(self, model: nn.Module) -> torch.Tensor:
        params = [p for p in model.parameters() if p.requires_grad and (self.include_bias or p.ndim > 1)]
        return 0.5 * self.coef * sum(p.pow(2).sum() for p in params)


class ExpNeuronPenalty(nn.Module):
    """λa²/2 on the output weight ``a`` of every exponential neuron of the model (eq. 2 of the seed of study E;
    :class:`lossland.models.ExpNeuron`); nothing else is penalized. Its gradient with respect to ``a`` is λa."""

    def __init__(self, lam: float = 1e-3):
        super().__init__()
        if lam < 0:
            raise ValueError(f"augment.lam must be ≥ 0, got {lam}")
        self.lam = float(lam)

    def forward(self, model: nn.Module) -> torch.Tensor | float:
        terms = [m.a.pow(2).sum() for m in model.modules() if getattr(m, "is_exp_neuron", False)]
        return 0.5 * self.lam * sum(terms) if terms else 0.0


class Sum(nn.Module):
    """The sum of several regularizers (the ``regularizer`` group's plus the ones an ``augment`` brings)."""

    def __init__(self, *terms: nn.Module):
        super().__init__()
        self.terms = nn.ModuleList(terms)

    def forward(self, model: nn.Module) -> torch.Tensor | float:
        return sum(t(model) for t in self.terms)
