"""Per-sample gradients and the traces of the empirical Fisher, the true Fisher and the GGN.

Exact per-sample quantities by ``torch.func`` (vmap over samples in BN eval mode; through the batch in
BN train mode, where a one-sample batch has no statistics). BN runs from elementary ops here (vmap and
Jacobians of BN are only safe that way, see :mod:`lossland.metrics.bn`).
"""

from __future__ import annotations

import math

import torch
from torch.func import functional_call, grad, hessian, jacrev, vmap

from lossland.metrics.bn import bn_mode
from lossland.metrics.params import as_batches, detached, per_sample_losses, select_params
from lossland.metrics.registry import register_metric


def per_sample_grads(model, loss, x, y, params="all", bn: str = "eval",
                     chunk_size: int | None = None) -> dict[str, torch.Tensor]:
    """Gradients ∇_θ ℓ_n for each sample of the batch: ``{name: tensor[B, *param.shape]}``.

    ``bn="eval"``: vmap over samples of ``grad`` of the one-sample loss (torch.func). ``bn="train"``:
    a one-sample batch has no batch statistics, so the per-sample gradient is taken *through the
    batch*: the Jacobian of the vector of per-sample losses of this batch (each ℓ_n depends on all
    samples via the BN statistics), whose rows sum to B × the batch-mean gradient.
    """
    named = select_params(model, params)
    p0 = detached(named)
    with bn_mode(model, bn, elementary=True):
        if bn == "eval":
            def one(p, xi, yi):
                out = functional_call(model, p, (xi.unsqueeze(0),))
                return per_sample_losses(loss, out, yi.unsqueeze(0))[0]
            return vmap(grad(one), in_dims=(None, 0, 0), chunk_size=chunk_size)(p0, x, y)

        def losses(p):
            return per_sample_losses(loss, functional_call(model, p, (x,)), y)
        return jacrev(losses, chunk_size=chunk_size)(p0)


