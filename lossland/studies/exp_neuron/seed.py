"""The values of study E's seed document, read from this study's ``seed.yaml`` (the one copy, with units, setting
and source per table) by the one seed reader, :func:`lossland.paper.data.load` (``lossland paper exp_neuron``
reads the same). This module gives them the shapes ``lossland exp-neuron`` uses: each row (dataset, train size,
without the neuron, with it, architecture); stability rows (perturbed neuron, fraction diverged).
"""

from __future__ import annotations

from lossland.paper.data import load

_DOC = load(__package__).raw


def _pair_or_value(v):
    return tuple(v) if isinstance(v, list) else v


def _rows(name: str) -> list[tuple]:
    return [(r[0], r[1], _pair_or_value(r[2]), _pair_or_value(r[3]), r[4]) for r in _DOC["tables"][name]["rows"]]


ARCHITECTURES = {int(k): v for k, v in _DOC["architectures"].items()}
QUALITY = _rows("quality")                # Table 1: (loss_sum, misclassified) on the final training split
SPEED = _rows("speed")                    # Table 2: epochs to zero training errors
GENERALIZATION = _rows("generalization")  # Table 3: (loss_sum, misclassified) on the validation split
STABILITY = [(r[0], r[1]) for r in _DOC["tables"]["stability"]["rows"]]  # (perturbed neuron, fraction diverged)

UNITS = {
    "quality": "training split: loss summed over the split \\ number of misclassified examples",
    "speed": "epochs until zero training errors (best over the grid); steps beside it",
    "generalization": "validation split: loss summed over the split \\ number of misclassified examples",
    "stability": "perturbed runs; diverged = overflow at step 1 (the noised weights' loss is non-finite before any "
                 "update) + blow-ups in training (after ≥ 1 update); noise scale: σ / mean abs weight of the "
                 "perturbed neuron (the seed's: 0.1); protocol: controlled, or at the seed's conditions",
}

# Embedded stand-ins, compared with the seed's row of the real data set of the same role (the seed's size is shown)
STANDINS = dict(_DOC["standins"])
