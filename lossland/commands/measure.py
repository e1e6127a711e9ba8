"""Measurements of one recorded run (docs/curvature.md): ``lossland curvature RUN`` (``conf/curvature.yaml``)
and ``lossland slice RUN`` (``conf/slice.yaml``)."""

from __future__ import annotations

from lossland.commands.base import App


def curvature_job(cfg) -> None:
    from lossland.measure.curvature import curvature_command

    curvature_command(cfg)


def slice_job(cfg) -> None:
    from lossland.measure.slice import slice_of_run

    for f in slice_of_run(cfg)["files"]:
        print(f)


COMMANDS = (
    App("curvature", "curvature", "curvature at every checkpoint of a run, appended to its metrics.csv and "
        "curvature.json", curvature_job, positional=("run",)),
    App("slice", "slice", "loss-landscape slice around a run's weights: <run>/slice.json and slice.png", slice_job,
        positional=("run",)),
)
