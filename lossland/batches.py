"""The one batch slicer: consecutive slices of ``batch_size`` examples of tensors already in memory
(evaluation, BN recomputation, curvature data; training batches are index slices of a permutation)."""

from __future__ import annotations

import torch


class TensorBatches:
    """Consecutive ``(x, y)`` slices of ``batch_size`` examples, in order (the last one may be smaller);
    ``batch_size=None``: one batch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int | None):
        self.x, self.y = x, y
        self.batch_size = len(x) if batch_size is None or batch_size >= len(x) else int(batch_size)

    def __len__(self) -> int:
        return -(-len(self.x) // max(1, self.batch_size))

    def __iter__(self):
        for i in range(0, len(self.x), max(1, self.batch_size)):
            yield self.x[i:i + self.batch_size], self.y[i:i + self.batch_size]
