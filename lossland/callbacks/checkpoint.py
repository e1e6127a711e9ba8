"""Checkpoints at scheduled steps: ``checkpoints/step=<step>.ckpt`` (written atomically by the trainer)."""

from __future__ import annotations

from pathlib import Path

from lossland.callbacks.schedule import DueSteps, PeriodicCallback


class StepCheckpoint(PeriodicCallback):
    def __init__(self, directory: str | Path, plan: DueSteps):
        super().__init__(plan)
        self.directory = Path(directory)

    def run_at(self, trainer, module, step):
        trainer.save_checkpoint(self.directory / f"step={step:08d}.ckpt")
