"""Spectra and traces of a curvature operator: top eigenvalues, Hutchinson trace, spectral density.

All three run on lossland's Lanczos iteration (:func:`lanczos`: full re-orthogonalization, one product
per step, seeded start), which needs far fewer products than power iteration (PyHessian) or ARPACK with
restarts for the top of a network Hessian's spectrum (measured in ``docs/curvature.md``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import torch
from scipy.sparse.linalg import eigsh

from lossland.metrics.curvature.operators import curvature_operator
from lossland.metrics.params import layer_groups, select_params
from lossland.metrics.registry import register_metric


def _start(n: int, seed: int, dtype, device, rademacher: bool = False) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    v = rng.choice([-1.0, 1.0], n) if rademacher else rng.standard_normal(n)
    v = torch.as_tensor(v, dtype=dtype, device=device)
    return v / v.norm()


def lanczos(op, steps: int, start: torch.Tensor, k: int = 0, tol: float = 0.0,
            which: str = "LA") -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Lanczos with full re-orthogonalization from the unit vector ``start``.

    Runs ``steps`` products (fewer if the Krylov space becomes invariant), or, with ``k > 0``, stops as
    soon as the ``k`` extreme Ritz values (``which``: ``"LA"`` largest, ``"SA"`` smallest) have
    estimated relative error ≤ ``tol``: for Ritz pair (θ, s) the residual is r = β|s_last| and the
    error of θ is at most min(r, r²/gap), gap the distance to the nearest other Ritz value.
    Returns (alphas, betas, Lanczos basis Q [m, n]).
    """
    n = start.numel()
    steps = min(steps, n)
    Q = torch.empty(min(steps, 16), n, dtype=start.dtype, device=start.device)  # grows by doubling
    alphas, betas = [], []
    q = start
    for j in range(steps):
        if j == len(Q):
            Q = torch.cat([Q, torch.empty(min(len(Q), steps - len(Q)), n, dtype=Q.dtype, device=Q.device)])
        Q[j] = q
        w = op @ q
        alphas.append(float(w @ q))
        basis = Q[:j + 1]
        for _ in range(2):  # full re-orthogonalization, twice is enough
            w = w - basis.T @ (basis @ w)
        beta = float(w.norm())
        m = j + 1
        if k and m >= min(k, n):
            theta, S = _tridiagonal_eigh(alphas, betas)
            order = np.argsort(theta)[::-1] if which == "LA" else np.argsort(theta)
            top = order[:k]
            res = beta * np.abs(S[-1, top])
            others = [np.delete(theta, i) for i in top]
            gaps = np.array([np.min(np.abs(o - theta[i])) if len(o) else 0.0 for o, i in zip(others, top)])
            err = np.where(gaps > 0, np.minimum(res, res ** 2 / np.maximum(gaps, 1e-300)), res)
            if np.all(err <= tol * np.abs(theta[top])):
                return np.array(alphas), np.array(betas), Q[:m]
        if beta <= 1e-12 * max(1.0, max(abs(a) for a in alphas)) or m == steps:
            return np.array(alphas), np.array(betas), Q[:m]
        betas.append(beta)
        q = w / beta
    return np.array(alphas), np.array(betas), Q[:steps]  # pragma: no cover


def _tridiagonal_eigh(alphas, betas) -> tuple[np.ndarray, np.ndarray]:
    m = len(alphas)
    T = np.diag(np.asarray(alphas, dtype=np.float64))
    if m > 1:
        off = np.asarray(betas[:m - 1], dtype=np.float64)
        T += np.diag(off, 1) + np.diag(off, -1)
    return np.linalg.eigh(T)


