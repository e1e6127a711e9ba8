"""The update rules of ``torch.optim.SGD`` (momentum, dampening, Nesterov, weight decay), ``torch.optim.Adam`` and
``torch.optim.AdamW`` applied to stacked parameters: tensors whose first dimension is the member of a vectorized
grid (``grid=vectorized``, :mod:`lossland.sweep.vectorized`). Every hyperparameter may differ between members
(per-member tensors of the coefficients torch computes in Python from its floats), so a member's step is its own
optimizer's to float round-off (``tests/test_stacked_optim.py`` checks each rule against ``torch.optim``).

:meth:`StackedRule.export` writes one member's state (momentum buffer; Adam's step and moments) into that
member's own optimizer in torch's format, so its checkpoints resume through the ordinary path.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lossland.errors import LosslandError

__all__ = ["StackedRule", "StackedSGD", "StackedAdam", "stacked_rule"]


def _b(v: Tensor, like: Tensor) -> Tensor:
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim))


def _group(opt: torch.optim.Optimizer) -> dict:
    if len(opt.param_groups) != 1:
        raise LosslandError("grid=vectorized: optimizers with several parameter groups do not stack")
    return opt.param_groups[0]


class StackedRule:
    """One optimizer rule over stacked parameters; ``hyper``: each member's hyperparameters (floats)."""

    keys: tuple[str, ...] = ()

    def __init__(self, optimizers: list[torch.optim.Optimizer], params: dict[str, Tensor]):
        groups = [_group(o) for o in optimizers]
        for flag in ("maximize", "amsgrad", "differentiable", "capturable"):
            if any(g.get(flag) for g in groups):
                raise LosslandError(f"grid=vectorized: {type(optimizers[0]).__name__}({flag}=True) does not stack")
        self.hyper = {k: [float(g[k]) for g in groups] for k in self.keys}
        self.dtype = next(iter(params.values())).dtype
        self.state: dict[str, dict[str, Tensor]] = {n: {} for n in params}
        self.steps = 0

    def coef(self, values) -> Tensor:
        return torch.tensor(values, dtype=self.dtype)

    def keep(self, rows: Tensor, members: list[int]) -> None:
        """Only the stacked ``rows`` remain (members ``members``, in that order)."""
        kept = rows.tolist()  # rows of the stack as it was (after an earlier compaction: not member indices)
        self.hyper = {k: [v[r] for r in kept] for k, v in self.hyper.items()}
        for st in self.state.values():
            for k in st:
                st[k] = st[k][rows]

    def snapshot(self, rows: Tensor) -> dict:
        return {n: {k: v[rows].clone() for k, v in st.items()} for n, st in self.state.items()}

    def restore(self, rows: Tensor, saved: dict) -> None:
        for n, st in saved.items():
            for k, v in st.items():
                self.state[n][k][rows] = v

    def step(self, params: dict[str, Tensor], grads: dict[str, Tensor], lr: list[float]) -> None:
        raise NotImplementedError

    def export(self, row: int, optimizer: torch.optim.Optimizer, params: list[Tensor], names: list[str]) -> None:
        raise NotImplementedError


class StackedSGD(StackedRule):
    """``torch.optim.SGD``: d = g + wd·θ; b ← μ·b + (1 − τ)·d (b = d at the first step); d ← d + μ·b (Nesterov)
    or b; θ ← θ − lr·d."""

    keys = ("momentum", "dampening", "weight_decay")

    def __init__(self, optimizers, params):
        super().__init__(optimizers, params)
        self.nesterov = bool(_group(optimizers[0]).get("nesterov"))
        self._rates: tuple[list[float], list[Tensor]] | None = None
        if any(bool(_group(o).get("nesterov")) != self.nesterov for o in optimizers):
            raise LosslandError("grid=vectorized: the members differ in nesterov")

    @property
    def plain(self) -> bool:
        """θ ← θ − lr·g: no weight decay, no momentum (``Stack`` may then fold the step into its backward pass)."""
        return not any(self.hyper["weight_decay"]) and not any(self.hyper["momentum"])

    @torch.no_grad()
    def step(self, params, grads, lr):
        h = self.hyper
        if self.plain:  # θ ← θ − lr·g, one call per step
            if self._rates is None or self._rates[0] != lr:  # the members' rates, shaped per parameter
                rate = self.coef(lr)
                self._rates = (list(lr), [_b(rate, p) for p in params.values()])
            ps = list(params.values())
            torch._foreach_sub_(ps, torch._foreach_mul([grads[n] for n in params], self._rates[1]))
            self.steps += 1
            return
        wd = self.coef(h["weight_decay"]) if any(h["weight_decay"]) else None
        mom = self.coef(h["momentum"]) if any(h["momentum"]) else None
        damp = self.coef([1 - d for d in h["dampening"]])
        rate = self.coef(lr)
        for n, p in params.items():
            d = grads[n]
            if wd is not None:
                d = d + p * _b(wd, p)
            if mom is not None:
                st = self.state[n]
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = d.clone()
                else:
                    st["momentum_buffer"].mul_(_b(mom, p)).add_(d * _b(damp, p))
                buf = st["momentum_buffer"]
                d = d + buf * _b(mom, p) if self.nesterov else buf
            p.sub_(d * _b(rate, p))
        self.steps += 1

    def export(self, row, optimizer, params, names):
        if not self.steps or not any(self.hyper["momentum"]):
            return
        for n, p in zip(names, params):
            optimizer.state[p]["momentum_buffer"] = self.state[n]["momentum_buffer"][row].clone()


