"""Which grids stack, and the stacked optimizer step of all members at once.

Members are stacked along a new leading dimension (``torch.func.stack_module_state``); one step is a
``vmap`` of the members' forward passes (``functional_call``; MLPs: batched matrix products,
:mod:`lossland.sweep.vectorized.fast`) and one backward pass (the batch is shared when the members share the data order,
i.e. the seed), then each member's update: SGD (momentum, Nesterov, weight decay) and Adam / AdamW by
:mod:`lossland.optim.stacked`; sphere SGD as ``θ_i ← θ_i − lr_i·g_i``, then ``θ_i ← ρ0_i·θ_i/‖θ_i‖`` per member and
sphere.
A member that has stopped (diverged, or stopped by a callback) keeps its weights bit for bit.
"""

from __future__ import annotations

import copy
import math

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from lossland.errors import LosslandError
from lossland.optim import SphereSGD
from lossland.optim.stacked import stacked_rule
from lossland.regularizers import ExpNeuronPenalty, NoRegularizer, Sum, WeightDecay
from lossland.sweep.vectorized.fast import stacked_mlp

# Keys members may differ in; everything else must be equal.
FREE = ("seed", "elr", "lr", "out_dir", "regularizer.coef", "optimizer.lr", "optimizer.elr", "optimizer.momentum",
        "optimizer.dampening", "optimizer.weight_decay", "optimizer.betas", "optimizer.eps", "schedule.*",
        "augment.lam", "augment.penalty.lam")
FREE_PREFIXES = tuple(f[:-1] for f in FREE if f.endswith("*"))
STACKED_OPTIMIZERS = ("torch.optim.SGD", "torch.optim.Adam", "torch.optim.AdamW", "lossland.optim.SphereSGD")


def free(key: str) -> bool:
    return key in FREE or key.startswith(FREE_PREFIXES)


def _flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def flats(cfg: DictConfig, resolved: dict | None = None, raw: dict | None = None) -> tuple[dict, dict]:
    """The config as flat dicts of dotted keys: (resolved, as written); ``resolved`` / ``raw``: the config
    already turned into a container, resolved / as written."""
    return _flat(resolved if resolved is not None else OmegaConf.to_container(cfg, resolve=True)), \
        _flat(raw if raw is not None else OmegaConf.to_container(cfg))


def check_stackable(cfgs: list[DictConfig], flat: list[tuple[dict, dict]] | None = None) -> None:
    """Refuse (one line naming the first differing key) members that differ in anything but :data:`FREE`;
    values that follow from them (e.g. a schedule's ``${elr}``) may differ too. ``flat``: each config's
    :func:`flats`, if already made."""
    flat = flat or [flats(c) for c in cfgs]
    first, first_raw = flat[0]
    for other, raw in flat[1:]:
        for key in sorted(set(first) | set(other)):
            if free(key) or first.get(key) == other.get(key):
                continue
            derived = raw.get(key) == first_raw.get(key) and "${" in str(raw.get(key))  # e.g. ${elr}
            if not derived:
                raise LosslandError(
                    f"grid=vectorized: the jobs differ in {key} ({first.get(key)} vs {other.get(key)}); only "
                    "seed, rates, regularizer.coef, optimizer and schedule values may differ within a stack")
    if cfgs[0].get("init_from") and str(cfgs[0].get("init_state", "weights")) == "continue":
        raise LosslandError("grid=vectorized: init_state=continue does not stack (the stacked optimizer starts from "
                            "an empty state; run with hydra/launcher=basic)")
    opt = cfgs[0].optimizer
    target = str(opt._target_)
    if target not in STACKED_OPTIMIZERS:
        raise LosslandError(f"grid=vectorized: optimizer {target} does not stack (optimizer=sgd, momentum, nesterov, "
                            "adam or sphere_sgd; run without grid=vectorized)")
    for key in ("amsgrad", "maximize"):
        if opt.get(key):
            raise LosslandError(f"grid=vectorized: optimizer.{key}=true does not stack (run without grid=vectorized)")
    if target == "lossland.optim.SphereSGD" and opt.get("direction", "gradient") == "random":
        raise LosslandError("grid=vectorized: optimizer.direction=random does not stack (gradient or ascent)")
    augment = cfgs[0].get("augment") or {}
    for key, ok in (("model", "lossland.models.ExpNeuron"), ("penalty", "lossland.regularizers.ExpNeuronPenalty")):
        node = augment.get(key)
        if node is not None and str(node.get("_target_")) != ok:
            raise LosslandError(f"grid=vectorized: augment.{key}={node.get('_target_')} does not stack "
                                "(augment=none or exp_neuron)")
    reg = str(cfgs[0].regularizer.get("_target_", ""))
    if reg not in ("lossland.regularizers.NoRegularizer", "lossland.regularizers.WeightDecay"):
        raise LosslandError(f"grid=vectorized: regularizer {reg} does not stack (regularizer=none or weight_decay)")
    trainer = cfgs[0].trainer
    if trainer.get("gradient_clip_val") is not None:
        raise LosslandError("grid=vectorized: trainer.gradient_clip_val does not stack (run without grid=vectorized)")
    if str(trainer.get("devices", 1)) != "1" or str(trainer.get("precision", "32-true")) not in ("32-true", "32"):
        raise LosslandError("grid=vectorized: one device in fp32 only (trainer.devices=1, trainer.precision=32-true)")


