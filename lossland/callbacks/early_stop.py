"""End a run once its phase can no longer change (``metrics.early_stop.phase=true``; docs/phase_boundary.md).

After every phase-metric point (:class:`lossland.callbacks.PhaseMetrics`, which runs before this callback at the
same step) the study's rule (``metrics.early_stop.rule``, a ``_target_``: the sphere study's
:func:`lossland.studies.sphere.phases.certain_phase`) is asked whether the phase is settled, given the points so
far and, on demand, the misclassified count of the whole training split (BN in eval mode, the count the phase
rule reads at the end). If it is, the run ends there: ``status: ok``, ``stopped_early: true`` and
``stop_reason`` in its ``summary.json``.
"""

from __future__ import annotations

from collections.abc import Callable

from lossland.callbacks.convergence import split_counts
from lossland.callbacks.phase_metrics import PhaseMetrics

__all__ = ["PhaseEarlyStop", "early_stop_callback"]


class PhaseEarlyStop:
    """Asks ``rule(history, num_classes, misclassified=..., points=...)`` -> ``(phase, why)`` or None at each
    of ``source``'s points from ``min_fraction`` of the run on (the last point: the run ends there anyway)."""

    def __init__(self, source: PhaseMetrics, rule: Callable, total_steps: int, points: int = 3,
                 converged: bool = True, min_fraction: float = 0.25):
        self.source, self.rule, self.total_steps = source, rule, int(total_steps)
        self.points, self.converged, self.min_fraction = int(points), bool(converged), float(min_fraction)
        self.history: list[dict] = []
        self.seen: int | None = None
        self.reason: str | None = None
        self.num_classes: int | None = None

    def on_train_start(self, trainer, module):
        self.num_classes = int(getattr(trainer.datamodule, "num_classes", 0) or 0) or None

    def on_step(self, trainer, module):
        step = trainer.global_step
        if self.source.last_step != step or self.seen == step or self.reason is not None:
            return
        self.seen = step
        self.history.append({"step": step, **self.source.last})
        if step >= self.total_steps or step < self.min_fraction * self.total_steps:
            return

        def misclassified() -> int:
            return split_counts(module.model, module.loss, trainer.datamodule.eval_loader("train"))[1]

        found = self.rule(self.history, self.num_classes, misclassified=misclassified if self.converged else None,
                          points=self.points)
        if found:
            phase, why = found
            self.reason = f"phase {phase} certain at step {step}: {why}"
            trainer.should_stop = True

    def summary(self) -> dict:
        return {"stop_reason": self.reason} if self.reason else {}

    def state_dict(self) -> dict:
        return {"history": self.history, "seen": self.seen, "reason": self.reason}

    def load_state_dict(self, state: dict) -> None:
        self.history, self.seen, self.reason = list(state["history"]), state.get("seen"), state.get("reason")


def early_stop_callback(cfg, source: PhaseMetrics | None, total_steps: int, build_rule: Callable):
    """The callback of the ``metrics.early_stop`` node; None when it is off or absent. ``build_rule(node)``
    instantiates the rule's ``_target_``."""
    if cfg is None or not cfg.get("phase", False):
        return None
    if source is None:
        from lossland.errors import LosslandError

        raise LosslandError("metrics.early_stop.phase=true needs the phase metrics (metrics.enabled=true)")
    return PhaseEarlyStop(source, build_rule(cfg.rule), total_steps, int(cfg.get("points", 3)),
                          bool(cfg.get("converged", True)), float(cfg.get("min_fraction", 0.25)))
