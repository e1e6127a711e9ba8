"""Gradient descent with additive Gaussian noise: the rule for escaping saddle points of the lecture in
docs/optim_lab.md, after Ge et al., 2015, "Escaping from saddle points — online stochastic gradient for tensor
decomposition".

One step, for every parameter θ:

    θ ← θ − lr·∇f(θ) + σ·ε,   ε ~ N(0, I) drawn fresh for every parameter at every step.

The lecture writes ε ~ N(0, 1), i.e. σ = 1; ``sigma`` scales it (σ = 0 is plain gradient descent). The noise
is added whatever the gradient, so a run started exactly at a critical point moves. ``generator`` (a
``torch.Generator`` on the parameters' device) makes the noise reproducible; without one the global torch
RNG is used (seeded by the training loop's ``noise`` stream). Parameters without a gradient are skipped.
"""

from __future__ import annotations

import math

import torch

from lossland.errors import LosslandError

__all__ = ["NoisyGD"]


class NoisyGD(torch.optim.Optimizer):
    """θ ← θ − lr·∇f(θ) + sigma·ε, ε ~ N(0, I) (module docstring)."""

    def __init__(self, params, lr: float = 1e-2, sigma: float = 1.0, generator: torch.Generator | None = None):
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
            raise LosslandError(f"NoisyGD: lr must be a finite number ≥ 0, got {lr!r}")
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
            raise LosslandError(f"NoisyGD: sigma must be a finite number ≥ 0, got {sigma!r}")
        super().__init__(params, {"lr": float(lr), "sigma": float(sigma)})
        self.generator = generator

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, sigma = group["lr"], group["sigma"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                p.add_(p.grad, alpha=-lr)
                if sigma > 0:
                    eps = torch.randn(p.shape, generator=self.generator, dtype=p.dtype, device=p.device)
                    p.add_(eps, alpha=sigma)
        return loss
