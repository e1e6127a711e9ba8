"""One context for measuring a model at fixed weights: BN mode, dropout, and nothing changed afterwards.

Used by every measurement in :mod:`lossland.metrics` (GM and evaluation in ``gradients``, curvature,
sharpness, landscape slices), so that all of them agree on what "BN in train / eval mode" means.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

BN_MODES = ("train", "eval")


def _bn_forward(self: _BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm from elementary ops (batch or running statistics; running statistics never updated).

    Replaces ``F.batch_norm`` where nested forward-mode derivatives are taken: the forward-mode
    derivative of its training-mode kernel is silently wrong (pytorch/pytorch#196699), which corrupts
    forward-over-reverse Hessian-vector products (curvlinops', ``torch.func.jvp`` of ``grad``).
    Elementary ops differentiate correctly to any order, in either mode.
    """
    self._check_input_dim(x)
    dims, shape = [0, *range(2, x.dim())], [1, -1] + [1] * (x.dim() - 2)
    if self.training:
        mean = x.mean(dims, keepdim=True)
        var = (x - mean).pow(2).mean(dims, keepdim=True)
    else:
        mean, var = self.running_mean.view(shape), self.running_var.view(shape)
    out = (x - mean) * torch.rsqrt(var + self.eps)
    if self.weight is not None:
        out = out * self.weight.view(shape)
    if self.bias is not None:
        out = out + self.bias.view(shape)
    return out


@contextmanager
def bn_mode(model: nn.Module, mode: str = "eval", dropout: bool = False,
            elementary: bool = False) -> Iterator[nn.Module]:
    """Measure ``model`` with BN layers in ``mode``; on exit every module is exactly as before.

    - ``mode="train"``: BN normalizes with the statistics of the batch it sees; its running statistics
      are neither used nor updated (they are detached for the duration — no copy needed, and the
      forward pass is safe under ``torch.func.vmap``). ``"eval"``: BN uses its running statistics.
    - ``dropout``: dropout layers in train mode (on); otherwise off. Every other module is in eval mode.
    - ``elementary``: BN computed from elementary ops (:func:`_bn_forward`), needed for
      forward-mode / forward-over-reverse derivatives; off, BN runs torch's own kernel (bitwise the
      numbers of a plain forward pass, and the fastest first- and second-order backward).

    Restored on exit: every module's train flag, BN's forward, ``track_running_stats`` and buffers.
    """
    if mode not in BN_MODES:
        raise ValueError(f"bn mode must be 'train' or 'eval', got {mode!r}")
    flags = {m: m.training for m in model.modules()}
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    saved = [(m.track_running_stats, dict(m._buffers)) for m in bns]
    try:
        model.eval()
        if dropout:
            for m in model.modules():
                if isinstance(m, _DropoutNd):
                    m.train()
        for m in bns:
            if elementary:
                m.forward = _bn_forward.__get__(m)
            m.train(mode == "train")
            if mode == "train":
                m.track_running_stats = False
                m.running_mean = m.running_var = m.num_batches_tracked = None
        yield model
    finally:
        for m, (track, buffers) in zip(bns, saved):
            m.track_running_stats = track
            m._buffers.update(buffers)
            if elementary:
                del m.forward
        for m, flag in flags.items():
            m.training = flag


__all__ = ["BN_MODES", "bn_mode"]
