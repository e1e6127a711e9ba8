"""Mode connectivity: neuron alignment, paths between minima, curve training, evaluation along paths.

Typical use: ``b2 = align(a, b, "weight")``; ``p = arc(a, b2)``; ``r = evaluate_path(p, a, loss, train=(x, y),
test=(xt, yt))``; ``write_connect_json(r, "connect.json")``; ``plot_paths(r, "connect.png")``.
"""

from lossland.connect.align import (
    activation_matching,
    align,
    ot_matching,
    permute_model,
    random_permutations,
    unit_layers,
    weight_matching,
)
from lossland.connect.bn import has_bn, recompute_bn
from lossland.connect.evaluate import evaluate_model, evaluate_path, write_connect_json
from lossland.connect.paths import (
    Path,
    arc,
    bezier,
    least_squares_output_layer,
    linear,
    make_path,
    polychain,
    weight_adjustment,
)
from lossland.connect.plots import plot_paths

__all__ = [
    "align", "weight_matching", "activation_matching", "ot_matching", "permute_model", "random_permutations",
    "unit_layers", "has_bn", "recompute_bn", "evaluate_model", "evaluate_path", "write_connect_json",
    "Path", "linear", "arc", "weight_adjustment", "bezier", "polychain", "make_path",
    "least_squares_output_layer", "plot_paths",
]
