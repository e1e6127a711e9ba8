"""lossland training entry point: ``python train.py [-m] key=value ...`` (see README.md)."""

from lossland.entry import launch


def job(cfg):
    """One training job. lossland.train (torch, Lightning) is imported here, in the process that trains: a
    sweep's launching process on another launcher (joblib, submitit, Ray) never needs it."""
    from lossland.train import run

    return run(cfg)


def after_single(summary, cfg):
    from lossland.train import print_summary

    print_summary(summary, cfg)


if __name__ == "__main__":
    from lossland.schema import validate

    launch("train", job, validate=validate, after_single=after_single)
