"""DARTS-style building blocks shared by the architecture search (:mod:`lossland.studies.nas`) and the discrete
network it finds (:class:`GenotypeNet`, trainable from scratch by ``lossland train model=nas_genotype``).

Candidate operations form a registry ``OPS``: name -> ``factory(channels, stride, affine) -> nn.Module``,
each mapping ``(N, C, H, W)`` to ``(N, C, H/stride, W/stride)``. A cell takes the outputs of the two previous
cells, has ``nodes`` intermediate nodes, node ``i`` sums one edge from each of its ``2 + i`` predecessors, and
outputs the concatenation of its intermediate nodes (``nodes * C`` channels). Reduction cells apply stride 2 on
the edges leaving the two cell inputs and double the channels. Edges are numbered node by node, predecessors
in order (inputs 0, 1, then nodes 2, 3, ...): :func:`cell_edges`.

The genotype (a plain dict, saved as YAML) holds the macro structure and, per cell type, the operation of
every edge; ``zero`` edges are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from lossland.errors import LosslandError

__all__ = ["OPS", "check_ops", "cell_edges", "Cell", "GenotypeNet", "DEFAULT_GENOTYPE", "load_genotype"]


class ReLUConvBN(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride, padding, dilation=1, affine=True):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(inplace=False),
                                nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation, bias=False),
                                nn.BatchNorm2d(c_out, affine=affine))

    def forward(self, x):
        return self.op(x)


class SepConv(nn.Module):
    """Depthwise-separable convolution applied twice (DARTS' sep_conv)."""

    def __init__(self, c, kernel, stride, affine=True):
        super().__init__()
        pad = kernel // 2
        self.op = nn.Sequential(
            nn.ReLU(inplace=False), nn.Conv2d(c, c, kernel, stride, pad, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=affine),
            nn.ReLU(inplace=False), nn.Conv2d(c, c, kernel, 1, pad, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=affine))

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    def __init__(self, c, kernel, stride, dilation, affine=True):
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.op = nn.Sequential(nn.ReLU(inplace=False),
                                nn.Conv2d(c, c, kernel, stride, pad, dilation=dilation, groups=c, bias=False),
                                nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=affine))

    def forward(self, x):
        return self.op(x)


class Zero(nn.Module):
    """The absent edge: zeros of the output's shape."""

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class Pool(nn.Module):
    def __init__(self, kind, stride):
        super().__init__()
        self.pool = (nn.MaxPool2d(3, stride, padding=1) if kind == "max"
                     else nn.AvgPool2d(3, stride, padding=1, count_include_pad=False))

    def forward(self, x):
        return self.pool(x)


def _skip(c, stride, affine):
    # stride 2: a 1x1 stride-2 convolution (works for odd sizes too, unlike DARTS' factorized reduce)
    return nn.Identity() if stride == 1 else ReLUConvBN(c, c, 1, stride, 0, affine=affine)


OPS: dict[str, Callable[[int, int, bool], nn.Module]] = {
    "zero": lambda c, s, a: Zero(s),
    "skip": _skip,
    "max_pool3x3": lambda c, s, a: Pool("max", s),
    "avg_pool3x3": lambda c, s, a: Pool("avg", s),
    "conv3x3": lambda c, s, a: ReLUConvBN(c, c, 3, s, 1, affine=a),
    "conv5x5": lambda c, s, a: ReLUConvBN(c, c, 5, s, 2, affine=a),
    "sep_conv3x3": lambda c, s, a: SepConv(c, 3, s, affine=a),
    "sep_conv5x5": lambda c, s, a: SepConv(c, 5, s, affine=a),
    "dil_conv3x3": lambda c, s, a: DilConv(c, 3, s, 2, affine=a),
    "dil_conv5x5": lambda c, s, a: DilConv(c, 5, s, 2, affine=a),
}


def check_ops(names: Sequence[str]) -> list[str]:
    """The operation names, refused in one line when one is unknown or the list is empty / repeats."""
    names = [str(n) for n in names]
    unknown = [n for n in names if n not in OPS]
    if unknown:
        raise LosslandError(f"unknown operation {unknown[0]!r} in nas.ops; valid: {', '.join(OPS)}")
    if not names or len(set(names)) != len(names):
        raise LosslandError(f"nas.ops must name at least one operation, each once; got {names}")
    return names


def cell_edges(nodes: int) -> list[tuple[int, int]]:
    """``(node, predecessor)`` of every edge of a cell, node by node (node i = 2 + index of intermediate)."""
    return [(2 + i, j) for i in range(nodes) for j in range(2 + i)]


class Cell(nn.Module):
    """One cell. ``make_edge(node, predecessor, channels, stride)`` returns the edge's module or None (no
    edge). Edges are called ``edge(h)``, or ``edge(h, weights[e])`` when ``forward`` gets ``weights``."""

    def __init__(self, nodes, c_pp, c_p, c, reduction, reduction_prev, make_edge, affine=True):
        super().__init__()
        self.nodes, self.reduction = nodes, reduction
        self.pre0 = ReLUConvBN(c_pp, c, 1, 2 if reduction_prev else 1, 0, affine=affine)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=affine)
        self.edges = nn.ModuleList()
        self.present = []
        for node, j in cell_edges(nodes):
            m = make_edge(node, j, c, 2 if reduction and j < 2 else 1)
            self.present.append(m is not None)
            self.edges.append(m if m is not None else nn.Identity())

    def forward(self, s0, s1, weights=None):
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for i in range(self.nodes):
            total = None
            for j in range(2 + i):
                if self.present[e]:
                    h = self.edges[e](states[j]) if weights is None else self.edges[e](states[j], weights[e])
                    total = h if total is None else total + h
                e += 1
            if total is None:  # every incoming edge is zero
                ref = states[1]
                stride = 2 if self.reduction else 1
                total = ref[:, :, ::stride, ::stride].mul(0.0)
            states.append(total)
        return torch.cat(states[2:], dim=1)


