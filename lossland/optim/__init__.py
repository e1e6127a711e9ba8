"""Optimizers on the sphere for scale-invariant parameters, the SI check, and elr schedules."""

from lossland.optim.noisy import NoisyGD
from lossland.optim.scale_invariance import (
    NotScaleInvariantError,
    check_scale_invariance,
    require_scale_invariant,
)
from lossland.optim.schedules import Constant, Cosine, PiecewiseLinear, Schedule, Shifted, StepChange
from lossland.optim.sphere import SphereSGD, retraction_error

__all__ = ["NoisyGD", "SphereSGD", "retraction_error", "NotScaleInvariantError", "check_scale_invariance",
           "require_scale_invariant", "Schedule", "Constant", "StepChange", "PiecewiseLinear", "Cosine",
           "Shifted"]
