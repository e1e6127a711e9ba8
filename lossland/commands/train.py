"""``lossland train [-m] key=value ...`` (alias: ``python train.py``): one training job or a sweep of them
(``conf/train.yaml``; README.md). Every job of a sweep is validated (:mod:`lossland.schema`) before the first
one trains."""

from __future__ import annotations

from lossland.commands.base import App


def job(cfg):
    """One training job. :mod:`lossland.train` (torch, Lightning) is imported here, in the process that trains:
    a sweep's launching process on another launcher (joblib, submitit, Ray) never needs it."""
    from lossland.train import run

    return run(cfg)


def validate(cfg, recipe):
    from lossland.schema import validate

    return validate(cfg, recipe)


def after_single(summary, cfg):
    from lossland.train import print_summary

    print_summary(summary, cfg)


TRAIN = App("train", "train", "train one job, or a sweep of them (-m)", job,
            validate=validate, after_single=after_single)
COMMANDS = (TRAIN,)
