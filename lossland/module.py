"""The LightningModule: model + loss + regularizer + optimizer, with torchmetrics per stage."""

from __future__ import annotations

import time
from collections.abc import Callable

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection

from lossland.metrics.gradients import trainable
from lossland.regularizers import NoRegularizer

STAGES = ("train", "val", "test")


class LandscapeModule(L.LightningModule):
    """Trains ``model`` on ``loss`` + ``regularizer(model)`` with the optimizer built by ``optimizer(params)``.

    Manual optimization: each training batch is a *block* of consecutive mini-batches (see
    :class:`lossland.data.BlockLoader`) and ``training_step`` takes one optimizer step per mini-batch, so the
    per-step framework overhead of Lightning is paid once per block. ``trainer.global_step`` still counts
    optimizer steps. A non-finite loss (or one above ``max_loss``) stops training and sets ``diverged_at``
    to the first bad step; the check costs one device sync per block.

    ``schedule``, if given, maps the step to the optimizer's rate: ``elr`` for optimizers that have one
    (sphere SGD), else ``lr`` of every parameter group.
    """

    def __init__(self, model: nn.Module, loss: nn.Module, optimizer: Callable, regularizer: nn.Module | None = None,
                 schedule: Callable[[int], float] | None = None, max_loss: float | None = None):
        super().__init__()
        if isinstance(regularizer, NoRegularizer):
            regularizer = None  # skip a no-op term in the hot loop
        self.model, self.loss, self.regularizer = model, loss, regularizer
        self.optimizer_factory, self.schedule, self.max_loss = optimizer, schedule, max_loss
        self.automatic_optimization = False
        self.stage_metrics = nn.ModuleDict(
            {f"{s}_": MetricCollection({"loss": MeanMetric(), "error": MeanMetric()}) for s in STAGES})
        self.diverged_at: int | None = None
        self._last_show: dict[str, float] = {}

    def forward(self, x):
        return self.model(x)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        """Blocks are slices of tensors that already live on the training device: nothing to move (Lightning's
        generic transfer walks every tensor of the block, a measurable cost per step for small models)."""
        first = batch[0][0] if isinstance(batch, list) and batch else None
        if isinstance(first, torch.Tensor) and first.device == device:
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def configure_optimizers(self):
        return self.optimizer_factory(trainable(self.model))

    # -------------------------------------------------------------- records
    def record(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Send scalars to every logger at an explicit optimizer step (Lightning's own step counter counts
        blocks, not updates, under manual optimization)."""
        if self._trainer is None:
            return
        step = self.trainer.global_step if step is None else step
        metrics = {"epoch": self.trainer.current_epoch, **metrics}
        for logger in self.trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def _set_rate(self, opt, step: int) -> None:
        value = float(self.schedule(step))
        if hasattr(opt, "elr"):
            opt.elr = value
        else:
            for group in opt.param_groups:
                group["lr"] = value

    # ------------------------------------------------------------- training
    def _fast_path(self) -> bool:
        """Plain fp32 on one device: call backward and the optimizer directly, skipping the per-step
        precision/strategy hooks (the step counter is still advanced through Lightning's own hooks)."""
        from lightning.pytorch.plugins.precision import Precision
        from lightning.pytorch.strategies import SingleDeviceStrategy

        trainer = self.trainer
        return type(trainer.precision_plugin) is Precision and isinstance(trainer.strategy, SingleDeviceStrategy)

    def training_step(self, block, batch_idx):
        opt = self.optimizers()
        fast = self._fast_path()
        step0 = self.trainer.global_step
        losses, outputs = [], []
        for i, (x, y) in enumerate(block):
            if self.schedule is not None:
                self._set_rate(opt.optimizer, step0 + i)
            out = self.model(x)
            loss = self.loss(out, y)
            total = loss + self.regularizer(self.model) if self.regularizer is not None else loss
            opt.optimizer.zero_grad(set_to_none=True)
            if fast:
                total.backward()
                opt._on_before_step()
                opt.optimizer.step()
                opt._on_after_step()
            else:
                self.manual_backward(total)
                opt.step()
            losses.append(loss.detach())
            outputs.append(out.detach())
        losses = torch.stack(losses)
        bad = ~torch.isfinite(losses)
        if self.max_loss is not None:
            bad |= losses > self.max_loss
        if bad.any():
            self.diverged_at = step0 + int(bad.nonzero()[0, 0]) + 1
            self.trainer.should_stop = True
            return None
        targets = torch.cat([y for _, y in block])
        wrong = (self.loss.predict(torch.cat(outputs)) != targets).float()
        self.stage_metrics["train_"]["loss"].update(losses)
        self.stage_metrics["train_"]["error"].update(wrong)
        row = {"train/batch_loss": float(losses.mean()), "train/batch_error": float(wrong.mean())}
        stats = getattr(opt.optimizer, "last_stats", None)
        if stats is not None:
            row.update(stats())
        self.record(row)
        self._show("loss", row["train/batch_loss"])
        return None

    def _show(self, name: str, value: float) -> None:
        """Progress-bar display, at most once a second: Lightning's ``self.log`` costs ~10 ms a call on a CPU,
        more than a hundred small-model SGD steps, and the records do not need it."""
        if not self.trainer.progress_bar_callback:
            return
        now = time.monotonic()
        if now - self._last_show.get(name, 0.0) >= 1.0:
            self._last_show[name] = now
            self.log(name, value, prog_bar=True, logger=False)

    def _epoch_end(self, stage: str) -> None:
        metrics = self.stage_metrics[f"{stage}_"]
        if metrics["loss"].update_count:
            values = {f"{stage}/{k}": float(v) for k, v in metrics.compute().items()}
            self.record(values)
            self._show(f"{stage}_error", values[f"{stage}/error"])
        metrics.reset()

    def on_train_epoch_end(self):
        self._epoch_end("train")

    # ----------------------------------------------------------- evaluation
    def _eval_step(self, stage: str, batch):
        x, y = batch
        out = self.model(x)
        per = self.loss.per_sample(out, y)
        self.stage_metrics[f"{stage}_"]["loss"].update(per)
        self.stage_metrics[f"{stage}_"]["error"].update((self.loss.predict(out) != y).float())

    def validation_step(self, batch, batch_idx):
        self._eval_step("val", batch)

    def on_validation_epoch_end(self):
        self._epoch_end("val")

    def test_step(self, batch, batch_idx):
        self._eval_step("test", batch)

    def on_test_epoch_end(self):
        self._epoch_end("test")
