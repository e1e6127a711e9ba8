"""Recomputing BatchNorm running statistics at a weight point (e.g. a point on a path between minima)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from lossland.data import TensorBatches


def has_bn(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def recompute_bn(model: nn.Module, batches: Iterable | torch.Tensor, batch_size: int = 256,
                 device: torch.device | str | None = None) -> nn.Module:
    """Reset every BN layer's running statistics and re-estimate them as the *cumulative* average
    (momentum=None) over ``batches`` in train mode, without gradients; restores momenta and the train/eval
    mode afterwards (``torch.optim.swa_utils.update_bn``). ``batches`` is an iterable of input tensors or of
    (x, y) tuples, or one tensor cut into ``batch_size`` slices. A net without BN is returned unchanged.
    Note: train mode also enables dropout during the passes, as in SWA and Garipov et al."""
    if not has_bn(model):
        return model
    if isinstance(batches, torch.Tensor):
        batches = TensorBatches(batches, batches, batch_size)  # update_bn reads the inputs only
    update_bn(batches, model, device=device)
    return model