def _sq_norms(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(g.flatten(1).pow(2).sum(1) for g in grads.values())


def per_sample_grad_sq_norms(model, loss, data, params="all", bn: str = "eval", batch_size: int | None = None,
                             chunk: int = 128) -> torch.Tensor:
    """‖∇_θ ℓ_n‖² for every sample (eval mode: in chunks of ``chunk`` samples, same result)."""
    out = []
    for x, y in as_batches(data, batch_size):
        parts = [(x, y)] if bn == "train" else zip(x.split(chunk), y.split(chunk))
        out += [_sq_norms(per_sample_grads(model, loss, xc, yc, params, bn)) for xc, yc in parts]
    return torch.cat(out)


def empirical_fisher_trace(model, loss, data, params="all", bn: str = "eval",
                           batch_size: int | None = None) -> float:
    """tr of the empirical Fisher = mean over samples of ‖∇_θ ℓ_n‖² (true labels)."""
    return per_sample_grad_sq_norms(model, loss, data, params, bn, batch_size).mean().item()


def true_fisher_trace(model, loss, data, params="all", bn: str = "eval", batch_size: int | None = None,
                      samples: int = 1, generator: torch.Generator | None = None) -> tuple[float, float]:
    """Monte-Carlo tr of the true Fisher of cross-entropy: (estimate, standard error).

    Labels ŷ ~ softmax(f(x_n)) (``samples`` draws per input, from ``generator``); the estimate is the
    mean of ‖∇_θ CE(f(x_n), ŷ)‖². Its expectation equals the GGN trace. The standard error is that of
    the label sampling (needs ``samples`` ≥ 2; with one draw, a conservative std/√N over samples).
    """
    if getattr(loss, "name", None) != "ce":
        raise ValueError("the true Fisher is implemented for cross-entropy only (use ggn_trace for MSE)")
    generator = generator or torch.Generator().manual_seed(0)
    values = []
    for x, y in as_batches(data, batch_size):
        with bn_mode(model, bn, elementary=True), torch.no_grad():
            probs = torch.softmax(model(x), dim=1)
        labels = torch.multinomial(probs.cpu(), samples, replacement=True, generator=generator).to(y.device)
        values.append(torch.stack([per_sample_grad_sq_norms(model, loss, (x, labels[:, s]), params, bn)
                                   for s in range(samples)], dim=1))
    v = torch.cat(values)  # [N, samples]
    n = len(v)
    if samples > 1:
        se = math.sqrt(v.var(dim=1).sum().item() / samples) / n
    else:
        se = v.std().item() / math.sqrt(n)
    return v.mean().item(), se


def ggn_trace(model, loss, data, params="all", bn: str = "eval", batch_size: int | None = None,
              chunk: int = 64) -> float:
    """Exact trace of the generalized Gauss-Newton matrix 1/N Σ_n tr(J_nᵀ H_n J_n).

    J_n: Jacobian of the outputs of sample n w.r.t. the selected parameters (through the batch in BN
    train mode), H_n: Hessian of ℓ_n w.r.t. the outputs (MSE: 2·I; CE: diag(p) − ppᵀ, for which the
    GGN is the true Fisher). Exact, via vmapped Jacobians; memory ~ chunk × classes × parameters.
    """
    p0 = detached(select_params(model, params))
    out_hessian = vmap(hessian(lambda o, t: per_sample_losses(loss, o.unsqueeze(0), t.unsqueeze(0))[0]))
    total, n = 0.0, 0
    for x, y in as_batches(data, batch_size):
        parts = [(x, y)] if bn == "train" else zip(x.split(chunk), y.split(chunk))
        for xc, yc in parts:
            jac, out = _output_jacobian(model, p0, xc, bn)
            J = torch.cat([j.flatten(2) for j in jac.values()], dim=2)  # [B, C, P]
            H = out_hessian(out, yc)  # [B, C, C]
            total += torch.einsum("bcd,bcp,bdp->", H, J, J).item()
        n += len(x)
    return total / n


def _output_jacobian(model, p0, x, bn):
    """({name: ∂f(x_n)/∂θ of shape [B, C, *shape]}, outputs [B, C]); through the batch in BN train mode."""
    with bn_mode(model, bn, elementary=True):
        if bn == "eval":
            one = lambda p, xi: functional_call(model, p, (xi.unsqueeze(0),))[0]
            jac = vmap(jacrev(one), in_dims=(None, 0))(p0, x)
        else:
            jac = jacrev(lambda p: functional_call(model, p, (x,)))(p0)
        with torch.no_grad():
            out = model(x)
    return jac, out


# --------------------------------------------------------------------------------------------------
# registered metrics (lossland.metrics.registry)
# --------------------------------------------------------------------------------------------------


@register_metric("fisher_trace", options=("kind", "samples"), order=20)
def _fisher_trace(model, loss, data, kind="empirical", samples=1, seed=0, **common):
    """``kind="empirical"`` → ``fisher_trace``; ``kind="true"`` → ``fisher_trace_true``, ``fisher_trace_true_se``."""
    if kind == "empirical":
        return {"fisher_trace": empirical_fisher_trace(model, loss, data, **common)}
    if kind == "true":
        gen = torch.Generator().manual_seed(seed)
        est, se = true_fisher_trace(model, loss, data, samples=samples, generator=gen, **common)
        return {"fisher_trace_true": est, "fisher_trace_true_se": se}
    raise ValueError(f"fisher_trace kind must be 'empirical' or 'true', got {kind!r}")


@register_metric("ggn_trace", order=21)
def _ggn_trace(model, loss, data, seed=0, **common):
    """→ ``ggn_trace``."""
    return {"ggn_trace": ggn_trace(model, loss, data, **common)}


__all__ = ["per_sample_grads", "per_sample_grad_sq_norms", "empirical_fisher_trace", "true_fisher_trace",
           "ggn_trace"]
