"""Benchmark: lossland curvature vs straightforward reference implementations, same model and data.

1. Top Hessian eigenvalue: ``hessian_top_eigs`` (curvlinops operator + scipy eigsh) against a
   PyHessian-style power iteration (loop over batches, double backward per batch for Hv).
2. Per-sample gradients: vmapped ``per_sample_grads`` against a loop of one-sample backward passes.

Prints both eigenvalues (must agree within 1 %), the time ratio t_reference / t_lossland (> 1: lossland
faster), and the per-sample speedup; the last line is machine-readable. About a minute on one CPU core.

    python benchmarks/curvature.py [--model convnet|mlp] [--n 512] [--batch-size 128] [--device cpu]

``convnet`` (default): ConvNetSI width 0.25 (BN in eval mode, as PyHessian forces). On one CPU core
a one-sample backward through a conv net is already efficient (≈ 1/40 of a 128-sample backward) and
vmapped per-sample gradients cost ≈ 1.3 batch backwards, so the loop is only ~2× slower there; the
≥ 5× regime is small models (``mlp`` on ``--in-shape 64``) or GPUs, where per-call overhead dominates.
"""

from __future__ import annotations

import argparse
import time

import torch

from lossland.losses import CrossEntropy
from lossland.metrics.curvature import hessian_top_eigs, per_sample_grads
from lossland.models import MLP, ConvNetSI


def pyhessian_top_eig(model, loss, batches, tol=1e-4, max_iter=200, seed=0):
    """PyHessian-style: power iteration, Hv accumulated batch by batch by double backward (eval mode)."""
    params = [p for p in model.parameters() if p.requires_grad]
    n = sum(len(x) for x, _ in batches)
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen).to(p.device) for p in params]
    norm = torch.sqrt(sum((t * t).sum() for t in v))
    v = [t / norm for t in v]
    eig = None
    model.eval()
    for _ in range(max_iter):
        hv = [torch.zeros_like(p) for p in params]
        for x, y in batches:
            grads = torch.autograd.grad(loss(model(x), y), params, create_graph=True)
            dot = sum((g * t).sum() for g, t in zip(grads, v))
            for acc, h in zip(hv, torch.autograd.grad(dot, params)):
                acc.add_(h, alpha=len(x) / n)
        new = sum((h * t).sum() for h, t in zip(hv, v)).item()
        norm = torch.sqrt(sum((h * h).sum() for h in hv))
        v = [h / norm for h in hv]
        if eig is not None and abs(new - eig) / (abs(eig) + 1e-12) < tol:
            return new
        eig = new
    return eig


def per_sample_loop(model, loss, x, y):
    params = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    out = []
    for i in range(len(x)):
        grads = torch.autograd.grad(loss(model(x[i:i + 1]), y[i:i + 1]), params)
        out.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["mlp", "convnet"], default="convnet")
    ap.add_argument("--in-shape", type=int, nargs="+", default=[3, 32, 32], help="input shape (mlp only)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--per-sample-n", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: stable timings on shared CPUs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    shape = (3, 32, 32) if args.model == "convnet" else tuple(args.in_shape)
    if args.model == "convnet":
        model, name = ConvNetSI(shape, 10, width=args.width), f"ConvNetSI width {args.width}"
    else:
        model, name = MLP(shape, 10, hidden=(100, 50)), f"MLP {shape}-100-50-10"
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(args.n, *shape, generator=g), torch.randint(0, 10, (args.n,), generator=g)
    model, x, y = model.to(args.device), x.to(args.device), y.to(args.device)
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    model.train()
    with torch.no_grad():  # realistic running statistics for eval-mode BN (PyHessian's mode)
        for xb in x.split(args.batch_size):
            model(xb)
    loss = CrossEntropy()
    batches = list(zip(x.split(args.batch_size), y.split(args.batch_size)))
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{name}: {n_params} trainable parameters, {args.n} inputs, "
          f"batches of {args.batch_size}, BN eval mode, CE")

    hessian_top_eigs(model, loss, batches[:1], tol=1e-2)  # warm-up (torch.func first-call costs)
    sync()
    t0 = time.perf_counter()
    ours = float(hessian_top_eigs(model, loss, batches, k=1, tol=1e-4)[0])
    sync()
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = pyhessian_top_eig(model, loss, batches, tol=1e-4)
    sync()
    t_ref = time.perf_counter() - t0
    rel = abs(ours - ref) / abs(ref)
    print(f"top eigenvalue: lossland {ours:.6g} ({t_ours:.2f} s), PyHessian-style {ref:.6g} ({t_ref:.2f} s); "
          f"rel diff {rel:.2e}, time ratio (reference / lossland) {t_ref / t_ours:.2f}")

    xs, ys = x[:args.per_sample_n], y[:args.per_sample_n]
    per_sample_grads(model, loss, xs[:8], ys[:8])  # warm-up
    t0 = time.perf_counter()
    fast = per_sample_grads(model, loss, xs, ys, bn="eval")
    sync()
    t_vmap = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = per_sample_loop(model, loss, xs, ys)
    sync()
    t_loop = time.perf_counter() - t0
    fast_flat = torch.cat([t.flatten(1) for t in fast.values()], dim=1)
    err = ((fast_flat - slow).norm() / slow.norm()).item()
    speedup = t_loop / t_vmap
    print(f"per-sample gradients of {len(xs)} inputs: vmap {t_vmap:.3f} s, loop {t_loop:.3f} s, "
          f"speedup {speedup:.1f}x, rel diff {err:.1e}")
    ratio = t_ref / t_ours
    print(f"top_eig_rel_diff={rel:.3e} top_eig_time_ratio={ratio:.3f} per_sample_speedup={speedup:.2f}")


if __name__ == "__main__":
    main()
