"""Training a Bezier / PolyChain curve between two fixed minima (Garipov et al. 2018) as a LightningModule.

Each training batch draws one t ~ U[0, 1] (a seeded ``torch.Generator``, its state saved in checkpoints) and
minimises the loss of the net at the curve point θ(t), computed with ``torch.func.functional_call``. Only the
bend's entries for parameters that are trainable in the template (``requires_grad``) are optimised; the
endpoints, frozen parameters and BN buffers of the bend stay at their initial value, the midpoint (A+B)/2 of
the linear path. BN layers use batch statistics in training; recompute them per point when evaluating.

:func:`train_curve` is the path builder of the ``bezier`` / ``polychain`` configs: it trains a
:class:`CurveModule` with ``lightning.Trainer`` (public API only), logs ``train/loss`` and ``train/t`` per step
into ``metrics.csv`` (:class:`lossland.loggers.RecordLogger`, fed by the :class:`RecordMetrics` callback) and
saves ``checkpoints/curve.ckpt`` (``Trainer.save_checkpoint``, then an atomic rename).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import warnings
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.func import functional_call

from lossland.loggers import RecordLogger
from lossland.studies.connect.paths import Bezier, PathData, PolyChain, _combine, as_state

CURVES = {c.name: c for c in (Bezier, PolyChain)}  # the curve named in a checkpoint's hyperparameters


def _safe(key: str) -> str:
    return key.replace(".", "__")


class TensorStore(nn.Module):
    """A state dict held as parameters (``trainable`` keys) and buffers, so Lightning moves and saves it."""

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


class Batches:
    """Re-iterable (x, y) mini-batches sliced from in-memory tensors, reshuffled each pass (seeded): the
    shuffled training loader of curves (:class:`lossland.data.TensorBatches` slices in order).

    Pass this (or any non-list iterable / DataLoader) to ``Trainer.fit``: Lightning reads a *list* as several
    dataloaders."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        self.x, self.y, self.batch_size, self.shuffle, self.drop_last = x, y, batch_size, shuffle, drop_last
        self._gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.x)
        order = torch.randperm(n, generator=self._gen).to(self.x.device) if self.shuffle else None
        for i in range(len(self)):
            sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
            idx = order[sl] if order is not None else None
            yield (self.x[idx], self.y[idx]) if idx is not None else (self.x[sl], self.y[sl])


class CurveModule(L.LightningModule):
    """Curve of kind ``path_kind`` ("bezier" | "polychain") between models ``a`` and (already aligned) ``b``.

    ``optimizer``: "sgd" (with ``momentum``) or "adam"; ``weight_decay`` applies to the bend only. Logs
    ``train/loss`` (and ``train/t``) every step."""

    def __init__(self, path_kind: str, a: nn.Module, b: nn.Module, loss: nn.Module, lr: float = 0.05,
                 momentum: float = 0.9, weight_decay: float = 0.0, optimizer: str = "sgd", seed: int = 0):
        super().__init__()
        if path_kind not in CURVES:
            raise ValueError(f"unknown curve {path_kind!r}; valid: {', '.join(CURVES)}")
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {optimizer!r}; valid: sgd, adam")
        self.save_hyperparameters(ignore=["a", "b", "loss"])
        self.net = copy.deepcopy(a).train()
        self.net.requires_grad_(False)
        trainable = frozenset(k for k, p in a.named_parameters() if p.requires_grad)
        sa, sb = as_state(a), as_state(b)
        self.end_a = TensorStore(sa)
        self.end_b = TensorStore(sb)
        self.theta = TensorStore(_combine([sa, sb], [0.5, 0.5]), trainable)
        self.loss = loss
        self.curve = CURVES[path_kind]
        self._gen = torch.Generator().manual_seed(seed)

    def state_at(self, t: float) -> dict[str, torch.Tensor]:
        """The curve point θ(t) as a state dict (differentiable with respect to the bend)."""
        coefs = self.curve.coefs(float(t))
        return _combine([self.end_a.to_state(), self.theta.to_state(), self.end_b.to_state()], coefs)

    def forward(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return functional_call(self.net, self.state_at(t), (x,))

    def sample_t(self) -> float:
        return float(torch.rand((), generator=self._gen))

    def training_step(self, batch, batch_idx):
        x, y = batch
        t = self.sample_t()
        loss = self.loss(self(x, t), y)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(x))
        self.log("train/t", t, on_step=True, on_epoch=False, batch_size=len(x))
        return loss

    def configure_optimizers(self):
        params = list(self.theta.parameters())
        hp = self.hparams
        if hp.optimizer == "adam":
            return torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
        return torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["curve_t_generator"] = self._gen.get_state()

    def on_load_checkpoint(self, checkpoint):
        if "curve_t_generator" in checkpoint:
            self._gen.set_state(checkpoint["curve_t_generator"])

    def path(self) -> Bezier:
        """The trained curve as a detached path (for :func:`lossland.studies.connect.evaluate.evaluate_path`)."""
        theta = {k: v.detach().clone() for k, v in self.theta.to_state().items()}
        return self.curve(self.end_a.to_state(), self.end_b.to_state(), theta)


