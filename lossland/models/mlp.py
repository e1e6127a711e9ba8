from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "prelu": nn.PReLU, "gelu": nn.GELU}


def make_activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(sorted(ACTIVATIONS))}") from None


class MLP(nn.Module):
    """Fully connected net: flatten, then Linear(-BatchNorm)-activation(-dropout) per hidden width, then Linear.

    ``self.linears`` lists its ``Linear`` layers in order (the mode-connectivity code relies on it)."""

    def __init__(self, input_shape: Sequence[int], num_outputs: int, hidden: Sequence[int] = (100, 50, 25),
                 activation: str = "relu", dropout: float = 0.0, batch_norm: bool = False):
        super().__init__()
        widths = [math.prod(input_shape), *hidden, num_outputs]
        blocks: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            blocks.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                if batch_norm:
                    blocks.append(nn.BatchNorm1d(b))
                blocks.append(make_activation(activation))
                if dropout > 0:
                    blocks.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*blocks)

    @property
    def linears(self) -> list[nn.Linear]:
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def forward(self, x):
        return self.net(x)
