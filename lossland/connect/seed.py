"""The connectivity seed's numbers, kept as data (``shared/seeds/001``: study C), and its method names.

The seed's tables are "Max accuracy loss" of six methods × six hidden widths, without a prior and with
dropout 0.5, on MNIST with a one-hidden-layer ReLU MLP ŷ = W2·ReLU(W1x + b1) + b2. Unit: **percent of the
test set**, and the quantity is the *maximum test error along the path* (100 − min accuracy), not a drop
relative to the endpoints: at widths 500–2000 every aligned method sits at 2.0–2.6, the endpoint test error
of such nets, and the evaluation script of the method's authors (Anokhin & Yarotsky 2020) reports exactly
that maximum. lossland's counterpart is ``test.max_err`` (see :func:`lossland.connect.study.metric_value`).
"""

from __future__ import annotations

SEED_ID = "001_d158779183557447"
SETTING = ("MNIST (60,000 train / 10,000 test), MLP with one hidden ReLU layer of the given width, "
           "endpoints trained from different seeds; number of pairs and epochs not stated")
UNIT = "max test error along the path, % of the test set"
WIDTHS = (10, 50, 100, 500, 1000, 2000)
METHODS = ("Linear", "Arc", "Linear + WA", "Arc + WA", "Linear + OT", "Arc + OT")

# seed name -> (path label, alignment label) in connect.json's ``method`` (alignment None: the naive path);
# OT is exact optimal transport between the neurons [row of W1, b1 entry, column of W2] of A and B with
# squared-Euclidean cost, rounded to a permutation (conf/align/ot_exact.yaml).
METHOD_LABELS = {
    "Linear": "linear", "Arc": "arc", "Linear + WA": "linear+WA", "Arc + WA": "arc+WA",
    "Linear + OT": "linear, ot_exact", "Arc + OT": "arc, ot_exact",
}
# lossland's extra, not in the seed: weight matching (Ainsworth et al. 2022)
EXTRA_LABELS = {"Linear + WM": "linear, weight", "Arc + WM": "arc, weight"}

# prior (as connect.json names it) -> method -> values at WIDTHS
TABLES = {
    "none": {
        "Linear": (45.74, 24.35, 10.83, 4.84, 3.83, 4.17),
        "Arc": (35.94, 21.58, 9.53, 4.21, 3.39, 2.98),
        "Linear + WA": (17.3, 5.91, 3.79, 2.46, 2.24, 2.11),
        "Arc + WA": (17.11, 5.77, 3.71, 2.43, 2.23, 2.11),
        "Linear + OT": (12.92, 4.02, 2.86, 2.38, 2.11, 2.24),
        "Arc + OT": (13.77, 4.81, 3.5, 2.59, 2.36, 2.37),
    },
    "dropout": {  # "with DropOut 0.5"
        "Linear": (41.21, 14.17, 9.68, 3.57, 3.1, 2.75),
        "Arc": (28.75, 12.64, 8.29, 3.7, 3.36, 2.6),
        "Linear + WA": (20.31, 7.49, 4.57, 2.57, 2.23, 2.06),
        "Arc + WA": (19.65, 7.43, 4.43, 2.57, 2.23, 2.09),
        "Linear + OT": (15.03, 4.61, 3.09, 2.17, 2.05, 2.09),
        "Arc + OT": (15.34, 4.66, 3.43, 2.28, 2.29, 2.25),
    },
}

# The seed's claims (its "Выводы"), in the order docs/connect.md discusses them.
CLAIMS = (
    "advanced methods (WA, OT) give paths with lower error than Linear and Arc",
    "minima become more connected as the hidden width grows",
    "a prior (weight decay = Gaussian, dropout) makes minima more connected (normalized errors)",
    "a more informative prior gives a smoother parameter space",
)


def seed_name(label: str) -> str | None:
    """The seed's (or lossland's extra) name of a connect.json method label, None for other methods."""
    for name, lab in {**METHOD_LABELS, **EXTRA_LABELS}.items():
        if lab == label:
            return name
    return None


def seed_value(prior: str, label: str, width) -> float | None:
    """The seed's table value for (prior, method label, width), None where the seed has none."""
    name = seed_name(label)
    table = TABLES.get(prior, {})
    if name not in table or width not in WIDTHS:
        return None
    return table[name][WIDTHS.index(width)]