class RecordMetrics(L.Callback):
    """Feeds the module's logged step metrics (``trainer.callback_metrics``) into a
    :class:`~lossland.loggers.RecordLogger` (a Lightning Fabric logger, which ``lightning.Trainer`` does not
    take as its logger) after every training batch, and writes ``metrics.csv`` when training ends."""

    def __init__(self, records: RecordLogger):
        self.records = records

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.records.log_metrics({**metrics, "epoch": trainer.current_epoch}, step=trainer.global_step)

    def on_train_end(self, trainer, pl_module):
        self.records.finalize("success")


def save_atomically(trainer: L.Trainer, path: Path) -> None:
    """``trainer.save_checkpoint`` (Lightning's public API) to a temp file, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    trainer.save_checkpoint(tmp)
    os.replace(tmp, path)


def quiet_lightning() -> None:
    """Keep Lightning's start-up banners, tips and info lines (and torch's pytree deprecation notice, which
    Lightning triggers) out of a curve-training job's console; its warnings and errors stay."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*`weights_only` was not set.*")


def train_curve(a: nn.Module, b: nn.Module, data: PathData, curve: str = "bezier", epochs: int = 10,
                steps: int = -1, batch_size: int = 128, lr: float = 0.05, momentum: float = 0.9,
                optimizer: str = "sgd", weight_decay: float = 0.0) -> Bezier:
    """Path builder of a trained curve (``curve``: bezier | polychain) between ``a`` and the aligned ``b``:
    ``steps`` optimizer steps (≤ 0: ``epochs`` passes) over ``data``'s training split (``data.x``, ``data.y``,
    ``data.loss``, seeded by ``data.seed``) on ``data.device``. With ``data.out`` set, writes
    ``metrics.csv`` and ``checkpoints/curve.ckpt`` there. The returned path's ``training`` is
    ``{"steps": n}``."""
    module = CurveModule(curve, copy.deepcopy(a).cpu(), copy.deepcopy(b).cpu(), data.loss, lr=float(lr),
                         momentum=float(momentum), weight_decay=float(weight_decay), optimizer=str(optimizer),
                         seed=int(data.seed))
    bs = int(batch_size)
    max_steps = int(steps) if steps is not None and int(steps) > 0 else int(epochs) * math.ceil(len(data.x) / bs)
    out = Path(data.out) if data.out is not None else None
    callbacks = [RecordMetrics(RecordLogger(out))] if out is not None else []
    quiet_lightning()
    trainer = L.Trainer(max_steps=max_steps, max_epochs=-1, logger=False, callbacks=callbacks,
                        enable_checkpointing=False, enable_progress_bar=bool(data.progress),
                        enable_model_summary=False,
                        accelerator="gpu" if str(data.device).startswith("cuda") else "cpu", devices=1,
                        default_root_dir=str(out) if out is not None else None, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=Batches(data.x, data.y, batch_size=bs, seed=int(data.seed)))
    if out is not None:
        save_atomically(trainer, out / "checkpoints" / "curve.ckpt")
    path = module.cpu().path()
    path.training = {"steps": int(trainer.global_step)}
    return path
