"""The two kinds of ``lossland <command>``, declared by the command modules and registered by :mod:`lossland.cli`.

- :class:`App`: a Hydra app (``conf/<config>.yaml``): ``lossland <name> [POSITIONAL ...] [key=value ...]``, the
  positionals being shorthand for their keys (``lossland connect A B`` = ``lossland connect a=A b=B``). The root
  scripts ``train.py``, ``connect.py``, ``nas.py`` and ``lab.py`` call the same object (Hydra's ``-m`` sweeps,
  launchers and ``--help`` work the same either way).
- :class:`Tool`: an argparse command over run and sweep directories (``lossland collect DIR`` ...).

Nothing heavy is imported here or by the command modules at import time: ``lossland --help`` and every command
start without importing the others' dependencies (torch, Lightning, POT, matplotlib).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from lossland.errors import LosslandError

# As in lossland.entry, here too: a launcher's worker process (joblib's loky workers) imports the command module to
# run a job, never lossland.entry, and composes the config again (conf/hydra/launcher/<name>.yaml share their
# names with the launcher plugins' schemas on purpose; Hydra 1.3 warns about it in every worker; the message
# starts with a newline, hence (?s)).
warnings.filterwarnings("ignore", message="(?s).*is validated against ConfigStore schema with the same name")

__all__ = ["App", "Tool", "arg", "print_result"]


def arg(*flags: str, **kwargs) -> tuple[tuple[str, ...], dict]:
    """One ``argparse`` argument of a :class:`Tool`: ``arg("--out", default=None, help=...)``."""
    return flags, kwargs


def print_result(result: dict, texts: tuple[str, ...] = ("markdown",)) -> None:
    """What an analysis command returns, on stdout: its tables (the ``texts`` keys), then its checks and the
    files it wrote."""
    for key in texts:
        print(result[key])
    for line in result.get("checks", ()):
        print(line)
    for f in result.get("files", ()):
        print(f)


@dataclass(frozen=True)
class Tool:
    """An argparse command: ``run(args)`` with the parsed ``args`` (``args`` declared with :func:`arg`)."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], object]
    args: tuple[tuple[tuple[str, ...], dict], ...] = ()
    overrides: bool = False  # key=value tokens anywhere after the first positional go to ``args.overrides``

    def add_to(self, sub) -> None:
        p = sub.add_parser(self.name, help=self.help, description=self.help)
        for flags, kwargs in self.args:
            p.add_argument(*flags, **kwargs)
        if self.overrides:
            p.add_argument("overrides", nargs="*", help="key=value overrides (e.g. hydra/launcher=submitit_slurm)")
        p.set_defaults(command=self)

    def split(self, argv: list[str]) -> tuple[list[str], list[str]]:
        """``argv`` (after the command's name) without its ``key=value`` overrides, and those overrides: argparse
        takes no positionals after options itself. A token that is an option's value stays."""
        if not self.overrides:
            return argv, []
        valued = {f for flags, kw in self.args for f in flags if f.startswith("-")
                  and kw.get("action") not in ("store_true", "store_false", "count")}
        rest, overrides = [], []
        for i, a in enumerate(argv):
            if i > 0 and "=" in a and not a.startswith("-") and argv[i - 1] not in valued:
                overrides.append(a)
            else:
                rest.append(a)
        return rest, overrides


@dataclass(frozen=True)
class App:
    """A Hydra app: ``job(cfg)`` runs one job of ``conf/<config>.yaml``. ``validate(cfg, recipe)`` checks every
    job's config before the first starts; ``after_single(result, cfg)`` runs after a single (not multirun) job."""

    name: str
    config: str
    help: str
    job: Callable
    positional: tuple[str, ...] = ()
    validate: Callable | None = None
    after_single: Callable | None = None

    @property
    def usage(self) -> str:
        return " ".join(["lossland", self.name, *(p.upper() for p in self.positional), "[-m] [key=value ...]"])

    def add_to(self, sub) -> None:
        """Listed by ``lossland --help``; its command line is never parsed by argparse (:meth:`main` is)."""
        sub.add_parser(self.name, help=self.help, add_help=False)

    def overrides(self, argv: list[str]) -> list[str]:
        """``argv`` with the leading positionals turned into ``key=value`` overrides (values quoted for Hydra)."""
        from lossland.config import override_value

        argv, keys = list(argv), list(self.positional)
        given = []
        while argv and keys and "=" not in argv[0] and not argv[0].startswith("-"):
            given.append(f"{keys.pop(0)}={override_value(argv.pop(0))}")
        # a word that is neither key=value nor a flag, nor a flag's value (--cfg job, --config-name x): refused here
        stray = [a for i, a in enumerate(argv) if "=" not in a and not a.startswith("-")
                 and not (i and argv[i - 1].startswith("-") and argv[i - 1] not in ("-m", "--multirun"))]
        if stray:
            raise LosslandError(f"unexpected argument {stray[0]!r}; usage: {self.usage}")
        return [*given, *argv]

    def print_help(self) -> None:
        """The usage line and the app's config groups; Hydra then prints the composed options."""
        from lossland.config import groups

        print(f"usage: {self.usage}\n\n{self.help} (conf/{self.config}.yaml)\n")
        options = groups(self.config)
        if options:
            print("== Config groups (group=option) ==")
            print("\n".join(f"{g}: {', '.join(opts)}" for g, opts in options.items()) + "\n")

    def main(self, argv: list[str] | None = None, program: list[str] | None = None) -> None:
        """Run the app on ``argv`` (default: the command line after the script's name). ``program``: the words
        that started it (``lossland <name>``; default: the root script alone)."""
        from lossland.entry import fail, launch

        argv = sys.argv[1:] if argv is None else list(argv)
        if "-h" in argv or "--help" in argv:
            self.print_help()
        try:
            argv = self.overrides(argv)
        except LosslandError as e:
            fail(e)
        launch(self.config, self.job, validate=self.validate, argv=argv, after_single=self.after_single,
               program=program)
