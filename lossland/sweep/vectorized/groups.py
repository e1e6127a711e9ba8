"""A grid's stacks: jobs that differ only in what stacks (seed, rates, regularization coefficient, optimizer and
schedule values; :func:`lossland.sweep.vectorized.stack.check_stackable`) train as one stacked model; jobs that
differ in anything else (a width, a data size) form separate stacks, trained one after another. So the connect
study's width × seed endpoints are one stack of seeds per width, and the exponential-neuron speed grid one stack of
rates × λ per data size."""

from __future__ import annotations

import json

from omegaconf import DictConfig

from lossland.sweep.vectorized.stack import check_stackable, flats, free


def stack_key(flat: dict, raw: dict) -> str:
    """What the members of one stack share: the config (:func:`~lossland.sweep.vectorized.stack.flats`) without
    the keys that may differ within a stack (a value that follows from those, e.g. a logger's ``${lr}``, by its
    interpolation)."""
    return json.dumps({k: raw[k] if "${" in str(raw.get(k)) else v for k, v in sorted(flat.items()) if not free(k)},
                      default=str)


def stack_groups(cfgs: list[DictConfig], resolved: list[dict] | None = None,
                 raw: list[dict] | None = None) -> list[list[int]]:
    """The jobs' indices, one list per stack, in the order of their first job; each stack checked
    (:func:`~lossland.sweep.vectorized.stack.check_stackable`: options that do not stack are refused in one line).
    ``resolved`` / ``raw``: the configs already turned into containers, resolved / as written."""
    none = [None] * len(cfgs)
    flat = [flats(c, r, w) for c, r, w in zip(cfgs, resolved or none, raw or none)]
    groups: dict[str, list[int]] = {}
    for i, f in enumerate(flat):
        groups.setdefault(stack_key(*f), []).append(i)
    for group in groups.values():
        check_stackable([cfgs[i] for i in group], [flat[i] for i in group])
    return list(groups.values())
