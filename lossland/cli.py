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


def cmd_connect(args):
    from lossland.connect.run import connect_command

    connect_command(args)


cmd_connect.options = [  # (flag, argparse keywords); see docs/connect.md
    ("--align", {"default": "none", "help": "alignment of B to A: a conf/connect/align option "
                 "(default none)"}),
    ("--path", {"default": "linear", "help": "path: a conf/connect/path option (default linear)"}),
    ("--out", {"default": None, "help": "job directory (default outputs/connect/<date>/<time>)"}),
    ("overrides", {"nargs": "*", "help": "more key=value overrides of conf/connect, right after A B "
                   "(e.g. lossland connect A B num_points=41 --path arc)"}),
]


def cmd_connect_table(args):
    from lossland.connect.study import write_width_table

    result = write_width_table(args.dir, args.out, args.metric)
    print(result["markdown"])
    for line in result["checks"]:
        print(line)
    for f in result["files"]:
        print(f)


cmd_connect_table.options = [
    ("--out", {"default": None, "help": "output folder (default: <dir>)"}),
    ("--metric", {"default": "test.max_acc_loss", "help": "summary key (default test.max_acc_loss)"}),
]


COMMANDS = {
    "collect": (cmd_collect, "write <dir>/results.csv, one row per run (overrides, status, final metrics)",
                [("sweep_dir", "a sweep (multirun) directory, or any directory holding runs")]),
    "report": (cmd_report, "write <dir>/report/: phase diagram, final metrics and cosine figures, index.html",
               [("sweep_dir", "a sweep directory of sphere-optimizer runs")]),
    "connect": (cmd_connect, "connect two runs: align, build/train a path, write <out>/connect.json and "
                "connect.png", [("a", "run directory of model A"), ("b", "run directory of model B")]),
    "connect-table": (cmd_connect_table, "width study: <dir>/width_table.{csv,md} and width_plot.png from "
                      "connect.json files", [("dir", "a folder holding connect.json files (any depth)")]),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lossland", description="Tools over lossland run and sweep directories.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (func, help_, positionals) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        for arg, h in positionals:
            p.add_argument(arg, help=h)
        for flag, kw in getattr(func, "options", ()):
            p.add_argument(flag, **kw)
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
