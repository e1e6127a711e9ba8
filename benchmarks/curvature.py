"""Benchmark: lossland curvature against the real PyHessian package, same model, data, BN mode, tolerance.

Setting (issue 15): ConvNetSI width 0.25 trained on mnist5k (SGD, ``--epochs`` epochs, a few seconds
each on one thread; ``--epochs 0``: the fresh initialization), ``--n`` = 512 training examples as one
batch, BN in eval mode (PyHessian's only mode), cross-entropy, one process, one thread.

1. Hessian-vector product paths: seconds per product for lossland's double backward (cached graph,
   rebuilt graph), forward-over-reverse, curvlinops (one column, and 8 columns at once), PyHessian.
2. Top-k eigenvalues at tolerance ``--tol``: PyHessian ``hessian.eigenvalues(top_n=k, tol=tol)`` against
   lossland ``Curvature(...).top_eigs(k, tol=tol)``; both compared with a tight reference (lossland
   Lanczos, tol 1e-10, untimed). Products counted; also ARPACK (``method="arpack"``) for the record.
3. Trace: PyHessian ``hessian.trace(tol=tol)`` (Hutchinson, stops when the running mean changes by
   < tol) against lossland's Hutchinson with the same number of probes, and against lossland's deflated
   Hutchinson (``deflate`` Lanczos vectors, then projected probes until its standard error is no larger
   than PyHessian's = std of PyHessian's probe values / √probes: equal accuracy).

Prints values, errors, products, and the ratios t_PyHessian / t_lossland (> 1: lossland faster); the last
line is machine-readable. About 3 minutes on one CPU core. PyHessian is optional:

    pip install --no-deps pyhessian     # pure Python; its dependencies are lossland's
    python benchmarks/curvature.py [--epochs 20] [--n 512] [--k 1 3] [--tol 1e-3] [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch
from curvlinops import HessianLinearOperator
from torch import nn

from lossland.data import MNIST5k
from lossland.losses import CrossEntropy
from lossland.metrics.bn import bn_mode
from lossland.metrics.curvature import Curvature, curvature_operator, per_sample_grads, top_eigenvalues
from lossland.models import ConvNetSI

try:  # optional: the comparison needs it, lossland does not
    import pyhessian.hessian  # noqa: F401

    pyh = sys.modules["pyhessian.hessian"]  # the module (the package re-exports its class under the same name)
except ImportError:
    pyh = None

INSTALL = "pip install --no-deps pyhessian   (pure Python; PyHessian 0.1's dependencies are lossland's)"


def trained_model(epochs: int, width: float, seed: int = 0):
    """ConvNetSI on mnist5k (4000 train, padded to 32x32), SGD lr 0.05 momentum 0.9, batches of 128."""
    dm = MNIST5k(batch_size=128, train_size=4000, test_size=1000, pad_to=32)
    dm.prepare()
    x, y = dm.splits["train"]
    torch.manual_seed(seed)
    model, loss = ConvNetSI((1, 32, 32), 10, width=width), CrossEntropy()
    cache = os.path.join(tempfile.gettempdir(), f"lossland_bench_convnetsi_w{width}_e{epochs}_s{seed}.pt")
    if epochs and os.path.exists(cache):  # same weights as the last run (training is deterministic anyway)
        model.load_state_dict(torch.load(cache, weights_only=True))
        epochs_done = f"trained {epochs} epochs (cached in {cache})"
    else:
        epochs_done = None
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    t0 = time.perf_counter()
    model.train()
    for _ in range(0 if epochs_done else epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x) - 127, 128):
            b = perm[i:i + 128]
            opt.zero_grad()
            loss(model(x[b]), y[b]).backward()
            opt.step()
    opt.zero_grad(set_to_none=True)
    if epochs and not epochs_done:
        torch.save(model.state_dict(), cache)
        epochs_done = f"trained {epochs} epochs ({time.perf_counter() - t0:.0f} s)"
    with torch.no_grad(), bn_mode(model, "eval"):
        acc = (model(x).argmax(1) == y).float().mean().item()
    how = f"{epochs_done}, train accuracy {acc:.3f}" if epochs \
        else f"fresh initialization (not trained), train accuracy {acc:.3f}"
    return model, x, y, how


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


class Counter:
    """Counts PyHessian's Hessian-vector products (its module-level ``hessian_vector_product``)."""

    def __init__(self):
        self.calls, self.orig = 0, pyh.hessian_vector_product

    def __enter__(self):
        def counted(*a, **k):
            self.calls += 1
            return self.orig(*a, **k)
        pyh.hessian_vector_product = counted
        return self

    def __exit__(self, *exc):
        pyh.hessian_vector_product = self.orig


def pyhessian_object(model, x, y):
    model.zero_grad(set_to_none=True)
    return pyh.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)


def clear(model):
    """PyHessian leaves a create_graph gradient in every .grad and the model in eval mode."""
    model.zero_grad(set_to_none=True)


