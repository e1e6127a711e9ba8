"""Commands over any sweep (README.md): ``lossland collect DIR`` (one row per run), ``lossland report DIR`` (runs
grouped by the keys the sweep varied, seeds aggregated; logged to the sweep's W&B group) and ``lossland sync DIR``
(the sweep's offline W&B runs uploaded)."""

from __future__ import annotations

import sys

from lossland.commands.base import Tool, arg


def collect(args):
    from lossland.sweep.collect import collect, print_table

    rows, path = collect(args.sweep_dir)
    print_table(rows, title=str(path))


def report(args):
    from lossland.sweep.report import write_report
    from lossland.sweep.wandb_report import parse_settings

    settings = parse_settings(args.wandb)  # refused before anything is written
    extra = {} if args.converged_max_errors is None else {"converged_max_errors": args.converged_max_errors}
    result = write_report(args.sweep_dir, **extra)
    for f in result.files:
        print(f)
    for line in result.settings:
        print(line)
    for phase, (lo, hi) in sorted(result.boundaries.items()):
        print(f"phase {phase}: {result.x} {lo:.3g} .. {hi:.3g}")
    if result.left_out:  # running, interrupted, failed or unreadable: named, never silently dropped
        from lossland.untrusted import printable

        print(f"left out of the report: {len(result.left_out)} run(s) not finished or unreadable:", file=sys.stderr)
        for line in result.left_out:
            print(f"  {printable(line, keep_newlines=False)}", file=sys.stderr)
    if not args.no_wandb:
        from lossland.sweep.collect import collect
        from lossland.sweep.wandb_report import log_report

        _, table = collect(args.sweep_dir)
        print(table)
        config = {"sweep_dir": str(args.sweep_dir), "x": result.x,
                  "boundaries": {k: list(v) for k, v in result.boundaries.items()}, **extra}
        run_id = log_report(args.sweep_dir, result.files, results=table, config=config, **settings)
        if run_id is not None:
            print(f"W&B: figures and results table in report run {run_id} of the sweep's group (offline: "
                  f"`lossland sync {args.sweep_dir}` uploads it with the jobs' runs)")


def sync(args):
    from lossland.sweep.sync import sync

    sync(args.sweep_dir, project=args.project, entity=args.entity, timeout=args.timeout, dry_run=args.dry_run)


COMMANDS = (
    Tool("collect", "write <dir>/results.csv, one row per run (overrides, status, final metrics)", collect,
         (arg("sweep_dir", help="a sweep (multirun) directory, or any directory holding runs"),)),
    Tool("report", "write <dir>/report/: runs grouped by the keys the sweep varied, seeds aggregated (phase counts, "
         "mean ± std); phase diagram, final metrics, curves, cosines, index.html; figures and results.csv logged "
         "to the sweep's W&B group", report,
         (arg("sweep_dir", help="a sweep directory"),
          arg("wandb", nargs="*", metavar="logger.wandb.KEY=VALUE",
              help="where the report run goes, as for training: logger.wandb.project=..., logger.wandb.entity=..., "
                   "logger.wandb.offline=true|false, logger.wandb.quiet=true|false (default: WANDB_PROJECT or "
                   "lossland, WANDB_ENTITY, WANDB_MODE or offline; quiet)"),
          arg("--no-wandb", action="store_true", help="do not log the report to the sweep's W&B group"),
          arg("--converged-max-errors", type=int, default=None, metavar="N",
              help="phase 1-converged: at most N misclassified training examples at the end (default 0, the "
                   "seed's zero training errors; docs/sphere.md#phases)"))),
    Tool("sync", "upload every offline W&B run under <dir> (each job's, the report's) with wandb sync; says what it "
         "synced; without network says so and exits non-zero, the offline runs kept for a later sync", sync,
         (arg("sweep_dir", help="a sweep directory (or any directory holding offline W&B runs)"),
          arg("--project", default=None, help="upload into this W&B project (default: the runs' own)"),
          arg("--entity", default=None, help="upload under this W&B entity (default: the runs' own, else yours)"),
          arg("--timeout", type=float, default=600.0, metavar="S",
              help="stop a sync that has not finished after S seconds (default 600)"),
          arg("--dry-run", action="store_true", help="list the runs it would sync, sync nothing"))),
)
