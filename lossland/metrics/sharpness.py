"""ε-sharpness of Keskar et al., "On large-batch training for deep learning" (ICLR 2017), metric 2.3.

For parameters x ∈ Rⁿ, a matrix A ∈ Rⁿˣᵖ and the box

    C_ε = { z ∈ Rᵖ : |z_i| ≤ ε (|(A⁺x)_i| + 1) },   A⁺ the pseudo-inverse of A,

the sharpness is  φ(ε, A) = 100 · (max_{z ∈ C_ε} L(x + A z) − L(x)) / (1 + L(x)),  in percent.

Full space: A = Iₙ (the box is |y_i| ≤ ε(|x_i| + 1) around every coordinate). Random subspace:
A has ``subspace`` = p columns with i.i.d. N(0, 1) entries (seeded), or is given explicitly.
The maximum is searched with scipy's L-BFGS-B under the box bounds (Keskar et al. use 10
iterations), from a seeded uniform random point of the box — at a minimum the gradient vanishes, so
a start at z = 0 would not move. The result is a lower bound of the true maximum (a local search).

The search does not depend on the loss's scale. On a well-fitted net (training loss ≈ 1e-5, gradient entries far
below 1e-5) L-BFGS-B on the raw loss never searches the box: scipy's default stopping tests (projected gradient ≤
1e-5, relative decrease ≤ 2.2e-9 of max(|f|, 1)) end it at its random start, and with them off its steps, about
the gradient's size while the curvature pairs are still being collected, move ~1e-6 of a box ~1e-3 wide in 10
iterations (measured on an SB minimum of the Keskar recipe: 7.8e-6 % against 11 % for 20 projected sign-gradient
steps). So the search runs in the unit box u = z / half-width, on the loss divided by its largest gradient entry
(with respect to u) at the start, with both tolerances 0; the value reported is the unscaled loss at the point
found. tests/test_sharpness_landscape.py checks the closed-form vertex at 10 iterations for a loss scaled by
1e-6 and that a scaled loss gives the same search.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import Bounds, minimize
from torch import nn

from lossland.metrics.bn import bn_mode
from lossland.metrics.params import as_batches, flatten, functional_loss, select_params, unflatten
from lossland.metrics.registry import register_metric


def keskar_sharpness(model: nn.Module, loss, data, eps: float = 1e-3,
                     subspace: int | torch.Tensor | None = None, maxiter: int = 10, params="all",
                     bn: str = "eval", batch_size: int | None = None, seed: int = 0,
                     restarts: int = 1) -> float:
    """ε-sharpness φ(ε, A) in percent (module docstring) of the mean loss over ``data``.

    ``subspace``: ``None`` — full space; an int p — random N(0,1) matrix with p columns; a tensor —
    that matrix A (n × p, n = number of selected parameters). ``restarts`` random starts; the best
    maximum is kept. The model is not modified.
    """
    named = select_params(model, params)
    batches = as_batches(data, batch_size)
    x0 = flatten({n: p.detach() for n, p in named.items()})
    dtype, device = x0.dtype, x0.device
    if subspace is None:
        A = None
        half_width = eps * (x0.abs() + 1)
    else:
        if isinstance(subspace, int):
            gen = torch.Generator().manual_seed(seed)
            A = torch.randn(len(x0), subspace, generator=gen, dtype=dtype).to(device)
        else:
            A = subspace.to(device, dtype)
        coords = torch.linalg.lstsq(A.cpu().double(), x0.cpu().double().unsqueeze(1)).solution[:, 0]
        half_width = eps * (coords.abs() + 1)
    bound = half_width.cpu().double().numpy()

    def loss_and_grad(z: np.ndarray):
        zt = torch.as_tensor(z, dtype=dtype, device=device).requires_grad_(True)
        x = x0 + (zt if A is None else A @ zt)
        value = functional_loss(model, loss, batches, unflatten(x, named))
        (g,) = torch.autograd.grad(value, zt)
        return value.item(), g.detach().cpu().double().numpy()

    rng = np.random.default_rng(seed)
    with bn_mode(model, bn, elementary=True):
        base = loss_and_grad(np.zeros_like(bound))[0]
        best = base
        for _ in range(restarts):
            u0 = rng.uniform(-1.0, 1.0, size=bound.shape)
            # the search runs in the unit box u = z / half-width, on the loss divided by its largest gradient entry
            # there: its steps are then a fraction of the box whatever the loss's scale (module docstring)
            scale = 1.0 / max(float(np.abs(loss_and_grad(u0 * bound)[1] * bound).max()), 1e-300)

            def objective(u: np.ndarray, scale=scale):
                value, g = loss_and_grad(u * bound)
                return -scale * value, -scale * g * bound

            res = minimize(objective, u0, jac=True, method="L-BFGS-B", bounds=Bounds(-1.0, 1.0),
                           options={"maxiter": maxiter, "gtol": 0.0, "ftol": 0.0})
            best = max(best, loss_and_grad(np.clip(res.x, -1.0, 1.0) * bound)[0])
    return 100.0 * (best - base) / (1.0 + base)


@register_metric("keskar_sharpness", options=("eps", "subspace", "maxiter", "restarts"), order=31)
def _keskar_sharpness(model, loss, data, eps=1e-3, subspace=None, maxiter=10, restarts=1, seed=0, **common):
    """→ ``keskar_sharpness`` (percent)."""
    return {"keskar_sharpness": keskar_sharpness(model, loss, data, eps, subspace, maxiter, seed=seed,
                                                 restarts=restarts, **common)}


@register_metric("sharpness", options=("eps", "subspace", "maxiter", "restarts"), order=30)
def _sharpness(model, loss, data, eps=1e-3, subspace=None, maxiter=10, restarts=1, seed=0, **common):
    """The same as ``keskar_sharpness``, logged as ``sharpness`` (the name runs have logged it under)."""
    return {"sharpness": keskar_sharpness(model, loss, data, eps, subspace, maxiter, seed=seed,
                                          restarts=restarts, **common)}