def hvp_section(model, loss, x, y, reps):
    """Seconds per product of every path, interleaved (one product of each path per round, so load
    changes on a shared machine hit all paths alike); the minimum over ``reps`` rounds."""
    print(f"\n1. Hessian-vector products (s per product, min over {reps} interleaved rounds; BN eval, "
          f"one batch of {len(x)} examples)")
    data = (x, y)
    paths = {
        "lossland double backward, cached graph (default)": curvature_operator(model, loss, data),
        "lossland double backward, graph rebuilt per product": curvature_operator(model, loss, data, cache=False),
        "lossland forward-over-reverse (torch.func.jvp of grad)":
            curvature_operator(model, loss, data, hvp="forward_over_reverse"),
        "curvlinops HessianLinearOperator, 1 column": curvature_operator(model, loss, data, hvp="curvlinops"),
    }
    v = torch.randn(paths[next(iter(paths))].shape[0], generator=torch.Generator().manual_seed(0))
    calls = {name: (lambda op=op: op @ v) for name, op in paths.items()}
    calls["curvlinops HessianLinearOperator, 8 columns at once (per column)"] = _curvlinops_batched(model, data)
    h = None
    if pyh is not None:
        h = pyhessian_object(model, x, y)
        vs = [t.view_as(p) for t, p in zip(v.split([p.numel() for p in h.params]), h.params)]
        calls["PyHessian (double backward, cached graph)"] = \
            lambda g=h.gradsH, ps=h.params: pyh.hessian_vector_product(g, ps, vs)
    times = {name: [] for name in calls}
    for call in calls.values():
        call()  # warm-up, graph builds
    for _ in range(reps):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    calls = h = None  # free the graphs
    clear(model)
    rows = {name: min(t) for name, t in times.items()}
    rows["curvlinops HessianLinearOperator, 8 columns at once (per column)"] /= 8
    for name, t in rows.items():
        print(f"   {name:<66} {t:.3f}")
    return rows


def _curvlinops_batched(model, data):
    """curvlinops' own matmat with 8 columns at once (lossland's operator before: one vmapped call)."""
    params = [p for p in model.parameters() if p.requires_grad]
    op = HessianLinearOperator(model, nn.CrossEntropyLoss(), params, [data], check_deterministic=False)
    V = torch.randn(sum(p.numel() for p in params), 8, generator=torch.Generator().manual_seed(0))

    def call():
        with bn_mode(model, "eval", elementary=True):
            op @ V
    return call


def reference_eigs(model, loss, x, y, k):
    ref = Curvature(model, loss, (x, y), bn="eval").top_eigs(k, tol=1e-10)
    print(f"\n2. top-k Hessian eigenvalues; reference (lossland Lanczos, tol 1e-10): "
          f"{np.array2string(ref, precision=6)}")
    return ref


def eig_section(model, loss, x, y, k, tol, seed, ref):
    print(f"   top-{k}, tol {tol:g}")
    ref = ref[:k]
    curv, t_build = timed(Curvature, model, loss, (x, y), bn="eval")
    ours, t_ours = timed(curv.top_eigs, k, tol=tol, seed=seed)
    t_ours += t_build
    err_ours = np.max(np.abs(ours - ref) / np.abs(ref))
    print(f"   lossland Lanczos:  {np.array2string(ours, precision=6)} in {t_ours:.2f} s, "
          f"{curv.op.products} products, max rel. error {err_ours:.1e}")
    arpack = curvature_operator(model, loss, (x, y))
    vals, t_arp = timed(top_eigenvalues, arpack, k, tol, seed, method="arpack")
    print(f"   lossland ARPACK:   {np.array2string(vals, precision=6)} in {t_arp:.2f} s, {arpack.products} products, "
          f"max rel. error {np.max(np.abs(vals - ref) / np.abs(ref)):.1e}")
    if pyh is None:
        return None
    torch.manual_seed(seed)
    with Counter() as c:
        (theirs, _), t_py = timed(lambda: pyhessian_object(model, x, y).eigenvalues(top_n=k, tol=tol))
    clear(model)
    theirs = np.array(theirs)
    err_py = np.max(np.abs(theirs - ref) / np.abs(ref))
    print(f"   PyHessian power:   {np.array2string(theirs, precision=6)} in {t_py:.2f} s, {c.calls} products, "
          f"max rel. error {err_py:.1e}")
    ratio = t_py / t_ours
    agree = np.max(np.abs(ours - theirs) / np.abs(theirs))
    print(f"   ratio t_PyHessian / t_lossland = {ratio:.2f}; values agree to {agree:.1e}; "
          f"lossland error {'≤' if err_ours <= err_py else '>'} PyHessian's")
    return ratio, agree, err_ours, err_py