def penalty_terms(regs: list, model: nn.Module, names: list[str], ndim: dict[str, int]):
    """The members' regularizers as quadratic terms ``½·cᵢ·Σ_{n ∈ names} ‖θᵢ,ₙ‖²``: (the parameter names of each
    term, the coefficients (members, terms)). Weight decay (``regularizer=weight_decay``) and the exponential
    neuron's λa²/2 stack; any other regularizer is refused."""
    exp = [f"{m}.a" if m else "a" for m, mod in model.named_modules() if getattr(mod, "is_exp_neuron", False)]
    kinds = {"wd": None, "exp": exp}
    rows = []
    for r in regs:
        parts = {"wd": 0.0, "exp": 0.0}
        for term in (list(r.terms) if isinstance(r, Sum) else [r]):
            if term is None or isinstance(term, NoRegularizer):
                continue
            if isinstance(term, WeightDecay):
                parts["wd"] = float(term.coef)
                kinds["wd"] = [n for n in names if term.include_bias or ndim[n] > 1]
            elif isinstance(term, ExpNeuronPenalty):
                parts["exp"] = float(term.lam)
            else:
                raise LosslandError(f"grid=vectorized: the regularizer {type(term).__name__} does not stack "
                                    "(regularizer=none or weight_decay; the exponential neuron's penalty)")
        rows.append(parts)
    used = [k for k in kinds if kinds[k] and any(row[k] for row in rows)]
    coef = torch.tensor([[row[k] for k in used] for row in rows]).reshape(len(rows), len(used))
    return [kinds[k] for k in used], coef


