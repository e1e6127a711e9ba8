"""A grid's stacks: jobs that differ only in what stacks (seed, rates, regularization coefficient, optimizer and
schedule values; :func:`lossland.sweep.vectorized.stack.check_stackable`) train as one stacked model; jobs that
differ in anything else (a width, a data size) form separate stacks, trained one after another. So the connect
study's width × seed endpoints are one stack of seeds per width, and the exponential-neuron speed grid one stack of
rates × λ per data size."""

from __future__ import annotations

import json

from omegaconf import DictConfig, OmegaConf

from lossland.sweep.vectorized.stack import _flat, free


def stack_key(cfg: DictConfig) -> str:
    """What the members of one stack share: the config without the keys that may differ within a stack (a value
    that follows from those, e.g. a logger's ``${lr}``, by its interpolation)."""
    flat, raw = _flat(OmegaConf.to_container(cfg, resolve=True)), _flat(OmegaConf.to_container(cfg))
    return json.dumps({k: raw[k] if "${" in str(raw.get(k)) else v for k, v in sorted(flat.items()) if not free(k)},
                      default=str)


def stack_groups(cfgs: list[DictConfig]) -> list[list[int]]:
    """The jobs' indices, one list per stack, in the order of their first job."""
    groups: dict[str, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        groups.setdefault(stack_key(cfg), []).append(i)
    return list(groups.values())
