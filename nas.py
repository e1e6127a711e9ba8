"""``python nas.py [-m] prior=weak,annealed,strong key=value ...`` = ``lossland nas ...`` (docs/nas.md): the same
Hydra app, kept as a script for Hydra's sake."""

from lossland.commands.nas import NAS

if __name__ == "__main__":
    NAS.main()
