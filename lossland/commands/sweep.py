"""Commands over any sweep (README.md): ``lossland collect DIR`` (one row per run) and ``lossland report DIR``
(runs grouped by the keys the sweep varied, seeds aggregated)."""

from __future__ import annotations

from lossland.commands.base import Tool, arg


def collect(args):
    from lossland.sweep.collect import collect, print_table

    rows, path = collect(args.sweep_dir)
    print_table(rows, title=str(path))


def report(args):
    from lossland.sweep.report import write_report

    extra = {} if args.converged_max_errors is None else {"converged_max_errors": args.converged_max_errors}
    result = write_report(args.sweep_dir, **extra)
    for f in result.files:
        print(f)
    for line in result.settings:
        print(line)
    for phase, (lo, hi) in sorted(result.boundaries.items()):
        print(f"phase {phase}: {result.x} {lo:.3g} .. {hi:.3g}")
    if not args.no_wandb:
        from lossland.sweep.wandb_report import log_report

        log_report(args.sweep_dir, result.files)


COMMANDS = (
    Tool("collect", "write <dir>/results.csv, one row per run (overrides, status, final metrics)", collect,
         (arg("sweep_dir", help="a sweep (multirun) directory, or any directory holding runs"),)),
    Tool("report", "write <dir>/report/: runs grouped by the keys the sweep varied, seeds aggregated (phase counts, "
         "mean ± std); phase diagram, final metrics, curves, cosines, index.html", report,
         (arg("sweep_dir", help="a sweep directory"),
          arg("--no-wandb", action="store_true", help="do not log the figures to the sweep's W&B group"),
          arg("--converged-max-errors", type=int, default=None, metavar="N",
              help="phase 1-converged: at most N misclassified training examples at the end (default 0, the "
                   "seed's zero training errors; docs/sphere.md#phases)"))),
)
