"""``python connect.py [-m] a=RUN_A b=RUN_B align=... path=...`` = ``lossland connect RUN_A RUN_B ...``
(docs/connect.md): the same Hydra app, kept as a script for Hydra's sake."""

from lossland.commands.connect import CONNECT

if __name__ == "__main__":
    CONNECT.main()
