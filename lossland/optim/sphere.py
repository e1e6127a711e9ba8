"""SGD on the sphere for scale-invariant (SI) parameters (Kodryan et al., 2022; docs/studies.md#s).

Conventions
-----------
- A *sphere* is a set of parameters whose joint norm is held fixed:

  * ``mode="whole"``: one sphere made of all parameters of the optimizer (the paper's default);
  * ``mode="per_layer"``: each parameter tensor is a sphere;
  * ``mode="per_filter"``: each slice along dim 0 (output filter / row) of a tensor with ``ndim ≥ 2`` is
    a sphere; 0-d and 1-d tensors are one sphere each.

- ρ0 (radius of each sphere) is the norm at construction. It is saved in :meth:`state_dict` and
  restored by :meth:`load_state_dict`, so a resumed run keeps its original ρ0. When fine-tuning from
  another run's *weights* without its optimizer state, building a fresh optimizer on those weights
  gives the same ρ0, since that run kept its weights on the sphere of radius ρ0.
- Learning rate per sphere: ``lr_i = elr · ρ0_i²`` (effective learning rate ``elr``).
- Step: plain SGD (no momentum, no weight decay) ``θ ← θ − lr·d`` followed by the retraction
  ``θ ← ρ0 · θ / ‖θ‖`` on each sphere. The direction ``d`` is

  * ``"gradient"``: the gradient (ordinary sphere SGD);
  * ``"ascent"``: minus the gradient (gradient-ascent baseline);
  * ``"random"``: a Gaussian direction drawn from ``generator``, projected on the tangent space of its
    sphere (radial component removed) and rescaled to the norm of the gradient on that sphere
    (random-walk baseline).

  Parameters whose ``.grad`` is ``None`` get no update but still take part in the retraction.
- Logged statistics (:meth:`last_stats`, Python floats, computed lazily so ``step()`` never syncs):
  ``elr``; ``lr`` (= elr·ρ0² in whole mode, mean of the per-sphere lrs otherwise); ``rho0`` (whole-vector
  norm of the ρ0's); ``weight_norm`` (whole-vector norm of the parameters now, i.e. after retraction);
  ``grad_norm`` (whole-vector norm of the gradient at the last step); ``retraction_error`` = 1 − r with
  r = arctan(x)/x and x = lr·‖d‖/ρ0 per sphere — the relative error of the retraction against the
  exact geodesic step — reported as the *maximum* over spheres, and ``retraction_error_mean`` (mean
  over spheres; equal to the former in whole mode).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

__all__ = ["SphereSGD", "retraction_error"]

MODES = ("whole", "per_layer", "per_filter")
DIRECTIONS = ("gradient", "random", "ascent")


def retraction_error(x: torch.Tensor | float) -> torch.Tensor:
    """1 − arctan(x)/x for x ≥ 0, with the series x²/3 − x⁴/5 below 1e-3 (exact to round-off)."""
    x = torch.as_tensor(x, dtype=torch.float64)
    small = x < 1e-3
    safe = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, x * x / 3 - x ** 4 / 5, 1 - torch.atan(safe) / safe)


def _sphere_norms(t: torch.Tensor, mode: str) -> torch.Tensor:
    """Norms of the spheres of one tensor: shape () except per_filter with ndim ≥ 2: (t.shape[0],)."""
    if mode == "per_filter" and t.ndim >= 2:
        return torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1)
    return torch.linalg.vector_norm(t)


def _bcast(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sphere vector of one tensor so that it broadcasts against the tensor."""
    return v.reshape(v.shape + (1,) * (t.ndim - v.ndim)) if v.ndim else v


