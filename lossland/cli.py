"""``lossland <command>``: tools over run and sweep directories (see README.md).

Each command imports its module inside its function, so that ``lossland --help`` and every command start
without importing the others' dependencies (Lightning, POT, matplotlib)."""

from __future__ import annotations

import argparse
import sys

from lossland.entry import fail
from lossland.errors import LosslandError


def cmd_collect(args):
    from lossland.sweep.collect import collect, print_table

    rows, path = collect(args.sweep_dir)
    print_table(rows, title=str(path))


def cmd_report(args):
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


def cmd_sphere_figures(args):
    from lossland.studies.sphere.figures import write_sphere_figures

    for f in write_sphere_figures(args.sweep_dir, args.out)["files"]:
        print(f)


cmd_sphere_figures.options = [  # docs/sphere.md
    ("--out", {"default": None, "help": "output folder (default: <sweep_dir>/sphere_figures)"}),
]


def cmd_connect(args):
    from lossland.studies.connect.run import connect_command

    connect_command(args)


cmd_connect.options = [  # (flag, argparse keywords); see docs/connect.md
    ("--align", {"default": "none", "help": "alignment of B to A: a conf/align option "
                 "(default none)"}),
    ("--path", {"default": "linear", "help": "path: a conf/path option (default linear)"}),
    ("--out", {"default": None, "help": "job directory (default outputs/connect/<date>/<time>)"}),
    ("overrides", {"nargs": "*", "help": "more key=value overrides of conf/connect.yaml, right after A B "
                   "(e.g. lossland connect A B num_points=41 --path arc)"}),
]


def cmd_connect_table(args):
    from lossland.studies.connect.study import write_width_table

    result = write_width_table(args.dir, args.out, args.metric)
    print(result["markdown"])
    print(result["seed_markdown"])
    for line in result["checks"]:
        print(line)
    for f in result["files"]:
        print(f)


cmd_connect_table.options = [
    ("--out", {"default": None, "help": "output folder (default: <dir>)"}),
    ("--metric", {"default": "test.max_acc_loss", "help": "summary key (default test.max_acc_loss)"}),
]


def curvature_job(cfg) -> None:
    """The ``lossland curvature`` Hydra app (``conf/curvature.yaml``)."""
    from omegaconf import OmegaConf

    from lossland.measure.curvature import UnreadableCheckpoints, curvature_of_run, print_rows

    plain = OmegaConf.to_container(cfg, resolve=True)
    title = f"{cfg.run}: curvature (appended to metrics.csv, curvature.json)"
    try:
        rows = curvature_of_run(cfg.run, plain["selection"], plain["examples"], plain["bn"], plain["params"],
                                plain["seed"], plain["device"], progress=plain["progress"], options=plain["options"])
    except UnreadableCheckpoints as e:
        print_rows(e.rows, title=title)
        raise
    print_rows(rows, title=title)


def slice_job(cfg) -> None:
    """The ``lossland slice`` Hydra app (``conf/slice.yaml``)."""
    from omegaconf import OmegaConf

    from lossland.measure.slice import slice_of_run

    c = OmegaConf.to_container(cfg, resolve=True)
    result = slice_of_run(c["run"], to=c["to"], dims=c["dims"], points=c["points"], span=c["range"],
                          examples=c["examples"] or None, split=c["split"], bn=c["bn"], params=c["params"],
                          seed=c["seed"], norm=c["norm"], out=c["out"], name=c["name"], checkpoint=c["checkpoint"],
                          log=c["log"], device=c["device"], progress=c["progress"])
    for f in result["files"]:
        print(f)


def cmd_exp_neuron(args):
    from lossland.studies.exp_neuron.tables import write_table

    result = write_table(args.sweep_dir, args.protocol, args.out, args.budget)
    print(result["markdown"])
    for f in result["files"]:
        print(f)


cmd_exp_neuron.options = [  # docs/exp_neuron.md
    ("--protocol", {"required": True, "choices": ["quality", "speed", "generalization", "stability"],
                    "help": "which table (study E): quality, speed, generalization or stability"}),
    ("--out", {"default": None, "help": "output folder (default: <sweep_dir>/exp_neuron)"}),
    ("--budget", {"default": None, "type": float, "help": "generalization: zero training errors within this many "
                  "epochs (default: the runs' own length)"}),
]


def cmd_paper(args):
    from lossland.commands.paper import paper_command

    paper_command(args)


cmd_paper.options = [  # docs/paper.md
    ("study", {"choices": ["sphere", "connect", "exp_neuron", "nas", "optim"],
               "help": "which seed: sphere (003), connect (001), exp_neuron (000), nas (002), optim (004)"}),
    ("--from", {"dest": "from_dir", "default": None, "help": "read this sweep / paper folder instead of running "
                "the recipes"}),
    ("--out", {"default": None, "help": "without --from: where the recipes run (default multirun/paper/<study>/"
               "<date>/<time>; the comparison goes to <out>/paper); with --from: the comparison folder "
               "(default <from>/paper)"}),
    ("--recipes", {"default": None, "help": "comma-separated subset of the study's recipes to run"}),
]


def cmd_finetune(args):
    from lossland.studies.sphere.finetune import write_finetune

    _print_result(write_finetune(args.sweep_dir, args.out, args.max_ratio, args.max_err_rise))


def cmd_interpolate(args):
    from lossland.studies.sphere.interpolation import write_interpolation

    _print_result(write_interpolation(args.sweep_dir, args.out, args.converged_errors, args.max_ratio,
                                      args.max_err_rise))


