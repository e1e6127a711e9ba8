from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ConvNetSI(nn.Module):
    """Fully scale-invariant ConvNet of Kodryan et al. (2022) (docs/studies.md#s).

    Conv3x3(no bias)-BN(affine=False)-ReLU blocks with channels ``width``·(32, 64, 128, 256), max-pool 2
    after blocks 2-4, a final max-pool 4 (32x32 inputs → 1x1), then a Linear layer *frozen* at random
    init with its weight rescaled to Frobenius norm ``last_norm`` (10 for CE, 1.5 for MSE in the paper).
    Every trainable parameter is then scale-invariant: f(αθ) = f(θ) for α > 0.
    """

    input_size = 32

    def __init__(self, input_shape: Sequence[int], num_outputs: int, width: float = 1.0,
                 channels: Sequence[int] = (32, 64, 128, 256), last_norm: float = 10.0):
        super().__init__()
        c_in, h, w = input_shape
        if (h, w) != (self.input_size, self.input_size):
            raise ValueError(f"convnet_si needs {self.input_size}x{self.input_size} inputs, got {h}x{w} "
                             f"(set data.pad_to={self.input_size})")
        chans = [max(1, round(width * c)) for c in channels]
        layers: list[nn.Module] = []
        for i, c_out in enumerate(chans):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                       nn.BatchNorm2d(c_out, affine=False), nn.ReLU()]
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        layers += [nn.MaxPool2d(4), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(chans[-1], num_outputs)
        with torch.no_grad():
            self.classifier.weight.mul_(last_norm / self.classifier.weight.norm())
        self.classifier.requires_grad_(False)

    def forward(self, x):
        return self.classifier(self.features(x))
