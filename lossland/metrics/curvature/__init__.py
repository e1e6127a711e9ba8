"""Curvature of the training loss: Hessian / GGN / Fisher operators, eigenvalues, traces, densities.

Pure functions over (model, loss, data, parameter selection, BN mode); nothing here trains or changes
the model (BN running statistics and train/eval flags are restored after every measurement).

Conventions
- The loss is a lossland loss (``lossland.losses``): the batch *mean* of a per-sample loss
  ``ℓ_n`` (MSE: Σ_classes (ŷ_c − 1[y=c])², i.e. summed over classes, averaged over samples).
  All matrices are those of the data-set mean ``L(θ) = 1/N Σ_n ℓ_n(θ)``: Hessian ∇²L, GGN
  1/N Σ J_nᵀ ∇²_f ℓ_n J_n, empirical Fisher 1/N Σ g_n g_nᵀ with g_n = ∇ℓ_n, true Fisher
  1/N Σ E_{ŷ~p(·|x_n)} ∇ℓ(x_n, ŷ)∇ℓ(x_n, ŷ)ᵀ (cross-entropy only).
- ``data`` is a pair ``(x, y)`` (cut into batches of ``batch_size``; ``None``: one batch) or a list
  of ``(x, y)`` batches. In BN ``train`` mode each batch normalizes with its own statistics, so the
  batches define the function being measured; in ``eval`` mode batching changes nothing.
- Parameter selection (``params``): see :func:`select_params`. Per-layer variants return
  ``{layer name: value}``, a layer being the module owning the parameters.

Modules, by job:
- :mod:`lossland.metrics.params` — parameter selection, flatten/unflatten, batching (shared with
  sharpness and landscape, hence one level up); :mod:`lossland.metrics.bn` — the BN-mode context;
- :mod:`.operators` — curvature operators bound to parameters and BN mode (Hessian-vector paths);
- :mod:`.spectra` — Lanczos, top eigenvalues, Hutchinson trace, spectral density, per-layer;
- :mod:`.fisher` — per-sample gradients, empirical / true Fisher and GGN traces;
- :mod:`.hessian` — the :class:`Curvature` object (PyHessian's shape);
- :mod:`lossland.metrics.registry` — ``METRICS`` and ``compute_curvature``; the modules above and
  :mod:`lossland.metrics.sharpness` register their metrics into it.
"""

from lossland.metrics import sharpness as _sharpness  # noqa: F401  (registers its metrics on import)
from lossland.metrics.bn import bn_mode
from lossland.metrics.curvature.fisher import (
    empirical_fisher_trace,
    ggn_trace,
    per_sample_grad_sq_norms,
    per_sample_grads,
    true_fisher_trace,
)
from lossland.metrics.curvature.hessian import Curvature
from lossland.metrics.curvature.operators import HVPS, KINDS, CurvatureOperator, curvature_operator
from lossland.metrics.curvature.spectra import (
    hessian_density,
    hessian_top_eigs,
    hessian_trace,
    hutchinson,
    lanczos,
    per_layer,
    spectral_density,
    top_eigenvalues,
)
from lossland.metrics.params import (
    Batches,
    as_batches,
    flatten,
    functional_loss,
    layer_groups,
    select_params,
    unflatten,
)
from lossland.metrics.registry import METRICS, compute_curvature, register_metric

__all__ = ["select_params", "layer_groups", "bn_mode", "as_batches", "curvature_operator", "CurvatureOperator",
           "KINDS", "HVPS", "lanczos", "top_eigenvalues", "hutchinson", "spectral_density",
           "hessian_top_eigs", "hessian_trace", "hessian_density", "per_layer", "per_sample_grads",
           "per_sample_grad_sq_norms", "empirical_fisher_trace", "true_fisher_trace", "ggn_trace",
           "compute_curvature", "METRICS", "register_metric", "flatten", "unflatten", "functional_loss",
           "Batches", "Curvature"]
