"""``Curvature``: the Hessian of one (model, loss, data) as an object, in PyHessian's shape.

    curv = Curvature(model, loss, (x, y), params="all", bn="eval")
    curv.top_eigs(3), curv.trace(), curv.density()

One operator is built and shared by every call, so the gradient graphs of the data (double-backward
Hessian-vector products) are built once for all of them. Same numbers as the functions
(:func:`hessian_top_eigs`, :func:`hessian_trace`, :func:`hessian_density`) with the same arguments.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lossland.metrics.curvature.operators import curvature_operator
from lossland.metrics.curvature.spectra import hutchinson, spectral_density, top_eigenvalues


class Curvature:
    """Hessian of the mean loss over ``data`` (an ``(x, y)`` pair or a list of batches) w.r.t. ``params``."""

    def __init__(self, model: nn.Module, loss, data, params="all", bn: str = "eval",
                 batch_size: int | None = None, hvp: str = "double_backward"):
        self.model, self.loss, self.bn = model, loss, bn
        self.op = curvature_operator(model, loss, data, params, "hessian", bn, batch_size=batch_size, hvp=hvp)

    @property
    def param_names(self) -> list[str]:
        return self.op.param_names

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """Hessian-vector product with a flat vector over the selected parameters."""
        return self.op @ v

    def top_eigs(self, k: int = 1, tol: float = 1e-6, seed: int = 0, **kwargs) -> np.ndarray:
        """The k largest eigenvalues, largest first (:func:`top_eigenvalues`)."""
        return top_eigenvalues(self.op, k, tol, seed, **kwargs)

    def trace(self, probes: int = 20, seed: int = 0, deflate: int = 0, **kwargs) -> tuple[float, float]:
        """Hutchinson trace: (estimate, standard error) (:func:`hutchinson`; ``deflate``, ``target_se``)."""
        return hutchinson(self.op, probes, seed, deflate, **kwargs)

    def density(self, ncv: int = 64, num_repeats: int = 1, seed: int = 0, **kwargs) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalue density by stochastic Lanczos quadrature: (grid, density) (:func:`spectral_density`)."""
        return spectral_density(self.op, ncv, num_repeats=num_repeats, seed=seed, **kwargs)


__all__ = ["Curvature"]
