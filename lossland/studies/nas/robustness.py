"""Accuracy under Gaussian noise added to the weights (every parameter of W, not the structure Gamma) or to the
inputs, mean and std over independent draws (the ``noise`` RNG stream of the job's seed)."""

from __future__ import annotations

import math

import torch
from torch.func import functional_call

__all__ = ["noise_curve", "train_discrete"]


@torch.no_grad()
def _acc(model, x, y, params=None, batch=1000) -> float:
    correct = 0
    for i in range(0, len(x), batch):
        out = model(x[i:i + batch]) if params is None else functional_call(model, params, (x[i:i + batch],))
        correct += (out.argmax(-1) == y[i:i + batch]).sum().item()
    return correct / max(1, len(x))


@torch.no_grad()
def noise_curve(model, x, y, sigmas, draws: int, where: str, generator: torch.Generator,
                skip: set[int] | None = None) -> list[dict]:
    """``[{sigma, mean, std, accs}]``; ``where`` = ``weights`` | ``inputs``; ``skip``: ids of parameters left
    clean (the supernet's Gamma)."""
    if where not in ("weights", "inputs"):
        raise ValueError(f"where={where!r}; valid: weights, inputs")
    was = model.training
    model.eval()
    skip = skip or set()
    params = dict(model.named_parameters())
    rows = []
    for sigma in sigmas:
        accs = []
        for _ in range(1 if float(sigma) == 0 else int(draws)):
            if where == "inputs":
                noisy = x + float(sigma) * torch.randn(x.shape, generator=generator).to(x.device)
                accs.append(_acc(model, noisy, y))
            else:
                moved = {n: (p if id(p) in skip else
                             p + float(sigma) * torch.randn(p.shape, generator=generator).to(p.device))
                         for n, p in params.items()}
                accs.append(_acc(model, x, y, moved))
        t = torch.tensor(accs, dtype=torch.float64)
        rows.append({"sigma": float(sigma), "mean": float(t.mean()),
                     "std": float(t.std(unbiased=False)) if len(accs) > 1 else 0.0, "accs": accs})
    model.train(was)
    return rows


def train_discrete(model, train, epochs: int, lr: float, batch: int, seed: int, weight_decay: float = 3e-4,
                   momentum: float = 0.9) -> dict:
    """Train the discrete network from scratch (SGD with momentum, cosine rate); ``{"losses": [...]}``."""
    x, y = train
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps = max(1, len(x) // batch)
    total, step, losses = epochs * steps, 0, []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen).to(x.device)
        for i in range(steps):
            for g in opt.param_groups:
                g["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total))
            idx = order[i * batch:(i + 1) * batch]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            step += 1
        losses.append(float(loss))
    return {"losses": losses}
