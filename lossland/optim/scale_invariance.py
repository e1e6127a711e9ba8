"""Numerical check that a model's trainable parameters are scale-invariant (SI).

A parameter tensor (or group of tensors) θ_g is *scale-invariant* when f(θ with θ_g → αθ_g) = f(θ)
for every α > 0. Conv/Linear weights followed by an affine-free BatchNorm are SI; BN affine
parameters, biases before BN and an unfrozen last layer are not.

Conventions of the check (:func:`check_scale_invariance`):

- It runs on a private ``float64`` deep copy of the model, so the caller's model, its parameters and its
  BN running statistics are never modified, and float32 round-off does not mask or fake a violation.
- Train mode: output of the copy with θ_g scaled vs unscaled (BN uses batch statistics). Random
  modules (dropout) see the same RNG state in both forwards.
- Eval mode: BN running statistics are *recomputed* from ``x`` for the scaled and for the unscaled
  parameters (cumulative average of one train-mode pass), then the eval-mode outputs are compared.
  Comparing against stale running statistics would flag every SI weight, since running statistics
  of an SI net move with the weight scale during training as well.
- Deviation is ``max|f_α − f| / max|f|``; a parameter is offending when it exceeds ``rtol`` for any α
  in either mode. A group whose tensors are all zero (f(α·0) = f(0) proves nothing) is probed at a random
  Gaussian value instead.
- BatchNorm's ``eps`` makes SI only approximate (relative effect ≈ eps / batch variance, which can exceed
  1e-4 for small pre-activations), so the copy runs with ``eps = BN_EPS`` (≈ 0): SI is a structural
  property of the architecture, which eps only blurs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from lossland.errors import LosslandError

__all__ = ["NotScaleInvariantError", "check_scale_invariance", "require_scale_invariant"]

BN_EPS = 1e-30  # BatchNorm eps used in the check's copy (see the module docstring)


class NotScaleInvariantError(LosslandError, ValueError):
    """The model has trainable parameters that are not scale-invariant (one-line message)."""


ParamSpec = Iterable[str] | Iterable[nn.Parameter] | Mapping[str, Sequence[str]] | None


def _groups(model: nn.Module, params: ParamSpec) -> dict[str, list[str]]:
    """Normalize ``params`` to {group label: [parameter names]}."""
    named = dict(model.named_parameters())
    if params is None:
        return {n: [n] for n, p in named.items() if p.requires_grad}
    if isinstance(params, Mapping):
        groups = {str(k): list(v) for k, v in params.items()}
    else:
        by_id = {id(p): n for n, p in named.items()}
        groups = {}
        for p in params:
            if isinstance(p, str):
                name = p
            elif id(p) in by_id:
                name = by_id[id(p)]
            else:
                raise ValueError("check_scale_invariance: a parameter in `params` is not in the model")
            groups[name] = [name]
    unknown = sorted({n for names in groups.values() for n in names} - set(named))
    if unknown:
        raise ValueError(f"check_scale_invariance: unknown parameter names: {', '.join(unknown)}")
    return groups


def _bn_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def _outputs(model: nn.Module, x: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train-mode output, eval-mode output); the running statistics used by the latter are recomputed
    from ``x`` by the former (cumulative average of that one pass)."""
    bns = _bn_modules(model)
    momenta = [m.momentum for m in bns]
    for m in bns:
        if m.running_mean is not None:
            m.reset_running_stats()
            m.momentum = None
    devices = [] if x.device.type == "cpu" else [x.device]
    outs = []
    for train in (True, False):
        model.train(train)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            outs.append(model(x).detach())
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    return outs[0], outs[1]


def _deviation(out: torch.Tensor, ref: torch.Tensor) -> float:
    scale = ref.abs().max().clamp_min(torch.finfo(ref.dtype).tiny)
    return ((out - ref).abs().max() / scale).item()


def check_scale_invariance(model: nn.Module, x: torch.Tensor, params: ParamSpec = None,
                           alphas: Sequence[float] = (0.5, 2.0, 10.0), rtol: float = 1e-4,
                           double: bool = True) -> list[str]:
    """Return the names of the parameters (or group labels) that are *not* scale-invariant.

    Args:
        model: the network; left untouched (the check runs on a deep copy).
        x: an input batch (at least 2 samples when the model has BatchNorm).
        params: which parameters to check: ``None`` = every parameter with ``requires_grad``; an
            iterable of names or parameters (each checked alone); or a mapping {label: [names]} whose
            groups are scaled together (the label is reported).
        alphas: scale factors tried (each must be > 0).
        rtol: tolerance on ``max|f_α − f| / max|f|``.
        double: run the check in float64 (recommended).
    """
    if any(a <= 0 for a in alphas):
        raise ValueError("check_scale_invariance: alphas must be positive")
    groups = _groups(model, params)
    if not groups:
        return []
    net = copy.deepcopy(model)
    if double:
        net, x = net.double(), x.double()
    x = x.to(next(net.parameters()).device)
    for m in _bn_modules(net):
        m.eps = BN_EPS
    named = dict(net.named_parameters())
    refs = _outputs(net, x)
    gen = torch.Generator(device=x.device).manual_seed(0)
    return [label for label, names in groups.items()
            if not _invariant(net, x, [named[n] for n in names], refs, alphas, rtol, gen)]


@torch.no_grad()
def _invariant(net: nn.Module, x: torch.Tensor, group: list[torch.Tensor], refs, alphas, rtol: float,
               gen: torch.Generator) -> bool:
    """Is ``net``'s output unchanged (within ``rtol``) when the parameters of ``group`` are scaled together by
    each α? The group is restored afterwards."""
    saved = None
    if all(not p.any() for p in group):
        # f(α·0) = f(0) says nothing: probe an all-zero group (e.g. a BN bias at init) at a random value
        saved = [p.detach().clone() for p in group]
        for p in group:
            p.copy_(torch.randn(p.shape, generator=gen, device=x.device, dtype=p.dtype))
        refs = _outputs(net, x)
    try:
        for a in alphas:
            for p in group:
                p.mul_(a)
            out = _outputs(net, x)
            for p in group:
                p.div_(a)
            if not max(_deviation(o, r) for o, r in zip(out, refs)) <= rtol:  # also catches NaN
                return False
        return True
    finally:
        if saved is not None:
            for p, v in zip(group, saved):
                p.copy_(v)


def _hint(model: nn.Module, names: list[str]) -> str:
    modules = dict(model.named_modules())
    hints = []
    for n in names:
        owner = modules.get(n.rpartition(".")[0])
        if isinstance(owner, nn.modules.batchnorm._BatchNorm):
            hints.append("affine BN? use affine=False")
        elif n.endswith("bias"):
            hints.append("bias not followed by BN?")
        elif isinstance(owner, nn.Linear):
            hints.append("unfrozen last layer?")
    return f" ({'; '.join(dict.fromkeys(hints))})" if hints else ""


def require_scale_invariant(model: nn.Module, x: torch.Tensor, **kwargs) -> None:
    """Raise :class:`NotScaleInvariantError` unless every checked parameter is scale-invariant.

    Keyword arguments are passed to :func:`check_scale_invariance`.
    """
    bad = check_scale_invariance(model, x, **kwargs)
    if bad:
        raise NotScaleInvariantError(
            f"model is not scale-invariant in: {', '.join(bad)}{_hint(model, bad)} — the sphere optimizer "
            "needs every trainable parameter to satisfy f(αθ) = f(θ) (conv/linear without bias before "
            "BatchNorm(affine=False), last layer frozen)")
