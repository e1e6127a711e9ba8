"""Curvature of the training loss: Hessian / GGN / Fisher operators, eigenvalues, traces, densities.

Pure functions over (model, loss, data, parameter selection, BN mode); nothing here trains or changes
the model (BN running statistics and train/eval flags are restored after every measurement).

Conventions
- The loss is a lossland loss (``lossland.losses``): the batch *mean* of a per-sample loss
  ``ℓ_n`` (MSE: Σ_classes (ŷ_c − 1[y=c])², i.e. summed over classes, averaged over samples).
  All matrices are those of the data-set mean ``L(θ) = 1/N Σ_n ℓ_n(θ)``: Hessian ∇²L, GGN
  1/N Σ J_nᵀ ∇²_f ℓ_n J_n, empirical Fisher 1/N Σ g_n g_nᵀ with g_n = ∇ℓ_n, true Fisher
  1/N Σ E_{ŷ~p(·|x_n)} ∇ℓ(x_n, ŷ)∇ℓ(x_n, ŷ)ᵀ (cross-entropy only).
- curvlinops is handed torch criteria: CE → ``CrossEntropyLoss(reduction="mean")``; MSE →
  ``MSELoss(reduction="sum")`` on one-hot targets, the operator then scaled by 1/N (by 1/(N·K) with
  ``per_class_mean``). ``MSELoss(reduction="mean")`` would divide by N·K, i.e. by the number of
  classes too, which is *not* lossland's MSE. Other losses are wrapped as-is (Hessian and GGN only).
- ``data`` is a pair ``(x, y)`` (cut into batches of ``batch_size``; ``None``: one batch) or a list
  of ``(x, y)`` batches. In BN ``train`` mode each batch normalizes with its own statistics, so the
  batches define the function being measured; in ``eval`` mode batching changes nothing.
- Parameter selection (``params``): see :func:`select_params`. Per-layer variants return
  ``{layer name: value}``, a layer being the module owning the parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from curvlinops import (
    EFLinearOperator,
    FisherMCLinearOperator,
    GGNLinearOperator,
    HessianLinearOperator,
    lanczos_approximate_spectrum,
)
from curvlinops._torch_base import PyTorchLinearOperator
from scipy.sparse.linalg import eigsh
from torch import nn
from torch.func import functional_call, grad, hessian, jacrev, vmap
from torch.nn.modules.batchnorm import _BatchNorm

Batches = list[tuple[torch.Tensor, torch.Tensor]]

# --------------------------------------------------------------------------------------------------
# parameter selection, BN mode, data
# --------------------------------------------------------------------------------------------------


def select_params(model: nn.Module, which="all") -> dict[str, nn.Parameter]:
    """Named parameters to measure, in model order.

    ``which``: ``"all"`` — every trainable (``requires_grad``) parameter; ``"si"`` — the
    scale-invariant parameters, which in lossland's SI models are exactly the trainable ones (the
    last layer is frozen), so the same as ``"all"``; a module name such as ``"features.0"`` — that
    module's trainable parameters; a list of parameter names or module names; or a dict
    ``{name: parameter}`` (returned as is).
    """
    if isinstance(which, dict):
        return dict(which)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if which in ("all", "si"):
        chosen = named
    else:
        keys = [which] if isinstance(which, str) else list(which)
        chosen = [(n, p) for n, p in named if any(n == k or n.startswith(k + ".") for k in keys)]
    if not chosen:
        raise ValueError(f"no trainable parameters match {which!r}; "
                         f"trainable: {', '.join(n for n, _ in named) or 'none'}")
    return dict(chosen)


def layer_groups(params: dict[str, nn.Parameter]) -> dict[str, dict[str, nn.Parameter]]:
    """Group named parameters by owning module (``"net.0.weight"`` → layer ``"net.0"``)."""
    groups: dict[str, dict[str, nn.Parameter]] = {}
    for name, p in params.items():
        groups.setdefault(name.rpartition(".")[0] or name, {})[name] = p
    return groups


def _bn_forward(self: _BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm from elementary ops (batch or running statistics; running statistics never updated).

    Replaces ``F.batch_norm`` while measuring: its nested forward-mode derivative in training mode
    is silently wrong (pytorch/pytorch#196699), which corrupts forward-over-reverse Hessian-vector
    products such as curvlinops'. Elementary ops differentiate correctly to any order.
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
def bn_mode(model: nn.Module, mode: str = "eval", dropout: bool = False) -> Iterator[nn.Module]:
    """Put BN layers in ``mode`` and everything else in eval (dropout in train if ``dropout``).

    ``"train"``: BN normalizes with the statistics of the batch it sees, and its running statistics
    are neither used nor updated (they are detached for the duration, which also makes the forward
    pass safe under ``torch.func.vmap``). ``"eval"``: BN uses its running statistics. Inside, BN
    layers compute with elementary ops (see ``_bn_forward``). On exit, every module's train flag,
    forward and BN buffer is exactly as before.
    """
    if mode not in ("train", "eval"):
        raise ValueError(f"bn mode must be 'train' or 'eval', got {mode!r}")
    flags = {m: m.training for m in model.modules()}
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    saved = [(m.track_running_stats, dict(m._buffers)) for m in bns]
    try:
        model.eval()
        for m in model.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd) and dropout:
                m.train()
        for m in bns:
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
            del m.forward
        for m, flag in flags.items():
            m.training = flag


def as_batches(data, batch_size: int | None = None) -> Batches:
    """``(x, y)`` → list of batches of ``batch_size`` (``None``: one batch); a list passes through."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        x, y = data
        if batch_size is None or batch_size >= len(x):
            return [(x, y)]
        return list(zip(x.split(batch_size), y.split(batch_size)))
    return list(data)