def check_model(model: nn.Module) -> None:
    """Refuse models whose forward draws randomness (dropout): the members would share one stream."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            raise LosslandError(f"grid=vectorized: the model has dropout ({name or 'model'}, p={m.p}), which "
                                "does not stack (set model.dropout=0 or run without grid=vectorized)")


class Stack:
    """The members' models stacked, and the step that trains them all.

    ``modules``: each member's :class:`~lossland.module.LandscapeModule`; ``optimizers``: each member's
    optimizer (for ρ0 and its recorded statistics)."""

    def __init__(self, modules: list, optimizers: list):
        self.modules, self.optimizers = modules, optimizers
        models = [m.model for m in modules]
        self.model0 = copy.deepcopy(models[0]).to("meta")
        names = [n for n, p in models[0].named_parameters() if p.requires_grad]
        params, buffers = stack_module_state(models)
        self.params = {n: params[n].detach().clone().requires_grad_() for n in names}
        self.frozen = {n: v.detach().clone() for n, v in params.items() if n not in self.params}
        self.buffers = {n: v.clone() for n, v in buffers.items()}
        self.names = names
        self.sphere = isinstance(optimizers[0], SphereSGD)
        self.loss = modules[0].loss
        self.max_loss = modules[0].max_loss
        self.terms, self.coef = penalty_terms([m.regularizer for m in modules], models[0], names,
                                              {n: self.params[n].ndim - 1 for n in names})
        self.alive = torch.ones(len(models), dtype=torch.bool)  # per stacked row
        self.rows = list(range(len(models)))  # the member in each stacked row (stopped members are dropped)
        member_params = [dict(m.named_parameters()) for m in models]
        self.member_params = [[mp[n] for n in names] for mp in member_params]
        self.member_buffers = [dict(m.named_buffers()) for m in models]
        if self.sphere:
            self.mode = optimizers[0].mode
            self.sign = 1.0 if optimizers[0].direction == "ascent" else -1.0
            # ρ0 of each member and parameter, broadcastable against the stacked tensor
            self.rho = {n: torch.stack([opt.state[mp[n]]["rho0"].detach() for opt, mp in
                                        zip(optimizers, member_params)]) for n in names}
        self.rule = None if self.sphere else stacked_rule(optimizers, self.params)
        self.fast = stacked_mlp(models[0]) if not self.buffers else None
        # plain SGD of an MLP whose backward pass the fast path computes: the backward pass and the update in one
        # (forward_backward(fuse=True))
        self.fusable = getattr(self.fast, "manual", False) and getattr(self.rule, "plain", False) and \
            not self.terms and not self.frozen
        self._pending: torch.Tensor | None = None  # ∂ΣL/∂output of the forward pass whose update is pending
        self._forward = vmap(self._objective, in_dims=(0, 0, 0, None, None, 0))
        self._forward_own = vmap(self._objective, in_dims=(0, 0, 0, 0, 0, 0))

    def _objective(self, params, frozen, buffers, x, y, coef):
        out = functional_call(self.model0, ({**params, **frozen}, buffers), (x,))
        loss = self.loss(out, y)
        total = loss
        for t, names in enumerate(self.terms):  # coef: this member's (T,)
            total = total + 0.5 * coef[t] * sum(params[n].pow(2).sum() for n in names)
        return total, loss, out

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor, shared: bool, fuse: bool = False):
        """Gradients, losses (M,) and outputs (M, B, ...) of every member on its batch (``shared``: one batch
        for all, else ``x``/``y`` have a leading member dimension). The members are independent, so the
        gradient of the sum of their objectives is each member's own gradient in its slice (one backward
        pass; faster than ``vmap(grad(...))``). ``fuse`` (where :attr:`fusable`): the gradients are None and
        :meth:`update` computes them and takes the step in one backward pass."""
        if getattr(self.fast, "manual", False):
            return self._chain_rule(x, y, shared, fuse and self.fusable)
        if self.fast is not None:
            out = self.fast(self.params, x, shared)
            m = out.shape[0]
            per = self.loss.per_sample(out.flatten(0, 1), y.repeat(m) if shared else y.flatten())
            loss = per.reshape(m, -1).mean(1)
            total = loss
            for t, names in enumerate(self.terms):
                sq = sum(self.params[n].reshape(m, -1).square().sum(1) for n in names)
                total = total + 0.5 * self.coef[:, t] * sq
        else:
            f = self._forward if shared else self._forward_own
            total, loss, out = f(self.params, self.frozen, self.buffers, x, y, self.coef)
        grads = torch.autograd.grad(total.sum(), [self.params[n] for n in self.names])
        return dict(zip(self.names, grads)), (loss.detach(), out.detach())

    def _chain_rule(self, x: torch.Tensor, y: torch.Tensor, shared: bool, fuse: bool = False):
        """:meth:`forward_backward` of an MLP whose backward pass the fast path computes itself
        (:class:`~lossland.sweep.vectorized.fast.StackedMLP`), from the loss's own closed-form gradient (autograd from
        the loss to the outputs where it has none). ``fuse``: keep that gradient for :meth:`update`'s step."""
        with torch.no_grad():
            out = self.fast(self.params, x, shared, save=True)
        m, b = out.shape[:2]
        target = y.expand(m, b).reshape(-1) if shared else y.flatten()
        closed = self.loss.per_sample_and_grad(out.flatten(0, 1), target)
        if closed is not None:  # ∂(mean over the batch)/∂output
            loss, d = closed[0].reshape(m, b).mean(1), closed[1].reshape(out.shape) / b
        else:
            out.requires_grad_()
            loss = self.loss.per_sample(out.flatten(0, 1), target).reshape(m, b).mean(1)
            (d,) = torch.autograd.grad(loss.sum(), out)
        if fuse:
            self._pending = d
            return None, (loss.detach(), out.detach())
        grads = self.fast.backward(self.params, d)
        for t, names in enumerate(self.terms):  # ½·c·‖θ‖² adds c·θ
            for n in names:
                p = self.params[n]
                grads[n] = grads[n] + _b(self.coef[:, t].to(p.dtype), p) * p.detach()
        return {n: grads[n] for n in self.names}, (loss.detach(), out.detach())

    def row(self, i: int) -> int:
        """The stacked row of member ``i``."""
        return self.rows.index(i)

    def members_of(self, rows: torch.Tensor) -> list[int]:
        return [self.rows[k] for k in rows.tolist()]

    @torch.no_grad()
    def compact(self) -> None:
        """Drop the rows of stopped members (already synced into their own models) so that the following
        steps compute only the members still training."""
        if bool(self.alive.all()):
            return
        keep = self.alive.nonzero().flatten()
        self.params = {n: v[keep].detach().clone().requires_grad_() for n, v in self.params.items()}
        for d in (self.frozen, self.buffers) + ((self.rho,) if self.sphere else ()):
            for n in d:
                d[n] = d[n][keep]
        self.coef = self.coef[keep]
        self.rows = [self.rows[k] for k in keep.tolist()]
        if self.rule is not None:
            self.rule.keep(keep, self.rows)
        self.alive = torch.ones(len(self.rows), dtype=torch.bool)

    def bad(self, loss: torch.Tensor) -> torch.Tensor | None:
        """Members whose loss is non-finite or above ``max_loss`` (the sequential loop's test); None when there
        are none (one reduction per step: ``min``/``max`` carry any NaN or ±inf)."""
        low, high = (float(v) for v in torch.aminmax(loss))
        if math.isfinite(low) and math.isfinite(high) and (self.max_loss is None or high <= self.max_loss):
            return None
        bad = ~torch.isfinite(loss)
        if self.max_loss is not None:
            bad |= loss > self.max_loss
        return bad

    @torch.no_grad()
    def update(self, grads: dict | None, r: torch.Tensor) -> None:
        """One optimizer step of every member still alive; ``r``: each member's lr (sphere SGD: elr), (M,) over
        all members or over the stacked rows. ``grads`` None: the step of ``forward_backward(fuse=True)``.
        Members that left keep their weights (and optimizer state) bit for bit."""
        if len(self.rows) != r.shape[0]:
            r = r[self.rows]
        dead = None if bool(self.alive.all()) else (~self.alive).nonzero().flatten()
        if self.rule is not None:
            saved = None
            if dead is not None:
                saved = ({n: self.params[n][dead].clone() for n in self.names}, self.rule.snapshot(dead))
            if grads is None:
                d, self._pending = self._pending, None
                self.fast.sgd_step(self.params, d * _b(r.to(d.dtype), d))
                self.rule.steps += 1
            else:
                self.rule.step(self.params, grads, r.tolist())
            if saved is not None:
                for n, v in saved[0].items():
                    self.params[n][dead] = v
                self.rule.restore(dead, saved[1])
            return
        for n in self.names:  # sphere SGD: lr = elr·ρ0² per member and sphere
            p, g = self.params[n], grads[n]
            if dead is not None:
                g = torch.where(_b(self.alive, g), g, torch.zeros_like(g))
            p.add_(g * _b(r, g) * _b(self.rho[n], g).square(), alpha=self.sign)
        self._retract()

    def _retract(self) -> None:
        factors = {}
        if self.mode == "whole":
            norm = torch.stack([self.params[n].flatten(1).square().sum(1) for n in self.names]).sum(0).sqrt()
            f = self.rho[self.names[0]] / norm
            factors = {n: f for n in self.names}
        else:
            for n in self.names:
                p = self.params[n]
                if self.mode == "per_filter" and p.ndim >= 3:
                    factors[n] = self.rho[n] / torch.linalg.vector_norm(p.flatten(2), dim=2)
                else:
                    factors[n] = self.rho[n] / torch.linalg.vector_norm(p.flatten(1), dim=1)
        for n in self.names:
            f = factors[n]
            f = torch.where(_b(self.alive, f), f, torch.ones_like(f))
            self.params[n].mul_(_b(f, self.params[n]))

    def grad_stats(self, grads: dict, i: int) -> dict:
        """What member ``i``'s sphere optimizer records of its last step (``last_stats``)."""
        i = self.row(i)
        gnorms = [torch.linalg.vector_norm(grads[n][i]) for n in self.names]
        if self.mode == "whole":
            dirs = torch.linalg.vector_norm(torch.stack(gnorms)).reshape(1)
        elif self.mode == "per_layer":
            dirs = torch.stack(gnorms)
        else:
            dirs = torch.cat([torch.linalg.vector_norm(grads[n][i].flatten(1), dim=1) if grads[n].ndim >= 3
                              else gnorms[k].reshape(1) for k, n in enumerate(self.names)])
        return {"grad_sq": torch.stack(gnorms).square().sum(), "dir_norms": dirs}

    @torch.no_grad()
    def sync(self, i: int) -> None:
        """Copy member ``i``'s stacked weights and buffers into its own model (before its callbacks,
        records and checkpoints read them)."""
        k = self.row(i)
        for n, p in zip(self.names, self.member_params[i]):
            p.copy_(self.params[n][k])
        if self.rule is not None:
            self.rule.export(k, self.optimizers[i], self.member_params[i], self.names)
        for n, b in self.member_buffers[i].items():
            b.copy_(self.buffers[n][k])


def _b(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``v`` (member dimension first) reshaped to broadcast against ``like``."""
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim))
