"""Learning-rate (elr or lr) schedules: small callables ``schedule(step) -> value``.

Convention: ``step`` is the number of optimizer steps already taken (0 for the first step), so the
value returned for ``step`` is the one used by that step. Schedules are pure functions of the step,
so a resumed run (or a fine-tuning run that keeps counting steps) gets the same values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Schedule", "Constant", "StepChange", "PiecewiseLinear", "Cosine", "Shifted"]


class Schedule:
    """Base class: ``__call__(step) -> value``."""

    def __call__(self, step: int) -> float:  # pragma: no cover - interface
        raise NotImplementedError


def _positive(name: str, v: float) -> None:
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive number, got {v!r}")


@dataclass(frozen=True)
class Constant(Schedule):
    """The same ``value`` at every step."""

    value: float

    def __post_init__(self):
        _positive("Constant.value", self.value)

    def __call__(self, step: int) -> float:
        return float(self.value)


@dataclass(frozen=True)
class StepChange(Schedule):
    """``value`` before ``at_step``, ``value·factor`` from ``at_step`` on (factor < 1 drops, > 1 raises)."""

    value: float
    at_step: int
    factor: float

    def __post_init__(self):
        _positive("StepChange.value", self.value)
        _positive("StepChange.factor", self.factor)
        if self.at_step < 0:
            raise ValueError(f"StepChange.at_step must be ≥ 0, got {self.at_step}")

    def __call__(self, step: int) -> float:
        return float(self.value * self.factor) if step >= self.at_step else float(self.value)


@dataclass(frozen=True)
class PiecewiseLinear(Schedule):
    """``start`` before ``transition_start``, a linear ramp over ``transition_length`` steps, then ``end``.

    During the transition, at ``u = (step − transition_start) / transition_length`` ∈ [0, 1), the value is
    ``start + u·(end − start)``, or with ``log=True`` the log-linear ``start·(end/start)**u`` (a straight
    line on a log axis, e.g. elr from 1e-2 to 1e-5). ``transition_length = 0`` is an instant switch.
    """

    start: float
    end: float
    transition_start: int
    transition_length: int
    log: bool = False

    def __post_init__(self):
        _positive("PiecewiseLinear.start", self.start)
        _positive("PiecewiseLinear.end", self.end)
        if self.transition_start < 0 or self.transition_length < 0:
            raise ValueError("PiecewiseLinear: transition_start and transition_length must be ≥ 0")

    def __call__(self, step: int) -> float:
        if step < self.transition_start:
            return float(self.start)
        if step >= self.transition_start + self.transition_length:
            return float(self.end)
        u = (step - self.transition_start) / self.transition_length
        if self.log:
            return float(self.start * (self.end / self.start) ** u)
        return float(self.start + u * (self.end - self.start))


@dataclass(frozen=True)
class Cosine(Schedule):
    """Cosine annealing from ``start`` at step 0 to ``end`` at step ``steps`` (and after it):
    ``end + (start − end)·(1 + cos(π·step/steps))/2``. ``steps=None``: the whole run, bound by
    :func:`lossland.build.build_schedule` (unbound, it stays at ``start``)."""

    start: float
    end: float = 0.0
    steps: int | None = None

    def __post_init__(self):
        _positive("Cosine.start", self.start)
        if not (math.isfinite(self.end) and 0 <= self.end):
            raise ValueError(f"Cosine.end must be a number ≥ 0, got {self.end!r}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"Cosine.steps must be ≥ 1 (or null: the whole run), got {self.steps}")

    def __call__(self, step: int) -> float:
        u = 0.0 if self.steps is None else min(step, self.steps) / self.steps
        return float(self.end + 0.5 * (self.start - self.end) * (1 + math.cos(math.pi * u)))


@dataclass(frozen=True)
class Shifted(Schedule):
    """``inner`` counted from step ``offset``: a run that continues another (``init_state=continue``) takes the
    rates that run would have taken next, ``inner(step + offset)``."""

    inner: Schedule
    offset: int

    def __post_init__(self):
        if self.offset < 0:
            raise ValueError(f"Shifted.offset must be ≥ 0, got {self.offset}")

    def __call__(self, step: int) -> float:
        return self.inner(step + self.offset)
