"""The bilevel search (one ``nas.py`` job): W on L over the training split, Gamma and A on Q over the validation
split (docs/nas.md), as a training step (:class:`SearchModule`) and a callback (:class:`SearchRecord`) of the one
training loop.

    L(W, A, Gamma) = CE_train(W, Gamma) + e^A ||W||^2          (A: log weight decay, learned)
    Q(W, Gamma)    = CE_valid(W, Gamma) + lambda * R(Gamma)    (R: negative log Dirichlet prior, .prior)

A enters Q only through W, so its gradient is the hypergradient through one unrolled step
W' = W - xi * grad_W L(W, A, Gamma) (DARTS' second-order approximation; Maclaurin et al.):
dQ/dA = -xi * 2 e^A <grad_W' Q(W', Gamma), W>. With ``search.unrolled=true`` Gamma gets the unrolled gradient too
(grad_Gamma Q(W', Gamma), mixed second derivatives by double backward); with ``false`` the first-order one
grad_Gamma Q(W, Gamma), and A the same formula with W' ~ W.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lossland.batches import TensorBatches
from lossland.callbacks import DueSteps, PeriodicCallback
from lossland.losses import CrossEntropy
from lossland.metrics.gradients import evaluate
from lossland.module import LandscapeModule
from lossland.optim import Cosine
from lossland.studies.nas.prior import neg_log_prior
from lossland.studies.nas.supernet import Supernet

log = logging.getLogger("lossland.studies.nas")

__all__ = ["hypergradient", "unrolled_objective", "SearchModule", "SearchRecord", "entropy"]


def _split(model: Supernet):
    arch = {id(p) for p in model.arch_parameters()}
    names = [n for n, p in model.named_parameters() if id(p) not in arch]
    return names


def _train_loss(model, params, x, y, log_decay, wnames):
    out = functional_call(model, params, (x,))
    ce = F.cross_entropy(out, y)
    sq = sum((params[n] ** 2).sum() for n in wnames)
    return ce + torch.exp(log_decay) * sq, ce


def hypergradient(model: Supernet, log_decay: torch.Tensor, train_batch, val_batch, xi: float, lam: float,
                  alpha: float, unrolled: bool = True):
    """``(Q, dQ/dGamma (list, as model.arch_parameters()), dQ/dA, val logits)`` at the current W."""
    wnames = _split(model)
    params = dict(model.named_parameters())
    gammas = model.arch_parameters()
    w = [params[n] for n in wnames]
    if unrolled:
        loss, _ = _train_loss(model, params, *train_batch, log_decay, wnames)
        g = torch.autograd.grad(loss, w, create_graph=True)
        moved = dict(params)
        moved.update({n: p - xi * gi for n, p, gi in zip(wnames, w, g)})
        out = functional_call(model, moved, (val_batch[0],))
        q = F.cross_entropy(out, val_batch[1]) + lam * neg_log_prior(gammas, alpha)
        grads = torch.autograd.grad(q, [*gammas, log_decay], allow_unused=True)
        g_gamma, g_a = list(grads[:-1]), grads[-1]
        if g_a is None:
            g_a = torch.zeros_like(log_decay)
        return q.detach(), [gg.detach() for gg in g_gamma], g_a.detach(), out.detach()
    out = model(val_batch[0])
    q = F.cross_entropy(out, val_batch[1]) + lam * neg_log_prior(gammas, alpha)
    grads = torch.autograd.grad(q, [*gammas, *w], allow_unused=True)
    g_gamma = list(grads[:len(gammas)])
    inner = sum((gw * p).sum() for gw, p in zip(grads[len(gammas):], w) if gw is not None)
    g_a = -xi * 2.0 * torch.exp(log_decay) * inner
    return q.detach(), [gg.detach() for gg in g_gamma], g_a.detach(), out.detach()


def unrolled_objective(model: Supernet, log_decay, train_batch, val_batch, xi, lam, alpha) -> torch.Tensor:
    """Q(W - xi grad_W L(W, A, Gamma), Gamma) (for checking :func:`hypergradient` by finite differences)."""
    wnames = _split(model)
    params = dict(model.named_parameters())
    w = [params[n] for n in wnames]
    with torch.enable_grad():
        loss, _ = _train_loss(model, params, *train_batch, log_decay, wnames)
        g = torch.autograd.grad(loss, w)
    moved = dict(params)
    moved.update({n: (p - xi * gi).detach() for n, p, gi in zip(wnames, w, g)})
    with torch.no_grad():
        out = functional_call(model, moved, (val_batch[0],))
        return F.cross_entropy(out, val_batch[1]) + lam * neg_log_prior(model.arch_parameters(), alpha)


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of every row of a mixture (edges, ops)."""
    return -(p * torch.log(p.clamp_min(1e-45))).sum(-1)


