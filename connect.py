"""lossland mode-connectivity entry point: ``python connect.py [-m] a=RUN_A b=RUN_B align=... path=...``
(see docs/connect.md)."""

from lossland.entry import launch

if __name__ == "__main__":
    from lossland.studies.connect.run import run_connect

    launch("connect", run_connect)
