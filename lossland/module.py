"""The LightningModule: model + loss + regularizer + optimizer factory, with torchmetrics per stage.

It holds the science of one optimizer step (:meth:`LandscapeModule.training_step`) and of evaluation; the
loop around it (data order, scheduled work, checkpoints, divergence, signals) is
:class:`lossland.loop.Trainer`, which drives it through Lightning Fabric's public API. A study whose step
computes something else (the NAS search, connect's curves) subclasses it and overrides ``training_step``
(and ``is_bad``), rather than writing a loop.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection

from lossland.metrics.gradients import trainable
from lossland.regularizers import NoRegularizer

# The stages whose means the loop accumulates batch by batch (validation and test are full passes,
# :meth:`lossland.loop.Trainer.evaluate`). Checkpoints before this carried empty ``val_`` / ``test_`` means too;
# loading ignores them.
STAGES = ("train",)
FORMER_MEANS = ("stage_metrics.val_.", "stage_metrics.test_.")


class LandscapeModule(L.LightningModule):
    """Trains ``model`` on ``loss`` + ``regularizer(model)`` with the optimizer built by ``optimizer(params)``.

    ``schedule`` maps the step (updates already taken) to the optimizer's rate: ``elr`` for optimizers that
    have one (sphere SGD), else ``lr`` of every parameter group. The stage metrics' running sums are
    persistent, so a checkpoint taken mid-epoch resumes the epoch's means exactly.
    """

    def __init__(self, model: nn.Module, loss: nn.Module, optimizer: Callable, regularizer: nn.Module | None = None,
                 schedule: Callable[[int], float] | None = None, max_loss: float | None = None):
        super().__init__()
        if isinstance(regularizer, NoRegularizer):
            regularizer = None  # skip a no-op term in the hot loop
        self.model, self.loss, self.regularizer = model, loss, regularizer
        self.optimizer_factory, self.schedule, self.max_loss = optimizer, schedule, max_loss
        self.stage_metrics = nn.ModuleDict(
            {f"{s}_": MetricCollection({"loss": MeanMetric(), "error": MeanMetric()}) for s in STAGES})
        for metric in self.stage_metrics.values():
            metric.persistent(True)

    def forward(self, x):
        return self.model(x)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module``'s, ignoring the empty validation / test means of older checkpoints
        (:data:`FORMER_MEANS`)."""
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(FORMER_MEANS)}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def configure_optimizers(self):
        return self.optimizer_factory(trainable(self.model))

    def set_rate(self, optimizer, step: int) -> None:
        if self.schedule is None:
            return
        value = float(self.schedule(step))
        if hasattr(optimizer, "elr"):
            optimizer.elr = value
        else:
            for group in optimizer.param_groups:
                group["lr"] = value

    def rates(self, optimizer, step: int = 0) -> dict[str, float | None]:
        """The rate(s) the optimizer uses at ``step``: sphere optimizers ``{"elr", "lr" = elr·ρ0²}`` (the mean
        over spheres outside whole mode), the others ``{"elr": None, "lr"}`` — for ``summary.json``."""
        value = float(self.schedule(step)) if self.schedule is not None else None
        if hasattr(optimizer, "elr"):
            elr = optimizer.elr if value is None else value
            rho = optimizer.rho0
            rho2 = rho ** 2 if isinstance(rho, float) else float(torch.cat(
                [r.reshape(-1).double().cpu() for r in rho]).square().mean())
            return {"elr": elr, "lr": elr * rho2}
        return {"elr": None, "lr": optimizer.param_groups[0]["lr"] if value is None else value}

    def training_step(self, batch, step: int):
        """Forward pass of one SGD step: ``(objective, data loss, outputs)``; the objective adds the
        regularizer. The caller checks the loss, then calls backward and the optimizer."""
        x, y = batch
        out = self.model(x)
        loss = self.loss(out, y)
        total = loss + self.regularizer(self.model) if self.regularizer is not None else loss
        return total, loss, out

    def is_bad(self, loss: torch.Tensor) -> bool:
        """Non-finite, or above ``max_loss``: the run diverged (one device sync)."""
        value = float(loss.detach())
        return not (value == value and abs(value) != float("inf")) or (
            self.max_loss is not None and value > self.max_loss)

    def update_stage(self, stage: str, losses: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor):
        """Accumulate per-example losses and errors (fractions) of ``stage``; returns the batch means."""
        wrong = (self.loss.predict(outputs) != targets).float()
        metrics = self.stage_metrics[f"{stage}_"]
        metrics["loss"].update(losses)
        metrics["error"].update(wrong)
        return float(losses.mean()), float(wrong.mean())


def stage_means(modules: list[LandscapeModule], stage: str) -> list[dict[str, float]]:
    """Each module's ``{"<stage>/loss", "<stage>/error"}`` accumulated since the last call ({} if nothing was),
    every one of them cleared: one division and one clearing for all (the loop's members at an epoch's end)."""
    if not modules:
        return []
    groups = [list(m.stage_metrics[f"{stage}_"].items()) for m in modules]
    metrics = [m for group in groups for _, m in group]
    sums, weights = torch.stack([m.mean_value for m in metrics]), torch.stack([m.weight for m in metrics])
    means, counts = (sums / weights).tolist(), weights.tolist()
    clear_means(metrics)
    out, k = [], 0
    for group in groups:
        names = [name for name, _ in group]
        # the loss's sum of weights, which a resumed run restores (its update count: not)
        out.append({f"{stage}/{n}": means[k + j] for j, n in enumerate(names)} if counts[k + names.index("loss")] > 0
                   else {})
        k += len(group)
    return out


# A run's stage means are ``MeanMetric`` states (persistent: checkpoints carry them). At every block and epoch's end
# of every member of a grid the torchmetrics calls (and ``nn.Module.__setattr__`` for each state) cost more than
# the arithmetic; these two do to the states, in place, what ``update`` and ``reset`` do.
def add_to_means(updates: list[tuple[MeanMetric, float, int]]) -> None:
    """What ``MeanMetric.update`` of ``count`` values summing to ``total`` adds to each metric's states, for every
    ``(metric, total, count)`` at once (one ``torch._foreach_add_``)."""
    torch._foreach_add_([t for m, _, _ in updates for t in (m.mean_value, m.weight)],
                        [v for _, total, count in updates for v in (total, count)])
    for m, _, _ in updates:
        state = vars(m)  # plain attributes: nn.Module's and torchmetrics' __setattr__ only pass them through
        state["_update_count"] += 1
        state["_computed"] = None


def clear_means(metrics: list[MeanMetric]) -> None:
    """``MeanMetric.reset`` of each metric: its states back to zero, in place (one ``torch._foreach_zero_``)."""
    torch._foreach_zero_([t for m in metrics for t in (m.mean_value, m.weight)])
    for m in metrics:
        vars(m).update(_update_count=0, _computed=None, _forward_cache=None)
