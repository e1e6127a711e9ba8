"""Losses. Each is an ``nn.Module`` mapping (model output, integer labels) to a scalar batch mean.

Labels are always class indices ``0..K-1`` (the data modules remap class subsets). A loss says how
many model outputs it needs for K classes (``num_outputs``) and how to turn outputs into predicted
labels (``predict``), so error rates are computed the same way for every loss.

Conventions (see README):
- ``CrossEntropy``: mean over the batch of -log softmax(ŷ)_y.
- ``MSE``: Σ_classes (ŷ_i − 1[y=i])², mean over the batch (``per_class_mean=True`` also divides
  by K, i.e. ``torch.nn.functional.mse_loss`` against one-hot targets; ``conf/loss/mse.yaml`` sets it, the
  measured choice of docs/sphere.md#mse-normalization).
- ``CubicHinge``: binary, one output, y ∈ {−1,+1} (label 0 → −1, label 1 → +1):
  mean over the batch of max(0, 1 − y·ŷ)³.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Loss(nn.Module):
    name = "loss"
    binary = False

    def num_outputs(self, num_classes: int) -> int:
        return num_classes

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        return output.argmax(dim=1)

    def per_sample(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def per_sample_and_grad(self, output: torch.Tensor, target: torch.Tensor):
        """``(per_sample(output, target), ∂ per_sample / ∂ output)`` in closed form (the stacked MLP's backward
        pass, :mod:`lossland.sweep.vectorized.fast`), or None where the loss has none (autograd then)."""
        return None

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.per_sample(output, target).mean()


class CrossEntropy(Loss):
    name = "ce"

    def per_sample(self, output, target):
        return F.cross_entropy(output, target, reduction="none")

    def per_sample_and_grad(self, output, target):
        onehot = F.one_hot(target, output.shape[1]).to(output.dtype)
        return self.per_sample(output, target), torch.softmax(output, dim=1) - onehot

    def forward(self, output, target):
        return F.cross_entropy(output, target)


class MSE(Loss):
    name = "mse"

    def __init__(self, per_class_mean: bool = False):
        super().__init__()
        self.per_class_mean = per_class_mean

    @staticmethod
    def _residual(output, target):
        # a comparison rather than F.one_hot, which torch.func.vmap cannot batch (per-sample gradients)
        return output - (target.unsqueeze(1) == torch.arange(output.shape[1], device=output.device)).to(output.dtype)

    def _squared(self, diff):
        sq = diff.pow(2)
        return sq.mean(dim=1) if self.per_class_mean else sq.sum(dim=1)

    def per_sample(self, output, target):
        return self._squared(self._residual(output, target))

    def per_sample_and_grad(self, output, target):
        diff = self._residual(output, target)
        return self._squared(diff), 2 * diff / (output.shape[1] if self.per_class_mean else 1)


class CubicHinge(Loss):
    name = "hinge3"
    binary = True

    def num_outputs(self, num_classes: int) -> int:
        if num_classes != 2:
            raise ValueError(f"the cubic hinge loss is binary: it needs 2 classes, the data has {num_classes}")
        return 1

    def predict(self, output):
        return (output.reshape(-1) > 0).long()

    @staticmethod
    def _margin(output, target):
        """(max(0, 1 − y·ŷ), y) with y ∈ {−1, +1}."""
        y = target.to(output.dtype) * 2 - 1
        return torch.clamp(1 - y * output.reshape(-1), min=0), y

    def per_sample(self, output, target):
        return self._margin(output, target)[0].pow(3)

    def per_sample_and_grad(self, output, target):
        margin, y = self._margin(output, target)
        return margin.pow(3), (-3 * margin.square() * y).reshape(output.shape)
