"""Alignment: permuting hidden units keeps the function; every method recovers a planted permutation."""

import pytest
import torch

from lossland.models import MLP, ConvNetSI
from lossland.studies.connect.align import (
    activation_matching,
    align,
    no_alignment,
    ot_matching,
    permute_model,
    random_permutations,
    unit_layers,
    weight_matching,
)
from lossland.studies.connect.bn import recompute_bn


def _mlp(hidden, seed=0):
    torch.manual_seed(seed)
    return MLP((8, 8), 10, hidden=hidden).eval()


def _convnet(seed=0):
    torch.manual_seed(seed)
    m = ConvNetSI((1, 32, 32), 10, width=0.125)
    recompute_bn(m, torch.randn(64, 1, 32, 32) + 0.3)  # data-like BN statistics: no dead channels
    return m.eval()


CASES = {
    "mlp1": (lambda: _mlp((24,)), lambda: torch.randn(256, 8, 8)),
    "mlp2": (lambda: _mlp((24, 16)), lambda: torch.randn(256, 8, 8)),
    "convnet": (_convnet, lambda: torch.randn(32, 1, 32, 32) + 0.3),
}


def _max_diff(a, b):
    return max((va.float() - vb.float()).abs().max().item()
               for va, vb in zip(a.state_dict().values(), b.state_dict().values()))


def _planted(case):
    make_model, make_x = CASES[case]
    a = make_model()
    perms = random_permutations(a, torch.Generator().manual_seed(1))
    assert all(not torch.equal(p, torch.arange(len(p))) for p in perms)
    return a, permute_model(a, perms), make_x()


def test_unit_layers_of_convnet_si():
    layers = unit_layers(_convnet())
    assert [layer.size for layer in layers] == [4, 8, 16, 32]
    last = layers[-1]
    assert last.next_name == "classifier"
    keys = {s.key for s in last.slots}
    assert {"features.12.running_mean", "features.12.running_var", "classifier.weight"} <= keys


@pytest.mark.parametrize("case", list(CASES))
def test_permutation_keeps_function(case):
    a, b, x = _planted(case)
    assert _max_diff(a, b) > 1e-3  # the weights did move
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x), rtol=1e-5, atol=1e-5)


def test_permute_model_rejects_wrong_number_of_maps():
    with pytest.raises(ValueError, match="unit layers"):
        permute_model(_mlp((24, 16)), [None])


METHODS = [(weight_matching, {}), (activation_matching, {}), (ot_matching, {"method": "exact"}),
           (ot_matching, {"method": "sinkhorn", "reg": 0.01}), (ot_matching, {"method": "sinkhorn", "hard": False,
                                                                              "reg": 0.002})]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("method,kw", METHODS, ids=["weight", "activation", "ot_exact", "ot_sinkhorn",
                                                     "ot_sinkhorn_soft"])
def test_alignment_recovers_planted_permutation(case, method, kw):
    a, b, x = _planted(case)
    b = b.eval()
    with torch.no_grad():  # tiny noise: recovery must not rely on exact ties
        for p in b.parameters():
            p.add_(1e-5 * torch.randn_like(p))
    aligned = align(a, b, method, x=x, **kw)
    if kw.get("hard", True):
        assert _max_diff(a, aligned) < 1e-4
    else:  # soft map: close to the permutation, not exactly it
        assert _max_diff(a, aligned) < 1e-2
    with torch.no_grad():
        torch.testing.assert_close(aligned(x), a(x), rtol=1e-2, atol=1e-2)


def test_align_none_and_unknown_method():
    from lossland.config import CONFIG_DIR, check_overrides
    from lossland.errors import LosslandError

    a, b, _ = _planted("mlp1")
    assert _max_diff(align(a, b, no_alignment), b) == 0
    with pytest.raises(LosslandError, match="valid align options: activation, none, ot_exact"):
        check_overrides(["align=bogus"], "connect", CONFIG_DIR)
    with pytest.raises(ValueError, match="needs data"):
        align(a, b, activation_matching)
    with pytest.raises(ValueError, match="valid: exact, sinkhorn"):
        align(a, b, ot_matching, method="bogus")


def test_alignment_reduces_distance_between_independent_nets():
    a, b = _mlp((32,), seed=0), _mlp((32,), seed=1)
    x = torch.randn(256, 8, 8)

    def dist(m):
        return sum((pa - pm).pow(2).sum() for pa, pm in zip(a.parameters(), m.parameters())).item()

    for method in (weight_matching, activation_matching, ot_matching):
        aligned = align(a, b, method, x=x)
        assert dist(aligned) <= dist(b) + 1e-6
        with torch.no_grad():
            torch.testing.assert_close(aligned(x), b(x), rtol=1e-5, atol=1e-5)
