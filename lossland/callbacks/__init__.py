"""Lightning callbacks: scheduled metrics and checkpoints."""

from lossland.callbacks.checkpoint import StepCheckpoint, save_checkpoint
from lossland.callbacks.phase_metrics import PhaseMetrics
from lossland.callbacks.schedule import ScheduledCallback, StepSchedule

__all__ = ["StepSchedule", "ScheduledCallback", "PhaseMetrics", "StepCheckpoint", "save_checkpoint"]
