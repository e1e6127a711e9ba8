"""Saddle-escape statistics of noisy gradient descent, vectorized over many runs.

The update is the one of :class:`lossland.optim.NoisyGD` (the lecture's rule (docs/optim_lab.md), after Ge et al. 2015),
written in closed tensor form over a batch of independent 2-d runs (state ``X``: (..., 2)):

    X ← X − λ·∇f(X) + σ·ε,   ε ~ N(0, I) drawn as one ``randn(X.shape)`` per step from ``generator``.

With a single run (``X`` of shape (2,) or (1, 2)) and the same generator, the draws — hence the iterates —
are NoisyGD's, step for step (tested).

A run starts at the saddle (plus ``offset``) and *escapes* at the first step n with ‖X_n − saddle‖ ≥ ``radius``;
its escape time is n (steps taken). Runs that have not escaped after ``max_steps`` are censored (time = NaN,
counted in ``escaped`` < 1). An escaped run is frozen, so unbounded functions never overflow.

Prediction for a strict saddle (Hessian H with one negative eigenvalue −μ): along that direction
u_{n+1} = (1 + λμ)·u_n + σ·ε, so u_n ≈ a^n·Z with a = 1 + λμ and Z ~ N(0, σ²/(a² − 1)) for large n; the run
escapes when |u_n| ≈ radius, hence a median escape time ≈ log(radius / (0.6745·sd(Z))) / log(a) (0.6745 = the
median of |N(0, 1)|). It is printed beside the measured median (``predicted``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lossland.errors import LosslandError
from lossland.studies.optim.functions import Function2d, check_point

__all__ = ["noisy_gd", "EscapeStats", "escape_stats", "predicted_median", "hessian"]


def _check_rates(lrs, sigmas) -> None:
    for lr in lrs:
        if not (math.isfinite(lr) and lr > 0):
            raise LosslandError(f"lr={lr} is not valid: the step size λ must be a positive number")
    for s in sigmas:
        if not (math.isfinite(s) and s >= 0):
            raise LosslandError(f"sigma={s} is not valid: σ must be a finite number ≥ 0")


def noisy_gd(fn: Function2d, x0: torch.Tensor, lr, sigma, steps: int, generator: torch.Generator,
             center: Sequence[float] | None = None, radius: float | None = None, path: bool = False):
    """``steps`` noisy-GD updates of every run in ``x0`` (..., 2); ``lr`` and ``sigma`` are numbers or
    tensors broadcastable to ``x0.shape[:-1]``. With ``radius``, a run stops at its first step with
    ‖X − center‖ ≥ radius. Returns ``(X, times, trajectory)``: final state, escape times (float; NaN = not
    escaped) and, with ``path=True``, the states at steps 0..steps stacked on dim 0 (else None)."""
    X = x0.clone()
    shape = X.shape[:-1]
    lr = torch.as_tensor(lr, dtype=X.dtype).expand(shape).unsqueeze(-1)
    sigma = torch.as_tensor(sigma, dtype=X.dtype).expand(shape).unsqueeze(-1)
    c = torch.tensor(center if center is not None else [0.0, 0.0], dtype=X.dtype)
    times = torch.full(shape, math.nan, dtype=X.dtype)
    active = torch.ones(shape, dtype=torch.bool)
    states = [X.clone()] if path else None
    for n in range(1, steps + 1):
        eps = torch.randn(X.shape, generator=generator, dtype=X.dtype)
        new = X - lr * fn.grad(X) + sigma * eps
        X = torch.where(active.unsqueeze(-1), new, X)
        if radius is not None:
            out = active & ((X - c).norm(dim=-1) >= radius)
            times[out] = n
            active &= ~out
            if not bool(active.any()):
                if path:
                    states.append(X.clone())
                break
        if path:
            states.append(X.clone())
    return X, times, (torch.stack(states) if path else None)


def hessian(fn: Function2d, point: Sequence[float]) -> np.ndarray:
    x = torch.tensor(point, dtype=torch.float64)
    return torch.autograd.functional.hessian(lambda z: fn(z), x).numpy()


def predicted_median(fn: Function2d, lr: float, sigma: float, radius: float) -> float:
    """The strict-saddle prediction of the module docstring (NaN when the saddle is not strict or σ = 0)."""
    if fn.saddle is None or sigma <= 0:
        return math.nan
    mu = -float(np.linalg.eigvalsh(hessian(fn, fn.saddle)).min())
    if mu <= 1e-12:
        return math.nan
    a = 1 + lr * mu
    sd = sigma / math.sqrt(a * a - 1)
    n = math.log(radius / (0.6745 * sd)) / math.log(a)
    return n if n >= 2 else math.nan  # the noise alone jumps out in a step or two: no growth regime to predict


@dataclass
class EscapeStats:
    function: str
    lrs: list[float]
    sigmas: list[float]
    runs: int
    max_steps: int
    radius: float
    times: np.ndarray  # (len(sigmas), len(lrs), runs); NaN = not escaped within max_steps
    wall_s: float

    def rows(self, fn: Function2d | None = None) -> list[dict]:
        """One table row per (λ, σ): escaped fraction and escape-time quantiles over the escaped runs."""
        out = []
        for i, s in enumerate(self.sigmas):
            for j, lr in enumerate(self.lrs):
                t = self.times[i, j]
                done = t[np.isfinite(t)]
                q = (lambda p, done=done: float(np.quantile(done, p)) if done.size else math.nan)
                out.append({"function": self.function, "lr": lr, "sigma": s, "runs": self.runs,
                            "escaped": float(done.size / t.size), "median": q(0.5),
                            "mean": float(done.mean()) if done.size else math.nan, "p10": q(0.1), "p90": q(0.9),
                            "predicted": predicted_median(fn, lr, s, self.radius) if fn is not None else math.nan})
        return out


MAX_RUNS = 10**7  # runs of one escape task (2 float64 each, plus their noise and times)


def escape_stats(fn: Function2d, sigmas: Sequence[float], lrs: Sequence[float], runs: int = 1000,
                 max_steps: int = 1000, radius: float = 1.0, seed: int = 0,
                 offset: Sequence[float] = (0.0, 0.0)) -> EscapeStats:
    """Escape times of ``runs`` seeds for every (σ, λ), all runs of the grid in one tensor (module docstring)."""
    import time

    if fn.saddle is None:
        raise LosslandError(f"function {fn.name} has no saddle to escape from (set function.saddle=[x1,x2])")
    sigmas, lrs = [float(s) for s in sigmas], [float(v) for v in lrs]
    if not sigmas or not lrs:
        raise LosslandError("escape needs at least one sigma and one lr")
    _check_rates(lrs, sigmas)
    if runs < 1 or max_steps < 1 or not (math.isfinite(radius) and radius > 0):
        raise LosslandError(f"escape needs runs ≥ 1, max_steps ≥ 1 and radius > 0 "
                            f"(got {runs}, {max_steps}, {radius})")
    if len(sigmas) * len(lrs) * runs > MAX_RUNS:  # all runs live in one tensor: refused before it is allocated
        raise LosslandError(f"escape: task.runs={runs} for {len(sigmas)} sigmas x {len(lrs)} lrs is "
                            f"{len(sigmas) * len(lrs) * runs:.3g} runs in one tensor, more than {MAX_RUNS:.0e}; "
                            "lower task.runs")
    start = np.add(fn.saddle, check_point(offset, "offset"))
    t0 = time.time()
    gen = torch.Generator().manual_seed(int(seed))
    x0 = torch.tensor(start, dtype=torch.float64).expand(len(sigmas), len(lrs), runs, 2)
    sig = torch.tensor(sigmas, dtype=torch.float64).view(-1, 1, 1)
    lam = torch.tensor(lrs, dtype=torch.float64).view(1, -1, 1)
    _, times, _ = noisy_gd(fn, x0, lam, sig, max_steps, gen, center=fn.saddle, radius=radius)
    return EscapeStats(fn.name, lrs, sigmas, runs, max_steps, radius, times.numpy(), time.time() - t0)
