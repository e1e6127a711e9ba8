"""The candidate operations of an edge (a registry of small ``nn.Module`` s keyed by name). They live in
:mod:`lossland.models.darts` so that the discrete network (a ``train.py`` model) builds from the same ones."""

from lossland.models.darts import OPS, check_ops

__all__ = ["OPS", "check_ops"]
