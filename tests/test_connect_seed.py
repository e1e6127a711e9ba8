"""Study C as the seed defines it: OT alignment against brute force, the seed's table kept as data, the table
beside the seed's numbers, the trend checks and the priors figure (panels c–h) on synthetic connect.json."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from lossland.models import MLP
from lossland.records import write_json
from lossland.studies.connect import seed
from lossland.studies.connect.align import ot_matching, permute_model, weight_matching
from lossland.studies.connect.priors import check_prior_trends, normalized_error, peak_rows
from lossland.studies.connect.study import (
    check_seed_trends,
    metric_value,
    read_connect_records,
    seed_table_markdown,
    width_table,
    write_width_table,
)


def _mlp(hidden, seed_=0):
    torch.manual_seed(seed_)
    return MLP((8, 8), 10, hidden=(hidden,)).eval()


def _neurons(m) -> np.ndarray:
    """The seed's OT neuron: [row of W1, b1 entry, column of W2] (read by hand, not through align.py)."""
    lin = [x for x in m.modules() if isinstance(x, torch.nn.Linear)]
    w1, b1, w2 = lin[0].weight.detach(), lin[0].bias.detach(), lin[1].weight.detach()
    return torch.cat([w1, b1[:, None], w2.T], 1).double().numpy()


def _cost(a, b, perm) -> float:
    return float(((_neurons(a) - _neurons(b)[list(perm)]) ** 2).sum())


@pytest.mark.parametrize("seed_", [0, 1, 2])
def test_ot_exact_is_the_brute_force_optimal_assignment(seed_):
    """5 hidden neurons: exact OT (uniform marginals) = the permutation minimising Σ‖a_i − b_σ(i)‖² over all
    120, and scipy's assignment on the same cost agrees."""
    a, b = _mlp(5, 10 * seed_), _mlp(5, 10 * seed_ + 1)
    (perm,) = ot_matching(a, b, method="exact")
    costs = {p: _cost(a, b, p) for p in itertools.permutations(range(5))}
    best = min(costs, key=costs.get)
    assert tuple(perm.tolist()) == best
    fa, fb = _neurons(a), _neurons(b)
    d = ((fa[:, None, :] - fb[None, :, :]) ** 2).sum(-1)
    assert tuple(linear_sum_assignment(d)[1].tolist()) == best
    assert costs[best] < costs[tuple(range(5))]  # the untouched B is not already optimal here


def test_ot_exact_recovers_a_permuted_copy_exactly():
    a = _mlp(40)
    planted = torch.randperm(40, generator=torch.Generator().manual_seed(3))
    b = permute_model(a, [planted])
    (perm,) = ot_matching(a, b, method="exact")
    aligned = permute_model(b, [perm])
    for pa, pb in zip(a.state_dict().values(), aligned.state_dict().values()):
        assert torch.equal(pa, pb)


def test_ot_exact_equals_weight_matching_on_one_hidden_layer():
    """Σ‖a_i − b_σ(i)‖² = const − 2 Σ⟨a_i, b_σ(i)⟩: for one hidden layer the seed's OT and weight matching
    solve the same assignment (lossland's extra, weight matching, should give the same numbers)."""
    for s in range(3):
        a, b = _mlp(30, s), _mlp(30, s + 100)
        assert torch.equal(ot_matching(a, b, method="exact")[0], weight_matching(a, b)[0])


def test_seed_table_is_complete_and_named():
    assert set(seed.TABLES) == {"none", "dropout"}
    for table in seed.TABLES.values():
        assert tuple(table) == seed.METHODS and all(len(v) == len(seed.WIDTHS) for v in table.values())
    assert seed.seed_value("none", "arc, ot_exact", 2000) == 2.37
    assert seed.seed_value("dropout", "linear+WA", 10) == 20.31
    assert seed.seed_value("weight_decay", "linear", 10) is None and seed.seed_name("bezier") is None
    assert seed.seed_name("linear, weight") == "Linear + WM"


