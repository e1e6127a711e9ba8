"""Paths between two weight points A and B.

A path is a callable ``t -> state_dict`` with ``t_range = (t0, t1)``: A at ``t0`` and B at ``t1``. State dicts
hold every entry of the model's ``state_dict()``; floating entries (parameters and BN running statistics) are
moved along the path, integer entries (``num_batches_tracked``) are taken from A. BN statistics along a path
are placeholders: recompute them per point (:func:`lossland.studies.connect.bn.recompute_bn`) before evaluating.
Any path can follow any alignment: pass the already aligned B (:func:`lossland.studies.connect.align.align`).

A *path builder* is a callable ``builder(a, b, data=None) -> WeightPath`` (``data``: a :class:`PathData`
with the job's training data and settings, used by builders that need them): :func:`linear`, :func:`arc`,
:func:`weight_adjustment` and the trained curves :func:`lossland.studies.connect.curves.train_curve`, with their
options bound by ``functools.partial`` or by a ``conf/path`` config (``_target_`` + ``_partial_: true``).

- :func:`linear`: (1−t)A + tB, t ∈ [0, 1].
- :func:`arc`: μ + cos(πt/2)(A−μ) + sin(πt/2)(B−μ), t ∈ [0, 1], μ the mean neuron of both nets.
- :func:`weight_adjustment`: t ∈ [0, 2], the output layer refit by least squares (Anokhin & Yarotsky 2020).
- :func:`bezier`, :func:`polychain`: Garipov et al. (2018) curves with a (trainable) bend θ, t ∈ [0, 1].
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

from lossland.studies.connect.align import unit_layers
from lossland.studies.connect.bn import has_bn, recompute_bn

State = dict[str, torch.Tensor]


def as_state(x: nn.Module | Mapping[str, torch.Tensor]) -> State:
    """A detached copy of a model's state dict (or of a given state dict)."""
    sd = x.state_dict() if isinstance(x, nn.Module) else x
    return {k: v.detach().clone() for k, v in sd.items()}


def _combine(states: list[State], coefs: list[float | torch.Tensor]) -> State:
    """Σ_i coefs[i]·states[i] on floating entries; other entries from the first state."""
    out = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            out[k] = sum(c * s[k] for c, s in zip(coefs, states))
        else:
            out[k] = v
    return out


@dataclass
class PathData:
    """What a path builder may use besides the endpoints: the training split (``x``, ``y``), the loss, the BN
    batches of the job (None for nets without BN), the batch size, and for trained curves the job directory
    (``out``: ``metrics.csv``, ``checkpoints/curve.ckpt``; None: write nothing), device, seed and progress
    bar."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    loss: nn.Module | None = None
    bn_batches: list | None = None
    batch_size: int = 1024
    out: Path | None = None
    device: str = "cpu"
    seed: int = 0
    progress: bool = False


class WeightPath:
    """Base class of paths in weight space: ``path(t)`` is the state dict at ``t`` in ``t_range``; ``a``, ``b``
    the endpoint states. ``training``: what building the path did, for the record (trained curves:
    ``{"steps": n}``), else None."""

    t_range: tuple[float, float] = (0.0, 1.0)
    name = "path"
    training: dict | None = None

    def __init__(self, a, b):
        self.a, self.b = as_state(a), as_state(b)
        if self.a.keys() != self.b.keys():
            raise ValueError("A and B have different state-dict keys")

    def _check(self, t: float) -> float:
        t0, t1 = self.t_range
        if not (t0 - 1e-9 <= float(t) <= t1 + 1e-9):
            raise ValueError(f"t={t} outside the path's range [{t0}, {t1}]")
        return float(t)

    def __call__(self, t: float) -> State:
        raise NotImplementedError


class Linear(WeightPath):
    name = "linear"

    def __call__(self, t):
        t = self._check(t)
        return _combine([self.a, self.b], [1.0 - t, t])


class Arc(WeightPath):
    """Arc around the mean neuron (one hidden layer only): a neuron is its slice of every slot of the hidden
    layer (row of W1, b1 entry, column of W2, BN entries); μ is the mean neuron over the 2n neurons of A and
    B. Entries outside the hidden layer's slots (b2) move linearly."""

    name = "arc"

    def __init__(self, a, b, template: nn.Module | None = None):
        super().__init__(a, b)
        template = template if template is not None else (a if isinstance(a, nn.Module) else None)
        if template is None:
            raise ValueError("arc needs the model (pass modules, or template=...) to know its neurons")
        layers = unit_layers(template)
        if len(layers) != 1:
            raise ValueError(f"the arc path needs a net with one hidden layer; this one has {len(layers)}")
        self.mu: State = {}
        for s in layers[0].slots:
            va, vb = self.a[s.key], self.b[s.key]
            self.mu[s.key] = 0.5 * (va.mean(s.axis, keepdim=True) + vb.mean(s.axis, keepdim=True))

    def __call__(self, t):
        t = self._check(t)
        if t in (0.0, 1.0):
            return as_state(self.a if t == 0.0 else self.b)
        c, s = math.cos(math.pi * t / 2), math.sin(math.pi * t / 2)
        out = _combine([self.a, self.b], [1.0 - t, t])
        for k, mu in self.mu.items():
            out[k] = mu + c * (self.a[k] - mu) + s * (self.b[k] - mu)
        return out


