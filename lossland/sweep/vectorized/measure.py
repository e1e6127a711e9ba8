"""A grid's evaluations of all members at once, through the stacked forward pass
(:func:`lossland.sweep.vectorized.fast.stacked_mlp`): the phase metrics due at a step
(:class:`lossland.callbacks.PhaseMetrics`: GM, mean-gradient norm, training and test loss / error, cosines) and
the final full-pass evaluation of every split. Each member's numbers are those its own model gives, computed the
same way (per-batch sums accumulated in Python floats, the same keys in the same order), equal to float
round-off; models without the stacked fast path are measured member by member, as before."""

from __future__ import annotations

import torch

from lossland.callbacks.phase_metrics import PhaseMetrics, cosine


def _per_member(loss, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example losses and wrong predictions, (members, batch), of outputs (members, batch, ...) against
    targets (batch) shared by all members or (members, batch)."""
    m, b = out.shape[:2]
    y = y.expand(m, b) if y.ndim == 1 else y
    flat_out, flat_y = out.flatten(0, 1), y.flatten()
    per = loss.per_sample(flat_out, flat_y).reshape(m, b)
    wrong = (loss.predict(flat_out) != flat_y).reshape(m, b)
    return per, wrong


@torch.no_grad()
def full_pass(forward, params: dict, loss, batches) -> list[dict[str, float]]:
    """``{"loss", "error"}`` of each member (rows of ``params``) over ``batches`` shared by all
    (:func:`lossland.metrics.gradients.evaluate`, BN-free models)."""
    m = next(iter(params.values())).shape[0]
    tot_loss, tot_err, n = [0.0] * m, [0] * m, 0
    for x, y in batches:
        per, wrong = _per_member(loss, forward(params, x, True), y)
        tot_loss = [t + v for t, v in zip(tot_loss, per.sum(1).tolist())]
        tot_err = [t + v for t, v in zip(tot_err, wrong.sum(1).tolist())]
        n += len(y)
    return [{"loss": a / n, "error": e / n} for a, e in zip(tot_loss, tot_err)]


def gradient_stats(forward, params: dict, loss, batches: list[list]) -> list[dict[str, float]]:
    """:func:`lossland.metrics.gradients.gradient_stats` of each member; ``batches[k]``: every member's
    ``k``-th ``(x, y)``."""
    params = {n: p.detach().requires_grad_() for n, p in params.items()}
    names = list(params)
    m = params[names[0]].shape[0]
    total = [torch.zeros_like(params[n]) for n in names]
    norms, losses, errors, count = [], [0.0] * m, [0] * m, 0
    for pairs in batches:
        x, y = torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])
        out = forward(params, x, False)
        per, wrong = _per_member(loss, out, y)
        batch_loss = per.mean(1)
        grads = torch.autograd.grad(batch_loss.sum(), [params[n] for n in names])
        norms.append(torch.linalg.vector_norm(torch.stack([g.flatten(1).norm(dim=1) for g in grads]), dim=0))
        torch._foreach_add_(total, grads)
        losses = [t + v * y.shape[1] for t, v in zip(losses, batch_loss.detach().tolist())]
        errors = [t + v for t, v in zip(errors, wrong.sum(1).tolist())]
        count += y.shape[1]
    gm = torch.stack(norms).mean(0).tolist()
    mean_norm = (torch.linalg.vector_norm(torch.stack([t.flatten(1).norm(dim=1) for t in total]), dim=0)
                 / len(norms)).tolist()
    return [{"gm": g, "grad_mean_norm": mn, "loss": lo / count, "error": e / count}
            for g, mn, lo, e in zip(gm, mean_norm, losses, errors)]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same examples (one cached split, sliced alike; else compared)."""
    return a is b or (a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()) \
        or (a.shape == b.shape and torch.equal(a, b))


def phase_callback(trainer) -> PhaseMetrics | None:
    return next((c for c in trainer.callbacks if isinstance(c, PhaseMetrics)), None)


def due_phase_metrics(stack, members: list, step: int) -> None:
    """Measure, for every member (``(index, trainer)``) whose phase metrics are due at ``step``, what
    :meth:`PhaseMetrics.measure` would, all at once from the stack's rows; hands each callback its values
    (:meth:`PhaseMetrics.give`), which its own ``on_step`` then records. Members whose callback computes more
    (``extra``: curvature) measure themselves."""
    if stack.fast is None:
        return
    todo = []
    for i, t in members:
        cb = phase_callback(t)
        if cb is not None and cb.extra is None and cb.plan.is_due(step) and step != cb.last_step:
            todo.append((i, t, cb))
    if not todo:
        return
    cb0 = todo[0][2]
    if any((cb.gm, cb.test, cb.cosines, cb.eval_batches, cb.test_examples) !=
           (cb0.gm, cb0.test, cb0.cosines, cb0.eval_batches, cb0.test_examples) for _, _, cb in todo):
        return
    rows = torch.tensor([stack.row(i) for i, _, _ in todo])
    params = {n: v[rows].detach() for n, v in stack.params.items()}
    values: list[dict[str, float]] = [{} for _ in todo]
    if cb0.gm:
        k = len(cb0.train_batches)
        if any(len(cb.train_batches) != k for _, _, cb in todo):
            return
        stats = gradient_stats(stack.fast, params, stack.loss, [[cb.train_batches[j] for _, _, cb in todo]
                                                                 for j in range(k)])
        for v, g in zip(values, stats):
            v.update(gm=g["gm"], grad_mean_norm=g["grad_mean_norm"], train_loss=g["loss"], train_error=g["error"])
    if cb0.test:
        x0 = cb0.test_batches.x
        if any(not _same(cb.test_batches.x, x0) or cb.test_batches.batch_size != cb0.test_batches.batch_size
               for _, _, cb in todo):
            return
        for v, e in zip(values, full_pass(stack.fast, params, stack.loss, cb0.test_batches)):
            v.update({f"test_{key}": val for key, val in e.items()})
    for j, (_, _, cb) in enumerate(todo):
        if cb.cosines:
            w = torch.cat([params[n][j].reshape(-1) for n in stack.names])  # a copy: the stack moves on
            values[j].update(cosines(cb, w))
        cb.give(values[j])


def cosines(cb: PhaseMetrics, w: torch.Tensor) -> dict[str, float]:
    """``cos_init``, ``cos_prev``, ``weight_norm`` of the weights ``w``, as :meth:`PhaseMetrics.measure`
    (the callback's history moves on)."""
    out = {}
    if cb._init is None:
        cb._init = w
    out["cos_init"] = cosine(w, cb._init)
    if cb._prev is not None:
        out["cos_prev"] = cosine(w, cb._prev)
    out["weight_norm"] = float(w.norm())
    cb._prev = w
    return out


def final_evaluations(stack, trainers: list) -> None:
    """Every split's full pass at each member's final weights (its own model), all members at once; each
    trainer keeps them for its final record (:meth:`lossland.loop.Trainer.full_pass`)."""
    if stack.fast is None or not trainers:
        return
    dms = [t.datamodule for t in trainers]
    for split in dms[0].splits:
        loaders = [dm.eval_loader(split) for dm in dms]
        if any(not _same(ld.x, loaders[0].x) or ld.batch_size != loaders[0].batch_size for ld in loaders):
            return
    own = [dict(t.module.model.named_parameters()) for t in trainers]
    params = {n: torch.stack([p[n].detach() for p in own]) for n in stack.names}
    for split in dms[0].splits:
        for t, m in zip(trainers, full_pass(stack.fast, params, stack.loss, dms[0].eval_loader(split))):
            t.given_passes[split] = m
