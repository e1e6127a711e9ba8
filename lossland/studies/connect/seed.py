"""The connectivity seed's numbers, kept as data (``shared/seeds/001``: study C), and its method names.

The seed's tables are "Max accuracy loss" of six methods × six hidden widths, without a prior and with
dropout 0.5, on MNIST with a one-hidden-layer ReLU MLP ŷ = W2·ReLU(W1x + b1) + b2. Unit: **percent of the
test set**, and the quantity is the *maximum test error along the path* (100 − min accuracy), not a drop
relative to the endpoints: at widths 500–2000 every aligned method sits at 2.0–2.6, the endpoint test error
of such nets, and the evaluation script of the method's authors (Anokhin & Yarotsky 2020) reports exactly
that maximum. lossland's counterpart is ``test.max_err`` (see :func:`lossland.studies.connect.study.metric_value`).
"""

from __future__ import annotations

from lossland.paper.data import load

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

# The tables are read from the one copy of the seed's values, this study's seed.yaml (lossland.paper.data).
# Its row names omit the spaces ("Linear+WA").
_TABLE_OF_PRIOR = {"none": "no_prior", "dropout": "dropout"}  # prior (as connect.json names it) -> yaml table


def _load_tables() -> dict[str, dict[str, tuple]]:
    seed = load(__package__)
    names = {m.replace(" ", ""): m for m in METHODS}
    tables = {}
    for prior, tid in _TABLE_OF_PRIOR.items():
        t = seed.tables[tid]
        assert tuple(t.columns) == WIDTHS, f"connect seed.yaml {tid}: columns {t.columns} are not {WIDTHS}"
        tables[prior] = {names[key[0]]: tuple(float(row[w]) for w in WIDTHS) for key, row in t.rows.items()}
    return tables


TABLES = _load_tables()  # prior -> method -> values at WIDTHS


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
