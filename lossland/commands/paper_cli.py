"""``lossland paper <study>`` as the CLI declares it (docs/paper.md). Its implementation,
:mod:`lossland.commands.paper`, imports every study's adapter: it is loaded only when the command runs."""

from __future__ import annotations

from lossland.commands.base import Tool, arg

STUDIES = ("sphere", "connect", "exp_neuron", "nas", "optim")


def paper(args):
    from lossland.commands.paper import paper_command

    paper_command(args)


def paper_docs(args):
    from lossland.commands.paper import paper_docs_command

    paper_docs_command(args)


COMMANDS = (
    Tool("paper", "a seed document's tables beside ours, its figures, and whether each claimed trend reproduces: "
         "runs the study's recipes (SCALE=full DATA_ROOT=... pass through) or reads --from DIR", paper,
         (arg("study", choices=STUDIES, help="which seed: sphere (003), connect (001), exp_neuron (000), nas (002), "
              "optim (004)"),
          arg("--from", dest="from_dir", default=None, help="read this sweep / paper folder instead of running the "
              "recipes"),
          arg("--out", default=None, help="without --from: where the recipes run (default multirun/paper/<study>/"
              "<date>/<time>; the comparison goes to <out>/paper/<study>); with --from: the comparison folder "
              "(default <from>/paper/<study>)"),
          arg("--recipes", default=None, help="comma-separated subset of the study's recipes to run"),
          arg("--jobs", type=int, default=1, help="recipes run at once (default 1; each process then gets one "
              "thread: on a 2-core machine --jobs 2)"),
          arg("--scale", default=None, choices=["embedded", "full", "tiny"], help="the recipes' SCALE (default: "
              "the environment's, else embedded); full: the paper's experiments, conf/experiment/paper/"),
          arg("--data-root", dest="data_root", default=None, help="DATA_ROOT of the recipes: the folder with "
              "cifar-10-batches-py/ and/or the MNIST IDX files (--scale full)"),
          arg("--plan", action="store_true", help="with --scale full: list every job with its steps, examples, "
              "parameters, checkpoints and estimated GPU-hours, write plan.json (--out), run nothing"),
          arg("--rehearse", action="store_true", help="with --scale full: every recipe on the CPU, one step per "
              "experiment, to check the whole pipeline on the data before spending GPU-hours")),
         overrides=True),
    Tool("paper-docs", "rewrite the result blocks (<!-- paper STUDY: WHAT -->) of the given markdown files (default "
         "docs/*.md) from the committed results/<study>/paper.json beside each; --check: list stale blocks, exit 1",
         paper_docs,
         (arg("--check", action="store_true", help="change nothing; exit 1 when a block differs"),
          arg("files", nargs="*", help="markdown files (default every docs/*.md)"))),
)
