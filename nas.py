"""lossland architecture search: ``python nas.py [-m] prior=weak,annealed,strong data=... key=value ...``
(see docs/nas.md)."""

from lossland.entry import launch

if __name__ == "__main__":
    from lossland.studies.nas.app import run_search, validate

    launch("nas", run_search, validate=validate)
