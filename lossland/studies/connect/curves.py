"""Training a Bezier / PolyChain curve between two fixed minima (Garipov et al. 2018) in the one training loop
(:class:`lossland.loop.Trainer`).

A :class:`Curve` is a module: the bend θ (parameters: the entries of the template's trainable parameters), the
endpoints, frozen parameters and BN buffers (fixed, the bend's at the midpoint (A+B)/2 of the linear path) and
the net at the curve point θ(t), computed with ``torch.func.functional_call``. Its :class:`CurveModule` is the
training step: one t ~ U[0, 1] per batch (a seeded generator, whose state is part of the module's state dict
and hence of checkpoints), the loss of the net at θ(t). BN layers use batch statistics in training; recompute
them per point when evaluating.

:func:`train_curve` is the path builder of the ``bezier`` / ``polychain`` configs: with ``data.out`` set it
writes the loop's ``metrics.csv`` (``train/batch_loss``, ``train/batch_error`` every step; ``train/loss``,
``train/error`` every epoch) and the loop's checkpoint ``checkpoints/curve.ckpt``
(:meth:`CurveModule.from_checkpoint` reads it back).
"""

from __future__ import annotations

import copy
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

from lossland.data import TensorDataModule
from lossland.loggers import RecordLogger, close_loggers
from lossland.loop import Trainer
from lossland.module import LandscapeModule
from lossland.runs import load_checkpoint
from lossland.studies.connect.paths import Bezier, PathData, PolyChain, _combine, as_state

CURVES = {c.name: c for c in (Bezier, PolyChain)}  # the curve named in a checkpoint
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def _safe(key: str) -> str:
    return key.replace(".", "__")


class TensorStore(nn.Module):
    """A state dict held as parameters (``trainable`` keys) and buffers, so that it moves and saves with the
    module."""

    def __init__(self, state: dict[str, torch.Tensor], trainable: frozenset[str] = frozenset()):
        super().__init__()
        self.keys_ = list(state)
        for k, v in state.items():
            if k in trainable:
                self.register_parameter(_safe(k), nn.Parameter(v.detach().clone()))
            else:
                self.register_buffer(_safe(k), v.detach().clone())

    def to_state(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, _safe(k)) for k in self.keys_}