class SphereSGD(torch.optim.Optimizer):
    """Sphere SGD with effective learning rate ``elr`` (see the module docstring for conventions).

    Args:
        params: the scale-invariant parameters (iterable of tensors or of param-group dicts; the mode,
            direction and elr are global to the optimizer).
        elr: effective learning rate (> 0); settable later through :attr:`elr` (schedules).
        mode: ``"whole"`` | ``"per_layer"`` | ``"per_filter"``.
        direction: ``"gradient"`` | ``"random"`` | ``"ascent"``.
        generator: ``torch.Generator`` for ``direction="random"`` (on the parameters' device); the
            global RNG when ``None``. Its state is saved in :meth:`state_dict`.
    """

    def __init__(self, params: Iterable, elr: float, mode: str = "whole", direction: str = "gradient",
                 generator: torch.Generator | None = None):
        if mode not in MODES:
            raise ValueError(f"SphereSGD: unknown mode {mode!r}; valid: {', '.join(MODES)}")
        if direction not in DIRECTIONS:
            raise ValueError(f"SphereSGD: unknown direction {direction!r}; valid: {', '.join(DIRECTIONS)}")
        _check_elr(elr)
        super().__init__(params, dict(elr=float(elr)))
        self.mode = mode
        self.direction = direction
        self.generator = generator
        self._params = [p for g in self.param_groups for p in g["params"]]
        self._index = {id(p): i for i, p in enumerate(self._params)}
        if not self._params:
            raise ValueError("SphereSGD: no parameters given")
        with torch.no_grad():
            if mode == "whole":
                rho = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(self._params)))
                for p in self._params:
                    self.state[p]["rho0"] = rho.clone()
            else:
                for p in self._params:
                    self.state[p]["rho0"] = _sphere_norms(p.detach(), mode)
        self._refresh()
        self._last: dict[str, torch.Tensor] | None = None

    # ----------------------------------------------------------------- state
    def _refresh(self) -> None:
        """Cache ρ0 as Python floats / broadcastable tensors (no syncs in step)."""
        rhos = [self.state[p]["rho0"].detach() for p in self._params]
        if any(bool((r <= 0).any()) for r in rhos):
            raise ValueError("SphereSGD: a sphere has zero norm (ρ0 = 0); initialize the weights first")
        if self.mode == "whole":
            self._rho_whole = float(rhos[0])
        elif self.mode == "per_layer":
            self._rho_list = [float(r) for r in rhos]
        else:
            self._rho_b = [_bcast(r.to(p.dtype), p) for r, p in zip(rhos, self._params)]
            self._rho_all = torch.cat([r.reshape(-1).double().cpu() for r in rhos])

    def load_state_dict(self, state_dict: dict) -> None:
        gen_state = state_dict.get("generator_state")
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "generator_state"})
        if gen_state is not None and self.generator is not None:
            self.generator.set_state(gen_state)
        self._refresh()

    def state_dict(self) -> dict:
        sd = super().state_dict()
        if self.generator is not None:
            sd["generator_state"] = self.generator.get_state()
        return sd

    @property
    def elr(self) -> float:
        return self.param_groups[0]["elr"]

    @elr.setter
    def elr(self, value: float) -> None:
        _check_elr(value)
        for g in self.param_groups:
            g["elr"] = float(value)

    @property
    def rho0(self) -> float | list[torch.Tensor]:
        """ρ0: a float in whole mode, else the list of per-tensor ρ0 tensors (per-filter: vectors)."""
        if self.mode == "whole":
            return self._rho_whole
        return [self.state[p]["rho0"] for p in self._params]

    # ----------------------------------------------------------------- step
    def _direction(self, params: list[torch.Tensor], grads: list[torch.Tensor],
                   gnorms: list[torch.Tensor]) -> list[torch.Tensor]:
        """Gaussian directions in the tangent space, rescaled to the gradient norm of each sphere."""
        noise = [torch.randn(p.shape, generator=self.generator, device=p.device, dtype=p.dtype)
                 for p in params]
        if self.mode == "whole":
            pn2 = torch.stack([(p * p).sum() for p in params]).sum()
            dot = torch.stack([(p * z).sum() for p, z in zip(params, noise)]).sum()
            torch._foreach_add_(noise, torch._foreach_mul(params, -(dot / pn2)))
            nn_ = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(noise)))
            gn = torch.linalg.vector_norm(torch.stack(gnorms))
            torch._foreach_mul_(noise, gn / nn_)
            return noise
        out = []
        for p, z, g in zip(params, noise, grads):
            if self.mode == "per_filter" and p.ndim >= 2:
                pf, zf = p.reshape(p.shape[0], -1), z.reshape(z.shape[0], -1)
                zf = zf - pf * ((pf * zf).sum(1, keepdim=True) / (pf * pf).sum(1, keepdim=True))
                zf = zf * (_sphere_norms(g, "per_filter") / torch.linalg.vector_norm(zf, dim=1)).unsqueeze(1)
                out.append(zf.reshape(p.shape))
            else:
                z = z - p * ((p * z).sum() / (p * p).sum())
                out.append(z * (torch.linalg.vector_norm(g) / torch.linalg.vector_norm(z)))
        return out

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        elr = self.param_groups[0]["elr"]
        live = [p for p in self._params if p.grad is not None]
        grads = [p.grad for p in live]
        if live:
            gnorms = torch._foreach_norm(grads)
            if self.direction == "random":
                d = self._direction(live, grads, gnorms)
            else:
                d = grads
            sign = 1.0 if self.direction == "ascent" else -1.0
            if self.mode == "whole":
                torch._foreach_add_(live, d, alpha=sign * elr * self._rho_whole ** 2)
            elif self.mode == "per_layer":
                lrs = [sign * elr * self._rho_list[self._index[id(p)]] ** 2 for p in live]
                torch._foreach_add_(live, torch._foreach_mul(d, lrs))
            else:
                for p, di in zip(live, d):
                    r = self._rho_b[self._index[id(p)]]
                    p.add_(di * (r * r), alpha=sign * elr)
            self.record_step(elr, torch.stack(gnorms).square().sum().detach(), self._sphere_grad_norms(live, gnorms))
        self._retract()
        return loss

    def _sphere_grad_norms(self, live: list[torch.Tensor], gnorms: list[torch.Tensor]) -> torch.Tensor:
        """Per-sphere gradient norms, concatenated in parameter order (whole mode: one entry).

        The step direction has the gradient's norm on every sphere in all three directions.
        """
        if self.mode == "whole":
            return torch.linalg.vector_norm(torch.stack(gnorms)).reshape(1)
        full = dict(zip(map(id, live), gnorms))
        if self.mode == "per_filter":
            full = {id(p): _sphere_norms(p.grad, "per_filter") for p in live}
        return torch.cat([full[id(p)].reshape(-1) if id(p) in full else
                          torch.zeros(self.state[p]["rho0"].shape, device=p.device).reshape(-1)
                          for p in self._params])

    def _retract(self) -> None:
        ps = self._params
        if self.mode == "whole":
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(ps)))
            torch._foreach_mul_(ps, self._rho_whole / norm)
        elif self.mode == "per_layer":
            norms = torch._foreach_norm(ps)
            torch._foreach_mul_(ps, torch._foreach_mul(torch._foreach_reciprocal(norms), self._rho_list))
        else:
            for p, r in zip(ps, self._rho_b):
                p.mul_(r / _bcast(_sphere_norms(p, "per_filter"), p))

    # ----------------------------------------------------------------- stats
    def record_step(self, elr: float, grad_sq: torch.Tensor, dir_norms: torch.Tensor) -> None:
        """What :meth:`last_stats` reports of the last step: its elr, the squared gradient norm and the norms of
        the gradient directions per sphere (also set by a vectorized grid, which steps the member itself)."""
        self._last = {"elr": elr, "grad_sq": grad_sq, "dir_norms": dir_norms}

    def last_stats(self) -> dict[str, float]:
        """Statistics of the last step as Python floats (see the module docstring)."""
        elr = self.elr
        with torch.no_grad():
            wn = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(self._params))))
        if self.mode == "whole":
            rho = torch.tensor([self._rho_whole], dtype=torch.float64)
        elif self.mode == "per_layer":
            rho = torch.tensor(self._rho_list, dtype=torch.float64)
        else:
            rho = self._rho_all
        lr = elr * rho.square()
        stats = {"elr": elr, "lr": float(lr.mean()), "rho0": float(torch.linalg.vector_norm(rho)),
                 "weight_norm": wn, "grad_norm": math.nan, "retraction_error": math.nan,
                 "retraction_error_mean": math.nan}
        if self._last is not None:
            stats["grad_norm"] = math.sqrt(float(self._last["grad_sq"]))
            lr_used = self._last["elr"] * rho.square()  # elr may have been changed since the step
            err = retraction_error(lr_used * self._last["dir_norms"].detach().double().cpu() / rho)
            stats["retraction_error"] = float(err.max())
            stats["retraction_error_mean"] = float(err.mean())
        return stats


def _check_elr(elr: float) -> None:
    try:
        ok = not isinstance(elr, bool) and math.isfinite(float(elr)) and float(elr) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"SphereSGD: elr must be a positive number, got {elr!r}")
