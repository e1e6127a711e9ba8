"""``lossland <command>``: every command, from one table (README.md, "Commands").

Hydra apps (:class:`lossland.commands.base.App`) take ``[POSITIONAL ...] key=value ...`` and are launched by
Hydra; the other commands (:class:`lossland.commands.base.Tool`) are argparse commands. The command modules
import their implementations only when the command runs, so ``lossland --help`` and every command start fast.
"""

from __future__ import annotations

import argparse
import sys

from lossland.commands import connect, exp_neuron, lab, measure, nas, paper_cli, sphere, sweep, train
from lossland.commands.base import App
from lossland.entry import fail
from lossland.errors import LosslandError

COMMANDS = {c.name: c for c in (*train.COMMANDS, *sweep.COMMANDS, *measure.COMMANDS, *sphere.COMMANDS,
                                *connect.COMMANDS, *exp_neuron.COMMANDS, *nas.COMMANDS, *lab.COMMANDS,
                                *paper_cli.COMMANDS)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lossland", description="Experiments on loss landscapes and training dynamics (README.md).",
        epilog="Hydra apps (" + ", ".join(n for n, c in COMMANDS.items() if isinstance(c, App)) + ") take "
               "key=value overrides and -m for a sweep; `lossland <command> --help` lists each command's options.")
    sub = parser.add_subparsers(dest="name", required=True, metavar="<command>")
    for command in COMMANDS.values():
        command.add_to(sub)
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The parsed command line of a :class:`~lossland.commands.base.Tool` (its ``key=value`` overrides, where it
    takes them, wherever they stand after its first positional)."""
    command = COMMANDS.get(argv[0]) if argv else None
    rest, overrides = command.split(argv[1:]) if command is not None else (argv[1:], [])
    args = build_parser().parse_args(argv[:1] + rest)
    if overrides:
        args.overrides = [*(args.overrides or []), *overrides]
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and isinstance(COMMANDS.get(argv[0]), App):
        return COMMANDS[argv[0]].main(argv[1:], program=[sys.argv[0], argv[0]])
    args = parse_args(argv)
    try:
        args.command.run(args)
    except LosslandError as e:
        fail(e)


if __name__ == "__main__":
    main()
