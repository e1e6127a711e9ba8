"""The search network: every edge a :class:`MixedOp` ``sum_g softmax(gamma)_g * g(x)``; the structure
parameters ``gamma`` are shared by all normal cells and by all reduction cells (as in DARTS)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lossland.models.darts import OPS, CellNet, cell_edges, check_ops

__all__ = ["MixedOp", "Supernet"]


class MixedOp(nn.Module):
    """The relaxed edge: ``forward(x, weights) = sum_k weights[k] * op_k(x)``."""

    def __init__(self, ops: Sequence[str], channels: int, stride: int, affine: bool = False):
        super().__init__()
        self.names = list(ops)
        self.ops = nn.ModuleList(OPS[n](channels, stride, affine) for n in self.names)

    def forward(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class Supernet(CellNet):
    """``gamma_normal`` / ``gamma_reduce``: (edges, ops) structure parameters; :meth:`weights` are the rest (W)."""

    def __init__(self, input_shape: Sequence[int], num_outputs: int, ops: Sequence[str], channels: int = 8,
                 cells: int = 2, nodes: int = 2, reductions: Sequence[int] | None = (1,), stem_multiplier: int = 3,
                 gamma_init: float = 1e-3):
        self.op_names = check_ops(ops)
        self.nodes = int(nodes)
        super().__init__(input_shape, num_outputs, int(channels), int(cells), self.nodes,
                         None if reductions is None else list(reductions),
                         lambda kind, node, j, c, s: MixedOp(self.op_names, c, s, affine=False),
                         int(stem_multiplier), affine=False)
        self.macro_args = {"channels": int(channels), "cells": int(cells), "nodes": self.nodes,
                           "reductions": [i for i, r in enumerate(self.reduce_flags) if r],
                           "stem_multiplier": int(stem_multiplier)}
        n_edges, n_ops = len(cell_edges(self.nodes)), len(self.op_names)
        self.kinds = ["normal"] + (["reduce"] if any(self.reduce_flags) else [])
        self.gamma_normal = nn.Parameter(gamma_init * torch.randn(n_edges, n_ops))
        self.gamma_reduce = nn.Parameter(gamma_init * torch.randn(n_edges, n_ops)) if "reduce" in self.kinds else None
        self.fixed_weights: dict[str, torch.Tensor] | None = None  # e.g. one-hot: the discrete net, W inherited

    def gammas(self) -> dict[str, nn.Parameter]:
        return {k: getattr(self, f"gamma_{k}") for k in self.kinds}

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.gammas().values())

    def weights(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def mixture(self) -> dict[str, torch.Tensor]:
        """softmax(gamma) of every edge, per cell type: (edges, ops)."""
        if self.fixed_weights is not None:
            return self.fixed_weights
        return {k: torch.softmax(g, dim=-1) for k, g in self.gammas().items()}

    def cell_weights(self, cell_index):
        return self.mixture()["reduce" if self.reduce_flags[cell_index] else "normal"]

    def forward(self, x):
        mix = self.mixture()
        s0 = s1 = self.stem(x)
        for k, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, mix["reduce" if self.reduce_flags[k] else "normal"])
        return self.classifier(self.pool(s1).flatten(1))

    def genotype(self) -> dict:
        """The discrete architecture: every edge keeps ``argmax gamma`` (``zero`` drops it)."""
        g = dict(self.macro_args)
        for kind, gamma in self.gammas().items():
            g[kind] = [self.op_names[i] for i in gamma.detach().argmax(dim=-1).tolist()]
        if "reduce" not in g:
            g["reduce"] = []
        return g

    def one_hot(self) -> dict[str, torch.Tensor]:
        return {k: torch.nn.functional.one_hot(g.detach().argmax(-1), len(self.op_names)).to(g.dtype)
                for k, g in self.gammas().items()}
