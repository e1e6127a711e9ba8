"""Independent RNG streams derived from one seed.

Runs of a sweep that differ only in optimizer settings share the initial weights and the batch order
because each consumer draws from its own stream: ``init`` (weights), ``data`` (batch order),
``eval`` (the fixed evaluation subset), ``noise`` (dropout, random-walk steps, sampled labels).
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

STREAMS = ("init", "data", "eval", "noise", "split")


def stream_seed(seed: int, stream: str) -> int:
    if stream not in STREAMS:
        raise ValueError(f"unknown RNG stream {stream!r}; valid: {', '.join(STREAMS)}")
    ss = np.random.SeedSequence([int(seed), zlib.crc32(stream.encode())])
    return int(ss.generate_state(1, dtype=np.uint64)[0] % (2**63 - 1))


def generator(seed: int, stream: str, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(stream_seed(seed, stream))
    return g
