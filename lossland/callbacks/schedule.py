"""When scheduled work is due (metrics, checkpoints): :class:`DueSteps`, and the base class of callbacks
that run on such a plan. (Rate schedules, ``step -> elr``, are :mod:`lossland.optim.schedules`.)

Steps count optimizer updates: step 0 is the initial point, step s the weights after s updates. The loop
(:class:`lossland.loop.Loop`) calls :meth:`PeriodicCallback.on_step` after every due step, so a
callback runs at exactly the step it asked for.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import numpy as np

from lossland.errors import LosslandError

MAX_DUE_POINTS = 10**6  # a plan is a list in memory (lossland.schema refuses longer ones up front)


class DueSteps:
    """The steps at which scheduled work is due: step 0 (if ``at_start``), every ``every_n_steps`` steps,
    or at ``num_points`` log-spaced steps in [1, total_steps] (``log_spaced=True``), the ``extra`` steps (e.g.
    epoch ends), and the last step."""

    def __init__(self, every_n_steps: int | None = None, log_spaced: bool = False, num_points: int = 50,
                 at_start: bool = True, extra: Iterable[int] = ()):
        if every_n_steps is not None and every_n_steps <= 0:
            raise ValueError(f"every_n_steps must be a positive number of steps, got {every_n_steps}")
        self.every_n_steps, self.log_spaced = every_n_steps, log_spaced
        self.num_points, self.at_start, self.extra = num_points, at_start, [int(s) for s in extra]
        self.total_steps: int | None = None
        self._steps: list[int] = []

    def bind(self, total_steps: int) -> DueSteps:
        """Fix the run length (needed for log-spaced steps and the final point)."""
        self.total_steps = total_steps
        if self.every_n_steps and not self.log_spaced and total_steps // self.every_n_steps > MAX_DUE_POINTS:
            raise LosslandError(f"every_n_steps={self.every_n_steps} over {total_steps} steps plans more than "
                                f"{MAX_DUE_POINTS:.0e} due steps: raise it or use log-spaced points")
        steps = {total_steps, *(s for s in self.extra if 0 <= s <= total_steps)}
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


class PeriodicCallback:
    """Runs :meth:`run_at` at every due step of its :class:`DueSteps` plan (step 0 included, at the start
    of training). Its hooks are called by the training loop (:class:`lossland.loop.Loop`)."""

    def __init__(self, plan: DueSteps):
        self.plan = plan
        self.last_step: int | None = None

    def run_at(self, trainer, module, step: int) -> None:
        raise NotImplementedError

    def on_step(self, trainer, module) -> None:
        step = trainer.global_step
        if self.plan.is_due(step) and step != self.last_step:
            self.last_step = step
            self.run_at(trainer, module, step)

    def state_dict(self) -> dict:
        return {"last_step": self.last_step}

    def load_state_dict(self, state: dict) -> None:
        self.last_step = state.get("last_step")
