"""Phase metrics on a step schedule, on a fixed evaluation subset (study S)."""

from __future__ import annotations

import torch

from lossland.callbacks.schedule import DueSteps, PeriodicCallback
from lossland.metrics.gradients import evaluate, gradient_stats, trainable


def flat(params) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


class PhaseMetrics(PeriodicCallback):
    """At each due step, on ``eval_batches`` fixed training mini-batches and ``test_examples`` test examples:

    - ``train_loss``, ``train_error``, ``gm``, ``grad_mean_norm``: one forward+backward per mini-batch with
      BN in train mode (batch statistics; running statistics are left untouched),
    - ``test_error``, ``test_loss``: BN in eval mode (running statistics),
    - ``cos_prev``: cosine between the trainable weights now and at the previous evaluation point,
      ``cos_init``: cosine to the initial weights, ``weight_norm``: their norm.

    ``extra`` is an optional callable ``(module, train_batches) -> dict`` for further metrics
    (e.g. curvature), logged alongside.
    """

    def __init__(self, plan: DueSteps, eval_batches: int = 8, test_examples: int = 1000,
                 gm: bool = True, test: bool = True, cosines: bool = True, extra=None):
        super().__init__(plan)
        self.eval_batches, self.test_examples = eval_batches, test_examples
        self.gm, self.test, self.cosines, self.extra = gm, test, cosines, extra
        self.last: dict[str, float] = {}
        self._prev = self._init = None
        self._given: dict[str, float] | None = None

    def on_train_start(self, trainer, module):
        dm = trainer.datamodule
        self.train_batches = dm.eval_batches(self.eval_batches)
        self.test_batches = dm.eval_loader("test", limit=self.test_examples)

    def measure(self, module) -> dict[str, float]:
        model, loss = module.model, module.loss
        out: dict[str, float] = {}
        if self.gm:
            g = gradient_stats(model, loss, self.train_batches, mode="train")
            out.update(gm=g["gm"], grad_mean_norm=g["grad_mean_norm"], train_loss=g["loss"], train_error=g["error"])
        if self.test:
            out.update({f"test_{k}": v for k, v in evaluate(model, loss, self.test_batches, "eval").items()})
        if self.cosines:
            w = flat(trainable(model))
            if self._init is None:
                self._init = w
            out["cos_init"] = cosine(w, self._init)
            if self._prev is not None:
                out["cos_prev"] = cosine(w, self._prev)
            out["weight_norm"] = float(w.norm())
            self._prev = w
        if self.extra is not None:
            out.update(self.extra(module, self.train_batches))
        return out

    def give(self, values: dict[str, float]) -> None:
        """What :meth:`measure` would return at the coming due step, already measured (a vectorized grid
        measures all its members at once: :mod:`lossland.sweep.vectorized.measure`)."""
        self._given = values

    def run_at(self, trainer, module, step):
        self.last = self._given if self._given is not None else self.measure(module)
        self._given = None
        trainer.log(self.last, step)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "last": self.last, "prev": self._prev, "init": self._init}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.last, self._prev, self._init = state["last"], state["prev"], state["init"]
