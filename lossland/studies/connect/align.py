"""Aligning model B's hidden units to model A's (weight matching, activation matching, optimal transport).

Conventions
-----------
- A *unit layer* is a hidden weighted layer (``nn.Linear`` / ``nn.Conv*d``) other than the last weighted
  layer; its units are its output features / channels. Each unit owns *slots*: the row of its weight,
  its bias entry, the entries of a following BatchNorm (affine weight/bias, running mean/var) and a
  PReLU with one parameter per unit, and the *incoming* column(s) of the next weighted layer (a Linear
  after a flattened conv map owns ``in_features // channels`` consecutive columns per channel).
- Nets must be sequential in module-registration order (``MLP``, ``ConvNetSI``, plain CNNs). Residual
  or other unsupported parameterised modules raise ``NotImplementedError``.
- A *map* per unit layer is either a permutation ``perm`` (1-D LongTensor: aligned unit ``i`` is B's unit
  ``perm[i]``) or a soft matrix ``M`` (n×n float: aligned unit ``i`` = Σ_j M[i, j]·(B's unit j)); the
  same map is applied to every slot of the layer. ``None`` means identity. Permutations leave the
  function unchanged; soft maps do not.
- An *alignment method* is a callable ``method(a, b, x=None) -> maps`` (``x``: training inputs, used by
  methods that need data): :func:`no_alignment`, :func:`weight_matching`, :func:`activation_matching`,
  :func:`ot_matching`, with their options bound by ``functools.partial`` or by a ``conf/align`` config
  (``_target_`` + ``_partial_: true``). :func:`align` applies one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
PASS_THROUGH = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Softplus,
                nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Flatten, nn.Identity,
                nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class Slot:
    """One tensor entry owned by a unit layer: ``key`` in the state dict, unit ``axis``, ``group`` consecutive
    entries per unit along that axis, ``param`` False for buffers (running statistics)."""

    key: str
    axis: int
    group: int = 1
    param: bool = True


@dataclass
class UnitLayer:
    name: str                 # module name of the weighted layer whose outputs are the units
    size: int                 # number of units
    next_name: str            # the weighted layer consuming the units (its input = the unit activations)
    slots: list[Slot] = field(default_factory=list)


def _num_units(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _num_inputs(m: nn.Module) -> int:
    return m.in_features if isinstance(m, nn.Linear) else m.in_channels


def unit_layers(model: nn.Module) -> list[UnitLayer]:
    """The permutable hidden layers of a sequential ``model``, in forward order."""
    layers: list[UnitLayer] = []
    current: UnitLayer | None = None
    for name, m in model.named_modules():
        if len(list(m.children())) > 0:
            continue
        prefix = f"{name}." if name else ""
        if isinstance(m, WEIGHTED):
            if current is not None:
                n_in = _num_inputs(m)
                if n_in % current.size:
                    raise NotImplementedError(f"{name}: {n_in} inputs is not a multiple of {current.size}")
                current.next_name = name
                current.slots.append(Slot(prefix + "weight", 1, n_in // current.size))
                layers.append(current)
            current = UnitLayer(name, _num_units(m), next_name="")
            current.slots.append(Slot(prefix + "weight", 0))
            if m.bias is not None:
                current.slots.append(Slot(prefix + "bias", 0))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            if current is None or m.num_features != current.size:
                raise NotImplementedError(f"{name}: BatchNorm must follow a weighted layer of its width")
            if m.affine:
                current.slots += [Slot(prefix + "weight", 0), Slot(prefix + "bias", 0)]
            if m.track_running_stats:
                current.slots += [Slot(prefix + "running_mean", 0, param=False),
                                  Slot(prefix + "running_var", 0, param=False)]
        elif isinstance(m, nn.PReLU):
            if m.num_parameters > 1:
                if current is None or m.num_parameters != current.size:
                    raise NotImplementedError(f"{name}: per-channel PReLU must follow a layer of its width")
                current.slots.append(Slot(prefix + "weight", 0))
        elif isinstance(m, PASS_THROUGH) or not any(True for _ in m.parameters(recurse=False)):
            continue
        else:
            raise NotImplementedError(f"alignment does not know how units pass through {type(m).__name__} "
                                      f"({name})")
    return layers


def _apply_map(t: torch.Tensor, axis: int, group: int, m: torch.Tensor | None) -> torch.Tensor:
    if m is None:
        return t
    x = t.movedim(axis, 0)
    shape = x.shape
    x = x.reshape(shape[0] // group, group, *shape[1:])
    if m.dim() == 1:
        x = x.index_select(0, m.to(x.device))
    else:
        x = torch.tensordot(m.to(device=x.device, dtype=x.dtype), x, dims=1)
    return x.reshape(shape).movedim(0, axis)


def apply_maps(state: dict, layers: Sequence[UnitLayer], maps: Sequence, skip: int | None = None) -> dict:
    """A new state dict with ``maps[l]`` applied to every slot of unit layer ``l`` (except layer ``skip``)."""
    out = dict(state)
    for l, (layer, m) in enumerate(zip(layers, maps)):
        if m is None or l == skip:
            continue
        for s in layer.slots:
            out[s.key] = _apply_map(out[s.key], s.axis, s.group, m)
    return out


def _state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def permute_model(model: nn.Module, perms: Sequence) -> nn.Module:
    """A copy of ``model`` with ``perms[l]`` (permutation or soft matrix, see module doc) applied to unit
    layer ``l``; ``len(perms)`` must equal the number of unit layers. Permutations keep the function."""
    layers = unit_layers(model)
    if len(perms) != len(layers):
        raise ValueError(f"{len(perms)} maps given for {len(layers)} unit layers")
    maps = [None if p is None else torch.as_tensor(p) for p in perms]
    for layer, m in zip(layers, maps):
        if m is not None and m.shape[0] != layer.size:
            raise ValueError(f"map of size {m.shape[0]} for layer {layer.name} with {layer.size} units")
    new = copy.deepcopy(model)
    new.load_state_dict(apply_maps(_state(model), layers, maps))
    return new


def random_permutations(model: nn.Module, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """One uniformly random permutation per unit layer (for tests and null baselines)."""
    return [torch.randperm(layer.size, generator=generator) for layer in unit_layers(model)]


def _check_pair(a: nn.Module, b: nn.Module) -> list[UnitLayer]:
    la, lb = unit_layers(a), unit_layers(b)
    if [(x.name, x.size) for x in la] != [(x.name, x.size) for x in lb]:
        raise ValueError("models A and B must have the same architecture and widths to be aligned")
    return la


def _unit_matrix(t: torch.Tensor, slot: Slot, n: int) -> torch.Tensor:
    return t.movedim(slot.axis, 0).reshape(n, -1).double()


def _lap(score: np.ndarray) -> torch.Tensor:
    """Permutation maximizing Σ_i score[i, perm[i]] (scipy's Hungarian-type solver)."""
    return torch.as_tensor(linear_sum_assignment(score, maximize=True)[1], dtype=torch.long)


def no_alignment(a: nn.Module, b: nn.Module, x: torch.Tensor | None = None) -> list[None]:
    """Identity maps (B as trained: the naive path). ``x`` is unused."""
    return [None] * len(_check_pair(a, b))


def weight_matching(a: nn.Module, b: nn.Module, max_iter: int = 100, seed: int = 0,
                    x: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Ainsworth et al. (2022) weight matching: permutations of B's units maximising Σ ⟨W_A, P W_B P'ᵀ⟩.
    Data-free: ``x`` is unused.

    Coordinate descent: each unit layer in turn (random order per sweep) solves a linear assignment on the
    summed similarity of all its parameter slots (incoming rows, biases, outgoing columns, BN affine), with
    the other layers' current permutations applied; stops after a sweep with no improvement."""
    layers = _check_pair(a, b)
    sa, sb = _state(a), _state(b)
    perms: list = [torch.arange(layer.size) for layer in layers]
    rng = np.random.default_rng(seed)
    for _ in range(max_iter):
        improved = False
        for l in rng.permutation(len(layers)):
            layer = layers[l]
            pb = apply_maps(sb, layers, perms, skip=l)
            score = torch.zeros(layer.size, layer.size, dtype=torch.float64)
            for s in layer.slots:
                if s.param:
                    score += _unit_matrix(sa[s.key], s, layer.size) @ _unit_matrix(pb[s.key], s, layer.size).T
            score = score.cpu().numpy()
            new = _lap(score)
            old_val = score[np.arange(layer.size), perms[l].numpy()].sum()
            new_val = score[np.arange(layer.size), new.numpy()].sum()
            if new_val > old_val + 1e-12 * max(1.0, abs(old_val)):
                improved = True
                perms[l] = new
        if not improved:
            break
    return perms


@torch.no_grad()
def _unit_activations(model: nn.Module, layers: Sequence[UnitLayer], x: torch.Tensor, batch_size: int):
    """Yield, per batch, a list over unit layers of (rows, units) activation matrices (eval mode): the input
    of the consuming layer, with spatial positions / grouped columns as extra rows."""
    modules = dict(model.named_modules())
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(x), batch_size):
            captured: dict[str, torch.Tensor] = {}
            hooks = [modules[layer.next_name].register_forward_pre_hook(
                lambda mod, inp, key=layer.next_name, store=captured: store.__setitem__(key, inp[0]))
                for layer in layers]
            try:
                model(x[i:i + batch_size])
            finally:
                for h in hooks:
                    h.remove()
            out = []
            for layer in layers:
                z = captured[layer.next_name]
                z = z.reshape(z.shape[0], layer.size, -1).transpose(1, 2).reshape(-1, layer.size)
                out.append(z.double())
            yield out
    finally:
        model.train(was_training)


def activation_matching(a: nn.Module, b: nn.Module, x: torch.Tensor | None = None, batch_size: int = 512,
                        eps: float = 1e-8, examples: int | None = None) -> list[torch.Tensor]:
    """Per unit layer, the permutation of B's units maximising the summed Pearson correlation with A's units
    of their activations on data ``x`` (eval mode; conv channels pooled over positions), solved with
    ``linear_sum_assignment``. Layers are independent: B's activations do not depend on its permutations.
    Statistics are accumulated over batches of ``batch_size`` (float64); ``examples``: use the first N rows
    of ``x`` only (None: all)."""
    if x is None:
        raise ValueError("activation matching needs data: activation_matching(a, b, x=...)")
    if examples is not None:
        x = x[: int(examples)]
    layers = _check_pair(a, b)
    stats = [None] * len(layers)
    for za_list, zb_list in zip(_unit_activations(a, layers, x, batch_size),
                                _unit_activations(b, layers, x, batch_size)):
        for l, (za, zb) in enumerate(zip(za_list, zb_list)):
            batch = [za.shape[0], za.sum(0), zb.sum(0), (za * za).sum(0), (zb * zb).sum(0), za.T @ zb]
            stats[l] = batch if stats[l] is None else [u + v for u, v in zip(stats[l], batch)]
    perms = []
    for st in stats:
        n, sa, sb, saa, sbb, sab = st
        ma, mb = sa / n, sb / n
        cov = sab / n - ma[:, None] * mb[None, :]
        sd_a = (saa / n - ma * ma).clamp_min(0).sqrt()
        sd_b = (sbb / n - mb * mb).clamp_min(0).sqrt()
        corr = cov / (sd_a[:, None] * sd_b[None, :] + eps)
        perms.append(_lap(corr.cpu().numpy()))
    return perms


def ot_matching(a: nn.Module, b: nn.Module, method: str = "exact", reg: float = 0.01, hard: bool = True,
                num_iter: int = 10_000, x: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Optimal-transport alignment (Singh & Jaggi 2020; Anokhin & Yarotsky 2020), front to back.

    Per unit layer, a neuron is the concatenation of its parameter slots: incoming weights (with B's inputs
    already mapped by the previous layer's alignment), bias, BN affine, and its outgoing weights when the
    next layer is the output layer (deeper outgoing weights are not yet aligned and are left out). The cost is
    the squared Euclidean distance between A's and B's neurons, divided by its maximum; marginals are uniform.
    ``method="exact"``: ``ot.emd``; ``"sinkhorn"``: entropic ``ot.sinkhorn`` (log-domain) with ``reg``.
    ``hard=True`` returns permutations (assignment maximizing the plan); ``hard=False`` returns soft maps
    M = n·T (T[i, j] mass from A's unit i to B's unit j), i.e. each aligned unit is the transport-weighted
    barycentre of B's units. Data-free: ``x`` is unused."""
    if method not in ("exact", "sinkhorn"):
        raise ValueError(f"unknown OT method {method!r}; valid: exact, sinkhorn")
    import ot  # here, not at the top: POT takes about 3 s to import and only OT alignment needs it
    layers = _check_pair(a, b)
    sa, sb = _state(a), _state(b)
    owners: dict[str, set[int]] = {}
    for l, layer in enumerate(layers):
        for s in layer.slots:
            owners.setdefault(s.key, set()).add(l)
    maps: list = [None] * len(layers)
    for l, layer in enumerate(layers):
        pb = apply_maps(sb, layers, maps)
        fa, fb = [], []
        for s in layer.slots:
            if s.param and max(owners[s.key]) <= l:
                fa.append(_unit_matrix(sa[s.key], s, layer.size))
                fb.append(_unit_matrix(pb[s.key], s, layer.size))
        fa_np = torch.cat(fa, 1).cpu().numpy()
        fb_np = torch.cat(fb, 1).cpu().numpy()
        cost = ot.dist(fa_np, fb_np, metric="sqeuclidean")
        if cost.max() > 0:
            cost = cost / cost.max()
        n = layer.size
        w = np.full(n, 1.0 / n)
        if method == "exact":
            plan = ot.emd(w, w, cost, numItermax=max(num_iter, 100_000))
        else:
            plan = ot.sinkhorn(w, w, cost, reg, method="sinkhorn_log", numItermax=num_iter, warn=False)
        if hard:
            maps[l] = _lap(plan)
        else:
            maps[l] = torch.as_tensor(n * plan, dtype=torch.float64)
    return maps


AlignmentMethod = Callable[..., list]


def align(a: nn.Module, b: nn.Module, alignment: AlignmentMethod = weight_matching, x: torch.Tensor | None = None,
          return_maps: bool = False, **kw):
    """A copy of ``b`` with its hidden units aligned to ``a``'s by ``alignment`` (an alignment method, see the
    module doc: :func:`no_alignment`, :func:`weight_matching`, :func:`activation_matching` (needs data ``x``),
    :func:`ot_matching`, or any of them with bound options, e.g. an instantiated ``conf/align`` config).
    Keywords ``kw`` go to ``alignment``. With ``return_maps`` also returns the per-layer maps."""
    maps = alignment(a, b, x=x, **kw)
    aligned = permute_model(b, maps)
    return (aligned, maps) if return_maps else aligned