def macro(num_cells: int, reductions: Sequence[int] | None) -> list[bool]:
    """Which cells reduce: ``reductions`` (indices), default DARTS' cells at 1/3 and 2/3 of the depth."""
    red = set(reductions) if reductions is not None else {num_cells // 3, 2 * num_cells // 3}
    bad = [r for r in red if not 0 <= int(r) < num_cells]
    if bad:
        raise LosslandError(f"reductions {sorted(red)} must index cells 0..{num_cells - 1}")
    return [i in red for i in range(num_cells)]


class CellNet(nn.Module):
    """Stem (3x3 conv + BN), the stacked cells, global average pooling and a linear classifier."""

    def __init__(self, input_shape, num_outputs, channels, num_cells, nodes, reductions, make_edge,
                 stem_multiplier=3, affine=True):
        super().__init__()
        c_in = int(input_shape[0])
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(c_in, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        self.reduce_flags = macro(num_cells, reductions)
        c_pp, c_p, c = c_stem, c_stem, channels
        self.cells = nn.ModuleList()
        prev_red = False
        for red in self.reduce_flags:
            if red:
                c *= 2
            kind = "reduce" if red else "normal"
            self.cells.append(Cell(nodes, c_pp, c_p, c, red, prev_red,
                                   lambda node, j, ch, s, kind=kind: make_edge(kind, node, j, ch, s), affine))
            prev_red = red
            c_pp, c_p = c_p, nodes * c
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_outputs)

    def cell_weights(self, cell_index):  # overridden by the supernet
        return None

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for k, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.cell_weights(k))
        return self.classifier(self.pool(s1).flatten(1))


# A small genotype for tests and for ``model=nas_genotype`` without a file (2 cells, 2 nodes).
DEFAULT_GENOTYPE = {
    "channels": 8, "cells": 2, "nodes": 2, "reductions": [1], "stem_multiplier": 3,
    "normal": ["conv3x3", "skip", "sep_conv3x3", "zero", "max_pool3x3"],
    "reduce": ["max_pool3x3", "conv3x3", "avg_pool3x3", "skip", "zero"],
}


def load_genotype(genotype) -> dict:
    """A genotype dict from a dict / DictConfig, a YAML path, or None (:data:`DEFAULT_GENOTYPE`); checked."""
    from omegaconf import OmegaConf

    if genotype is None:
        g = dict(DEFAULT_GENOTYPE)
    elif isinstance(genotype, (str, Path)):
        p = Path(genotype)
        if not p.is_file():
            raise LosslandError(f"model.genotype={genotype}: no such file (a genotype.yaml of a lossland nas run)")
        try:  # OmegaConf's loader is a safe one (no Python tags); the file may come from someone else
            g = OmegaConf.to_container(OmegaConf.load(p), resolve=False)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise LosslandError(f"model.genotype={genotype}: not a genotype YAML ({first})") from None
        if not isinstance(g, dict):
            raise LosslandError(f"model.genotype={genotype}: not a genotype YAML (a mapping of channels, cells, "
                                "nodes, normal, reduce)")
    elif isinstance(genotype, Mapping) or OmegaConf.is_config(genotype):
        g = OmegaConf.to_container(OmegaConf.create(genotype), resolve=True) \
            if OmegaConf.is_config(genotype) else dict(genotype)
    else:
        raise LosslandError(f"model.genotype must be a path to a genotype.yaml or null, got {genotype!r}")
    try:
        n_edges = len(cell_edges(int(g["nodes"])))
    except (KeyError, TypeError, ValueError):
        raise LosslandError(f"genotype: nodes must be an integer (the intermediate nodes of a cell), got "
                            f"{g.get('nodes')!r}") from None
    for kind in ("normal", "reduce"):
        ops = list(g.get(kind) or [])
        if kind == "reduce" and not ops and not g.get("reductions"):
            continue
        check_ops(list(dict.fromkeys(ops)))
        if len(ops) != n_edges:
            raise LosslandError(f"genotype {kind}: {len(ops)} operations for {n_edges} edges of a "
                                f"{g['nodes']}-node cell")
    return g


class GenotypeNet(CellNet):
    """The discrete architecture of a search (``genotype``: a genotype.yaml path; null: a small built-in one),
    trained from scratch. ``channels`` / ``cells`` override the genotype's (e.g. a bigger net to evaluate)."""

    def __init__(self, input_shape: Sequence[int], num_outputs: int, genotype=None, channels: int | None = None,
                 cells: int | None = None):
        g = load_genotype(genotype)
        num_cells = int(cells if cells is not None else g["cells"])
        reductions = g.get("reductions") if cells is None else None

        def make_edge(kind, node, j, c, stride):
            e = cell_edges(int(g["nodes"])).index((node, j))
            name = g[kind][e]
            return None if name == "zero" else OPS[name](c, stride, True)

        super().__init__(input_shape, num_outputs, int(channels or g["channels"]), num_cells, int(g["nodes"]),
                         reductions, make_edge, int(g.get("stem_multiplier", 3)), affine=True)
        self.genotype = g
