"""``python lab.py [-m] function=... task=... key=value ...`` = ``lossland lab ...`` (docs/optim_lab.md): the same
Hydra app, kept as a script for Hydra's sake."""

from lossland.commands.lab import LAB

if __name__ == "__main__":
    LAB.main()