def _record(path, prior, width, label, err_curve, seeds=(0, 10)):
    t = np.linspace(0, 2 if "WA" in label else 1, len(err_curve))
    acc = [100.0 - e for e in err_curve]
    write_json(path / "connect.json", {
        "status": "ok", "prior": prior, "width": width, "a": {"seed": seeds[0]}, "b": {"seed": seeds[1]},
        "method": {"align": "ot" if "ot" in label else "none", "path": label.split(", ")[0], "label": label},
        "result": {"t": t.tolist(), "t_range": [float(t[0]), float(t[-1])], "test_acc": acc},
        "summary": {"test": {"max_acc_loss": max(err_curve) - 0.5 * (err_curve[0] + err_curve[-1]),
                             "min_acc": min(acc)}}})


def _synthetic(root):
    """Barriers that shrink with width, are lower for WA/OT and lower with dropout (endpoint error 2 %)."""
    k = 0
    for prior, factor in (("none", 1.0), ("dropout", 0.5)):
        for width in (10, 50, 1000):
            for pair in (0, 1):
                for name, label in seed.METHOD_LABELS.items():
                    bump = (20.0 if name in ("Linear", "Arc") else 5.0) * factor * 10 / width + pair
                    _record(root / f"j{k}", prior, width, label, [2.0, 2.0 + bump, 2.0], (pair, 10 + pair))
                    k += 1


def test_seed_comparison_checks_and_priors_figure(tmp_path):
    _synthetic(tmp_path)
    recs = read_connect_records(tmp_path)
    assert metric_value(recs[0], "test.max_err") == pytest.approx(100 - recs[0]["summary"]["test"]["min_acc"])
    s, norm = normalized_error(recs[0])
    assert s[0] == 0 and s[-1] == 1 and norm[0] == norm[-1] == 1.0
    rows = width_table(recs, "test.max_err")
    md = seed_table_markdown(rows)
    assert "| Linear + OT |" in md and "[12.92]" in md and "[2.09]" not in md.split("prior: dropout")[0]
    checks = check_seed_trends(rows)
    assert "none: WA/OT below Linear and Arc in 24/24 comparisons [seed: 24/24] (reproduces)" in checks
    assert any(c.startswith("none: error lower at width 1000 than at 10 for 6/6") for c in checks)
    assert any(c.startswith("dropout below no prior (max error) in 18/18") for c in checks)
    peaks = peak_rows(recs)
    lin = {(r["prior"], r["width"]): r for r in peaks if r["method"] == "linear"}
    assert lin[("none", 10)]["mean"] == pytest.approx(1 + (20 + 0.5) / 2)
    assert lin[("none", 10)]["std"] == pytest.approx(math.sqrt(0.125))
    assert check_prior_trends(peaks) == ["dropout vs none: lower peak normalized error in 18/18 method x width "
                                         "cells (reproduces)"]
    out = write_width_table(tmp_path, tmp_path / "out")
    names = {p.rsplit("/", 1)[1] for p in out["files"]}
    assert {"seed_table.md", "priors.png", "peak_normalized_error.csv"} <= names
    assert (tmp_path / "out" / "priors.png").stat().st_size > 20_000


def test_seed_checks_on_the_seeds_own_table():
    """Fed the seed's own numbers, every count equals the seed's reference count."""
    rows = [{"prior": p, "method": seed.METHOD_LABELS[m], "width": w, "n": 1, "mean": v, "std": 0.0,
             "values": [v]}
            for p, tab in seed.TABLES.items() for m, vals in tab.items() for w, v in zip(seed.WIDTHS, vals)]
    for line in check_seed_trends(rows):
        ours, ref = line.split(" in ")[-1].split(" [seed: ") if " in " in line else (None, None)
        if ours is not None:
            assert ours.split(" ")[0] == ref.split("]")[0]
    assert "dropout below no prior (max error) in 23/36 method x width cells [seed: 23/36] (partly)" in \
        check_seed_trends(rows)
