"""Synthetic binary data sets of study E (Liang et al. 2018), generated from ``data_seed``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lossland.data.base import TensorDataModule


def _sizes(module: TensorDataModule, per_class: int | None) -> int:
    if per_class is not None:
        return per_class
    total = (module.train_size or 1000) + module.val_size + (module.test_size or 1000)
    return -(-total // 2)


class Spheres(TensorDataModule):
    """Points drawn uniformly on concentric spheres in ``dim`` dimensions; class i has radius ``radii[i]``."""

    name = "spheres"

    def __init__(self, dim: int = 100, radii: Sequence[float] = (1.0, 1.5), per_class: int | None = None,
                 data_seed: int = 0, **kw):
        kw.setdefault("normalize", "none")
        super().__init__(**kw)
        self.dim, self.radii, self.per_class, self.data_seed = dim, list(radii), per_class, data_seed

    def load(self):
        rng = np.random.default_rng(self.data_seed)
        n = _sizes(self, self.per_class)
        xs, ys = [], []
        for label, r in enumerate(self.radii):
            z = rng.standard_normal((n, self.dim))
            xs.append(r * z / np.linalg.norm(z, axis=1, keepdims=True))
            ys.append(np.full(n, label))
        return {"train": (np.concatenate(xs), np.concatenate(ys))}


class Gaussians(TensorDataModule):
    """Isotropic Gaussian clouds in ``dim`` dimensions with standard deviation ``std``; class i is centred
    at ``means[i]`` times the all-ones vector (study E: means 0 vs 0.1, 0.5 or 1.0)."""

    name = "gaussians"

    def __init__(self, dim: int = 100, means: Sequence[float] = (0.0, 0.5), std: float = 1.0,
                 per_class: int | None = None, data_seed: int = 0, **kw):
        kw.setdefault("normalize", "none")
        super().__init__(**kw)
        self.dim, self.means, self.std, self.per_class, self.data_seed = dim, list(means), std, per_class, data_seed

    def load(self):
        rng = np.random.default_rng(self.data_seed)
        n = _sizes(self, self.per_class)
        xs = [m + self.std * rng.standard_normal((n, self.dim)) for m in self.means]
        ys = [np.full(n, i) for i in range(len(self.means))]
        return {"train": (np.concatenate(xs), np.concatenate(ys))}
