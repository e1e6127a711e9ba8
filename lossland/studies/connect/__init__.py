"""Mode connectivity: neuron alignment, paths between minima, curve training, evaluation along paths.

Typical use: ``from lossland.studies.connect.align import align``; ``b2 = align(a, b, weight_matching)``;
``p = arc(a, b2)``; ``r = evaluate_path(p, a, loss, train=(x, y), test=(xt, yt))``;
``write_connect_json(r, "connect.json")``; ``plot_paths(r, "connect.png")``.
Jobs (``lossland connect``) build the alignment method and the path from the ``conf/align`` and ``conf/path``
configs (``_target_``): :mod:`lossland.studies.connect.run`.

The function :func:`lossland.studies.connect.align.align` is not re-exported here: as a package attribute it would
shadow the module ``lossland.studies.connect.align`` (which the ``_target_`` paths of ``conf/align`` name).
"""

from lossland.studies.connect.align import (
    activation_matching,
    no_alignment,
    ot_matching,
    permute_model,
    random_permutations,
    unit_layers,
    weight_matching,
)
from lossland.studies.connect.bn import has_bn, recompute_bn
from lossland.studies.connect.evaluate import evaluate_path, write_connect_json
from lossland.studies.connect.paths import (
    PathData,
    WeightPath,
    arc,
    bezier,
    least_squares_output_layer,
    linear,
    polychain,
    weight_adjustment,
)
from lossland.studies.connect.plots import plot_paths

__all__ = [
    "no_alignment", "weight_matching", "activation_matching", "ot_matching", "permute_model",
    "random_permutations", "unit_layers", "has_bn", "recompute_bn", "evaluate_path",
    "write_connect_json", "WeightPath", "PathData", "linear", "arc", "weight_adjustment", "bezier", "polychain",
    "least_squares_output_layer", "plot_paths",
]
