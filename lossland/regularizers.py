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
