"""Curvature metrics during training: the ``extra`` measurement of :class:`PhaseMetrics`.

``curvature_extra(cfg.metrics.curvature)`` turns the config block (``conf/metrics/default.yaml``) into
a callable ``(module, train_batches) -> {metric: float}`` that :class:`PhaseMetrics` calls at each
evaluation point, or ``None`` when the block is absent or disabled. The values are those of
:func:`lossland.metrics.curvature.compute_curvature` (``hessian_top_eig``, ``fisher_trace``, ...) on a
fixed subset of the phase metrics' evaluation mini-batches (:func:`curvature_subset`), so they can be
recomputed exactly from a saved checkpoint (``lossland curvature <run dir>`` does so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from omegaconf import OmegaConf

from lossland.errors import LosslandError
from lossland.metrics.curvature import METRICS, compute_curvature

DEFAULTS = {"enabled": False, "every": 1, "selection": ["hessian_top", "fisher_trace"], "options": {},
            "params": "all", "bn": "train", "examples": 256, "seed": 0}


def _plain(node):
    """OmegaConf nodes → plain Python containers (anything else unchanged)."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def parse_selection(selection, options: Mapping | None = None) -> dict[str, dict]:
    """A metric selection as ``{metric: options}`` for :func:`compute_curvature`.

    ``selection``: a list of names (``[hessian_top, fisher_trace]``), a mapping ``{name: options}``, or
    a string ``"hessian_top:k=3,fisher_trace:kind=true"`` (options after ``:``, separated by ``:``;
    numbers parse as numbers); list items may carry options the same way. ``options``
    (``{name: {option: value}}``) supplies defaults for the selected metrics; inline options win.
    Unknown metric names raise ``ValueError``.
    """
    selection, options = _plain(selection), _plain(options) or {}
    if isinstance(selection, str):
        selection = [s for s in selection.split(",") if s.strip()]
    if isinstance(selection, Mapping):
        items = {str(k): dict(v or {}) for k, v in selection.items()}
    elif isinstance(selection, Sequence):
        items = {}
        for item in selection:
            name, *opts = str(item).split(":")
            items[name.strip()] = dict(_option(o) for o in opts if o.strip())
    else:
        raise ValueError(f"a curvature selection is a list, a mapping or a string, got {selection!r}")
    if not items:
        raise ValueError("the curvature selection is empty")
    unknown = sorted(set(items) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown curvature metric(s) {', '.join(unknown)}; valid: {', '.join(METRICS)}")
    out = {name: {**dict(options.get(name) or {}), **opts} for name, opts in items.items()}
    for opts in out.values():  # YAML / Hydra read `kind: true` as a boolean
        if isinstance(opts.get("kind"), bool):
            opts["kind"] = str(opts["kind"]).lower()
    return out


def _option(text: str) -> tuple[str, object]:
    """``"k=3"`` → ("k", 3): values parse as int, then float, then null/none → None, else a string."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"curvature option {text!r} is not key=value")
    value = value.strip()
    for cast in (int, float):
        try:
            return key.strip(), cast(value)
        except ValueError:
            pass
    return key.strip(), None if value.lower() in ("null", "none") else value


def curvature_subset(batches: Sequence[tuple[torch.Tensor, torch.Tensor]], examples: int | None = None):
    """``(x, y, batch_size)``: the first ``examples`` examples (all: ``None``) of the fixed evaluation
    mini-batches, concatenated, with the mini-batch size that cuts them back into the same batches
    (in BN train mode each batch normalizes with its own statistics, so the batching is part of the
    function measured). Fewer examples than one mini-batch give one batch of ``examples``."""
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    if examples is not None:
        if examples <= 0:
            raise ValueError(f"curvature examples must be positive, got {examples}")
        x, y = x[:examples], y[:examples]
    return x, y, min(len(batches[0][0]), len(x))


class CurvatureExtra:
    """Computes a curvature selection at every ``every``-th call (the 1st, (every+1)-th, ...).

    The model is left exactly as found: train flags and BN buffers (by ``compute_curvature``), the
    parameters' ``.grad`` and the global RNG state (so switching the metric on does not change the
    training trajectory).
    """

    def __init__(self, selection=None, every: int = 1, params="all", bn: str = "train",
                 examples: int | None = 256, seed: int = 0, options: Mapping | None = None):
        if int(every) < 1:
            raise ValueError(f"metrics.curvature.every must be ≥ 1, got {every}")
        if bn not in ("train", "eval"):
            raise ValueError(f"metrics.curvature.bn must be 'train' or 'eval', got {bn!r}")
        self.selection = parse_selection(DEFAULTS["selection"] if selection is None else selection, options)
        self.every, self.params, self.bn, self.seed = int(every), _plain(params), bn, int(seed)
        self.examples = None if examples is None else int(examples)
        self.calls = 0

    def settings(self) -> dict:
        return {"selection": self.selection, "params": self.params, "bn": self.bn, "examples": self.examples,
                "seed": self.seed}

    def measure(self, model, loss, batches) -> dict[str, float]:
        x, y, batch_size = curvature_subset(batches, self.examples)
        return compute_curvature(model, loss, x, y, self.selection, params=self.params, bn=self.bn,
                                 batch_size=batch_size, seed=self.seed)

    def __call__(self, module, train_batches) -> dict[str, float]:
        due = self.calls % self.every == 0
        self.calls += 1
        if not due:
            return {}
        model = module.model
        grads = {p: p.grad for p in model.parameters()}
        device = train_batches[0][0].device
        devices = [device.index or 0] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), torch.enable_grad():
                return self.measure(model, module.loss, train_batches)
        except ValueError as e:  # a selection that does not fit the model or loss: a user error
            raise LosslandError(f"metrics.curvature: {e}") from None
        finally:
            for p, g in grads.items():
                p.grad = g


def curvature_extra(cfg) -> CurvatureExtra | None:
    """The ``extra`` callable for :class:`PhaseMetrics` from ``cfg.metrics.curvature`` (None: off)."""
    cfg = _plain(cfg)
    if not cfg or not cfg.get("enabled", False):
        return None
    opts = {**DEFAULTS, **cfg}
    try:
        return CurvatureExtra(opts["selection"], opts["every"], opts["params"], opts["bn"], opts["examples"],
                              opts["seed"], opts["options"])
    except ValueError as e:
        raise LosslandError(str(e)) from None