def top_eigenvalues(op, k: int = 1, tol: float = 1e-6, seed: int = 0, which: str = "LA",
                    ncv: int | None = None, max_steps: int | None = None, method: str = "lanczos") -> np.ndarray:
    """The ``k`` algebraically largest eigenvalues (``which="SA"``: smallest), largest first.

    ``method="lanczos"`` (default): :func:`lanczos` from a seeded Gaussian start until each of the k
    eigenvalues has estimated relative error ≤ ``tol`` (at most ``max_steps`` products, default the
    smaller of the dimension and 1000; a warning if they do not converge). ``"arpack"``: scipy
    ``eigsh`` (implicitly restarted Lanczos, ``ncv`` vectors per restart, default max(2k + 1, 10),
    residual ≤ ``tol``·|λ|); ``"power"``: power iteration with deflation,
    PyHessian's rule (stop at relative change < ``tol``), for comparison. Operators of dimension ≤ k + 1
    are decomposed densely.
    """
    n = op.shape[0]
    if n <= k + 1:
        eye = torch.eye(n, dtype=op.dtype, device=op.device)
        evals = np.linalg.eigvalsh((op @ eye).cpu().numpy())
        evals = evals[::-1] if which == "LA" else evals
        return np.sort(evals[:k])[::-1].copy()
    if method == "lanczos":
        start = _start(n, seed, op.dtype, op.device)
        steps = min(max_steps or 1000, n)
        alphas, betas, _ = lanczos(op, steps, start, k=k, tol=tol, which=which)
        if len(alphas) == steps < n:
            warnings.warn(f"Lanczos: the top-{k} eigenvalues did not reach tol {tol:g} in {steps} products",
                          stacklevel=2)
        theta = _tridiagonal_eigh(alphas, betas)[0]
        chosen = theta[::-1][:k] if which == "LA" else theta[:k]
        return np.sort(chosen)[::-1].copy()
    if method == "arpack":
        v0 = np.random.default_rng(seed).standard_normal(n)
        ncv = min(n, ncv or max(2 * k + 1, 10))
        evals = eigsh(op.to_scipy(np.float64), k=k, which=which, tol=tol, v0=v0, ncv=ncv,
                      return_eigenvectors=False)
        return np.sort(evals)[::-1].copy()
    if method == "power":
        return np.sort(_power(op, k, tol, seed, max_steps or 100))[::-1].copy()
    raise ValueError(f"unknown eigenvalue method {method!r}; valid: lanczos, arpack, power")


def _power(op, k, tol, seed, max_steps):
    """Power iteration with deflation against the vectors found (largest magnitude, like PyHessian)."""
    found, values = [], []
    gen = torch.Generator().manual_seed(seed)
    for _ in range(k):
        v = torch.randn(op.shape[0], generator=gen, dtype=op.dtype).to(op.device)
        value = None
        for _ in range(max_steps):
            for u in found:
                v = v - (u @ v) * u
            v = v / v.norm()
            hv = op @ v
            new = float(hv @ v)
            v = hv
            if value is not None and abs(new - value) / (abs(value) + 1e-6) < tol:
                value = new
                break
            value = new
        found.append(v / v.norm())
        values.append(value)
    return np.array(values)


def hutchinson(op, probes: int = 20, seed: int = 0, deflate: int = 0,
               target_se: float | None = None, min_probes: int = 4) -> tuple[float, float]:
    """Trace estimate with Rademacher probes, one product each: (estimate, standard error).

    ``deflate`` > 0 (Hutch++-style, with the sketch from Lanczos): ``deflate`` Lanczos steps from a
    seeded start give an orthonormal basis Q of a Krylov space — which holds the outlying eigenvalues
    that dominate a network Hessian's variance — and tr(QᵀAQ) = Σ Lanczos α exactly; the rest,
    tr((I−QQᵀ)A(I−QQᵀ)), is estimated from ``probes`` projected probes. Unbiased; the standard error
    is that of the projected probes. Costs ``deflate + probes`` products.

    ``target_se``: stop early, after at least ``min_probes`` probes, once the standard error is ≤
    ``target_se`` (``probes`` is then the maximum) — an accuracy target instead of a budget. The
    sequential stop makes the estimate very slightly biased towards runs of small spread.
    """
    n = op.shape[1]
    gen = torch.Generator().manual_seed(seed)
    head, Q = 0.0, None
    if deflate > 0:
        alphas, _, Q = lanczos(op, min(deflate, n), _start(n, seed + 7919, op.dtype, op.device))
        head = float(np.sum(alphas))
        if len(Q) == n:  # the whole space: exact
            return head, 0.0
    values = []
    for _ in range(probes):
        v = (torch.randint(0, 2, (n,), generator=gen) * 2 - 1).to(op.device, op.dtype)
        if Q is not None:
            v = v - Q.T @ (Q @ v)
        values.append(float(v @ (op @ v)))
        if target_se is not None and len(values) >= max(min_probes, 2) and \
                np.std(values, ddof=1) / math.sqrt(len(values)) <= target_se:
            break
    probes = len(values)
    values = np.array(values)
    se = values.std(ddof=1) / math.sqrt(probes) if probes > 1 else float("nan")
    return head + float(values.mean()) if probes else head, float(se)


