from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class CNNPReLU(nn.Module):
    """The CNN of Liang et al. (2018) (docs/studies.md#e): three Conv4x4 (stride 1, padding 1) + PReLU
    blocks with 64, 128, 256 channels, max-pool 3 after the first two, then a Linear layer."""

    def __init__(self, input_shape: Sequence[int], num_outputs: int, channels: Sequence[int] = (64, 128, 256)):
        super().__init__()
        c_in = input_shape[0]
        layers: list[nn.Module] = []
        for i, c_out in enumerate(channels):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=1, padding=1), nn.PReLU()]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(3))
            c_in = c_out
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, *input_shape)).shape[1]
        self.classifier = nn.Linear(n_flat, num_outputs)

    def forward(self, x):
        return self.classifier(self.features(x))
