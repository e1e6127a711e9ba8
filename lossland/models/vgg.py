from __future__ import annotations

from collections.abc import Sequence

from torch import nn

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16BN(nn.Module):
    """VGG16 with BatchNorm, CIFAR variant (32x32 inputs): 13 conv3x3-BN-ReLU layers, five max-pools, and a
    512-512-classes classifier with dropout. ``width`` scales every channel count."""

    input_size = 32

    def __init__(self, input_shape: Sequence[int], num_outputs: int, width: float = 1.0, dropout: float = 0.5):
        super().__init__()
        c_in = input_shape[0]
        layers: list[nn.Module] = []
        for v in VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            c_out = max(1, round(width * v))
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.Flatten())
        hid = max(1, round(width * 512))
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(c_in, hid), nn.ReLU(True),
                                        nn.Dropout(dropout), nn.Linear(hid, hid), nn.ReLU(True),
                                        nn.Linear(hid, num_outputs))

    def forward(self, x):
        return self.classifier(self.features(x))
