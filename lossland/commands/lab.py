"""Study O's commands (docs/optim_lab.md): ``lossland lab [-m] function=... task=...`` (alias: ``python lab.py``),
one task of the optimizer lab per job (``conf/lab.yaml``); ``lossland keskar SWEEP``, the small- vs large-batch
analysis of a finished ``sweeps/keskar_sb_lb.sh`` sweep (``conf/keskar.yaml``)."""

from __future__ import annotations

from lossland.commands.base import App


def lab_job(cfg):
    from lossland.studies.optim.app import run_lab

    return run_lab(cfg)


def keskar_job(cfg):
    from lossland.studies.optim.keskar import keskar_command

    return keskar_command(cfg)


LAB = App("lab", "lab", "the optimizer lab: optimizer paths on 2-d functions (task=trajectories), saddle-escape "
          "statistics of noisy GD (task=escape), vanishing gradients (task=vanishing)", lab_job)
COMMANDS = (
    LAB,
    App("keskar", "keskar", "small vs large batch (Keskar et al.) from a finished sweep: accuracy beside their F1 row, "
        "eps-sharpness, 1-d interpolation: <sweep>/keskar/", keskar_job, positional=("sweep",)),
)
