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


def cmd_curvature(args):
    from lossland.analysis.curvature_run import curvature_of_run, print_rows

    rows = curvature_of_run(args.run_dir, args.select, args.examples, args.bn, args.params, args.seed,
                            args.device)
    print_rows(rows, title=f"{args.run_dir}: curvature (appended to metrics.csv, curvature.json)")


cmd_curvature.options = [  # see docs/curvature.md
    ("--select", {"default": None, "help": "metrics, e.g. hessian_top:k=3,fisher_trace:kind=true "
                  "(default: the run's metrics.curvature.selection)"}),
    ("--examples", {"type": int, "default": None, "help": "training examples (default: the run's setting)"}),
    ("--bn", {"choices": ["train", "eval"], "default": None, "help": "BN mode (default: the run's, train)"}),
    ("--params", {"default": None, "help": "all | si | <module name> (default: the run's, all)"}),
    ("--seed", {"type": int, "default": None, "help": "probe / Lanczos seed (default: the run's, 0)"}),
    ("--device", {"default": "cpu", "help": "torch device (default cpu)"}),
]


def cmd_slice(args):
    from lossland.analysis.slice_run import slice_of_run

    result = slice_of_run(args.run_dir, to=args.to, dims=args.dims, points=args.points, span=args.range,
                          examples=args.examples or None, split=args.split, bn=args.bn, params=args.params,
                          seed=args.seed, norm=args.norm, out=args.out, name=args.name,
                          checkpoint=args.checkpoint, log=args.log, device=args.device)
    for f in result["files"]:
        print(f)


cmd_slice.options = [  # see docs/curvature.md
    ("--to", {"default": None, "help": "another run: slice along the direction to its final weights"}),
    ("--dims", {"type": int, "choices": [1, 2], "default": 1, "help": "1 (line) or 2 (contour)"}),
    ("--points", {"type": int, "default": 21, "help": "grid points per axis (default 21)"}),
    ("--range", {"type": float, "nargs": 2, "metavar": ("A", "B"), "default": None,
                 "help": "coefficient range per axis (default -1 1; with --to -0.5 1.5 along it)"}),
    ("--examples", {"type": int, "default": 1024, "help": "examples evaluated (default 1024; 0: all)"}),
    ("--split", {"choices": ["train", "test"], "default": "train", "help": "data split (default train)"}),
    ("--bn", {"choices": ["train", "eval"], "default": "train", "help": "BN mode (default train)"}),
    ("--params", {"default": "all", "help": "all | si | <module name> (default all)"}),
    ("--seed", {"type": int, "default": 0, "help": "seed of the random directions (default 0)"}),
    ("--norm", {"choices": ["filter", "layer", "none"], "default": "filter",
                "help": "direction normalization (default filter)"}),
    ("--log", {"action": "store_true", "help": "log-scale loss in the plot"}),
    ("--out", {"default": None, "help": "output folder (default: the run dir)"}),
    ("--name", {"default": "slice", "help": "file stem: <name>.json, <name>.png (default slice)"}),
    ("--checkpoint", {"default": None, "help": "checkpoint to slice around (default last.ckpt)"}),
    ("--device", {"default": "cpu", "help": "torch device (default cpu)"}),
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
    "curvature": (cmd_curvature, "curvature at every checkpoint of a run, appended to its metrics.csv and "
                  "curvature.json", [("run_dir", "a run directory with checkpoints")]),
    "slice": (cmd_slice, "loss-landscape slice around a run's final weights: <run>/slice.json and slice.png",
              [("run_dir", "a run directory")]),
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
