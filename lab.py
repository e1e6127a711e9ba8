"""lossland optimizer lab: ``python lab.py [-m] function=... task=... key=value ...`` (see docs/optim_lab.md)."""

from lossland.entry import launch

if __name__ == "__main__":
    from lossland.studies.optim.app import run_lab

    launch("lab", run_lab)
