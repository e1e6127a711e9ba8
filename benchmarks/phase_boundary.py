"""The phase-boundary sweeper against a dense log grid of the same resolution (docs/phase_boundary.md).

Runs, side by side on the embedded CE study (``experiment=sphere_ce``, one seed, the steps cut to ``--steps``):

1. ``hydra/sweeper=phase_boundary`` over ``--range`` at ``--resolution`` (its runs end early once their phase is
   certain, ``metrics.early_stop.phase=true``);
2. the dense grid: every rate of the same lattice, trained to the end (no early stop).

Prints the runs and training steps of each (and their ratio), the brackets each finds for every boundary, and
the label of every adaptive (possibly early-stopped) run beside the full run's at the same rate. Re-running with
the same ``--out`` reads the finished runs back (the job lifecycle skips them).

    OMP_NUM_THREADS=1 python benchmarks/phase_boundary.py --out multirun/bench_phase_boundary
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lossland.runs import Run  # noqa: E402
from lossland.studies.sphere.phases import phase_of  # noqa: E402
from lossland.sweep.boundary import Lattice, bracket, majority, parse_boundary  # noqa: E402


def train(args, sweep_dir: Path, extra: list[str]) -> float:
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", "experiment=sphere_ce", "logger=csv",
           f"trainer.max_steps={args.steps}", f"metrics.every_n_steps={args.every}", f"seed={args.seed}",
           "metrics.test=false",  # the phase rule reads train metrics only: no test pass at every point
           "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep_dir}", *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def runs_by_rate(sweep_dir: Path) -> dict[float, list[Run]]:
    out: dict[float, list[Run]] = {}
    for d in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()):
        r = Run(d)
        out.setdefault(float(r.summary["elr"]), []).append(r)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="multirun/bench_phase_boundary")
    p.add_argument("--range", nargs=2, type=float, default=[1e-5, 1.0])
    p.add_argument("--resolution", type=float, default=1.2)
    p.add_argument("--boundaries", default="1|2,2|3")
    p.add_argument("--steps", type=int, default=60, help="training steps per run (the recipe's 800, cut to fit)")
    p.add_argument("--every", type=int, default=5, help="phase-metric points every N steps")
    p.add_argument("--coarse", type=int, default=9)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dense-done", action="store_true", help="read the dense grid of --out back, do not launch it")
    args = p.parse_args(argv)
    out = (ROOT / args.out) if not os.path.isabs(args.out) else Path(args.out)
    lattice = Lattice(args.range[0], args.range[1], args.resolution)
    names = args.boundaries.split(",")

    sweeper = ["hydra/sweeper=phase_boundary", f"hydra.sweeper.range=[{args.range[0]},{args.range[1]}]",
               f"hydra.sweeper.resolution={args.resolution}", f"hydra.sweeper.boundaries=[{','.join(names)}]",
               f"hydra.sweeper.coarse={args.coarse}", f"hydra.sweeper.k={args.k}"]
    t_adaptive = train(args, out / "adaptive", sweeper)
    grid = ["elr=" + ",".join(f"{x:g}" for x in lattice.rates())]
    t_dense = 0.0 if args.dense_done else train(args, out / "dense", grid)

    found = json.loads((out / "adaptive" / "boundaries.json").read_text())
    dense = runs_by_rate(out / "dense")
    adaptive = runs_by_rate(out / "adaptive")
    dense_labels = {x: [phase_of(r) for r in rs] for x, rs in dense.items()}
    index = {lattice.rate(j): j for j in range(lattice.n + 1)}
    steps = {name: sum(int(r.summary.get("steps") or 0) for rs in runs.values() for r in rs)
             for name, runs in (("adaptive", adaptive), ("dense", dense))}
    count = {name: sum(len(rs) for rs in runs.values()) for name, runs in (("adaptive", adaptive), ("dense", dense))}
    result = {"settings": vars(args), "lattice_points": lattice.n + 1, "runs": count, "steps": steps,
              "run_ratio": count["adaptive"] / count["dense"], "step_ratio": steps["adaptive"] / steps["dense"],
              "wall_s": {"adaptive": round(t_adaptive, 1), "dense": round(t_dense, 1)}, "brackets": {},
              "labels": []}
    print(f"lattice: {lattice.n + 1} rates over [{args.range[0]:g}, {args.range[1]:g}], factor {lattice.factor:.4f}; "
          f"{args.steps} steps per run, phase metrics every {args.every}")
    print(f"runs:  adaptive {count['adaptive']}  dense {count['dense']}  ratio {result['run_ratio']:.3f}")
    print(f"steps: adaptive {steps['adaptive']}  dense {steps['dense']}  ratio {result['step_ratio']:.3f}")
    print(f"wall (noisy, shared machine): adaptive {t_adaptive:.0f} s  dense {t_dense:.0f} s")
    for name in names:
        b = parse_boundary(name)
        br = bracket({index[x]: majority(labs, b) for x, labs in dense_labels.items()})
        dense_bracket = [None if br.lo is None else lattice.rate(br.lo), None if br.hi is None else lattice.rate(br.hi)]
        ours = found["boundaries"][b.name]["bracket"]
        result["brackets"][b.name] = {"adaptive": ours, "dense": dense_bracket, "same": ours == dense_bracket,
                                      "dense_non_monotone": [lattice.rate(j) for j in br.non_monotone]}
        print(f"{b.name}: adaptive {ours}  dense {dense_bracket}  same: {ours == dense_bracket}")
    agree = 0
    for x, rs in sorted(adaptive.items()):
        rs = [r for r in rs if "metrics.early_stop.phase=true" in r.summary["overrides"]]  # not the confirmations
        early = [phase_of(r) for r in rs]
        full = dense_labels.get(x)
        stopped = [r.summary.get("steps") for r in rs]
        agree += early == full
        result["labels"].append({"elr": x, "early": early, "full": full, "steps": stopped,
                                 "reason": [r.summary.get("stop_reason") for r in rs]})
        print(f"  elr {x:<10g} early-stop run: {','.join(map(str, early)):<16} ({','.join(map(str, stopped))} steps)"
              f"  full run: {','.join(map(str, full or []))}")
    result["labels_agree"] = f"{agree}/{len(adaptive)}"
    print(f"early-stop run's label = full run's label at {agree} of {len(adaptive)} rates")
    for x in found.get("superseded", []):
        print(f"  confirmed at full length: elr {x['rate']:g} {x['label']} -> {x['full_length_label']}")
    (out / "benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
