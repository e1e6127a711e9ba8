"""The GPU check of the paper's scale: how fast ConvNet-SI width 1 trains on CIFAR-sized batches, which settings
help, whether the vectorized grid pays, and what the full CE grid will cost — one table (docs/scale.md).

Measured, each after a warm-up, with the device synchronized around the timed steps:

1. **the raw step** (model forward + backward + sphere SGD step on batches already on the device, no lossland
   loop): fp32, fp32 channels-last, bf16 autocast, bf16 channels-last, and ``torch.compile`` of the fp32 and bf16
   models (``--no-compile`` skips them: compiling takes a minute or two);
2. **lossland's job** (``lossland.train.run`` of ``experiment=paper/sphere_ce`` on CIFAR-10 files of the real size,
   synthetic, written to a temporary folder; phase metrics off): ms per step from two lengths (the difference
   removes the set-up), for ``trainer.precision`` 32-true and bf16-mixed — the precisions a run can use;
3. **the grid**: ``grid=vmap`` with 8 and 16 ConvNet-SI members (``lossland.sweep.vectorized.run_grid``) against
   the same members run one after another;
4. **the prediction**: the full CE grid (``paper/sphere_ce``: 14 elrs × 390,000 steps) on one GPU, sequential and
   as one vmapped grid, from the measured per-step times (training steps only; ``lossland paper sphere --scale
   full --plan`` adds evaluations).

It ends with rows for ``lossland/paper/step_times.yaml`` (measured: the plan then uses them). Under 8 minutes on
one GPU. Without one it runs at tiny sizes to check itself (``--device cpu --tiny``: width 1/8, batch 16, a few
steps; the figures then mean nothing).

    python benchmarks/gpu.py [--device cuda] [--steps 200] [--job-steps 100,400] [--grid-steps 100] [--no-compile]
    python benchmarks/gpu.py --device cpu --tiny
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from lossland.config import compose
from lossland.data.synthetic_files import write_cifar10
from lossland.losses import CrossEntropy
from lossland.models import ConvNetSI
from lossland.optim import SphereSGD

CE_GRID, CE_STEPS = 14, 390_000  # conf/experiment/paper/sphere_ce.yaml


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def raw_step_ms(device: str, width: float, batch: int, steps: int, *, bf16=False, channels_last=False,
                compiled=False) -> float:
    """ms per training step of the bare model + loss + SphereSGD on batches already on the device."""
    torch.manual_seed(0)
    model = ConvNetSI((3, 32, 32), 10, width=width).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = SphereSGD([p for p in model.parameters() if p.requires_grad], elr=1e-3)
    loss_fn = CrossEntropy()
    fwd = torch.compile(model) if compiled else model
    xs = torch.randn(8, batch, 3, 32, 32, device=device)
    if channels_last:
        xs = xs.contiguous(memory_format=torch.channels_last) if xs.dim() == 4 else \
            torch.stack([x.contiguous(memory_format=torch.channels_last) for x in xs])
    ys = torch.randint(0, 10, (8, batch), device=device)
    dtype = torch.bfloat16

    def step(i):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=bf16):
            loss = loss_fn(fwd(xs[i % 8]), ys[i % 8])
        loss.float().backward()
        opt.step()

    for i in range(max(3, steps // 10)):  # warm-up (cuDNN autotune, compilation)
        step(i)
    sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    sync(device)
    return (time.perf_counter() - t0) / steps * 1e3


def job_cfg(root: Path, data: Path, device: str, width: float, batch: int, steps: int, precision: str, tag: str,
            tiny: bool, extra=()):
    overrides = ["experiment=paper/sphere_ce", f"data.root={data}", f"trainer.max_steps={steps}",
                 f"trainer.precision={precision}", "metrics.enabled=false", "checkpoint.every_n_steps=null",
                 "logger=none", "trainer.enable_progress_bar=false", "+data.eval_limit=256",
                 f"trainer.accelerator={'gpu' if device.startswith('cuda') else 'cpu'}", *extra]
    if tiny:
        overrides += [f"model.width={width}", f"data.batch_size={batch}", "data.train_size=400", "data.test_size=100"]
    cfg = compose(overrides)
    cfg.out_dir = str(root / tag)
    return cfg


def job_step_ms(root, data, device, width, batch, lengths, precision, tiny) -> float:
    """ms per step of a real lossland job, from two lengths (their difference cancels set-up and the final pass)."""
    from lossland.train import run

    run(job_cfg(root, data, device, width, batch, 2, precision, f"warm-{precision}", tiny))  # data cache, imports
    times = []
    for n in lengths:
        t0 = time.perf_counter()
        s = run(job_cfg(root, data, device, width, batch, n, precision, f"job-{precision}-{n}", tiny))
        if s["status"] != "ok":
            raise RuntimeError(f"precision {precision}: the job ended {s['status']}: {s.get('error')}")
        times.append(time.perf_counter() - t0)
    return (times[1] - times[0]) / (lengths[1] - lengths[0]) * 1e3


def grid_s(root, data, device, width, batch, members: int, steps: int, tiny: bool) -> tuple[float, float]:
    """(sequential s, grid=vmap s) of ``members`` ConvNet-SI jobs differing in elr."""
    from lossland.sweep.vectorized import run_grid
    from lossland.train import run

    elrs = [1e-4 * 1.5 ** i for i in range(members)]

    def cfgs(tag, vmap):
        return [job_cfg(root, data, device, width, batch, steps, "32-true", f"{tag}-{members}-{i}", tiny,
                        [f"elr={e:.4g}", *(["grid=vmap"] if vmap else [])]) for i, e in enumerate(elrs)]

    t0 = time.perf_counter()
    for c in cfgs("seq", False):
        run(c)
    sync(device)
    t_seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_grid(cfgs("vmap", True))
    sync(device)
    return t_seq, time.perf_counter() - t0


def table(rows: list[tuple[str, str]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column("measurement")
    t.add_column("result")
    for a, b in rows:
        t.add_row(a, b)
    Console(width=160).print(t)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="width 1/8, batch 16, few steps: check the script (CPU)")
    ap.add_argument("--steps", type=int, default=200, help="timed raw steps per variant")
    ap.add_argument("--job-steps", default="100,400", help="two lengths of the lossland job")
    ap.add_argument("--grid-steps", type=int, default=100, help="steps of each grid member")
    ap.add_argument("--grids", default="8,16", help="member counts of the vmapped grid")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = ap.parse_args(argv)
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py: no CUDA device here; use --device cpu --tiny to check the script")
    width, batch = (0.125, 16) if args.tiny else (1.0, 128)
    steps = 3 if args.tiny else args.steps
    lengths = [2, 10] if args.tiny else [int(x) for x in args.job_steps.split(",")]
    grid_steps = 2 if args.tiny else args.grid_steps
    grids = [2] if args.tiny else [int(x) for x in args.grids.split(",")]
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    t_start = time.perf_counter()
    results: dict = {"device": name, "width": width, "batch": batch, "raw_ms": {}, "job_ms": {}, "grid": {}}
    rows: list[tuple[str, str]] = []
    variants = [("fp32", {}), ("fp32 channels-last", {"channels_last": True}), ("bf16 autocast", {"bf16": True}),
                ("bf16 channels-last", {"bf16": True, "channels_last": True})]
    if not args.no_compile:
        variants += [("fp32 torch.compile", {"compiled": True}),
                     ("bf16 torch.compile", {"bf16": True, "compiled": True})]
    for label, kw in variants:
        try:
            ms = raw_step_ms(device, width, batch, steps, **kw)
        except Exception as e:  # a variant this torch / device cannot run: say so, go on
            rows.append((f"raw step, {label}", f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"))
            continue
        results["raw_ms"][label] = ms
        rows.append((f"raw step, {label}", f"{ms:.2f} ms = {1e3 / ms:.0f} steps/s"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        write_cifar10(data, train=500, test=100) if args.tiny else write_cifar10(data)
        for precision in ("32-true", "bf16-mixed"):
            try:
                ms = job_step_ms(root, data, device, width, batch, lengths, precision, args.tiny)
            except Exception as e:
                rows.append((f"lossland job, trainer.precision={precision}",
                             f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"))
                continue
            if ms <= 0:  # the longer job was not slower: its steps are within the timing noise
                rows.append((f"lossland job, trainer.precision={precision}", "not resolved (timing noise)"))
                continue
            results["job_ms"][precision] = ms
            rows.append((f"lossland job, trainer.precision={precision}", f"{ms:.2f} ms per step (loop included)"))
        for m in grids:
            t_seq, t_vmap = grid_s(root, data, device, width, batch, m, grid_steps, args.tiny)
            results["grid"][m] = {"sequential_s": t_seq, "vmap_s": t_vmap}
            rows.append((f"grid of {m} × {grid_steps} steps", f"sequential {t_seq:.1f} s, grid=vmap {t_vmap:.1f} s: "
                         f"{t_seq / t_vmap:.2f}× "))
    source = "lossland job" if results["job_ms"] else "raw step"
    best = min(results["job_ms"].values() or results["raw_ms"].values() or [float("nan")])
    seq_h = CE_GRID * CE_STEPS * best / 3.6e6
    rows.append(("full CE grid, one GPU, one job after another",
                 f"{CE_GRID} × {CE_STEPS:,} steps × {best:.2f} ms ({source}) = {seq_h:.1f} h (training steps only)"))
    if results["grid"]:
        m = max(results["grid"])
        ratio = results["grid"][m]["sequential_s"] / results["grid"][m]["vmap_s"]
        rows.append((f"full CE grid with grid=vmap ({m} members' speed-up {ratio:.2f}×)", f"{seq_h / ratio:.1f} h"))
        results["ce_grid_vmap_h"] = seq_h / ratio
    results["ce_grid_sequential_h"] = seq_h
    results["wall_s"] = time.perf_counter() - t_start
    table(rows, f"benchmarks/gpu.py — ConvNet-SI width {width:g}, batch {batch}, {name}; "
                f"{results['wall_s']:.0f} s" + (" (--tiny: not a measurement)" if args.tiny else ""))
    date = time.strftime("%Y-%m-%d")
    for precision, ms in results["job_ms"].items():
        print("  - " + json.dumps({"model": "convnet_si", "size": width, "batch": batch, "precision": precision,
                                   "device": "gpu" if device.startswith("cuda") else "cpu", "ms": round(ms, 3),
                                   "where": f"{name}, {date}",
                                   "how": "benchmarks/gpu.py (lossland job, loop included)"},
                                  ensure_ascii=False))
    return results


if __name__ == "__main__":
    main()