class StackedAdam(StackedRule):
    """``torch.optim.Adam`` (``decoupled``: ``AdamW``): m ← lerp(m, g, 1 − β1); v ← β2·v + (1 − β2)·g²;
    θ ← θ − lr/(1 − β1ᵗ)·m/(√v/√(1 − β2ᵗ) + ε); weight decay added to g (Adam) or θ ← θ(1 − lr·wd) (AdamW)."""

    keys = ("beta1", "beta2", "eps", "weight_decay")

    def __init__(self, optimizers, params, decoupled: bool = False):
        for o in optimizers:
            g = _group(o)
            g["beta1"], g["beta2"] = g["betas"]
        super().__init__(optimizers, params)
        for o in optimizers:
            del _group(o)["beta1"], _group(o)["beta2"]
        self.decoupled = decoupled
        for n, p in params.items():
            self.state[n] = {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}

    @torch.no_grad()
    def step(self, params, grads, lr):
        h, t = self.hyper, self.steps + 1
        b1, b2 = h["beta1"], h["beta2"]
        wd = h["weight_decay"]
        one_b1, b2t, one_b2 = self.coef([1 - b for b in b1]), self.coef(b2), self.coef([1 - b for b in b2])
        step_size = self.coef([r / (1 - b ** t) for r, b in zip(lr, b1)])
        bc2_sqrt = self.coef([(1 - b ** t) ** 0.5 for b in b2])
        eps = self.coef(h["eps"])
        decay = self.coef([1 - r * w for r, w in zip(lr, wd)]) if self.decoupled and any(wd) else None
        wdt = self.coef(wd) if not self.decoupled and any(wd) else None
        for n, p in params.items():
            g, st = grads[n], self.state[n]
            if decay is not None:
                p.mul_(_b(decay, p))
            if wdt is not None:
                g = g + p * _b(wdt, p)
            st["exp_avg"].lerp_(g, _b(one_b1, p).expand_as(p))
            st["exp_avg_sq"].mul_(_b(b2t, p)).add_(g * g * _b(one_b2, p))
            denom = (st["exp_avg_sq"].sqrt() / _b(bc2_sqrt, p)).add_(_b(eps, p))
            p.sub_(st["exp_avg"] / denom * _b(step_size, p))
        self.steps = t

    def export(self, row, optimizer, params, names):
        if not self.steps:
            return
        for n, p in zip(names, params):
            optimizer.state[p] = {"step": torch.tensor(float(self.steps), dtype=torch.float32),
                                  "exp_avg": self.state[n]["exp_avg"][row].clone(),
                                  "exp_avg_sq": self.state[n]["exp_avg_sq"][row].clone()}


def stacked_rule(optimizers: list[torch.optim.Optimizer], params: dict[str, Tensor]) -> StackedRule:
    """The stacked rule of the members' optimizers (all of one class); refuses, in one line, any other."""
    kinds = {type(o) for o in optimizers}
    if len(kinds) != 1:
        names = sorted(k.__name__ for k in kinds)
        raise LosslandError(f"grid=vectorized: the members use different optimizers ({names})")
    kind = kinds.pop()
    if kind is torch.optim.SGD:
        return StackedSGD(optimizers, params)
    if kind in (torch.optim.Adam, torch.optim.AdamW):
        decoupled = bool(_group(optimizers[0]).get("decoupled_weight_decay", kind is torch.optim.AdamW))
        return StackedAdam(optimizers, params, decoupled=decoupled)
    raise LosslandError(f"grid=vectorized: optimizer {kind.__module__}.{kind.__name__} does not stack "
                        "(sgd, momentum, nesterov, adam, adamw, sphere_sgd)")
