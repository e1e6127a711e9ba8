"""The sweep engine's overhead per job: a sweep of ``--jobs`` one-step jobs (digits, a small MLP) against one
such job, both through the real command line (``python -m lossland.cli train [-m] ...``), and the one-step single
run's time broken down (imports, compose, data, model, records).

    python benchmarks/overhead.py [--jobs 24] [--launcher basic|vectorized] [--root <another checkout>] [--repeats 3]

Printed: each command's wall and CPU time (the best of ``--repeats`` runs, the two commands alternating: a
machine whose speed moves by tens of percent from minute to minute otherwise swamps a difference of a few
seconds; CPU: this machine's other load inflates wall time, not CPU time), the
overhead per extra job ``(sweep - single) / (jobs - 1)`` — the whole cost of one more job, its own one training
step and records included — and the part of it beyond the job's own work (the ``wall_s`` its ``summary.json``
records); then the breakdown of one job measured in one process (the phases of ``lossland.train.run`` under a
profiler, scaled to the unprofiled run). Last line: ``per_job_s=<x> beyond_own_s=<y>`` (goal: beyond_own_s ≤ 0.1).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # --root: measure another checkout (e.g. before a change)
JOB = ["data=digits", "model=mlp", "model.hidden=[32]", "optimizer=sgd", "lr=0.05", "logger=none",
       "trainer.max_steps=1", "trainer.enable_progress_bar=false"]


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "lossland.cli", *argv], cwd=ROOT, env=env, capture_output=True,
                         text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{res.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def own(dirs: list[Path]) -> float:
    """The jobs' own work: the wall time each ``summary.json`` records (start of the job to its last record); a
    vectorized grid's members each record the whole grid's, counted once."""
    walls = [json.loads((d / "summary.json").read_text())["wall_s"] for d in dirs]
    grid = any("grid" in json.loads((d / "summary.json").read_text()) for d in dirs)
    return max(walls) if grid else sum(walls)


BREAKDOWN = r"""
import cProfile, json, pstats, sys, time
t0 = time.perf_counter()
import lossland.train, lossland.commands.train
t1 = time.perf_counter()
from lossland.build import build_data, build_loss, build_model
from lossland.config import compose
cfg = compose(sys.argv[2:])
t2 = time.perf_counter()
cfg.out_dir = sys.argv[1]
prof = cProfile.Profile()
t3 = time.perf_counter()
prof.runcall(lossland.train.run, cfg)
t4 = time.perf_counter()
stats = pstats.Stats(prof).stats
total = sum(ct for (f, _, name), (_, _, _, ct, callers) in stats.items() if name == "run" and f.endswith("train.py"))
def part(test):
    return sum(ct for (f, _, n), (_, _, _, ct, callers) in stats.items() if test(f, n)
               and not any(test(cf, cn) for (cf, _, cn) in callers))
data = part(lambda f, n: f.endswith("lossland/build.py") and n == "build_data")
model = part(lambda f, n: f.endswith("lossland/build.py") and n == "build_model")
records = part(lambda f, n: f.endswith("lossland/records.py") or f.endswith("lossland/loggers.py")
               or f.endswith("torch/serialization.py"))
scale = (t4 - t3) / total
print(json.dumps({"imports": t1 - t0, "compose": t2 - t1, "run": t4 - t3, "data": data * scale,
                  "model": model * scale, "records": records * scale}))
"""


def breakdown(out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", BREAKDOWN, str(out), *JOB], cwd=ROOT, env=env, capture_output=True,
                         text=True)
    if res.returncode != 0:
        sys.exit(f"breakdown failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=24)
    ap.add_argument("--launcher", default="basic", choices=("basic", "vectorized"))
    ap.add_argument("--root", type=Path, default=ROOT)
    ap.add_argument("--repeats", type=int, default=3, help="each command's time is the best of this many runs")
    args = ap.parse_args()
    globals()["ROOT"] = args.root.resolve()
    launcher = [] if args.launcher == "basic" else ["hydra/launcher=vectorized"]
    singles, sweeps = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for r in range(args.repeats):  # the two commands alternate; each one's best run counts
            single_wall, single_cpu = timed(["train", *JOB, f"hydra.run.dir={tmp / f'single{r}'}"])
            singles.append((single_wall, single_cpu, own([tmp / f"single{r}"])))
            sweep_wall, sweep_cpu = timed(["train", "-m", *JOB, f"seed=range(0,{args.jobs})", *launcher,
                                           f"hydra.sweep.dir={tmp / f'sweep{r}'}"])
            sweeps.append((sweep_wall, sweep_cpu, own([tmp / f"sweep{r}" / str(i) for i in range(args.jobs)])))
        parts = breakdown(tmp / "breakdown")
    (single_wall, single_cpu, single_own), (sweep_wall, sweep_cpu, sweep_own) = min(singles), min(sweeps)
    n = args.jobs - 1
    per_job = (sweep_wall - single_wall) / n
    beyond = ((sweep_wall - sweep_own) - (single_wall - single_own)) / n
    print(f"one job:          {single_wall:6.2f} s wall, {single_cpu:6.2f} s CPU (its own work {single_own:.2f} s)")
    print(f"sweep of {args.jobs} jobs: {sweep_wall:6.2f} s wall, {sweep_cpu:6.2f} s CPU "
          f"(their own work {sweep_own:.2f} s; {args.launcher} launcher)")
    print(f"per extra job:    {per_job:.3f} s wall, {(sweep_cpu - single_cpu) / n:.3f} s CPU; "
          f"beyond the job's own work {beyond:.3f} s wall")
    rest = single_wall - parts["imports"] - parts["compose"] - parts["run"]
    job_rest = parts["run"] - parts["data"] - parts["model"] - parts["records"]
    print(f"one-step single run, {single_wall:.2f} s: imports {parts['imports']:.2f} s, compose "
          f"{parts['compose']:.2f} s, data {parts['data']:.2f} s, model {parts['model']:.2f} s, records "
          f"{parts['records']:.2f} s, rest of the job {job_rest:.2f} s, "
          f"interpreter + Hydra + checks {rest:.2f} s")
    print(f"per_job_s={per_job:.3f} beyond_own_s={beyond:.3f}")


if __name__ == "__main__":
    main()
