"""The Dirichlet prior on the mixture ``p = softmax(gamma)`` of every edge, and the annealing of its alpha.

``log Dir(p | alpha) = lgamma(K alpha) - K lgamma(alpha) + (alpha - 1) * sum_k log p_k`` (symmetric alpha, K
operations). The first two terms do not depend on gamma; the training objective drops them (they would only
shift Q) and uses :func:`log_density_kernel` ``(alpha - 1) * sum_k log_softmax(gamma)_k``, which is finite for
any alpha > 0 (``log_softmax`` never forms p = 0, and no Gamma(alpha) is formed: with alpha = 1e-30 it would be
~1e30, and its logarithm lgamma(alpha) ~ 69 is what :func:`log_density` adds, in float64, when asked).

Sign convention: Q = CE_valid + lambda * R(Gamma) with R = -sum_edges log Dir(softmax gamma | alpha), the negative
log prior (MAP: minimizing Q maximizes likelihood x prior). The seed writes "+lambda p(Gamma)"; taken literally,
minimizing +lambda * p would push the structure *away* from the prior's mass, so we read it, like its
"log p(Y|X)" in L, as the negative log-probability.

Gradient: dR/dgamma_j = (1 - alpha) (1 - K p_j) per edge, zero at the uniform mixture p = 1/K for every alpha;
for alpha < 1 the uniform point is a maximum of log Dir's kernel (a saddle/maximum of R), so an initialization
near uniform (DARTS' gamma ~ 1e-3 N(0,1)) starts the structure at a stationary point of the prior.

Annealing. alpha enters Q's gradient only through the prior's weight lambda (1 - alpha)
(:func:`prior_weight`): alpha = 1e-3 and alpha = 1e-30 are the same prior to within 0.1 %. A log-linear alpha from
1 to 1e-30 therefore gives (1 - alpha) = 0.998 from the second epoch on, a step, not an anneal. The default
(``anneal: linear``) moves alpha linearly, so the prior's weight grows linearly over the epochs from
lambda (1 - alpha_start) to lambda (1 - alpha_end); ``anneal: log`` keeps the log-linear alpha.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lossland.errors import LosslandError

__all__ = ["DirichletPrior", "log_density_kernel", "log_density", "neg_log_prior", "alpha_schedule", "check_alpha",
           "prior_weight", "ANNEALS"]

ANNEALS = ("linear", "log")


@dataclass
class DirichletPrior:
    """A ``conf/prior`` config: the symmetric Dirichlet prior with concentration ``alpha`` (with ``alpha_end``:
    annealed once per epoch from ``alpha`` to ``alpha_end``, ``anneal``: linearly or log-linearly in alpha),
    weighted by ``strength`` (lambda in Q = CE_valid + lambda * R(Gamma)); ``name`` labels the job's records. Bad
    values are refused in one line."""

    name: str
    alpha: float
    alpha_end: float | None = None
    strength: float = 0.1
    anneal: str = "linear"

    def __post_init__(self):
        self.alpha = check_alpha(self.alpha, "prior.alpha")
        if self.alpha_end is not None:
            self.alpha_end = check_alpha(self.alpha_end, "prior.alpha_end")
        if not float(self.strength) >= 0:
            raise LosslandError(f"prior.strength (lambda) must be >= 0, got {self.strength}")
        self.strength = float(self.strength)
        if self.anneal not in ANNEALS:
            raise LosslandError(f"prior.anneal must be one of {', '.join(ANNEALS)}, got {self.anneal}")

    def schedule(self, epochs: int) -> Callable[[int], float]:
        """``epoch -> alpha`` over a search of ``epochs`` epochs (:func:`alpha_schedule`)."""
        return alpha_schedule(self.alpha, self.alpha if self.alpha_end is None else self.alpha_end, epochs,
                              self.anneal)

    def weight(self, epochs: int) -> Callable[[int], float]:
        """``epoch -> lambda (1 - alpha(epoch))``: the effective strength of the prior in Q's gradient."""
        a = self.schedule(epochs)
        return lambda epoch: prior_weight(self.strength, a(epoch))


def check_alpha(alpha: float, what: str = "prior.alpha") -> float:
    a = float(alpha)
    if not (a > 0 and math.isfinite(a)):
        raise LosslandError(f"{what} must be a finite number > 0 (the Dirichlet concentration), got {alpha}")
    return a


def log_density_kernel(gamma: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(alpha - 1) * sum_k log softmax(gamma)_k`` per row (edge) of ``gamma`` (..., K)."""
    return (alpha - 1.0) * torch.log_softmax(gamma, dim=-1).sum(-1)


def log_density(p_or_gamma: torch.Tensor, alpha: float, logits: bool = True) -> torch.Tensor:
    """The normalized log-density of the symmetric Dirichlet, per row; from logits ``gamma`` (stable) or from a
    point ``p`` of the simplex (``logits=False``). The normalizer is computed with lgamma in float64."""
    k = p_or_gamma.shape[-1]
    a = torch.tensor(float(alpha), dtype=torch.float64)
    const = (torch.lgamma(k * a) - k * torch.lgamma(a)).to(p_or_gamma.dtype)
    if logits:
        return const + log_density_kernel(p_or_gamma, alpha)
    return const + (alpha - 1.0) * torch.log(p_or_gamma).sum(-1)


def neg_log_prior(gammas, alpha: float) -> torch.Tensor:
    """R(Gamma) = -sum over edges of the log-density kernel (the gamma-independent constants dropped)."""
    return -sum(log_density_kernel(g, alpha).sum() for g in gammas)


def prior_weight(strength: float, alpha: float) -> float:
    """lambda (1 - alpha): the factor of the prior's gradient lambda (1 - alpha)(1 - K p) in dQ/dgamma."""
    return float(strength) * (1.0 - float(alpha))


def alpha_schedule(start: float, end: float, epochs: int, anneal: str = "linear"):
    """``epoch -> alpha``: from ``start`` (epoch 0) to ``end`` (epoch ``epochs - 1``), one value per epoch,
    linear in alpha (``anneal="linear"``: the prior's weight 1 - alpha moves by equal steps) or in log alpha
    (``"log"``); ``start == end`` is a constant prior."""
    start, end = check_alpha(start, "prior.alpha_start"), check_alpha(end, "prior.alpha_end")
    if anneal not in ANNEALS:
        raise LosslandError(f"prior.anneal must be one of {', '.join(ANNEALS)}, got {anneal}")
    la, lb = (math.log(start), math.log(end)) if anneal == "log" else (start, end)

    def alpha(epoch: int) -> float:
        if epochs <= 1:
            return end
        t = min(max(epoch, 0), epochs - 1) / (epochs - 1)
        if t == 1:
            return end
        v = la + (lb - la) * t
        return math.exp(v) if anneal == "log" else v

    return alpha