def _last_linear(template: nn.Module) -> tuple[str, nn.Linear]:
    last = None
    for name, m in template.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            last = (name, m)
    if last is None or not isinstance(last[1], nn.Linear):
        raise ValueError("weight adjustment needs a net whose last weighted layer is nn.Linear")
    return last


def _features_and_outputs(template: nn.Module, state: State, x: torch.Tensor, layer_name: str,
                          bn_batches=None, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of layer ``layer_name`` and outputs of the net at weight point ``state`` on ``x`` (eval mode,
    no grad)."""
    model = template
    if bn_batches is not None and has_bn(template):
        model = copy.deepcopy(template)
        model.load_state_dict(state)
        recompute_bn(model, bn_batches)
        state = as_state(model)
    feats, outs = [], []
    layer = model.get_submodule(layer_name)
    hook = layer.register_forward_pre_hook(lambda mod, inp: feats.append(inp[0].detach()))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                outs.append(functional_call(model, state, (x[i:i + batch_size],)))
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(feats), torch.cat(outs)


def least_squares_output_layer(features: torch.Tensor, targets: torch.Tensor,
                               ridge: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) minimising ‖features·Wᵀ + b − targets‖²_F (+ ridge·‖W‖²), solved in float64 with
    ``torch.linalg.lstsq`` (minimum-norm solution when rank-deficient).

    Features that are zero on every example (dead ReLU units) get weight 0 and are left out of the solve.
    On CPU the solver is LAPACK ``gelsy`` (complete orthogonal factorization, several times faster than the
    SVD-based ``gelsd`` for wide layers); if its solution misses the normal equations (``gelsy``'s rank
    decision can fail on other rank deficiencies) it is recomputed with ``gelsd``."""
    h = torch.cat([features.double(), torch.ones(len(features), 1, dtype=torch.float64,
                                                 device=features.device)], 1)
    y = targets.double()
    keep = (h != 0).any(0)
    hk = h[:, keep]
    if ridge > 0:
        reg = torch.eye(hk.shape[1], dtype=torch.float64, device=h.device) * math.sqrt(ridge)
        reg[-1, -1] = 0.0  # the bias (ones column, always kept, last) is not penalised
        hk = torch.cat([hk, reg])
        y = torch.cat([y, torch.zeros(hk.shape[1], y.shape[1], dtype=torch.float64, device=y.device)])
    if h.device.type == "cpu":
        sol_k = torch.linalg.lstsq(hk, y, driver="gelsy").solution
        grad = hk.T @ (hk @ sol_k - y)
        if not bool(torch.isfinite(sol_k).all()) or \
                float(grad.norm()) > 1e-7 * float(hk.norm()) ** 2 * max(float(sol_k.norm()), 1.0):
            sol_k = torch.linalg.lstsq(hk, y, driver="gelsd").solution
    else:
        sol_k = torch.linalg.lstsq(hk, y).solution
    sol = torch.zeros(h.shape[1], y.shape[1], dtype=torch.float64, device=h.device)
    sol[keep] = sol_k
    w, b = sol[:-1].T, sol[-1]
    return w.to(targets.dtype), b.to(targets.dtype)


class WeightAdjustment(WeightPath):
    """Weight Adjustment (Anokhin & Yarotsky 2020), t ∈ [0, 2].

    Convention: on [0, 1] every layer but the output layer follows ``base`` (a path A→B over [0, 1]), and the
    output layer (W, b) is the least-squares fit making the net reproduce A's outputs (logits) on the fitting
    data ``x`` (hidden features in eval mode; BN recomputed on ``bn_batches`` first if given). On [1, 2] the
    hidden layers stay at B and the output layer moves linearly from the refit at t=1 to B's own output layer.
    At t=0 the refit equals A's output layer whenever A's features (with a ones column) have full column rank
    on ``x``; the path is exactly B at t=2. ``base`` is a path over [0, 1] or a path builder (e.g.
    :func:`linear`, :func:`arc`), called with the endpoints as models."""

    t_range = (0.0, 2.0)
    name = "weight_adjustment"

    def __init__(self, a, b, x: torch.Tensor, base: WeightPath | Callable[..., WeightPath] | None = None,
                 template: nn.Module | None = None,
                 ridge: float = 0.0, bn_batches=None, batch_size: int = 1024):
        super().__init__(a, b)
        template = template if template is not None else (a if isinstance(a, nn.Module) else None)
        if template is None:
            raise ValueError("weight adjustment needs the model (pass modules, or template=...)")
        self.template = copy.deepcopy(template)
        self.layer_name, layer = _last_linear(self.template)
        self.wkey, self.bkey = f"{self.layer_name}.weight", f"{self.layer_name}.bias"
        if layer.bias is None:
            raise ValueError("weight adjustment needs an output layer with a bias")
        if base is None:
            base = linear
        if not isinstance(base, WeightPath):
            base = base(self._as_model(self.a), self._as_model(self.b))
        if tuple(base.t_range) != (0.0, 1.0):
            raise ValueError("the base path of weight adjustment must run over t ∈ [0, 1]")
        self.base, self.x, self.ridge = base, x, ridge
        self.bn_batches, self.batch_size = bn_batches, batch_size
        _, self.targets = _features_and_outputs(self.template, self.a, x, self.layer_name, bn_batches,
                                                 batch_size)
        self._refit_at_1: tuple[torch.Tensor, torch.Tensor] | None = None

    def _as_model(self, state: State) -> nn.Module:
        model = copy.deepcopy(self.template)
        model.load_state_dict(state)
        return model

    def refit(self, state: State) -> tuple[torch.Tensor, torch.Tensor]:
        """Least-squares output layer for the hidden layers of ``state``, targets = A's outputs on ``x``."""
        feats, _ = _features_and_outputs(self.template, state, self.x, self.layer_name, self.bn_batches,
                                         self.batch_size)
        w, b = least_squares_output_layer(feats, self.targets, self.ridge)
        return w.to(state[self.wkey].dtype), b.to(state[self.bkey].dtype)

    def __call__(self, t):
        t = self._check(t)
        if t <= 1.0:
            state = self.base(t)
            state[self.wkey], state[self.bkey] = self.refit(state)
            if t == 1.0:
                self._refit_at_1 = (state[self.wkey], state[self.bkey])
            return state
        if t >= 2.0:
            return as_state(self.b)
        if self._refit_at_1 is None:
            self._refit_at_1 = self.refit(self.base(1.0))
        u = t - 1.0
        state = as_state(self.b)
        w1, b1 = self._refit_at_1
        state[self.wkey] = (1 - u) * w1 + u * self.b[self.wkey]
        state[self.bkey] = (1 - u) * b1 + u * self.b[self.bkey]
        return state


class Bezier(WeightPath):
    """Quadratic Bezier curve (1−t)²A + 2t(1−t)θ + t²B, t ∈ [0, 1]. ``theta`` (state dict, may require grad)
    defaults to the midpoint (A+B)/2; entries missing from ``theta`` are taken from the midpoint."""

    name = "bezier"

    def __init__(self, a, b, theta: Mapping[str, torch.Tensor] | None = None):
        super().__init__(a, b)
        mid = _combine([self.a, self.b], [0.5, 0.5])
        self.theta = {**mid, **(dict(theta) if theta is not None else {})}

    @staticmethod
    def coefs(t: float) -> list[float]:
        """Weights of (A, θ, B) at t."""
        return [(1 - t) ** 2, 2 * t * (1 - t), t ** 2]

    def __call__(self, t):
        t = self._check(t)
        return _combine([self.a, self.theta, self.b], self.coefs(t))


class PolyChain(Bezier):
    """Polygonal chain A → θ → B, the bend at t = 1/2, t ∈ [0, 1] (Garipov et al. 2018)."""

    name = "polychain"

    @staticmethod
    def coefs(t: float) -> list[float]:
        if t <= 0.5:
            return [1 - 2 * t, 2 * t, 0.0]
        return [0.0, 2 - 2 * t, 2 * t - 1]


def linear(a, b, data: PathData | None = None) -> Linear:
    """Straight line (1−t)A + tB, t ∈ [0, 1] (``data`` unused)."""
    return Linear(a, b)


def arc(a, b, data: PathData | None = None, template: nn.Module | None = None) -> Arc:
    """Arc μ + cos(πt/2)(A−μ) + sin(πt/2)(B−μ) around the mean neuron μ, t ∈ [0, 1] (one hidden layer;
    ``data`` unused)."""
    return Arc(a, b, template)


def weight_adjustment(a, b, x: torch.Tensor | None = None, base: WeightPath | Callable[..., WeightPath] = linear,
                      data: PathData | None = None, fit_examples: int | None = None, **kw) -> WeightAdjustment:
    """Weight Adjustment path over t ∈ [0, 2] following ``base`` (a path builder such as :func:`linear` or
    :func:`arc`, or a path). The fitting inputs are ``x``, else the first ``fit_examples`` (None: all) of
    ``data.x``; ``bn_batches`` and ``batch_size`` default to ``data``'s. Other keywords go to
    :class:`WeightAdjustment`."""
    if x is None:
        if data is None:
            raise ValueError("weight adjustment needs fitting inputs: pass x or data")
        x = data.x if fit_examples is None else data.x[: int(fit_examples)]
    if data is not None:
        kw.setdefault("bn_batches", data.bn_batches)
        kw.setdefault("batch_size", data.batch_size)
    return WeightAdjustment(a, b, x, base, **kw)


def bezier(a, b, theta=None, data: PathData | None = None) -> Bezier:
    """Quadratic Bezier curve with bend ``theta`` (default: the linear path's midpoint), t ∈ [0, 1]
    (untrained; ``data`` unused; trained: :func:`lossland.studies.connect.curves.train_curve`)."""
    return Bezier(a, b, theta)


def polychain(a, b, theta=None, data: PathData | None = None) -> PolyChain:
    """Two segments A→θ→B (default θ: the linear path's midpoint), t ∈ [0, 1] (untrained; ``data``
    unused)."""
    return PolyChain(a, b, theta)
