"""Scheduled work during training: phase metrics and checkpoints on a :class:`DueSteps` plan."""

from lossland.callbacks.checkpoint import StepCheckpoint
from lossland.callbacks.phase_metrics import PhaseMetrics
from lossland.callbacks.schedule import DueSteps, PeriodicCallback

__all__ = ["DueSteps", "PeriodicCallback", "PhaseMetrics", "StepCheckpoint"]