def trace_section(model, loss, x, y, tol, deflate, seed):
    print(f"\n3. Hessian trace (Hutchinson, Rademacher probes), PyHessian tol {tol:g}")
    if pyh is not None:
        torch.manual_seed(seed)  # PyHessian draws its probes from the global generator
        with Counter() as c:
            values, t_py = timed(lambda: pyhessian_object(model, x, y).trace(tol=tol))
        clear(model)
        n_py = len(values)
        est_py, se_py = float(np.mean(values)), float(np.std(values, ddof=1) / math.sqrt(n_py))
        print(f"   PyHessian:                       {est_py:.4f} ± {se_py:.3f} in {t_py:.2f} s, {c.calls} products")
    else:
        n_py, t_py, se_py, est_py = 33, None, 10.0, None
    curv, t_build = timed(Curvature, model, loss, (x, y), bn="eval")
    (est, se), t_plain = timed(curv.trace, probes=n_py, seed=seed)
    t_plain += t_build
    print(f"   lossland, same {n_py} probes:      {est:.4f} ± {se:.3f} in {t_plain:.2f} s, {curv.op.products} products")
    curv, t_build = timed(Curvature, model, loss, (x, y), bn="eval")
    (est_d, se_d), t_defl = timed(curv.trace, probes=200, seed=seed, deflate=deflate, target_se=se_py)
    t_defl += t_build
    print(f"   lossland, deflate {deflate}, to se ≤ {se_py:.3f}: {est_d:.4f} ± {se_d:.3f} in {t_defl:.2f} s, "
          f"{curv.op.products} products")
    if pyh is None:
        return None
    r_plain, r_defl = t_py / t_plain, t_py / t_defl
    print(f"   ratio t_PyHessian / t_lossland: same probes {r_plain:.2f}; deflated at equal accuracy {r_defl:.2f} "
          f"(standard error {se_d:.3f} {'≤' if se_d <= se_py else '>'} PyHessian's {se_py:.3f}); "
          f"estimates differ by {abs(est_d - est_py) / math.hypot(se_d, se_py):.1f} combined standard errors")
    return r_plain, r_defl, se_d, se_py, est_d, est_py


def per_sample_section(model, loss, x, y):
    params = [p for p in model.parameters() if p.requires_grad]
    per_sample_grads(model, loss, x[:8], y[:8])  # warm-up
    fast, t_vmap = timed(per_sample_grads, model, loss, x, y, bn="eval")
    t0 = time.perf_counter()
    rows = []
    with bn_mode(model, "eval"):
        for i in range(len(x)):
            grads = torch.autograd.grad(loss(model(x[i:i + 1]), y[i:i + 1]), params)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
    t_loop = time.perf_counter() - t0
    flat = torch.cat([t.flatten(1) for t in fast.values()], dim=1)
    err = ((flat - torch.stack(rows)).norm() / flat.norm()).item()
    print(f"\n4. per-sample gradients of {len(x)} inputs: vmap {t_vmap:.3f} s, loop {t_loop:.3f} s, "
          f"speedup {t_loop / t_vmap:.1f}x, rel. diff {err:.1e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20, help="training epochs (0: fresh initialization)")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--n", type=int, default=512, help="training examples measured (one batch)")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 3], help="top-k eigenvalues, for each k given")
    ap.add_argument("--tol", type=float, default=1e-3, help="eigenvalue / trace tolerance (PyHessian's default)")
    ap.add_argument("--deflate", type=int, default=8, help="Lanczos vectors of lossland's deflated trace")
    ap.add_argument("--seed", type=int, default=0, help="probes and start vectors (PyHessian: global torch seed)")
    ap.add_argument("--reps", type=int, default=4, help="products timed per HVP path")
    ap.add_argument("--skip", nargs="*", default=[], choices=["hvp", "eig", "trace", "per_sample"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: stable timings on shared CPUs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if pyh is None:
        print(f"PyHessian is not installed: only lossland is timed. For the comparison: {INSTALL}")

    model, x, y, how = trained_model(args.epochs, args.width)
    g = torch.Generator().manual_seed(1)
    idx = torch.randperm(len(x), generator=g)[:args.n]
    x, y, loss = x[idx], y[idx], CrossEntropy()
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"ConvNetSI width {args.width} on mnist5k, {how}; {n_params} trainable parameters, {args.n} training "
          f"examples (one batch), BN eval mode, cross-entropy, {torch.get_num_threads()} thread(s)")
    if "hvp" not in args.skip:
        hvp_section(model, loss, x, y, args.reps)
    eig, trace = {}, None
    if "eig" not in args.skip:
        ref = reference_eigs(model, loss, x, y, max(args.k))
        eig = {k: eig_section(model, loss, x, y, k, args.tol, args.seed, ref) for k in args.k}
    if "trace" not in args.skip:
        trace = trace_section(model, loss, x, y, args.tol, args.deflate, args.seed)
    if "per_sample" not in args.skip:
        per_sample_section(model, loss, x[:128], y[:128])
    if pyh is not None:
        line = " ".join(f"top{k}_ratio={e[0]:.3f} top{k}_agree={e[1]:.1e} top{k}_err={e[2]:.1e} "
                        f"top{k}_err_pyhessian={e[3]:.1e}" for k, e in eig.items())
        if trace:
            line += (f" trace_ratio_same_probes={trace[0]:.3f} trace_ratio={trace[1]:.3f} trace_se={trace[2]:.3f} "
                     f"trace_se_pyhessian={trace[3]:.3f}")
        if line.strip():
            print("\n" + line.strip())


if __name__ == "__main__":
    main()
