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


COMMANDS = {
    "collect": (cmd_collect, "write <dir>/results.csv, one row per run (overrides, status, final metrics)",
                [("sweep_dir", "a sweep (multirun) directory, or any directory holding runs")]),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lossland", description="Tools over lossland run and sweep directories.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (func, help_, positionals) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        for arg, h in positionals:
            p.add_argument(arg, help=h)
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
