"""Curvature matrices of the data-set mean loss as linear operators on the selected parameters.

:class:`CurvatureOperator` is lossland's own small operator (composition, no curvlinops internals): a
symmetric ``n × n`` map on the flattened selected parameters given by a matrix-vector product. It
multiplies torch vectors and matrices (a matrix column by column: batching columns through ``vmap``
made each product about twice as slow on CPU, see ``docs/curvature.md``) and converts to a scipy
``LinearOperator``.

Hessian-vector products (``hvp=``), measured in ``benchmarks/curvature.py``:

- ``"double_backward"`` (default, fastest on CPU): the gradient of each batch is built once with
  ``create_graph=True`` and kept; every product is one backward pass through it
  (``grad(⟨∇L, v⟩)``). The cached graphs are rebuilt when a parameter or BN buffer changes in place.
- ``"forward_over_reverse"``: ``torch.func.jvp`` of ``torch.func.grad`` per product (no cache).
- ``"curvlinops"``: curvlinops' ``HessianLinearOperator`` (forward-over-reverse under ``vmap``).

GGN, empirical Fisher and Monte-Carlo Fisher are curvlinops' public operators, wrapped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from curvlinops import EFLinearOperator, FisherMCLinearOperator, GGNLinearOperator, HessianLinearOperator
from scipy.sparse.linalg import LinearOperator
from torch import nn
from torch.func import grad, jvp

from lossland.metrics.bn import bn_mode
from lossland.metrics.params import Batches, as_batches, detached, functional_loss, select_params, unflatten


class CurvatureOperator:
    """A symmetric linear operator on the flattened selected parameters (``param_names`` order).

    ``op @ v`` for a torch vector ``[n]`` or matrix ``[n, m]`` (one product per column);
    ``op.matvec(v)``; ``op.to_scipy()`` a scipy ``LinearOperator``; ``op.products`` counts products.
    """

    def __init__(self, matvec: Callable[[torch.Tensor], torch.Tensor], n: int, dtype: torch.dtype,
                 device: torch.device, param_names: list[str]):
        self._matvec, self.shape, self.dtype, self.device = matvec, (n, n), dtype, device
        self.param_names = param_names
        self.products = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.products += 1
        return self._matvec(v.to(self.device, self.dtype))

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        if v.dim() == 1:
            return self.matvec(v)
        return torch.stack([self.matvec(c) for c in v.T], dim=1)

    def to_scipy(self, dtype=np.float64) -> LinearOperator:
        def mv(x):
            x = torch.as_tensor(np.asarray(x).reshape(-1), dtype=self.dtype, device=self.device)
            return self.matvec(x).detach().cpu().numpy().astype(dtype)
        return LinearOperator(self.shape, matvec=mv, rmatvec=mv, dtype=dtype)


# --------------------------------------------------------------------------------------------------
# Hessian-vector products
# --------------------------------------------------------------------------------------------------


class DoubleBackwardHVP:
    """Hv = Σ_b ∂⟨∇L_b, v⟩/∂θ with the gradient graph of every batch built once (``cache``) or per product."""

    def __init__(self, model: nn.Module, loss, batches: Batches, named: dict[str, nn.Parameter], bn: str,
                 dropout: bool = False, cache: bool = True):
        self.model, self.loss, self.batches, self.bn, self.dropout, self.cache = \
            model, loss, batches, bn, dropout, cache
        self.names, self.params = list(named), list(named.values())
        self.num_data = sum(len(x) for x, _ in batches)
        self._graphs: list[tuple[torch.Tensor, ...]] | None = None
        self._versions: list[int] | None = None

    def _state_versions(self) -> list[int]:
        return [t._version for t in (*self.params, *self.model.buffers())]

    def _gradient(self, x, y) -> tuple[torch.Tensor, ...]:
        # torch's own BN kernel: its double backward is exact in both modes and the fastest
        with bn_mode(self.model, self.bn, self.dropout, elementary=False), torch.enable_grad():
            value = self.loss(self.model(x), y) * (len(x) / self.num_data)
            return torch.autograd.grad(value, self.params, create_graph=True)

    def _graph_list(self):
        if not self.cache:
            return (self._gradient(x, y) for x, y in self.batches)
        if self._graphs is None or self._versions != self._state_versions():
            self._graphs = None  # free the old graphs first
            self._graphs = [self._gradient(x, y) for x, y in self.batches]
            self._versions = self._state_versions()
        return self._graphs

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        vs = v.split([p.numel() for p in self.params])
        vs = [t.view(p.shape) for t, p in zip(vs, self.params)]
        total = None
        for grads in self._graph_list():
            keep = [i for i, g in enumerate(grads) if g.requires_grad]  # ∇ not depending on θ: Hv block 0
            hv = torch.autograd.grad([grads[i] for i in keep], self.params, [vs[i] for i in keep],
                                     retain_graph=self.cache, allow_unused=True, materialize_grads=True) \
                if keep else [torch.zeros_like(p) for p in self.params]
            flat = torch.cat([h.reshape(-1) for h in hv])
            total = flat if total is None else total.add_(flat)
        return total.detach()

def _forward_over_reverse(model, loss, batches, named, bn, dropout):
    p0 = detached(named)

    def f(p):
        return functional_loss(model, loss, batches, p)

    def matvec(v):
        with bn_mode(model, bn, dropout, elementary=True):
            return torch.cat([t.reshape(-1) for t in jvp(grad(f), (p0,), (unflatten(v, p0),))[1].values()])
    return matvec


# --------------------------------------------------------------------------------------------------
# curvlinops operators (Hessian path "curvlinops", GGN, Fishers)
# --------------------------------------------------------------------------------------------------


class _MeanLoss(nn.Module):
    """Any lossland loss, exposed to curvlinops as a ``reduction="mean"`` criterion."""

    reduction = "mean"

    def __init__(self, loss):
        super().__init__()
        self.loss = loss

    def forward(self, output, target):
        return self.loss(output, target)


def _criterion(loss, num_classes: int, num_data: int):
    """(torch criterion, target transform, operator scale) reproducing ``loss`` for curvlinops.

    CE → ``CrossEntropyLoss(reduction="mean")``; MSE → ``MSELoss(reduction="sum")`` on one-hot targets,
    the operator scaled by 1/N (1/(N·K) with ``per_class_mean``): ``reduction="mean"`` would divide by
    N·K, i.e. by the classes too, which is not lossland's MSE. Other losses as they are.
    """
    name = getattr(loss, "name", None)
    if name == "ce":
        return nn.CrossEntropyLoss(reduction="mean"), (lambda y, dt: y), 1.0
    if name == "mse":
        per_class = getattr(loss, "per_class_mean", False)
        scale = 1.0 / (num_data * (num_classes if per_class else 1))
        onehot = lambda y, dt: nn.functional.one_hot(y, num_classes).to(dt)
        return nn.MSELoss(reduction="sum"), onehot, scale
    return _MeanLoss(loss), (lambda y, dt: y), 1.0


_CURVLINOPS = {"hessian": HessianLinearOperator, "ggn": GGNLinearOperator, "ef": EFLinearOperator,
               "fisher_mc": FisherMCLinearOperator}
KINDS = tuple(_CURVLINOPS)
HVPS = ("double_backward", "forward_over_reverse", "curvlinops")


def _curvlinops_matvec(model, loss, batches, named, kind, bn, dropout, progressbar, seed):
    num_data = sum(len(x) for x, _ in batches)
    with bn_mode(model, bn, dropout), torch.no_grad():
        num_classes = model(batches[0][0][:2]).shape[1]
    dtype = next(iter(named.values())).dtype
    crit, transform, scale = _criterion(loss, num_classes, num_data)
    if kind in ("ef", "fisher_mc") and isinstance(crit, _MeanLoss):
        raise ValueError(f"{kind} needs cross-entropy or MSE, got {loss!r}")
    batches = [(x, transform(y, dtype)) for x, y in batches]
    extra = {"seed": seed} if kind == "fisher_mc" else {}
    op = _CURVLINOPS[kind](model, crit, list(named.values()), batches, progressbar=progressbar,
                           check_deterministic=False, num_data=num_data, **extra)

    def matvec(v):
        with bn_mode(model, bn, dropout, elementary=True):  # forward-mode derivatives: elementary BN
            out = op @ v
        return out if scale == 1.0 else scale * out
    return matvec


def curvature_operator(model: nn.Module, loss, data, params="all", kind: str = "hessian", bn: str = "eval",
                       dropout: bool = False, batch_size: int | None = None, progressbar: bool = False,
                       seed: int = 0, hvp: str = "double_backward", cache: bool = True) -> CurvatureOperator:
    """Curvature matrix of the data-set mean loss as a :class:`CurvatureOperator` on the selected parameters.

    ``kind``: ``"hessian"``, ``"ggn"`` (generalized Gauss-Newton), ``"ef"`` (empirical Fisher) or
    ``"fisher_mc"`` (one-sample Monte-Carlo true Fisher, labels drawn with ``seed``); ``ef`` and
    ``fisher_mc`` need CE or MSE. ``hvp`` (Hessian only): the product path (module docstring);
    ``cache`` (``double_backward``): keep each batch's gradient graph between products (memory ≈ a
    second-order graph per batch; ``False`` rebuilds it per product, PyHessian's data-loader mode).
    The operator is a snapshot of the weights: products are not valid after the model changes, except
    for the cached double-backward path, which rebuilds its graphs.
    """
    if kind not in _CURVLINOPS:
        raise ValueError(f"unknown curvature kind {kind!r}; valid: {', '.join(_CURVLINOPS)}")
    if hvp not in HVPS:
        raise ValueError(f"unknown Hessian-vector product {hvp!r}; valid: {', '.join(HVPS)}")
    named = select_params(model, params)
    batches = as_batches(data, batch_size)
    first = next(iter(named.values()))
    if kind != "hessian" or hvp == "curvlinops":
        matvec = _curvlinops_matvec(model, loss, batches, named, kind, bn, dropout, progressbar, seed)
    elif hvp == "double_backward":
        matvec = DoubleBackwardHVP(model, loss, batches, named, bn, dropout, cache)
    else:
        matvec = _forward_over_reverse(model, loss, batches, named, bn, dropout)
    return CurvatureOperator(matvec, sum(p.numel() for p in named.values()), first.dtype, first.device,
                             list(named))


__all__ = ["CurvatureOperator", "DoubleBackwardHVP", "curvature_operator", "KINDS", "HVPS"]
