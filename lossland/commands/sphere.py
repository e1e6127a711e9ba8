"""Study S's commands beyond ``lossland report`` (docs/sphere.md): ``lossland sphere-figures DIR``,
``lossland finetune DIR`` and ``lossland interpolate DIR``."""

from __future__ import annotations

from lossland.commands.base import Tool, arg, print_result


def sphere_figures(args):
    from lossland.studies.sphere.figures import write_sphere_figures

    print_result(write_sphere_figures(args.sweep_dir, args.out), texts=())


def finetune(args):
    from lossland.studies.sphere.finetune import write_finetune

    print_result(write_finetune(args.sweep_dir, args.out, args.max_ratio, args.max_err_rise))


def interpolate(args):
    from lossland.studies.sphere.interpolation import write_interpolation

    print_result(write_interpolation(args.sweep_dir, args.out, args.converged_errors, args.max_ratio,
                                      args.max_err_rise))


def _out(default: str):
    return arg("--out", default=None, help=f"output folder (default: <sweep_dir>/{default})")


_CONNECTED = (  # lossland/studies/sphere/along_path.py
    arg("--max-ratio", default=2.0, type=float, help="linearly connected: train loss and GM inside the path stay "
        "<= this times their larger endpoint value (default 2) ..."),
    arg("--max-err-rise", default=2.0, type=float, help="... and train/test errors rise by at most this many "
        "percentage points above the larger endpoint (default 2)"))

COMMANDS = (
    Tool("sphere-figures", "study S's figures beyond the report (seed Figs 15-25): overview, curvature phase "
         "diagrams, retraction error 1 - r, baselines: <dir>/sphere_figures/", sphere_figures,
         (arg("sweep_dir", help="a sweep directory of sphere-optimizer runs"), _out("sphere_figures"))),
    Tool("finetune", "study S fine-tuning: pretrain + fine-tune trajectories on one step axis, phase diagrams, "
         "original-to-fine-tuned linear paths: <dir>/finetune/", finetune,
         (arg("sweep_dir", help="a sweeps/sphere_finetune.sh output folder"), _out("finetune"), *_CONNECTED)),
    Tool("interpolate", "study S interpolation inside phase 1 (converged vs not): loss, errors and GM along linear "
         "paths: <dir>/interpolation/", interpolate,
         (arg("sweep_dir", help="a sweeps/sphere_interpolate.sh output folder"), _out("interpolation"), *_CONNECTED,
          arg("--converged-errors", default=0, type=int, help="a model is in the converged sub-phase of phase 1 "
              "with at most this many misclassified training examples (default 0)"))),
)
