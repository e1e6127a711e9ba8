"""The bilevel search (one ``nas.py`` job): W on L over the training split, Gamma and A on Q over the validation
split (docs/nas.md).

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
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call

from lossland.errors import LosslandError
from lossland.studies.nas.prior import alpha_schedule, neg_log_prior
from lossland.studies.nas.supernet import Supernet

log = logging.getLogger("lossland.studies.nas")

__all__ = ["hypergradient", "unrolled_objective", "Search", "entropy"]


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


@torch.no_grad()
def accuracy(model, x, y, batch: int = 1000) -> float:
    was = model.training
    model.eval()
    correct = sum((model(x[i:i + batch]).argmax(-1) == y[i:i + batch]).sum().item() for i in range(0, len(x), batch))
    model.train(was)
    return correct / max(1, len(x))


class Search:
    """One search: ``run(loggers) -> summary dict`` (the caller writes the records)."""

    def __init__(self, model: Supernet, splits: dict, s, prior, seed: int, device: str = "cpu"):
        self.model, self.s, self.prior, self.device = model.to(device), s, prior, device
        if "val" not in splits or len(splits["val"][0]) == 0:
            raise LosslandError("the search needs a validation split for Gamma and A: data.val_size is 0; "
                                "set data.val_size=<n> > 0")
        self.train, self.val = splits["train"], splits["val"]
        self.test = splits.get("test")
        self.epochs = int(s.epochs)
        self.alpha = alpha_schedule(prior.alpha, prior.alpha if prior.get("alpha_end") is None else prior.alpha_end,
                                    self.epochs)
        self.lam = float(prior.strength)
        self.batch = int(s.batch_size)
        self.log_decay = torch.tensor(float(s.log_decay_init), device=device, requires_grad=True)
        self.w_opt = torch.optim.SGD(model.weights(), lr=float(s.w_lr), momentum=float(s.w_momentum))
        self.a_opt = torch.optim.Adam([{"params": model.arch_parameters(), "lr": float(s.arch_lr)},
                                       {"params": [self.log_decay], "lr": float(s.decay_lr)}],
                                      betas=tuple(s.arch_betas))
        self.gen = torch.Generator().manual_seed(int(seed))
        self.steps_per_epoch = max(1, len(self.train[0]) // self.batch)
        self.total = self.epochs * self.steps_per_epoch
        self.xi = float(s.xi) if s.get("xi") is not None else float(s.w_lr)
        self.history: list[dict] = []  # one row per logged step: step, epoch, mixture, entropy, grad norms

    def _lr(self, step):
        lo, hi = float(self.s.w_lr_min), float(self.s.w_lr)
        return lo + 0.5 * (hi - lo) * (1 + math.cos(math.pi * step / max(1, self.total)))

    def row(self, step, epoch, **metrics) -> dict:
        mix = {k: v.detach().cpu() for k, v in self.model.mixture().items()}
        r = {"epoch": epoch, **metrics}
        for kind, p in mix.items():
            ent = entropy(p)
            for e in range(p.shape[0]):
                r[f"entropy/{kind}/e{e}"] = float(ent[e])
                for k, name in enumerate(self.model.op_names):
                    r[f"mix/{kind}/e{e}/{name}"] = float(p[e, k])
        r["entropy_mean"] = float(torch.cat([entropy(p) for p in mix.values()]).mean())
        r["max_prob_mean"] = float(torch.cat([p.max(-1).values for p in mix.values()]).mean())
        self.history.append({"step": step, **r})
        return r

    def run(self, log_metrics) -> dict:
        model, s = self.model, self.s
        model.train()
        xv_all, yv_all = self.val
        log_every = max(1, int(s.log_every))
        step, status, t0 = 0, "ok", time.perf_counter()
        log_metrics(self.row(0, 0, alpha=self.alpha(0), log_decay=self.log_decay.item()), 0)
        for epoch in range(self.epochs):
            alpha = self.alpha(epoch)
            order = torch.randperm(len(self.train[0]), generator=self.gen)
            vorder = torch.randperm(len(xv_all), generator=self.gen)
            vb = min(self.batch, len(xv_all))
            for i in range(self.steps_per_epoch):
                idx = order[i * self.batch:(i + 1) * self.batch].to(self.device)
                xt, yt = self.train[0][idx], self.train[1][idx]
                j = (i * vb) % max(1, len(xv_all) - vb + 1)
                vidx = vorder[j:j + vb].to(self.device)
                xv, yv = xv_all[vidx], yv_all[vidx]
                for g in self.w_opt.param_groups:
                    g["lr"] = self._lr(step)
                # structure and log-decay step on Q (validation)
                q, g_gamma, g_a, vout = hypergradient(model, self.log_decay, (xt, yt), (xv, yv), self.xi, self.lam,
                                                      alpha, bool(s.unrolled))
                self.a_opt.zero_grad(set_to_none=True)
                for p, g in zip(model.arch_parameters(), g_gamma):
                    p.grad = g
                self.log_decay.grad = g_a.reshape(())
                self.a_opt.step()
                # weight step on L (training)
                self.w_opt.zero_grad(set_to_none=True)
                out = model(xt)
                ce = F.cross_entropy(out, yt)
                loss = ce + torch.exp(self.log_decay.detach()) * sum((p ** 2).sum() for p in model.weights())
                too_big = s.get("max_loss") is not None and loss.item() > float(s.max_loss)
                if not torch.isfinite(loss) or not torch.isfinite(q) or too_big:
                    status = "diverged"
                    log.warning("search diverged at step %d (loss %s, Q %s)", step + 1, loss.item(), q.item())
                    break
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.weights(), float(s.grad_clip))
                self.w_opt.step()
                step += 1
                if step % log_every == 0 or i == self.steps_per_epoch - 1:
                    metrics_edges = {}
                    with torch.no_grad():  # dR/dgamma = (1 - alpha)(1 - K p): the prior's part, in closed form
                        g_prior = [self.lam * (1 - alpha) * (1 - p.shape[-1] * p) for p in model.mixture().values()]
                    prior_grad = math.sqrt(sum(float((g ** 2).sum()) for g in g_prior))
                    gnorm = math.sqrt(sum(float((g ** 2).sum()) for g in g_gamma))
                    ce_grad = math.sqrt(sum(float(((g - gp) ** 2).sum()) for g, gp in zip(g_gamma, g_prior)))
                    for kind, g, gp in zip(model.kinds, g_gamma, g_prior):
                        for e, (v, c) in enumerate(zip(g.norm(dim=-1).tolist(), (g - gp).norm(dim=-1).tolist())):
                            metrics_edges[f"grad/{kind}/e{e}"] = v
                            metrics_edges[f"cegrad/{kind}/e{e}"] = c
                    metrics = dict(metrics_edges, alpha=alpha, log_decay=self.log_decay.item(), train_loss=loss.item(),
                                   train_ce=ce.item(), train_acc=(out.argmax(-1) == yt).float().mean().item(),
                                   val_q=float(q), val_ce_batch=float(F.cross_entropy(vout, yv)),
                                   gamma_grad_norm=gnorm, prior_grad_norm=prior_grad, ce_grad_norm=ce_grad,
                                   lr=self._lr(step))
                    if i == self.steps_per_epoch - 1:
                        metrics["val_acc"] = accuracy(model, xv_all, yv_all)
                        if self.test is not None:
                            metrics["test_acc"] = accuracy(model, *self.test)
                    log_metrics(self.row(step, epoch + 1 if i == self.steps_per_epoch - 1 else epoch, **metrics),
                                step)
            if status != "ok":
                break
            log.info("epoch %d/%d alpha=%.3g val_acc=%.4f entropy=%.3f", epoch + 1, self.epochs, alpha,
                     self.history[-1].get("val_acc", float("nan")), self.history[-1]["entropy_mean"])
        return {"status": status, "steps": step, "epochs": self.history[-1]["epoch"],
                "search_wall_s": time.perf_counter() - t0, "log_decay": self.log_decay.item()}


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