def spectral_density(op, ncv: int = 64, num_points: int = 1024, num_repeats: int = 1, kappa: float = 3.0,
                     seed: int = 0, boundaries: tuple[float, float] | None = None,
                     margin: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalue density p(λ) = 1/d Σ_i δ(λ − λ_i) by stochastic Lanczos quadrature (Papyan 2020).

    Returns (grid, density); the density integrates to ≈ 1 over the grid. Each of ``num_repeats``
    runs: ``ncv`` Lanczos steps from a seeded Rademacher start; the Ritz values are quadrature nodes
    weighted by the squared first components of their eigenvectors. Nodes are smoothed by Gaussians of
    width 2/(ncv − 1)/√(8 ln κ) of the half range. The range is ``boundaries`` or the extreme Ritz
    values of the runs (which converge first), widened by ``margin``.
    """
    ncv = min(ncv, op.shape[0] - 1)
    runs = []
    for r in range(num_repeats):
        alphas, betas, _ = lanczos(op, ncv, _start(op.shape[0], seed + r, op.dtype, op.device, rademacher=True))
        theta, S = _tridiagonal_eigh(alphas, betas)
        runs.append((theta, S[0] ** 2))
    lo, hi = boundaries or (min(t.min() for t, _ in runs), max(t.max() for t, _ in runs))
    pad = margin * (hi - lo)
    lo, hi = lo - pad, hi + pad
    grid = np.linspace(lo, hi, num_points)
    sigma = (hi - lo) / 2 * 2 / (ncv - 1) / math.sqrt(8 * math.log(kappa))
    density = np.zeros(num_points)
    for theta, w in runs:
        bumps = np.exp(-0.5 * ((grid[None, :] - theta[:, None]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        density += (w[:, None] * bumps).sum(0) / num_repeats
    return grid, density


# --------------------------------------------------------------------------------------------------
# Hessian shortcuts and per-layer variants
# --------------------------------------------------------------------------------------------------


def hessian_top_eigs(model, loss, data, params="all", k: int = 1, bn: str = "eval", tol: float = 1e-6,
                     batch_size: int | None = None, seed: int = 0) -> np.ndarray:
    """Top-``k`` Hessian eigenvalues of the data-set mean loss, largest first."""
    op = curvature_operator(model, loss, data, params, "hessian", bn, batch_size=batch_size)
    return top_eigenvalues(op, k, tol, seed)


def hessian_trace(model, loss, data, params="all", probes: int = 20, bn: str = "eval",
                  batch_size: int | None = None, seed: int = 0, deflate: int = 0) -> tuple[float, float]:
    """Hutchinson estimate of tr ∇²L: (estimate, standard error); ``deflate``: see :func:`hutchinson`."""
    op = curvature_operator(model, loss, data, params, "hessian", bn, batch_size=batch_size)
    return hutchinson(op, probes, seed, deflate)


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
# registered metrics (lossland.metrics.registry)
# --------------------------------------------------------------------------------------------------


@register_metric("hessian_top", options=("k", "tol"), order=10)
def _hessian_top(model, loss, data, k=1, tol=1e-4, seed=0, **common):
    """→ ``hessian_top_eig`` (and ``hessian_eig_<i>``, i = 1..k, if k > 1)."""
    evals = hessian_top_eigs(model, loss, data, k=k, tol=tol, seed=seed, **common)
    out = {"hessian_top_eig": float(evals[0])}
    if k > 1:
        out.update({f"hessian_eig_{i + 1}": float(e) for i, e in enumerate(evals)})
    return out


@register_metric("hessian_trace", options=("probes", "deflate"), order=11)
def _hessian_trace(model, loss, data, probes=20, deflate=0, seed=0, **common):
    """→ ``hessian_trace``, ``hessian_trace_se``."""
    est, se = hessian_trace(model, loss, data, probes=probes, deflate=deflate, seed=seed, **common)
    return {"hessian_trace": est, "hessian_trace_se": se}


@register_metric("hessian_top_per_layer", options=("tol",), order=12)
def _hessian_top_per_layer(model, loss, data, tol=1e-4, seed=0, **common):
    """→ ``hessian_top_eig/<layer>``."""
    res = per_layer(hessian_top_eigs, model, loss, data, tol=tol, seed=seed, **common)
    return {f"hessian_top_eig/{layer}": float(v[0]) for layer, v in res.items()}


@register_metric("hessian_trace_per_layer", options=("probes", "deflate"), order=13)
def _hessian_trace_per_layer(model, loss, data, probes=20, deflate=0, seed=0, **common):
    """→ ``hessian_trace/<layer>``."""
    res = per_layer(hessian_trace, model, loss, data, probes=probes, deflate=deflate, seed=seed, **common)
    return {f"hessian_trace/{layer}": v[0] for layer, v in res.items()}


__all__ = ["lanczos", "top_eigenvalues", "hutchinson", "spectral_density", "hessian_top_eigs", "hessian_trace",
           "hessian_density", "per_layer"]
