"""lossland training entry point: ``python train.py [-m] key=value ...`` (see README.md)."""

from lossland.entry import launch

if __name__ == "__main__":
    from lossland.schema import validate
    from lossland.train import print_summary, run

    launch("train", run, validate=validate, after_single=print_summary)