class Curve(nn.Module):
    """Curve of kind ``kind`` ("bezier" | "polychain") between models ``a`` and (already aligned) ``b``; its
    parameters are the bend's trainable entries. ``forward(x, t)``: the net at θ(t)."""

    def __init__(self, kind: str, a: nn.Module, b: nn.Module, seed: int = 0):
        super().__init__()
        if kind not in CURVES:
            raise ValueError(f"unknown curve {kind!r}; valid: {', '.join(CURVES)}")
        self.kind, self.curve = kind, CURVES[kind]
        self.net = copy.deepcopy(a).train()
        self.net.requires_grad_(False)
        trainable = frozenset(k for k, p in a.named_parameters() if p.requires_grad)
        sa, sb = as_state(a), as_state(b)
        self.end_a, self.end_b = TensorStore(sa), TensorStore(sb)
        self.theta = TensorStore(_combine([sa, sb], [0.5, 0.5]), trainable)
        self.generator = torch.Generator().manual_seed(int(seed))

    def state_at(self, t: float) -> dict[str, torch.Tensor]:
        """The curve point θ(t) as a state dict (differentiable with respect to the bend)."""
        return _combine([self.end_a.to_state(), self.theta.to_state(), self.end_b.to_state()], self.curve.coefs(t))

    def forward(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return functional_call(self.net, self.state_at(float(t)), (x,))

    def sample_t(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def get_extra_state(self) -> dict:
        return {"t_generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["t_generator"])

    def path(self) -> Bezier:
        """The curve as a detached path (for :func:`lossland.studies.connect.evaluate.evaluate_path`)."""
        theta = {k: v.detach().clone() for k, v in self.theta.to_state().items()}
        return self.curve(self.end_a.to_state(), self.end_b.to_state(), theta)


class CurveModule(LandscapeModule):
    """Training a :class:`Curve` (``path_kind``) with ``loss``: each step samples t and returns the loss of the
    net at θ(t). ``optimizer``: "sgd" (with ``momentum``) or "adam"; ``weight_decay`` applies to the bend only
    (the only parameters trained)."""

    def __init__(self, path_kind: str, a: nn.Module, b: nn.Module, loss: nn.Module, lr: float = 0.05,
                 momentum: float = 0.9, weight_decay: float = 0.0, optimizer: str = "sgd", seed: int = 0):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        options = {"lr": float(lr), "weight_decay": float(weight_decay)}
        if optimizer == "sgd":
            options["momentum"] = float(momentum)
        super().__init__(Curve(path_kind, a, b, seed), loss, optimizer=partial(OPTIMIZERS[optimizer], **options))
        self.settings = {"curve": path_kind, "optimizer": optimizer, **options, "seed": int(seed)}

    def training_step(self, batch, step: int):
        x, y = batch
        out = self.model(x, self.model.sample_t())
        loss = self.loss(out, y)
        return loss, loss, out

    def path(self) -> Bezier:
        return self.model.path()

    @classmethod
    def from_checkpoint(cls, path: str | Path, a: nn.Module, b: nn.Module, loss: nn.Module) -> CurveModule:
        """The curve of a checkpoint written by :func:`train_curve` (its bend and t-sampler state)."""
        ckpt = load_checkpoint(path)
        settings = dict(ckpt["lossland"]["curve"])
        module = cls(settings.pop("curve"), a, b, loss, **settings)
        module.load_state_dict(ckpt["state_dict"])
        return module


def train_curve(a: nn.Module, b: nn.Module, data: PathData, curve: str = "bezier", epochs: int = 10,
                steps: int = -1, batch_size: int = 128, lr: float = 0.05, momentum: float = 0.9,
                optimizer: str = "sgd", weight_decay: float = 0.0) -> Bezier:
    """Path builder of a trained curve (``curve``: bezier | polychain) between ``a`` and the aligned ``b``:
    ``steps`` optimizer steps (≤ 0: ``epochs`` passes, full batches) over ``data``'s training split (``data.x``,
    ``data.y``, ``data.loss``; batch order and t seeded by ``data.seed``) on ``data.device``. With ``data.out``
    set, writes ``metrics.csv`` and ``checkpoints/curve.ckpt`` there. The returned path's ``training`` is
    ``{"steps": n}`` (and ``diverged``: where and why, if the loss went bad)."""
    module = CurveModule(curve, copy.deepcopy(a).cpu(), copy.deepcopy(b).cpu(), data.loss, lr=lr, momentum=momentum,
                         weight_decay=weight_decay, optimizer=str(optimizer), seed=int(data.seed))
    dm = TensorDataModule(batch_size=int(batch_size), seed=int(data.seed))
    dm.splits = {"train": (data.x, data.y)}
    out = Path(data.out) if data.out is not None else None
    loggers = [RecordLogger(out)] if out is not None else []
    by_steps = steps is not None and int(steps) > 0
    trainer = Trainer(accelerator="cuda" if str(data.device).startswith("cuda") else "cpu",
                      max_steps=int(steps) if by_steps else -1, max_epochs=int(epochs),
                      enable_progress_bar=bool(data.progress), log_every_n_steps=1, loggers=loggers,
                      run_info={"curve": module.settings})
    trainer.fit(module, dm)
    if out is not None:
        trainer.save_checkpoint(out / "checkpoints" / "curve.ckpt")
    close_loggers(loggers, {"status": "ok" if trainer.diverged is None else "diverged"})
    path = module.cpu().path()
    path.training = {"steps": int(trainer.global_step)}
    if trainer.diverged is not None:  # the bend as of the last finite step
        path.training["diverged"] = str(trainer.diverged)
    return path
