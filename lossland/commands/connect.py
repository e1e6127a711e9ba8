"""Study C's commands (docs/connect.md): ``lossland connect A B [key=value ...]`` (alias: ``python connect.py
a=A b=B ...``), one mode-connectivity job of ``conf/connect.yaml``; ``lossland connect-table DIR``, the width
study from every ``connect.json`` below ``DIR``."""

from __future__ import annotations

from lossland.commands.base import App, Tool, arg, print_result


def job(cfg):
    from lossland.studies.connect.run import run_connect

    return run_connect(cfg)


def after_single(record, cfg):
    """One line of the path's barrier metrics, then the file written."""
    from lossland.config import output_dir

    s = record["summary"].get("test", record["summary"]["train"])
    print(f"{record['method']['label']}: max accuracy loss {s['max_acc_loss']:.2f} points, "
          f"loss barrier {s['loss_barrier']:.4g}, mean loss {s['mean_loss']:.4g}")
    print(output_dir(cfg) / "connect.json")


def table(args):
    from lossland.studies.connect.study import write_width_table

    print_result(write_width_table(args.dir, args.out, args.metric), ("markdown", "seed_markdown"))


CONNECT = App("connect", "connect", "connect two runs: align B to A (align=...), build or train a path (path=...), "
              "write connect.json and connect.png into the job directory", job, positional=("a", "b"),
              after_single=after_single)
COMMANDS = (
    CONNECT,
    Tool("connect-table", "width study: <dir>/width_table.{csv,md} and width_plot.png from connect.json files",
         table, (arg("dir", help="a folder holding connect.json files (any depth)"),
                 arg("--out", default=None, help="output folder (default: <dir>)"),
                 arg("--metric", default="test.max_acc_loss", help="summary key (default test.max_acc_loss)"))),
)
