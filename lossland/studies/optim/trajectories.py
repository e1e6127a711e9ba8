"""Optimizer trajectories on a 2-d function, with the training loop's own optimizers.

An optimizer is named by its ``conf/optimizer/<name>.yaml`` option (the file ``lossland train`` uses, a
``_partial_`` ``torch.optim`` / lossland config whose ``lr`` interpolates ``${lr}``); ``gd`` is an alias of
``sgd`` (on a deterministic function, SGD is gradient descent). The lab builds that config with the lab's
``lr`` and per-optimizer overrides, and runs it on a single 2-element parameter tensor θ = (x1, x2):

    for step in 0..steps−1:  record θ, f(θ);  zero_grad;  f(θ).backward();  optimizer.step()

A run stops early (``stopped`` = the step) when θ or f(θ) becomes non-finite or θ leaves the ``bound`` box
(|x_i| > bound), e.g. running down an unbounded saddle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from lossland.config import CONFIG_DIR
from lossland.errors import LosslandError
from lossland.studies.optim.functions import Function2d, check_point

__all__ = ["ALIASES", "optimizer_names", "optimizer_config", "make_optimizer", "Trajectory", "run_trajectory"]

ALIASES = {"gd": "sgd"}
LABELS = {"gd": "GD", "sgd": "SGD", "noisy_gd": "noisy GD", "momentum": "momentum", "nesterov": "Nesterov",
          "adagrad": "Adagrad", "rmsprop": "RMSProp", "adam": "Adam"}
LAB_EXCLUDED = ("sphere_sgd",)  # needs a scale-invariant network, not a point in the plane


def optimizer_names() -> list[str]:
    """Optimizers the lab accepts: every ``conf/optimizer`` option that works on plain tensors, and ``gd``."""
    names = sorted(p.stem for p in (CONFIG_DIR / "optimizer").glob("*.yaml") if p.stem not in LAB_EXCLUDED)
    return sorted({*names, *ALIASES})


def optimizer_config(name: str, lr: float, overrides: dict | DictConfig | None = None) -> DictConfig:
    """The resolved ``conf/optimizer/<name>.yaml`` node with ``${lr}`` = ``lr`` and ``overrides`` merged."""
    valid = optimizer_names()
    if name not in valid:
        raise LosslandError(f"unknown optimizer {name!r}; valid lab optimizers: {', '.join(valid)}")
    node = OmegaConf.load(CONFIG_DIR / "optimizer" / f"{ALIASES.get(name, name)}.yaml")
    root = OmegaConf.create({"lr": float(lr), "elr": float(lr), "opt": node})
    if overrides:
        unknown = sorted(set(overrides) - set(node.keys()) - {"lr"})
        if unknown:
            raise LosslandError(f"optimizer {name}: unknown argument(s) {', '.join(unknown)}; "
                                f"valid: {', '.join(k for k in node.keys() if not k.startswith('_'))}")
        root.opt = OmegaConf.merge(root.opt, overrides)
    OmegaConf.resolve(root)
    cfg = root.opt
    if not (math.isfinite(float(cfg.lr)) and float(cfg.lr) > 0):
        raise LosslandError(f"optimizer {name}: lr={cfg.lr} is not valid: lr must be a positive number")
    if "sigma" in cfg and not (math.isfinite(float(cfg.sigma)) and float(cfg.sigma) >= 0):
        raise LosslandError(f"optimizer {name}: sigma={cfg.sigma} is not valid: sigma must be a finite number ≥ 0")
    return cfg


def make_optimizer(name: str, params, lr: float, overrides=None, generator: torch.Generator | None = None):
    """Build the named optimizer on ``params`` exactly as the training loop would (hydra ``instantiate`` of the
    same config); optimizers taking a ``generator`` (noisy GD) get ``generator``."""
    from lossland.build import instantiate_node as build

    cfg = optimizer_config(name, lr, overrides)
    factory = build(cfg, f"optimizer {name}")
    if generator is not None and "generator" in _init_args(cfg):
        return factory(params, generator=generator)
    return factory(params)


def _init_args(cfg) -> set[str]:
    import inspect

    from hydra.utils import get_class

    return set(inspect.signature(get_class(cfg._target_).__init__).parameters)


@dataclass
class Trajectory:
    name: str
    points: np.ndarray        # (n, 2): θ at steps 0..n−1 (the last is where the run stopped)
    losses: np.ndarray        # (n,)
    stopped: int | None = None  # step at which the run left the box / became non-finite (None: ran to the end)
    config: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)


def run_trajectory(fn: Function2d, name: str, start, steps: int, lr: float, overrides=None, seed: int = 0,
                   bound: float = 1e3, dtype=torch.float64) -> Trajectory:
    """Run optimizer ``name`` on ``fn`` from ``start`` for ``steps`` steps (module docstring)."""
    start = check_point(start, "start")
    if steps < 0:
        raise LosslandError(f"steps must be ≥ 0, got {steps}")
    theta = torch.nn.Parameter(torch.tensor(start, dtype=dtype))
    gen = torch.Generator().manual_seed(int(seed))
    opt = make_optimizer(name, [theta], lr, overrides, generator=gen)
    points, losses, stopped = [], [], None
    for step in range(steps + 1):
        opt.zero_grad()
        value = fn(theta)
        points.append(theta.detach().clone().numpy())
        losses.append(float(value.detach()))
        if not (torch.isfinite(value) and torch.isfinite(theta).all() and float(theta.detach().abs().max()) <= bound):
            stopped = step
            break
        if step == steps:
            break
        value.backward()
        opt.step()
    cfg = OmegaConf.to_container(optimizer_config(name, lr, overrides))
    return Trajectory(name, np.stack(points), np.asarray(losses), stopped, cfg)
