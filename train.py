"""``python train.py [-m] key=value ...`` = ``lossland train [-m] key=value ...`` (README.md): the same Hydra app,
kept as a script for Hydra's sake (sweeps, launchers and recipes call it)."""

from lossland.commands.train import TRAIN

if __name__ == "__main__":
    TRAIN.main()