def _print_result(result: dict) -> None:
    print(result["markdown"])
    for line in result["checks"]:
        print(line)
    for f in result["files"]:
        print(f)


_CONNECTED = [  # lossland/studies/sphere/along_path.py
    ("--max-ratio", {"default": 2.0, "type": float, "help": "linearly connected: train loss and GM inside the path "
                     "stay <= this times their larger endpoint value (default 2) ..."}),
    ("--max-err-rise", {"default": 2.0, "type": float, "help": "... and train/test errors rise by at most this many "
                        "percentage points above the larger endpoint (default 2)"})]
cmd_finetune.options = [  # docs/sphere.md#fine-tuning
    ("--out", {"default": None, "help": "output folder (default: <sweep_dir>/finetune)"}), *_CONNECTED]
cmd_interpolate.options = [  # docs/sphere.md#interpolation
    ("--out", {"default": None, "help": "output folder (default: <sweep_dir>/interpolation)"}), *_CONNECTED,
    ("--converged-errors", {"default": 0, "type": int, "help": "a model is in the converged sub-phase of phase 1 "
                            "with at most this many misclassified training examples (default 0)"})]


# Commands that are Hydra apps: `lossland <cmd> RUN_DIR key=value ...` (their config: conf/<cmd>.yaml).
HYDRA_APPS = {"curvature": (curvature_job, "curvature at every checkpoint of a run, appended to its metrics.csv "
                            "and curvature.json"),
              "slice": (slice_job, "loss-landscape slice around a run's weights: <run>/slice.json and slice.png")}


COMMANDS = {
    "collect": (cmd_collect, "write <dir>/results.csv, one row per run (overrides, status, final metrics)",
                [("sweep_dir", "a sweep (multirun) directory, or any directory holding runs")]),
    "report": (cmd_report, "write <dir>/report/: runs grouped by the keys the sweep varied, seeds aggregated "
               "(phase counts, mean ± std); phase diagram, final metrics, curves, cosines, index.html",
               [("sweep_dir", "a sweep directory")]),
    "sphere-figures": (cmd_sphere_figures, "study S's figures beyond the report (seed Figs 15-25): overview, "
                       "curvature phase diagrams, retraction error 1 - r, baselines: <dir>/sphere_figures/",
                       [("sweep_dir", "a sweep directory of sphere-optimizer runs")]),
    "connect": (cmd_connect, "connect two runs: align, build/train a path, write <out>/connect.json and "
                "connect.png", [("a", "run directory of model A"), ("b", "run directory of model B")]),
    "connect-table": (cmd_connect_table, "width study: <dir>/width_table.{csv,md} and width_plot.png from "
                      "connect.json files", [("dir", "a folder holding connect.json files (any depth)")]),
    "exp-neuron": (cmd_exp_neuron, "study E's tables (quality, speed, generalization, stability) beside the seed's "
                   "values: <dir>/exp_neuron/<protocol>.{csv,md,png}",
                   [("sweep_dir", "a folder holding the protocol's runs (any depth)")]),
    "paper": (cmd_paper, "a seed document's tables beside ours, its figures, and whether each claimed trend "
              "reproduces: runs the study's recipes (SCALE=full DATA_ROOT=... pass through) or reads --from DIR", []),
    "finetune": (cmd_finetune, "study S fine-tuning: pretrain + fine-tune trajectories on one step axis, phase "
                 "diagrams, original-to-fine-tuned linear paths: <dir>/finetune/",
                 [("sweep_dir", "a sweeps/sphere_finetune.sh output folder")]),
    "interpolate": (cmd_interpolate, "study S interpolation inside phase 1 (converged vs not): loss, errors and GM "
                    "along linear paths: <dir>/interpolation/",
                    [("sweep_dir", "a sweeps/sphere_interpolate.sh output folder")]),
}


def hydra_app(name: str, argv: list[str]) -> None:
    """``lossland <name> RUN_DIR [key=value ...]`` = the Hydra app ``conf/<name>.yaml`` with ``run=RUN_DIR``."""
    from lossland.config import override_value
    from lossland.entry import launch

    if argv and "=" not in argv[0] and not argv[0].startswith("-"):
        argv = [f"run={override_value(argv[0])}", *argv[1:]]
    launch(name, HYDRA_APPS[name][0], argv=argv)


def build_parser() -> argparse.ArgumentParser:
    epilog = "\n".join(f"  {n:<14}{h} (lossland {n} --help: its options)" for n, (_, h) in HYDRA_APPS.items())
    parser = argparse.ArgumentParser(prog="lossland", description="Tools over lossland run and sweep directories.",
                                     epilog="Hydra apps (lossland <cmd> RUN_DIR key=value ...):\n" + epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (func, help_, positionals) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        for arg, h in positionals:
            p.add_argument(arg, help=h)
        for flag, kw in getattr(func, "options", ()):
            p.add_argument(flag, **kw)
        if name == "report":
            p.add_argument("--no-wandb", action="store_true", help="do not log the figures to the sweep's W&B group")
            p.add_argument("--converged-max-errors", type=int, default=None, metavar="N",
                           help="phase 1-converged: at most N misclassified training examples at the end "
                                "(default 0, the seed's zero training errors; docs/sphere.md#phases)")
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in HYDRA_APPS:
        return hydra_app(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except LosslandError as e:
        fail(e)


if __name__ == "__main__":
    main()
