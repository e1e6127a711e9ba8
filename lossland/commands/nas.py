"""Study D's commands (docs/nas.md): ``lossland nas [-m] key=value ...`` (alias: ``python nas.py``), one
architecture search per job (``conf/nas.yaml``); ``lossland nas-report SWEEP``, the study's figures and findings
table from a sweep of them."""

from __future__ import annotations

from lossland.commands.base import App, Tool, arg


def job(cfg):
    from lossland.studies.nas.app import run_search

    return run_search(cfg)


def validate(cfg, recipe):
    from lossland.studies.nas.app import validate

    return validate(cfg, recipe)


def report(args):
    from lossland.studies.nas.report import report

    for f in report(args.sweep, args.out, args.prefix):
        print(f)


NAS = App("nas", "nas", "DARTS-style architecture search with a Dirichlet prior on the structure weights: a record "
          "per job plus genotype.yaml and robustness curves", job, validate=validate)
COMMANDS = (
    NAS,
    Tool("nas-report", "study D's figures (structure dynamics per prior, edge entropy, noise robustness) and "
         "findings table from a `lossland nas` sweep", report,
         (arg("sweep", help="a `lossland nas -m prior=...` sweep directory"),
          arg("--out", default=None, help="output folder (default: the sweep directory)"),
          arg("--prefix", default="", help="file name prefix, e.g. nas_"))),
)
