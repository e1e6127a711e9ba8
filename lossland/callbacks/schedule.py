"""Step schedules for expensive work (metrics, checkpoints) and the base class of callbacks that use them.

Steps count optimizer updates: step 0 is the initial point, step s the weights after s updates. The data
loader ends its blocks of SGD steps at every due step, so a callback runs at exactly the step it asked for.
"""

from __future__ import annotations

import bisect

import lightning as L
import numpy as np


class StepSchedule:
    """Due at step 0 (if ``at_start``), every ``every_n_steps`` steps, or at ``num_points`` log-spaced steps
    in [1, total_steps] (``log_spaced=True``), and at the last step."""

    def __init__(self, every_n_steps: int | None = None, log_spaced: bool = False, num_points: int = 50,
                 at_start: bool = True):
        if every_n_steps is not None and every_n_steps <= 0:
            raise ValueError(f"every_n_steps must be positive, got {every_n_steps}")
        self.every_n_steps, self.log_spaced = every_n_steps, log_spaced
        self.num_points, self.at_start = num_points, at_start
        self.total_steps: int | None = None
        self._steps: list[int] = []

    def bind(self, total_steps: int) -> StepSchedule:
        """Fix the run length (needed for log-spaced steps and the final point)."""
        self.total_steps = total_steps
        steps = {total_steps}
        if self.at_start:
            steps.add(0)
        if self.log_spaced and total_steps > 0:
            steps.update(int(s) for s in np.unique(np.round(np.geomspace(1, total_steps, self.num_points))))
        elif self.every_n_steps:
            steps.update(range(self.every_n_steps, total_steps + 1, self.every_n_steps))
        self._steps = sorted(steps)
        return self

    @property
    def steps(self) -> list[int]:
        return list(self._steps)

    def is_due(self, step: int) -> bool:
        i = bisect.bisect_left(self._steps, step)
        return i < len(self._steps) and self._steps[i] == step

    def next_due(self, step: int) -> int | None:
        """The first due step strictly after ``step``."""
        i = bisect.bisect_right(self._steps, step)
        return self._steps[i] if i < len(self._steps) else None


class ScheduledCallback(L.Callback):
    """Runs :meth:`run_at` at step 0 (``on_train_start``) and at every due step after an update."""

    def __init__(self, schedule: StepSchedule):
        self.schedule = schedule
        self.last_step: int | None = None

    def run_at(self, trainer: L.Trainer, module: L.LightningModule, step: int) -> None:
        raise NotImplementedError

    def _maybe_run(self, trainer, module):
        step = trainer.global_step
        if self.schedule.is_due(step) and step != self.last_step and not getattr(module, "diverged_at", None):
            self.last_step = step
            self.run_at(trainer, module, step)

    def on_train_start(self, trainer, module):
        self._maybe_run(trainer, module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self._maybe_run(trainer, module)
