"""Accuracy under Gaussian noise added to the weights (every parameter of W, not the structure Gamma) or to the
inputs, mean and std over independent draws (the ``noise`` RNG stream of the job's seed)."""

from __future__ import annotations

from functools import partial

import torch

from lossland.data import TensorDataModule
from lossland.loggers import RecordLogger
from lossland.loop import Trainer
from lossland.losses import CrossEntropy
from lossland.module import LandscapeModule
from lossland.optim import Cosine
from lossland.studies.nas.search import accuracy

__all__ = ["noise_curve", "train_discrete"]


@torch.no_grad()
def _acc_moved(model, x, y, sigma: float, skip: set[int], generator: torch.Generator) -> float:
    """Accuracy with N(0, sigma^2) noise added in place to every parameter not in ``skip``, then removed."""
    moved = [(p, p.detach().clone()) for p in model.parameters() if id(p) not in skip]
    try:
        for p, _ in moved:
            p.add_(sigma * torch.randn(p.shape, generator=generator).to(p.device))
        return accuracy(model, x, y)
    finally:
        for p, clean in moved:
            p.copy_(clean)


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
    rows = []
    for sigma in sigmas:
        accs = []
        for _ in range(1 if float(sigma) == 0 else int(draws)):
            if where == "inputs":
                noisy = x + float(sigma) * torch.randn(x.shape, generator=generator).to(x.device)
                accs.append(accuracy(model, noisy, y))
            else:
                accs.append(_acc_moved(model, x, y, float(sigma), skip, generator))
        t = torch.tensor(accs, dtype=torch.float64)
        rows.append({"sigma": float(sigma), "mean": float(t.mean()),
                     "std": float(t.std(unbiased=False)) if len(accs) > 1 else 0.0, "accs": accs})
    model.train(was)
    return rows


def train_discrete(model, train, epochs: int, lr: float, batch: int, seed: int, weight_decay: float = 3e-4,
                   momentum: float = 0.9, clip: float = 5.0) -> list[float]:
    """Train the discrete network from scratch as an ordinary run of the training loop: cross-entropy, SGD with
    momentum and weight decay, a cosine rate from ``lr`` to 0, gradient norm clipped at ``clip``, batches in the
    ``data`` stream's order of ``seed``. Returns the mean training loss of every epoch."""
    dm = TensorDataModule(batch_size=batch, seed=seed)
    dm.splits = {"train": train}
    module = LandscapeModule(model, CrossEntropy(),
                             optimizer=partial(torch.optim.SGD, lr=lr, momentum=momentum, weight_decay=weight_decay),
                             schedule=Cosine(lr, 0.0, epochs * dm.steps_per_epoch))
    records = RecordLogger(None)
    Trainer(accelerator="cuda" if train[0].is_cuda else "cpu", max_epochs=epochs, enable_progress_bar=False,
            log_every_n_steps=dm.steps_per_epoch, gradient_clip_val=clip, loggers=[records]).fit(module, dm)
    return [r["train/loss"] for r in records.rows if "train/loss" in r]
