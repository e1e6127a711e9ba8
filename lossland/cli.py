"""``lossland <command>``: tools over run and sweep directories (see README.md)."""

from __future__ import annotations

import argparse
import sys

from lossland.errors import LosslandError


def fail(err: Exception | str, code: int = 2):
    print(f"lossland: error: {err}", file=sys.stderr)
    sys.exit(code)


def cmd_collect(args):
    from lossland.analysis.collect import collect, print_table

    rows, path = collect(args.sweep_dir)
    print_table(rows, title=str(path))


def cmd_report(args):
    from lossland.analysis.report import write_report

    result = write_report(args.sweep_dir)
    for f in result.files:
        print(f)
    for phase, (lo, hi) in sorted(result.boundaries.items()):
        print(f"phase {phase}: elr {lo:.3g} .. {hi:.3g}")
    if not args.no_wandb:
        from lossland.analysis.wandb_report import log_report

        log_report(args.sweep_dir, result.files)


COMMANDS = {
    "collect": (cmd_collect, "write <dir>/results.csv, one row per run (overrides, status, final metrics)",
                [("sweep_dir", "a sweep (multirun) directory, or any directory holding runs")]),
    "report": (cmd_report, "write <dir>/report/: phase diagram, final metrics and cosine figures, index.html",
               [("sweep_dir", "a sweep directory of sphere-optimizer runs")]),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lossland", description="Tools over lossland run and sweep directories.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (func, help_, positionals) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        for arg, h in positionals:
            p.add_argument(arg, help=h)
        if name == "report":
            p.add_argument("--no-wandb", action="store_true", help="do not log the figures to the sweep's W&B group")
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except LosslandError as e:
        fail(e)


if __name__ == "__main__":
    main()
