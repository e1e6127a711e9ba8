"""Iterations to convergence (study E, docs/exp_neuron.md): the first step at which the whole training set is
classified with zero errors.

``metrics.convergence.enabled=true`` evaluates the full training split (one forward pass per evaluation
batch, BN in eval mode) every ``every_n_steps`` optimizer steps (null: at the end of every epoch) and at step 0,
logging the seed's units next to lossland's:

- ``train_misclassified``: number of misclassified training examples (a count, not a fraction);
- ``train_loss_sum``: the loss summed over the training split (not a mean).

The first step with zero misclassified examples is the run's ``converged_step`` (``converged_epoch`` =
step / steps per epoch), written into ``summary.json`` by :meth:`ZeroErrorStep.summary`.
``stop_at_zero_error=true`` ends the run there (status ``ok``; the speed protocol needs only the step).
"""

from __future__ import annotations

import torch

from lossland.callbacks.schedule import DueSteps, PeriodicCallback
from lossland.metrics.bn import bn_mode

__all__ = ["ZeroErrorStep", "convergence_callback", "split_counts"]


@torch.no_grad()
def split_counts(model, loss, batches) -> tuple[float, int, int]:
    """(loss summed over the examples, misclassified examples, examples) of ``batches``."""
    tot, wrong, n = 0.0, 0, 0
    with bn_mode(model, "eval"):
        for x, y in batches:
            out = model(x)
            tot += float(loss.per_sample(out, y).sum())
            wrong += int((loss.predict(out) != y).sum())
            n += len(y)
    return tot, wrong, n


class ZeroErrorStep(PeriodicCallback):
    """Logs ``train_misclassified`` and ``train_loss_sum`` at every due step; remembers the first step with zero
    misclassified training examples. ``every_n_steps=None``: every epoch (bound when training starts)."""

    def __init__(self, every_n_steps: int | None, total_steps: int, stop_at_zero_error: bool = False):
        self.every_n_steps, self.total_steps, self.stop = every_n_steps, int(total_steps), bool(stop_at_zero_error)
        super().__init__(DueSteps(every_n_steps or 1).bind(self.total_steps))
        self.converged_step: int | None = None
        self.steps_per_epoch = 1

    def on_train_start(self, trainer, module):
        self.steps_per_epoch = trainer.datamodule.steps_per_epoch
        if self.every_n_steps is None:  # every epoch: the plan needs the data's epoch length
            self.plan = DueSteps(self.steps_per_epoch).bind(self.total_steps)

    def run_at(self, trainer, module, step):
        dm = trainer.datamodule
        loss_sum, wrong, _ = split_counts(module.model, module.loss, dm.eval_loader("train"))
        trainer.log({"train_misclassified": wrong, "train_loss_sum": loss_sum}, step)
        if wrong == 0 and self.converged_step is None:
            self.converged_step = int(step)
            if self.stop:
                trainer.should_stop = True

    def summary(self) -> dict:
        step = self.converged_step
        return {"converged_step": step,
                "converged_epoch": None if step is None else round(step / max(1, self.steps_per_epoch), 4)}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "converged_step": self.converged_step}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.converged_step = state.get("converged_step")


def convergence_callback(cfg, total_steps: int) -> ZeroErrorStep | None:
    """The callback of the ``metrics.convergence`` node; None when it is off or absent."""
    if cfg is None or not cfg.get("enabled", False):
        return None
    every = cfg.get("every_n_steps", None)
    return ZeroErrorStep(None if every is None else int(every), total_steps,
                         bool(cfg.get("stop_at_zero_error", False)))
