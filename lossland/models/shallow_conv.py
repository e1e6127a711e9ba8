from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ShallowConv(nn.Module):
    """Keskar et al.'s (2017) network C1, the shallow convolutional net of their CIFAR-10 experiments
    (docs/optim_lab.md), at any width: per entry of ``channels`` a Conv k×k ("same" padding) → BatchNorm2d → ReLU →
    MaxPool 3×3 stride 2 ("same" padding: the side halves, rounded up) block; then flatten and per entry of
    ``hidden`` a Linear → BatchNorm1d → ReLU → Dropout(``dropout``) block; then a Linear to ``num_outputs``.
    Keskar et al.'s C1: ``channels`` [64, 64], ``kernel`` 5, ``hidden`` [384, 192], ``dropout`` 0.5 on 32×32 RGB.
    The same-padding keeps it defined on any image side (8×8 digits: 8 → 4 → 2)."""

    def __init__(self, input_shape: Sequence[int], num_outputs: int, channels: Sequence[int] = (64, 64),
                 kernel: int = 5, hidden: Sequence[int] = (384, 192), dropout: float = 0.5):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"shallow_conv needs image inputs (C, H, W), got shape {list(input_shape)}")
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"shallow_conv needs an odd kernel size (same padding), got {kernel}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"shallow_conv needs 0 <= dropout < 1, got {dropout}")
        c_in, layers = input_shape[0], []
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2), nn.BatchNorm2d(c_out), nn.ReLU(),
                       nn.MaxPool2d(3, stride=2, padding=1)]
            c_in = c_out
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            width = self.features(torch.zeros(2, *input_shape)).shape[1]
        blocks: list[nn.Module] = []
        for h in hidden:
            blocks += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU()]
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
            width = h
        blocks.append(nn.Linear(width, num_outputs))
        self.classifier = nn.Sequential(*blocks)

    def forward(self, x):
        return self.classifier(self.features(x))
