"""Vanishing gradients (the lecture's "computational problems", docs/optim_lab.md): per-layer gradient norms of
deep MLPs with sigmoid / tanh / ReLU activations, with and without BatchNorm, at initialization and after k SGD steps.

Measurement: :func:`lossland.callbacks.grad_norms.layer_grad_norms` (the same function as the training
metric ``grad_norm/<layer>``) on one fixed training mini-batch, for the Linear layers only (layer 1 = the
input layer, depth + 1 = the output layer). Training between the two measurements: k steps of the training
loop's ``sgd`` optimizer (conf/optimizer/sgd.yaml) on cross-entropy in the one training loop
(:class:`lossland.loop.Trainer`), mini-batches in the ``data`` stream's order of the seed.

The lecture's worked example, :func:`seed_example`: y = σ(σ(a + b) + σ(b·c)) at a = 9, b = 1, c = 100. With
σ' = σ(1 − σ) ≤ 1/4 and σ'(10) ≈ 4.5e-5, σ'(100) ≈ 3.7e-44, backpropagation gives ∂y/∂a = ∂y/∂b ≈ 4.8e-6 and
analytically ∂y/∂c = 0.105·b·σ'(100) ≈ 3.9e-45 — autograd returns exactly 0 there, since σ(100) rounds to 1 in
float64 and σ(1 − σ) is computed from it: ∇y ≈ (0, 0, 0), as the lecture says.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lossland.callbacks.grad_norms import layer_grad_norms
from lossland.config import CONFIG_DIR
from lossland.errors import LosslandError

__all__ = ["seed_example", "linear_grad_norms", "study", "study_command"]


def seed_example(a: float = 9.0, b: float = 1.0, c: float = 100.0, dtype=torch.float64) -> dict[str, float]:
    """y = σ(σ(a + b) + σ(b·c)) and its gradient by lossland's autograd: ``{"y", "dy_da", "dy_db", "dy_dc"}``."""
    a_, b_, c_ = (torch.tensor(v, dtype=dtype, requires_grad=True) for v in (a, b, c))
    y = torch.sigmoid(torch.sigmoid(a_ + b_) + torch.sigmoid(b_ * c_))
    ga, gb, gc = torch.autograd.grad(y, (a_, b_, c_))
    return {"y": y.item(), "dy_da": float(ga), "dy_db": float(gb), "dy_dc": float(gc)}


def linear_grad_norms(model: nn.Module, loss, batch) -> list[float]:
    """Gradient norms of the model's Linear layers, input layer first."""
    norms = layer_grad_norms(model, loss, batch)
    linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return [norms[n] for n in linear]


