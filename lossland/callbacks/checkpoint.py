"""Checkpoints at scheduled steps, written atomically as ``checkpoints/step=<step>.ckpt``."""

from __future__ import annotations

from pathlib import Path

from lossland.callbacks.schedule import ScheduledCallback, StepSchedule
from lossland.records import atomic_torch_save


def save_checkpoint(trainer, path: str | Path) -> Path:
    """Lightning's full checkpoint (weights, optimizer, data-order RNG), saved atomically."""
    ckpt = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
    return atomic_torch_save(ckpt, path)


class StepCheckpoint(ScheduledCallback):
    def __init__(self, directory: str | Path, schedule: StepSchedule):
        super().__init__(schedule)
        self.directory = Path(directory)

    def run_at(self, trainer, module, step):
        save_checkpoint(trainer, self.directory / f"step={step:08d}.ckpt")
