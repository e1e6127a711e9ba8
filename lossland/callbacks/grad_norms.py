"""Per-layer gradient norms (vanishing / exploding gradients), a metric any run can switch on:
``metrics.grad_norms.enabled=true`` logs ``grad_norm/<layer>`` at every ``metrics.grad_norms.every_n_steps``
optimizer steps (default 1: every step; step 0 = the initial weights).

``<layer>`` is the name of the module that owns the parameters (e.g. ``net.1`` for the first Linear of an
MLP, whose weight and bias gradients form one norm ‖(∇W, ∇b)‖). The norms are measured on one fixed training
mini-batch (the first of the data module's fixed evaluation batches, so the same examples at every step) with
a fresh forward and backward pass at the current weights: BN in train mode (batch statistics) with its
running statistics left untouched, dropout on with a fixed mask seed, and the training RNG streams not
consumed — switching the metric on does not change the training trajectory.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from lossland.callbacks.schedule import DueSteps, PeriodicCallback
from lossland.metrics.bn import bn_mode

__all__ = ["layer_grad_norms", "GradNorms", "grad_norm_callback"]


def layer_grad_norms(model: nn.Module, loss, batch: tuple[torch.Tensor, torch.Tensor], mode: str = "train",
                     seed: int = 0) -> OrderedDict[str, float]:
    """{owning module name: ‖gradient of the batch loss w.r.t. that module's trainable parameters‖}, in the
    model's parameter order. The model (weights, BN buffers, ``.grad``) and the global RNG are left as found."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    x, y = batch
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), bn_mode(model, mode, dropout=mode == "train"), torch.enable_grad():
        torch.manual_seed(seed)
        value = loss(model(x), y)
        grads = torch.autograd.grad(value, [p for _, p in named], allow_unused=True)
    sq: OrderedDict[str, float] = OrderedDict()
    for (name, _), g in zip(named, grads):
        layer = name.rpartition(".")[0] or name
        sq[layer] = sq.get(layer, 0.0) + (float(g.detach().pow(2).sum()) if g is not None else 0.0)
    return OrderedDict((k, v ** 0.5) for k, v in sq.items())


class GradNorms(PeriodicCallback):
    """Logs ``grad_norm/<layer>`` (:func:`layer_grad_norms`) at every due step of ``plan``."""

    def __init__(self, plan: DueSteps):
        super().__init__(plan)
        self.batch = None
        self.last: dict[str, float] = {}

    def on_train_start(self, trainer, module):
        self.batch = trainer.datamodule.eval_batches(1)[0]

    def run_at(self, trainer, module, step):
        norms = layer_grad_norms(module.model, module.loss, self.batch)
        self.last = {f"grad_norm/{k}": v for k, v in norms.items()}
        trainer.log(self.last, step)


def grad_norm_callback(cfg, total_steps: int) -> GradNorms | None:
    """The callback for the ``metrics.grad_norms`` config node (``enabled``, ``every_n_steps``, optional
    ``log_spaced``/``num_points``), bound to the run's length; None when it is off or absent."""
    if cfg is None or not cfg.get("enabled", False):
        return None
    plan = DueSteps(cfg.get("every_n_steps", 1), bool(cfg.get("log_spaced", False)), int(cfg.get("num_points", 50)))
    return GradNorms(plan.bind(int(total_steps)))
