"""A 4-job sweep of the smoke experiment with the joblib launcher (jobs side by side, each on cores // jobs
threads) against the same sweep with Hydra's basic launcher (one job after another, torch's default threads):
wall-clock time of the whole command, and their ratio (target: >= 1.5 on 2 cores).

    python benchmarks/launchers.py [--jobs 4] [--repeats 1] [--steps N]

``--steps N`` trains each smoke job for N steps instead of the experiment's own length: how the ratio grows
once a job is long enough to amortize a worker's start-up (about 4 CPU-s of imports).

Do not set OMP_NUM_THREADS for this one: the point is what each launcher does with the machine's cores. The
load average is printed beside the figures: wall-clock ratios taken on a busy machine are not the quiet
machine's (docs/scale.md explains where joblib's time goes for jobs this short).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sweep(launcher: list[str], elrs: list[str], where: Path, extra: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(WANDB_MODE="offline", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "train.py", "-m", "experiment=smoke", f"elr={','.join(elrs)}", "logger=csv",
           f"hydra.sweep.dir={where}", *extra, *launcher]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"sweep failed ({' '.join(launcher) or 'basic'}):\n{res.stderr[-3000:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--steps", type=int, default=None, help="trainer.max_steps of each job (default: the smoke "
                   "experiment's own)")
    args = p.parse_args()
    extra = [] if args.steps is None else [f"trainer.max_steps={args.steps}"]
    elrs = [f"{10 ** (-4 + 0.5 * i):.3g}" for i in range(args.jobs)]
    cores = len(os.sched_getaffinity(0))
    basic, joblib = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            basic.append(sweep([], elrs, Path(tmp) / f"basic{r}", extra))
            joblib.append(sweep(["hydra/launcher=joblib", "hydra.launcher.n_jobs=-1"], elrs, Path(tmp) / f"joblib{r}",
                                extra))
    b, j = min(basic), min(joblib)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    length = "" if args.steps is None else f", {args.steps} steps per job"
    print(f"{args.jobs}-job smoke sweep{length} on {cores} cores (min of {args.repeats}): basic launcher {b:.1f} s, "
          f"joblib launcher {j:.1f} s; ratio basic/joblib = {b / j:.2f} (target >= 1.5 on 2 cores); "
          f"load average at the end {load}")


if __name__ == "__main__":
    main()
