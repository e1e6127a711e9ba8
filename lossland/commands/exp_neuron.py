"""Study E's command (docs/exp_neuron.md): ``lossland exp-neuron DIR --protocol P``, a protocol's table beside
the seed's values."""

from __future__ import annotations

from lossland.commands.base import Tool, arg, print_result


def table(args):
    from lossland.studies.exp_neuron.tables import write_table

    print_result(write_table(args.sweep_dir, args.protocol, args.out, args.budget))


COMMANDS = (
    Tool("exp-neuron", "study E's tables (quality, speed, generalization, stability) beside the seed's values: "
         "<dir>/exp_neuron/<protocol>.{csv,md,png}", table,
         (arg("sweep_dir", help="a folder holding the protocol's runs (any depth)"),
          arg("--protocol", required=True, choices=["quality", "speed", "generalization", "stability"],
              help="which table (study E): quality, speed, generalization or stability"),
          arg("--out", default=None, help="output folder (default: <sweep_dir>/exp_neuron)"),
          arg("--budget", default=None, type=float, help="generalization: zero training errors within this many "
              "epochs (default: the runs' own length)"))),
)
