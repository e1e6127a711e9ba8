"""A whole grid trained as one vectorized model (``grid=vectorized``) against the same jobs run one after
another, in one process.

Both sides are real lossland jobs with records (``lossland.sweep.vectorized.run_grid`` vs ``lossland.train.run`` per
job, phase metrics every ``--metrics-every`` steps, ``logger=none``). Cases:

- ``mlp``: 16-point lr grid of the 100-50-25-1 sigmoid MLP (``model=mlp model.hidden=[50,25]``) on 100-d
  ``data=spheres``, SGD, cubic hinge (study E's setting); target ≥ 6×;
- ``mlp24``: 24-member grid (12 lrs × 2 seeds: two data orders) of a small ReLU MLP (64-32-16-10) on
  ``data=digits``, SGD, cross-entropy, 400 steps, phase metrics every 200 steps; target ≥ 5×;
- ``convnet``: an elr grid of ConvNet-SI (width 0.25, mnist5k, sphere SGD); reported as measured.

Time is this process's CPU time with ``--threads 1`` (the default; equal to wall time on an idle machine) and
wall-clock time with more threads (CPU time would add up the threads).
Both sides get their configs composed before the clock starts (composition is the launcher's work, not the
grid's), each side is warmed up once untimed (one job; a grid of two), and each side's time is the best of
``--repeats`` runs (machines are noisy; the sides alternate); ``paired`` is the median over the repeats of the
ratio of the two sides' runs in the same repeat.
Last line: ``mlp_ratio=<sequential / vectorized> mlp24_ratio=<...> convnet_ratio=<...>``.

    python benchmarks/grid.py [--points 16] [--mlp-steps 800] [--mlp24-points 24] [--mlp24-steps 400]
        [--convnet-points 4] [--convnet-steps 40] [--log-every-n-steps 16] [--metrics-every 200] [--threads 1]
        [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lossland.config import compose
from lossland.sweep.vectorized import run_grid
from lossland.train import run

COMMON = ["logger=none", "trainer.enable_progress_bar=false", "metrics.eval_batches=2", "metrics.test_examples=256"]
CASES = {
    "mlp": ["data=spheres", "data.train_size=1000", "data.batch_size=64", "model=mlp", "model.hidden=[50,25]",
            "model.activation=sigmoid", "loss=hinge3", "optimizer=sgd"],
    "mlp24": ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[32,16]", "model.activation=relu",
              "loss=ce", "optimizer=sgd"],
    "convnet": ["data=mnist5k", "data.train_size=4000", "data.batch_size=128", "model=convnet_si",
                "model.width=0.25", "loss=ce", "optimizer=sphere_sgd"],
}


def configs(case: str, points, steps: int, every: int, root: Path, tag: str):
    """``points``: (rate, seed) of each job."""
    key = "elr" if case == "convnet" else "lr"
    out = []
    for i, (r, seed) in enumerate(points):
        cfg = compose([*CASES[case], *COMMON, f"{key}={r}", f"seed={seed}", f"trainer.max_steps={steps}",
                       f"metrics.every_n_steps={every}", "grid=vmap" if case == "convnet" else "grid=vectorized"])
        cfg.out_dir = str(root / f"{case}-{tag}" / str(i))
        out.append(cfg)
    return out


def measure(case: str, points, steps: int, every: int, repeats: int) -> tuple[float, float, float, float]:
    """(sequential s, vectorized s, median over the repeats of sequential / vectorized of the same repeat, largest
    |Δ final train_loss| between the two); each time the best of ``repeats`` (the two sides alternate), after one
    untimed warm-up of each side. The paired ratio compares runs a few seconds apart, so a machine whose speed
    drifts over minutes moves it less than the ratio of the two best times."""
    clock = time.process_time if torch.get_num_threads() == 1 else time.perf_counter
    seq_times, vec_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # warm-up (data cache, imports, first calls of each side's kernels), not timed
        run(configs(case, points[:1], steps, every, root, "warm-seq")[0])
        run_grid(configs(case, points[:2], steps, every, root, "warm-vec"))
        for r in range(repeats):
            seq_cfgs = configs(case, points, steps, every, root, f"seq{r}")
            vec_cfgs = configs(case, points, steps, every, root, f"vec{r}")
            t0 = clock()
            seq = [run(c) for c in seq_cfgs]
            seq_times.append(clock() - t0)
            t0 = clock()
            vec = run_grid(vec_cfgs)
            vec_times.append(clock() - t0)
        diff = max(abs(a["final"].get("train_loss", np.nan) - b["final"].get("train_loss", np.nan))
                   for a, b in zip(seq, vec) if a["status"] == b["status"] == "ok")
        paired = float(np.median([s / v for s, v in zip(seq_times, vec_times)]))
        return min(seq_times), min(vec_times), paired, diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=16)
    ap.add_argument("--mlp-steps", type=int, default=800)
    ap.add_argument("--mlp24-points", type=int, default=24, help="lrs × 2 seeds")
    ap.add_argument("--mlp24-steps", type=int, default=400)
    ap.add_argument("--convnet-points", type=int, default=4)
    ap.add_argument("--convnet-steps", type=int, default=40)
    ap.add_argument("--metrics-every", type=int, default=200)
    ap.add_argument("--log-every-n-steps", type=int, default=16, help="steps per logged block (both sides)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="each side's time is the best of this many runs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    COMMON.append(f"trainer.log_every_n_steps={args.log_every_n_steps}")
    ratios = {}
    half = args.mlp24_points // 2
    for case, points, steps, grid in (
            ("mlp", args.points, args.mlp_steps, [(r, 0) for r in np.logspace(-3, 0, args.points)]),
            ("mlp24", args.mlp24_points, args.mlp24_steps,
             [(r, s) for s in (0, 1) for r in np.logspace(-2, np.log10(0.5), half)]),
            ("convnet", args.convnet_points, args.convnet_steps,
             [(r, 0) for r in np.logspace(-4, -2, args.convnet_points)])):
        if points < 2:
            continue
        t_seq, t_vec, paired, diff = measure(case, [(float(f"{r:.4g}"), s) for r, s in grid], steps,
                                             args.metrics_every, args.repeats)
        ratios[case] = t_seq / t_vec
        print(f"{case}: {points} jobs x {steps} steps: sequential {t_seq:.2f} s, vectorized {t_vec:.2f} s, "
              f"ratio {ratios[case]:.2f}x, paired {paired:.2f}x (max |final train_loss difference| {diff:.2e})",
              flush=True)
    print(" ".join(f"{k}_ratio={v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
