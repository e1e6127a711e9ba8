"""``lossland paper <study>`` as the CLI declares it (docs/paper.md). Its implementation,
:mod:`lossland.commands.paper`, imports every study's adapter: it is loaded only when the command runs."""

from __future__ import annotations

from lossland.commands.base import Tool, arg

STUDIES = ("sphere", "connect", "exp_neuron", "nas", "optim")


def paper(args):
    from lossland.commands.paper import paper_command

    paper_command(args)


COMMANDS = (
    Tool("paper", "a seed document's tables beside ours, its figures, and whether each claimed trend reproduces: "
         "runs the study's recipes (SCALE=full DATA_ROOT=... pass through) or reads --from DIR", paper,
         (arg("study", choices=STUDIES, help="which seed: sphere (003), connect (001), exp_neuron (000), nas (002), "
              "optim (004)"),
          arg("--from", dest="from_dir", default=None, help="read this sweep / paper folder instead of running the "
              "recipes"),
          arg("--out", default=None, help="without --from: where the recipes run (default multirun/paper/<study>/"
              "<date>/<time>; the comparison goes to <out>/paper); with --from: the comparison folder (default "
              "<from>/paper)"),
          arg("--recipes", default=None, help="comma-separated subset of the study's recipes to run"))),
)