def flatten(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors (in dict order) into one flat vector."""
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def unflatten(vec: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Split a flat vector into tensors shaped like ``like`` (views of ``vec``, same names)."""
    parts = vec.split([t.numel() for t in like.values()])
    return {n: v.view(t.shape) for (n, t), v in zip(like.items(), parts)}


def functional_loss(model: nn.Module, loss, batches: Batches,
                    params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sample-weighted mean loss over ``batches`` with the model's ``params`` replaced (differentiable).

    Call inside :func:`bn_mode`; parameters not in ``params`` and buffers are the model's own.
    """
    n = sum(len(x) for x, _ in batches)
    return sum(loss(functional_call(model, params, (x,)), y) * (len(x) / n) for x, y in batches)


def _per_sample(loss, output, target) -> torch.Tensor:
    """Per-sample losses (vmap-friendly for lossland's losses); a loss without ``per_sample`` is looped."""
    if hasattr(loss, "per_sample"):
        return loss.per_sample(output, target)
    return torch.stack([loss(output[i:i + 1], target[i:i + 1]) for i in range(len(output))])


def _detached(params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in params.items()}


# --------------------------------------------------------------------------------------------------
# curvlinops operators
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
    """(torch criterion, target transform, operator scale) reproducing ``loss`` (module docstring)."""
    name = getattr(loss, "name", None)
    if name == "ce":
        return nn.CrossEntropyLoss(reduction="mean"), (lambda y, dt: y), 1.0
    if name == "mse":
        per_class = getattr(loss, "per_class_mean", False)
        scale = 1.0 / (num_data * (num_classes if per_class else 1))
        onehot = lambda y, dt: nn.functional.one_hot(y, num_classes).to(dt)
        return nn.MSELoss(reduction="sum"), onehot, scale
    return _MeanLoss(loss), (lambda y, dt: y), 1.0


class BoundOperator(PyTorchLinearOperator):
    """A curvlinops operator bound to a BN mode: every product runs inside :func:`bn_mode`.

    Acts on the flattened selected parameters (``param_names`` order). ``to_scipy()`` gives a
    scipy ``LinearOperator``; ``op @ v`` works on torch vectors/matrices.
    """

    SELF_ADJOINT = True

    def __init__(self, op, model: nn.Module, bn: str, dropout: bool, scale: float, names: list[str]):
        super().__init__(op._in_shape, op._out_shape)
        self.op, self.model, self.bn, self.dropout, self.scale = op, model, bn, dropout, scale
        self.param_names = names

    def _matmat(self, X):
        with bn_mode(self.model, self.bn, self.dropout):
            out = self.op._matmat(X)
        return out if self.scale == 1.0 else [self.scale * o for o in out]

    @property
    def device(self):
        return self.op.device

    @property
    def dtype(self):
        return self.op.dtype


_OPERATORS = {"hessian": HessianLinearOperator, "ggn": GGNLinearOperator, "ef": EFLinearOperator,
              "fisher_mc": FisherMCLinearOperator}


def curvature_operator(model: nn.Module, loss, data, params="all", kind: str = "hessian", bn: str = "eval",
                       dropout: bool = False, batch_size: int | None = None, progressbar: bool = False,
                       seed: int = 0) -> BoundOperator:
    """Curvature matrix of the data-set mean loss as a linear operator on the selected parameters.

    ``kind``: ``"hessian"``, ``"ggn"`` (generalized Gauss-Newton), ``"ef"`` (empirical Fisher) or
    ``"fisher_mc"`` (one-sample Monte-Carlo true Fisher, labels drawn with ``seed``). ``ef`` and
    ``fisher_mc`` need CE or MSE.
    """
    if kind not in _OPERATORS:
        raise ValueError(f"unknown curvature kind {kind!r}; valid: {', '.join(_OPERATORS)}")
    named = select_params(model, params)
    batches = as_batches(data, batch_size)
    num_data = sum(len(x) for x, _ in batches)
    with bn_mode(model, bn, dropout), torch.no_grad():
        num_classes = model(batches[0][0][:2]).shape[1]
    dtype = next(iter(named.values())).dtype
    crit, transform, scale = _criterion(loss, num_classes, num_data)
    if kind in ("ef", "fisher_mc") and isinstance(crit, _MeanLoss):
        raise ValueError(f"{kind} needs cross-entropy or MSE, got {loss!r}")
    batches = [(x, transform(y, dtype)) for x, y in batches]
    extra = {"seed": seed} if kind == "fisher_mc" else {}
    op = _OPERATORS[kind](model, crit, list(named.values()), batches, progressbar=progressbar,
                          check_deterministic=False, num_data=num_data, **extra)
    return BoundOperator(op, model, bn, dropout, scale, list(named))


# --------------------------------------------------------------------------------------------------
# spectra and traces of an operator
# --------------------------------------------------------------------------------------------------


def top_eigenvalues(op: PyTorchLinearOperator, k: int = 1, tol: float = 1e-6, seed: int = 0,
                    which: str = "LA", ncv: int | None = None) -> np.ndarray:
    """The ``k`` algebraically largest eigenvalues (``which="SA"``: smallest), largest first.

    scipy ``eigsh`` (ARPACK implicitly restarted Lanczos with re-orthogonalization) to relative
    accuracy ``tol``, started from a seeded random vector, with ``ncv`` Lanczos vectors per restart
    (default max(2k + 1, 10): fewer products than ARPACK's 20 when the top of the spectrum is well
    separated, as for network Hessians). Operators of dimension ≤ k + 1 are decomposed densely.
    """
    n = op.shape[0]
    if n <= k + 1:
        eye = torch.eye(n, dtype=op.dtype, device=op.device)
        evals = np.linalg.eigvalsh((op @ eye).cpu().numpy())
        evals = evals[::-1] if which == "LA" else evals
        return np.sort(evals[:k])[::-1].copy()
    v0 = np.random.default_rng(seed).standard_normal(n)
    ncv = min(n, ncv or max(2 * k + 1, 10))
    evals = eigsh(op.to_scipy(np.float64), k=k, which=which, tol=tol, v0=v0, ncv=ncv,
                  return_eigenvectors=False)
    return np.sort(evals)[::-1].copy()


def hutchinson(op: PyTorchLinearOperator, probes: int = 20, seed: int = 0) -> tuple[float, float]:
    """Hutchinson trace estimate with Rademacher probes: (mean of vᵀAv, its standard error)."""
    gen = torch.Generator().manual_seed(seed)
    v = (torch.randint(0, 2, (op.shape[1], probes), generator=gen) * 2 - 1).to(op.device, op.dtype)
    values = (v * (op @ v)).sum(0)
    se = values.std().item() / math.sqrt(probes) if probes > 1 else float("nan")
    return values.mean().item(), se


def spectral_density(op: PyTorchLinearOperator, ncv: int = 64, num_points: int = 1024,
                     num_repeats: int = 1, kappa: float = 3.0, seed: int = 0,
                     boundaries: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalue density p(λ) = 1/d Σ_i δ(λ − λ_i) by stochastic Lanczos quadrature (Papyan 2020).

    Returns (grid, density); the density integrates to ≈ 1 over the grid. ``ncv`` Lanczos nodes per
    run (< dimension), averaged over ``num_repeats`` random starts; Gaussian bumps of width set by
    ``kappa``. Extreme eigenvalues are found with ``eigsh`` unless ``boundaries`` are given.
    """
    ncv = min(ncv, op.shape[0] - 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        grid, density = lanczos_approximate_spectrum(op, ncv, num_points=num_points, num_repeats=num_repeats,
                                                     kappa=kappa, boundaries=boundaries)
    return grid.cpu().numpy(), density.cpu().numpy()


# --------------------------------------------------------------------------------------------------
# Hessian shortcuts and per-layer variants
# --------------------------------------------------------------------------------------------------


def hessian_top_eigs(model, loss, data, params="all", k: int = 1, bn: str = "eval", tol: float = 1e-6,
                     batch_size: int | None = None, seed: int = 0) -> np.ndarray:
    """Top-``k`` Hessian eigenvalues of the data-set mean loss, largest first."""
    op = curvature_operator(model, loss, data, params, "hessian", bn, batch_size=batch_size)
    return top_eigenvalues(op, k, tol, seed)


def hessian_trace(model, loss, data, params="all", probes: int = 20, bn: str = "eval",
                  batch_size: int | None = None, seed: int = 0) -> tuple[float, float]:
    """Hutchinson estimate of tr ∇²L: (estimate, standard error)."""
    op = curvature_operator(model, loss, data, params, "hessian", bn, batch_size=batch_size)
    return hutchinson(op, probes, seed)


def hessian_density(model, loss, data, params="all", ncv: int = 64, num_repeats: int = 1, bn: str = "eval",
                    batch_size: int | None = None, seed: int = 0, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Hessian eigenvalue density by stochastic Lanczos quadrature: (grid, density)."""
    op = curvature_operator(model, loss, data, params, "hessian", bn, batch_size=batch_size)
    return spectral_density(op, ncv, num_repeats=num_repeats, seed=seed, **kwargs)


def per_layer(metric: Callable, model, loss, data, params="all", **kwargs) -> dict:
    """``metric(model, loss, data, params=<one layer>, **kwargs)`` for each layer of the selection.

    Per-layer curvature is that of the diagonal block of the layer's parameters.
    """
    groups = layer_groups(select_params(model, params))
    return {layer: metric(model, loss, data, params=sub, **kwargs) for layer, sub in groups.items()}


# --------------------------------------------------------------------------------------------------
# per-sample gradients, Fisher and Gauss-Newton traces
# --------------------------------------------------------------------------------------------------


def per_sample_grads(model, loss, x, y, params="all", bn: str = "eval",
                     chunk_size: int | None = None) -> dict[str, torch.Tensor]:
    """Gradients ∇_θ ℓ_n for each sample of the batch: ``{name: tensor[B, *param.shape]}``.

    ``bn="eval"``: vmap over samples of ``grad`` of the one-sample loss (torch.func). ``bn="train"``:
    a one-sample batch has no batch statistics, so the per-sample gradient is taken *through the
    batch*: the Jacobian of the vector of per-sample losses of this batch (each ℓ_n depends on all
    samples via the BN statistics), whose rows sum to B × the batch-mean gradient.
    """
    named = select_params(model, params)
    p0 = _detached(named)
    with bn_mode(model, bn):
        if bn == "eval":
            def one(p, xi, yi):
                out = functional_call(model, p, (xi.unsqueeze(0),))
                return _per_sample(loss, out, yi.unsqueeze(0))[0]
            return vmap(grad(one), in_dims=(None, 0, 0), chunk_size=chunk_size)(p0, x, y)

        def losses(p):
            return _per_sample(loss, functional_call(model, p, (x,)), y)
        return jacrev(losses, chunk_size=chunk_size)(p0)


def _sq_norms(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(g.flatten(1).pow(2).sum(1) for g in grads.values())


def per_sample_grad_sq_norms(model, loss, data, params="all", bn: str = "eval", batch_size: int | None = None,
                             chunk: int = 128) -> torch.Tensor:
    """‖∇_θ ℓ_n‖² for every sample (eval mode: in chunks of ``chunk`` samples, same result)."""
    out = []
    for x, y in as_batches(data, batch_size):
        parts = [(x, y)] if bn == "train" else zip(x.split(chunk), y.split(chunk))
        out += [_sq_norms(per_sample_grads(model, loss, xc, yc, params, bn)) for xc, yc in parts]
    return torch.cat(out)


def empirical_fisher_trace(model, loss, data, params="all", bn: str = "eval",
                           batch_size: int | None = None) -> float:
    """tr of the empirical Fisher = mean over samples of ‖∇_θ ℓ_n‖² (true labels)."""
    return per_sample_grad_sq_norms(model, loss, data, params, bn, batch_size).mean().item()


def true_fisher_trace(model, loss, data, params="all", bn: str = "eval", batch_size: int | None = None,
                      samples: int = 1, generator: torch.Generator | None = None) -> tuple[float, float]:
    """Monte-Carlo tr of the true Fisher of cross-entropy: (estimate, standard error).

    Labels ŷ ~ softmax(f(x_n)) (``samples`` draws per input, from ``generator``); the estimate is the
    mean of ‖∇_θ CE(f(x_n), ŷ)‖². Its expectation equals the GGN trace. The standard error is that of
    the label sampling (needs ``samples`` ≥ 2; with one draw, a conservative std/√N over samples).
    """
    if getattr(loss, "name", None) != "ce":
        raise ValueError("the true Fisher is implemented for cross-entropy only (use ggn_trace for MSE)")
    generator = generator or torch.Generator().manual_seed(0)
    values = []
    for x, y in as_batches(data, batch_size):
        with bn_mode(model, bn), torch.no_grad():
            probs = torch.softmax(model(x), dim=1)
        labels = torch.multinomial(probs.cpu(), samples, replacement=True, generator=generator).to(y.device)
        values.append(torch.stack([per_sample_grad_sq_norms(model, loss, (x, labels[:, s]), params, bn)
                                   for s in range(samples)], dim=1))
    v = torch.cat(values)  # [N, samples]
    n = len(v)
    if samples > 1:
        se = math.sqrt(v.var(dim=1).sum().item() / samples) / n
    else:
        se = v.std().item() / math.sqrt(n)
    return v.mean().item(), se


def ggn_trace(model, loss, data, params="all", bn: str = "eval", batch_size: int | None = None,
              chunk: int = 64) -> float:
    """Exact trace of the generalized Gauss-Newton matrix 1/N Σ_n tr(J_nᵀ H_n J_n).

    J_n: Jacobian of the outputs of sample n w.r.t. the selected parameters (through the batch in BN
    train mode), H_n: Hessian of ℓ_n w.r.t. the outputs (MSE: 2·I; CE: diag(p) − ppᵀ, for which the
    GGN is the true Fisher). Exact, via vmapped Jacobians; memory ~ chunk × classes × parameters.
    """
    p0 = _detached(select_params(model, params))
    out_hessian = vmap(hessian(lambda o, t: _per_sample(loss, o.unsqueeze(0), t.unsqueeze(0))[0]))
    total, n = 0.0, 0
    for x, y in as_batches(data, batch_size):
        parts = [(x, y)] if bn == "train" else zip(x.split(chunk), y.split(chunk))
        for xc, yc in parts:
            jac, out = _output_jacobian(model, p0, xc, bn)
            J = torch.cat([j.flatten(2) for j in jac.values()], dim=2)  # [B, C, P]
            H = out_hessian(out, yc)  # [B, C, C]
            total += torch.einsum("bcd,bcp,bdp->", H, J, J).item()
        n += len(x)
    return total / n


def _output_jacobian(model, p0, x, bn):
    """({name: ∂f(x_n)/∂θ of shape [B, C, *shape]}, outputs [B, C]); through the batch in BN train mode."""
    with bn_mode(model, bn):
        if bn == "eval":
            one = lambda p, xi: functional_call(model, p, (xi.unsqueeze(0),))[0]
            jac = vmap(jacrev(one), in_dims=(None, 0))(p0, x)
        else:
            jac = jacrev(lambda p: functional_call(model, p, (x,)))(p0)
        with torch.no_grad():
            out = model(x)
    return jac, out


# --------------------------------------------------------------------------------------------------
# one call for callbacks and the CLI
# --------------------------------------------------------------------------------------------------

METRICS = ("hessian_top", "hessian_trace", "hessian_top_per_layer", "hessian_trace_per_layer",
           "fisher_trace", "ggn_trace", "sharpness")


def compute_curvature(model: nn.Module, loss, x: torch.Tensor, y: torch.Tensor, selection: dict,
                      params="all", bn: str = "eval", batch_size: int | None = None,
                      seed: int = 0) -> dict[str, float]:
    """Compute a selection of curvature metrics on (x, y); returns flat ``{metric name: float}``.

    ``selection`` maps a metric to its options (``None``/``{}``: defaults); each may override
    ``params``/``bn``/``batch_size``:
    - ``hessian_top`` {k=1, tol=1e-4} → ``hessian_top_eig`` (and ``hessian_eig_<i>``, i=1..k, if k>1)
    - ``hessian_trace`` {probes=20} → ``hessian_trace``, ``hessian_trace_se``
    - ``hessian_top_per_layer`` {tol} → ``hessian_top_eig/<layer>``
    - ``hessian_trace_per_layer`` {probes} → ``hessian_trace/<layer>``
    - ``fisher_trace`` {kind="empirical"} → ``fisher_trace``; {kind="true", samples=1} →
      ``fisher_trace_true``, ``fisher_trace_true_se``
    - ``ggn_trace`` {} → ``ggn_trace``
    - ``sharpness`` {eps=1e-3, subspace=None, maxiter=10} → ``sharpness`` (Keskar et al., in %)
    """
    unknown = set(selection) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown curvature metrics {sorted(unknown)}; valid: {', '.join(METRICS)}")
    out: dict[str, float] = {}
    for name, opts in selection.items():
        o = dict(opts or {})
        common = {"params": o.pop("params", params), "bn": o.pop("bn", bn),
                  "batch_size": o.pop("batch_size", batch_size)}
        data = (x, y)
        if name == "hessian_top":
            k = o.get("k", 1)
            evals = hessian_top_eigs(model, loss, data, k=k, tol=o.get("tol", 1e-4), seed=seed, **common)
            out["hessian_top_eig"] = float(evals[0])
            if k > 1:
                out.update({f"hessian_eig_{i + 1}": float(e) for i, e in enumerate(evals)})
        elif name == "hessian_trace":
            est, se = hessian_trace(model, loss, data, probes=o.get("probes", 20), seed=seed, **common)
            out.update(hessian_trace=est, hessian_trace_se=se)
        elif name == "hessian_top_per_layer":
            res = per_layer(hessian_top_eigs, model, loss, data, tol=o.get("tol", 1e-4), seed=seed, **common)
            out.update({f"hessian_top_eig/{layer}": float(v[0]) for layer, v in res.items()})
        elif name == "hessian_trace_per_layer":
            res = per_layer(hessian_trace, model, loss, data, probes=o.get("probes", 20), seed=seed, **common)
            out.update({f"hessian_trace/{layer}": v[0] for layer, v in res.items()})
        elif name == "fisher_trace":
            kind = o.get("kind", "empirical")
            if kind == "empirical":
                out["fisher_trace"] = empirical_fisher_trace(model, loss, data, **common)
            elif kind == "true":
                gen = torch.Generator().manual_seed(seed)
                est, se = true_fisher_trace(model, loss, data, samples=o.get("samples", 1), generator=gen,
                                            **common)
                out.update(fisher_trace_true=est, fisher_trace_true_se=se)
            else:
                raise ValueError(f"fisher_trace kind must be 'empirical' or 'true', got {kind!r}")
        elif name == "ggn_trace":
            out["ggn_trace"] = ggn_trace(model, loss, data, **common)
        elif name == "sharpness":
            from lossland.metrics.sharpness import keskar_sharpness

            out["sharpness"] = keskar_sharpness(model, loss, data, eps=o.get("eps", 1e-3),
                                                subspace=o.get("subspace"), maxiter=o.get("maxiter", 10),
                                                seed=seed, **common)
    return out


__all__ = ["select_params", "layer_groups", "bn_mode", "as_batches", "curvature_operator", "BoundOperator",
           "top_eigenvalues", "hutchinson", "spectral_density", "hessian_top_eigs", "hessian_trace",
           "hessian_density", "per_layer", "per_sample_grads", "per_sample_grad_sq_norms",
           "empirical_fisher_trace", "true_fisher_trace", "ggn_trace", "compute_curvature", "flatten",
           "unflatten", "functional_loss"]