def _load(group: str, name: str, overrides=None):
    path = CONFIG_DIR / group / f"{name}.yaml"
    if not path.exists():
        valid = ", ".join(sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml")))
        raise LosslandError(f"unknown {group} {name!r}; valid: {valid}")
    node = OmegaConf.load(path)
    return OmegaConf.merge(node, overrides or {})


def study(dm, activations, depths, width: int = 64, batch_norms=(False, True), steps: int = 50, lr: float = 0.1,
          seed: int = 0, progress: bool = True) -> list[dict]:
    """Rows ``{activation, depth, batch_norm, when ("init" | "k"), step, layer, norm}`` for every net."""
    from tqdm.auto import tqdm

    from lossland.models.mlp import ACTIVATIONS

    for act in activations:
        if act not in ACTIVATIONS:
            raise LosslandError(f"unknown activation {act!r}; valid: {', '.join(sorted(ACTIVATIONS))}")
    if any(int(d) < 1 for d in depths) or width < 1 or steps < 0:
        raise LosslandError("vanishing needs depths ≥ 1, width ≥ 1 and steps ≥ 0")
    rows = []
    combos = [(a, int(d), bool(bn)) for a in activations for d in depths for bn in batch_norms]
    for act, depth, bn in tqdm(combos, desc="vanishing", disable=not progress):
        norms = train_and_measure(dm, act, depth, width, bn, steps, lr, seed)
        for when, step in (("init", 0), ("k", steps)):
            for i, n in enumerate(norms[step], start=1):
                rows.append({"activation": act, "depth": depth, "batch_norm": bn, "when": when, "step": step,
                             "layer": i, "norm": n})
    return rows


def train_and_measure(dm, activation: str, depth: int, width: int, batch_norm: bool, steps: int, lr: float,
                      seed: int) -> dict[int, list[float]]:
    """``{0: norms, steps: norms}``: the Linear layers' gradient norms (input layer first) of a fresh MLP at
    initialization and after ``steps`` steps of the training loop's ``sgd`` optimizer on cross-entropy
    (mini-batches in the ``data`` stream's order of ``seed``), measured by the training metric
    :class:`~lossland.callbacks.grad_norms.GradNorms` on one fixed training mini-batch."""
    from lossland.build import instantiate_node as build
    from lossland.callbacks import DueSteps
    from lossland.callbacks.grad_norms import GradNorms
    from lossland.data import TensorDataModule
    from lossland.loggers import RecordLogger
    from lossland.loop import Trainer
    from lossland.models import MLP
    from lossland.module import LandscapeModule
    from lossland.studies.optim.trajectories import make_optimizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP(dm.input_shape, dm.num_classes, hidden=[width] * depth, activation=activation,
                    batch_norm=batch_norm)
    data = TensorDataModule(batch_size=dm.batch_size, seed=seed)  # the same batch order for every net
    data.splits = dm.splits
    module = LandscapeModule(model, build(_load("loss", "ce"), "loss"),
                             optimizer=lambda params: make_optimizer("sgd", params, lr))
    records = RecordLogger(None)
    Trainer(max_steps=steps, enable_progress_bar=False, log_every_n_steps=max(1, steps), loggers=[records],
            callbacks=[GradNorms(DueSteps(at_start=True).bind(steps))]).fit(module, data)
    linear = [f"grad_norm/{n}" for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return {int(r["step"]): [r[k] for k in linear] for r in records.rows if linear[0] in r}


def study_command(cfg: DictConfig, out):
    """``lab.py task=vanishing``: the study on ``task.data`` → vanishing.csv, vanishing.json, vanishing.png and
    the lecture's worked example."""
    from lossland.build import instantiate_node as build
    from lossland.figures import save_figure
    from lossland.records import write_json, write_table
    from lossland.studies.optim.plots import vanishing_figure

    t = cfg.task
    dm = build(_load("data", str(t.data), t.get("data_args")), "data", seed=int(cfg.seed)).prepare()
    rows = study(dm, list(t.activations), list(t.depths), int(t.width), list(t.batch_norm), int(t.steps),
                 float(t.lr), int(cfg.seed), bool(cfg.progress))
    write_table(rows, out, "vanishing", spec=".3e")
    ex = seed_example()
    print(f"seed example y = σ(σ(a+b) + σ(b·c)) at a=9, b=1, c=100: y = {ex['y']:.6f}, "
          f"∇y = ({ex['dy_da']:.3e}, {ex['dy_db']:.3e}, {ex['dy_dc']:.3e})")
    first = {(r["activation"], r["depth"], r["batch_norm"], r["when"]): r["norm"] for r in rows if r["layer"] == 1}
    for (act, depth, bn, when), v in sorted(first.items()):
        if depth == max(t.depths):
            print(f"{act:>8} depth {depth:>2} BN {str(bn):>5} {when:>4}: first-layer grad norm {v:.3e}")
    files = [out / "vanishing.csv", out / "vanishing.md",
             write_json(out / "vanishing.json", {"rows": rows, "seed_example": ex, "steps": int(t.steps),
                                                 "width": int(t.width), "data": str(t.data)}),
             save_figure(vanishing_figure(rows, int(t.steps)), out / "vanishing.png")]
    return files