def accuracy(model, x, y, batch: int = 1000) -> float:
    """Test accuracy with BN in eval mode: 1 − the error of the one evaluator,
    :func:`lossland.metrics.gradients.evaluate`."""
    return 1.0 - evaluate(model, CrossEntropy(), TensorBatches(x, y, batch), mode="eval")["error"]


class SearchModule(LandscapeModule):
    """The bilevel search as the training step of the one loop (:class:`lossland.loop.Trainer`): every step
    first moves Gamma and A by one Adam step on Q over a validation batch (:func:`hypergradient`), then returns L
    for the loop's weight step (SGD with momentum on W, a cosine rate from ``search.w_lr`` to ``search.w_lr_min``,
    gradients clipped at ``search.grad_clip``: the trainer's options). The search has diverged when L or Q is
    non-finite, or L exceeds ``search.max_loss``.

    ``val``: the validation split; its batches are drawn, once per epoch, from ``order_generator`` (the data
    module's order stream, right after the epoch's training order). ``prior``: a
    :class:`~lossland.studies.nas.prior.DirichletPrior`."""

    def __init__(self, model: Supernet, val: tuple[torch.Tensor, torch.Tensor], s, prior, steps_per_epoch: int,
                 order_generator: torch.Generator):
        rate = Cosine(float(s.w_lr), float(s.w_lr_min), int(s.epochs) * steps_per_epoch)
        super().__init__(model, CrossEntropy(), optimizer=None, schedule=rate,
                         max_loss=None if s.get("max_loss") is None else float(s.max_loss))
        self.s, self.val, self.steps_per_epoch, self.order_generator = s, val, steps_per_epoch, order_generator
        self.alpha = prior.schedule(int(s.epochs))
        self.lam = float(prior.strength)
        self.xi = float(s.xi) if s.get("xi") is not None else float(s.w_lr)
        self.log_decay = nn.Parameter(torch.tensor(float(s.log_decay_init)))
        self.arch_optimizer = None
        self.val_order: torch.Tensor | None = None
        self.last: dict = {}  # the last step's values, for the records (:class:`SearchRecord`)

    def configure_optimizers(self):
        """W's optimizer (the loop's); Gamma and A get their own Adam, stepped inside :meth:`training_step`."""
        s = self.s
        self.arch_optimizer = torch.optim.Adam([{"params": self.model.arch_parameters(), "lr": float(s.arch_lr)},
                                                {"params": [self.log_decay], "lr": float(s.decay_lr)}],
                                               betas=tuple(s.arch_betas))
        return torch.optim.SGD(self.model.weights(), lr=float(s.w_lr), momentum=float(s.w_momentum))

    def val_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        xv, yv = self.val
        i = step % self.steps_per_epoch
        if i == 0 or self.val_order is None:
            self.val_order = torch.randperm(len(xv), generator=self.order_generator).to(xv.device)
        vb = min(int(self.s.batch_size), len(xv))
        j = (i * vb) % max(1, len(xv) - vb + 1)
        idx = self.val_order[j:j + vb]
        return xv[idx], yv[idx]

    def training_step(self, batch, step: int):
        x, y = batch
        xv, yv = self.val_batch(step)
        alpha = self.alpha(step // self.steps_per_epoch)
        q, g_gamma, g_a, vout = hypergradient(self.model, self.log_decay, (x, y), (xv, yv), self.xi, self.lam, alpha,
                                              bool(self.s.unrolled))
        self.arch_optimizer.zero_grad(set_to_none=True)
        for p, g in zip(self.model.arch_parameters(), g_gamma):
            p.grad = g
        self.log_decay.grad = g_a.reshape(())
        self.arch_optimizer.step()
        out = self.model(x)
        ce = F.cross_entropy(out, y)
        loss = ce + torch.exp(self.log_decay.detach()) * sum((p ** 2).sum() for p in self.model.weights())
        self.last = {"alpha": alpha, "q": q, "g_gamma": g_gamma, "vout": vout, "yv": yv, "out": out.detach(), "y": y,
                     "ce": ce.detach(), "loss": loss.detach()}
        return loss, loss, out

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["lossland"]["search"] = {"arch_optimizer": self.arch_optimizer.state_dict()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.arch_optimizer.load_state_dict(checkpoint["lossland"]["search"]["arch_optimizer"])

    def is_bad(self, loss: torch.Tensor) -> bool:
        return super().is_bad(loss) or not bool(torch.isfinite(self.last["q"]))


class SearchRecord(PeriodicCallback):
    """The search's records: at step 0, every ``search.log_every`` steps and at every epoch end, one row (the
    structure softmax(gamma) and entropy of every edge, alpha, A, the last step's losses, accuracy and
    hypergradient norms split into the prior's part and the data's; at epoch ends validation and test accuracy)
    sent to the job's ``loggers`` and kept in ``history``."""

    def __init__(self, loggers: list, steps_per_epoch: int, epochs: int, log_every: int, test=None):
        total = steps_per_epoch * epochs
        super().__init__(DueSteps(max(1, int(log_every)), extra=range(steps_per_epoch, total + 1, steps_per_epoch))
                         .bind(total))
        self.loggers, self.steps_per_epoch, self.test = loggers, steps_per_epoch, test
        self.history: list[dict] = []

    def run_at(self, trainer, module, step):
        epoch = step // self.steps_per_epoch
        if step == 0:
            metrics = {"alpha": module.alpha(0), "log_decay": module.log_decay.item()}
        else:
            metrics = step_metrics(module, step)
        if step and step % self.steps_per_epoch == 0:
            metrics["val_acc"] = accuracy(module.model, *module.val)
            if self.test is not None:
                metrics["test_acc"] = accuracy(module.model, *self.test)
        row = self.row(module.model, step, epoch, **metrics)
        for lg in self.loggers:
            lg.log_metrics(row, step)
        if "val_acc" in metrics:
            log.info("epoch %d alpha=%.3g val_acc=%.4f entropy=%.3f", epoch, metrics["alpha"], metrics["val_acc"],
                     row["entropy_mean"])

    def state_dict(self) -> dict:
        return {**super().state_dict(), "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.history = list(state.get("history") or [])

    def row(self, model: Supernet, step: int, epoch: int, **metrics) -> dict:
        mix = {k: v.detach().cpu() for k, v in model.mixture().items()}
        r = {"epoch": epoch, **metrics}
        for kind, p in mix.items():
            ent = entropy(p)
            for e in range(p.shape[0]):
                r[f"entropy/{kind}/e{e}"] = float(ent[e])
                for k, name in enumerate(model.op_names):
                    r[f"mix/{kind}/e{e}/{name}"] = float(p[e, k])
        r["entropy_mean"] = float(torch.cat([entropy(p) for p in mix.values()]).mean())
        r["max_prob_mean"] = float(torch.cat([p.max(-1).values for p in mix.values()]).mean())
        self.history.append({"step": step, **r})
        return r


def step_metrics(module: SearchModule, step: int) -> dict:
    """The last step's values: losses, accuracy, Q, A, the rate, and the norm of dQ/dGamma split into the
    prior's part (closed form: dR/dgamma = (1 - alpha)(1 - K p)) and the data's, per edge too."""
    last, model = module.last, module.model
    alpha, g_gamma = last["alpha"], last["g_gamma"]
    with torch.no_grad():
        g_prior = [module.lam * (1 - alpha) * (1 - p.shape[-1] * p) for p in model.mixture().values()]
    metrics = {}
    for kind, g, gp in zip(model.kinds, g_gamma, g_prior):
        for e, (v, c) in enumerate(zip(g.norm(dim=-1).tolist(), (g - gp).norm(dim=-1).tolist())):
            metrics[f"grad/{kind}/e{e}"] = v
            metrics[f"cegrad/{kind}/e{e}"] = c
    return dict(metrics, alpha=alpha, log_decay=module.log_decay.item(), train_loss=last["loss"].item(),
                train_ce=last["ce"].item(), train_acc=(last["out"].argmax(-1) == last["y"]).float().mean().item(),
                val_q=float(last["q"]), val_ce_batch=float(F.cross_entropy(last["vout"], last["yv"])),
                gamma_grad_norm=math.sqrt(sum(float((g ** 2).sum()) for g in g_gamma)),
                prior_grad_norm=math.sqrt(sum(float((g ** 2).sum()) for g in g_prior)),
                ce_grad_norm=math.sqrt(sum(float(((g - gp) ** 2).sum()) for g, gp in zip(g_gamma, g_prior))),
                lr=module.schedule(step))


def face_dwell(hist: list[dict], tol: float = 0.05) -> dict:
    """How long the edges' mixtures sat at the centre of a face of the simplex (uniform over m of the K
    operations, 2 <= m < K, the rest ~0): stationary points of the prior's kernel sum_k log p_k restricted to
    the face, where a symmetric search lingers. ``{"share": fraction of logged (edge, step) pairs at a face
    centre (within ``tol`` per entry), "by_m": {m: share}}``."""
    edges = sorted({k.rsplit("/", 1)[0] for k in hist[0] if k.startswith("mix/")})
    total, by_m = 0, {}
    for r in hist:
        for e in edges:
            p = sorted((v for k, v in r.items() if k.startswith(e + "/")), reverse=True)
            total += 1
            for m in range(2, len(p)):
                if all(abs(x - 1 / m) < tol for x in p[:m]) and sum(p[m:]) < tol:
                    by_m[m] = by_m.get(m, 0) + 1
                    break
    total = max(1, total)
    return {"share": sum(by_m.values()) / total, "by_m": {m: c / total for m, c in sorted(by_m.items())}}
