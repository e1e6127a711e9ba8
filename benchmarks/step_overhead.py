"""Training-loop overhead of lossland against a hand-written PyTorch loop, in one process.

Same model (same initial weights), data tensors, batch size, optimizer and number of steps; the lossland
side is the real job (``lossland.train.prepare`` on a composed config: the Fabric loop of
``lossland.loop.Trainer`` around the LightningModule, tensor-resident data, records logger) with the scheduled
metrics switched off. Each side runs ``--repeats``
times, alternating, and the minimum time is kept. Last line: ``mlp_ratio=<x> convnet_ratio=<y>``
(lossland time / raw time; targets: mlp ≤ 1.2, convnet ≤ 1.05).

Time is this process's CPU time (``--clock process``, the default: robust to other load on a shared
machine, and equal to wall time for a single-threaded run on an idle one) or wall time (``--clock wall``);
torch runs on ``--threads`` threads (default 1, so that both clocks agree).

    python benchmarks/step_overhead.py [--repeats 3] [--mlp-steps 790] [--convnet-steps 60] [--clock wall]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch

from lossland.build import build_data, build_loss, build_model, build_optimizer
from lossland.config import compose
from lossland.train import prepare

CASES = {
    "mlp": ["data=spheres", "data.train_size=1000", "data.batch_size=64", "model=mlp", "model.hidden=[50,25]",
            "model.activation=sigmoid", "loss=hinge3", "optimizer=sgd", "lr=0.01"],
    "convnet": ["data=mnist5k", "data.train_size=4000", "data.batch_size=128", "model=convnet_si", "model.width=0.25",
                "loss=ce", "optimizer=sphere_sgd", "elr=1e-3"],
}


CLOCK = time.process_time


def raw_loop(cfg, steps: int) -> float:
    """The baseline: what a researcher writes by hand, on the same tensors."""
    dm = build_data(cfg)
    loss = build_loss(cfg)
    model = build_model(cfg, dm, loss)
    opt = build_optimizer(cfg, model, dm)([p for p in model.parameters() if p.requires_grad])
    x, y = dm.splits["train"]
    b, n = dm.batch_size, len(x) // dm.batch_size
    g = torch.Generator().manual_seed(0)
    model.train()
    t0 = CLOCK()
    done = 0
    while done < steps:
        perm = torch.randperm(len(x), generator=g)
        for i in range(min(n, steps - done)):
            idx = perm[i * b:(i + 1) * b]
            opt.zero_grad(set_to_none=True)
            loss(model(x[idx]), y[idx]).backward()
            opt.step()
        done += min(n, steps - done)
    return CLOCK() - t0


def lossland_loop(cfg, steps: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        cfg = copy.deepcopy(cfg)
        cfg.trainer.max_steps = steps
        trainer, module, dm = prepare(cfg, Path(out), run_id="bench", resume=None)
        t0 = CLOCK()
        trainer.fit(module, dm)
        elapsed = CLOCK() - t0
        assert trainer.global_step == steps, trainer.global_step
        return elapsed


def measure(name: str, steps: int, repeats: int) -> float:
    cfg = compose([*CASES[name], "logger=none", "metrics.enabled=false", "trainer.enable_progress_bar=false",
                   "trainer.max_epochs=100000", "trainer.check_val_every_n_epoch=100000"])
    raw_loop(cfg, min(steps, 20))  # warm-up (first optimizer, kernels)
    lossland_loop(cfg, min(steps, 20))
    raw, ours = [], []
    for _ in range(repeats):
        raw.append(raw_loop(cfg, steps))
        ours.append(lossland_loop(cfg, steps))
    ratio = min(ours) / min(raw)
    print(f"{name}: {steps} steps  raw {min(raw):.3f}s  lossland {min(ours):.3f}s  ratio {ratio:.3f}")
    return ratio


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mlp-steps", type=int, default=790)
    ap.add_argument("--convnet-steps", type=int, default=60)
    ap.add_argument("--clock", choices=("process", "wall"), default="process")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "process" else time.perf_counter
    torch.set_num_threads(args.threads)
    mlp = measure("mlp", args.mlp_steps, args.repeats)
    conv = measure("convnet", args.convnet_steps, args.repeats)
    print(f"mlp_ratio={mlp:.3f} convnet_ratio={conv:.3f}")


if __name__ == "__main__":
    main()
