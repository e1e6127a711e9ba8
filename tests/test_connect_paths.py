"""Paths: every path starts at A and ends at B; the weight-adjustment refit is the least-squares solution."""

import pytest
import torch

from lossland.models import MLP
from lossland.studies.connect.align import align, weight_matching
from lossland.studies.connect.paths import (
    arc,
    bezier,
    least_squares_output_layer,
    linear,
    polychain,
    weight_adjustment,
)


def _pair(hidden=(16,), seed=0):
    torch.manual_seed(seed)
    a = MLP((8, 8), 5, hidden=hidden).eval()
    b = MLP((8, 8), 5, hidden=hidden).eval()
    return a, b


def _assert_state(state, model):
    ref = model.state_dict()
    assert state.keys() == ref.keys()
    for k in ref:
        torch.testing.assert_close(state[k], ref[k], rtol=1e-5, atol=1e-6)


X = torch.randn(200, 8, 8, generator=torch.Generator().manual_seed(0))


def _paths(a, b):
    theta = {k: torch.randn_like(v) for k, v in a.state_dict().items()}
    return {
        "linear": linear(a, b), "arc": arc(a, b),
        "wa_linear": weight_adjustment(a, b, X, linear), "wa_arc": weight_adjustment(a, b, X, arc),
        "bezier": bezier(a, b), "polychain": polychain(a, b),
        "bezier_theta": bezier(a, b, theta), "polychain_theta": polychain(a, b, theta),
    }


@pytest.mark.parametrize("aligned", [False, True])
def test_every_path_starts_at_a_and_ends_at_b(aligned):
    a, b = _pair()
    if aligned:
        b = align(a, b, weight_matching)
    for name, path in _paths(a, b).items():
        t0, t1 = path.t_range
        assert (t0, t1) == ((0.0, 2.0) if name.startswith("wa") else (0.0, 1.0)), name
        _assert_state(path(t0), a)
        _assert_state(path(t1), b)
        mid = path(0.5 * (t0 + t1))
        assert any(not torch.allclose(mid[k], a.state_dict()[k]) for k in mid), name
        with pytest.raises(ValueError, match="outside"):
            path(t1 + 0.5)


def test_linear_and_bends():
    a, b = _pair()
    sa, sb = a.state_dict(), b.state_dict()
    k = "net.1.weight"
    torch.testing.assert_close(linear(a, b)(0.25)[k], 0.75 * sa[k] + 0.25 * sb[k])
    theta = {k: torch.zeros_like(sa[k])}
    torch.testing.assert_close(polychain(a, b, theta)(0.5)[k], theta[k])  # the bend is at t = 1/2
    torch.testing.assert_close(bezier(a, b, theta)(0.5)[k], 0.25 * sa[k] + 0.25 * sb[k])
    torch.testing.assert_close(bezier(a, b)(0.5)[k], 0.5 * (sa[k] + sb[k]))  # default bend: the midpoint


def test_arc_follows_the_mean_neuron_formula():
    a, b = _pair()
    t = 0.3
    c, s = torch.cos(torch.tensor(torch.pi * t / 2)), torch.sin(torch.tensor(torch.pi * t / 2))
    state = arc(a, b)(t)
    w1a, w1b = a.linears[0].weight.detach(), b.linears[0].weight.detach()
    mu = 0.5 * (w1a.mean(0) + w1b.mean(0))
    torch.testing.assert_close(state["net.1.weight"], mu + c * (w1a - mu) + s * (w1b - mu))
    w2a, w2b = a.linears[1].weight.detach(), b.linears[1].weight.detach()  # outgoing columns: mean over units
    mu2 = 0.5 * (w2a.mean(1, keepdim=True) + w2b.mean(1, keepdim=True))
    torch.testing.assert_close(state["net.3.weight"], mu2 + c * (w2a - mu2) + s * (w2b - mu2))
    b2 = (1 - t) * a.linears[1].bias.detach() + t * b.linears[1].bias.detach()
    torch.testing.assert_close(state["net.3.bias"], b2)


def test_arc_needs_one_hidden_layer():
    a, b = _pair(hidden=(16, 8))
    with pytest.raises(ValueError, match="one hidden layer"):
        arc(a, b)


@pytest.mark.parametrize("base", [linear, arc], ids=["linear", "arc"])
def test_weight_adjustment_reproduces_a_on_its_fitting_data(base):
    a, b = _pair()
    path = weight_adjustment(a, b, X, base)
    with torch.no_grad():
        target = a(X)
        model = MLP((8, 8), 5, hidden=(16,)).eval()
        model.load_state_dict(path(0.0))
        torch.testing.assert_close(model(X), target, rtol=0, atol=1e-5)
        # refit with the hidden layer at A returns A's own output layer (features have full column rank)
        w, c = path.refit(a.state_dict())
        torch.testing.assert_close(w, a.linears[1].weight, rtol=0, atol=1e-5)
        torch.testing.assert_close(c, a.linears[1].bias, rtol=0, atol=1e-5)


@pytest.mark.parametrize("hidden", [(16,), (12, 8)])
def test_weight_adjustment_refit_is_the_least_squares_solution(hidden):
    a, b = _pair(hidden)
    key_w, key_b = f"net.{len(a.net) - 1}.weight", f"net.{len(a.net) - 1}.bias"  # the output layer
    path = weight_adjustment(a, b, X, linear)
    with torch.no_grad():
        target = a(X).double()
    for t in (0.3, 0.7, 1.0):
        state = path(t)
        at_t = MLP((8, 8), 5, hidden=hidden).eval()
        at_t.load_state_dict(state)
        with torch.no_grad():
            feats = at_t.net[:-1](X).double()  # inputs of the output layer
        h = torch.cat([feats, torch.ones(len(X), 1, dtype=torch.float64)], 1)
        sol = torch.linalg.lstsq(h, target, driver="gelsd").solution
        w = torch.cat([state[key_w].double(), state[key_b].double()[:, None]], 1)
        torch.testing.assert_close(w, sol.T, rtol=1e-4, atol=1e-5)
        residual = h @ w.T - target
        assert (h.T @ residual).norm() < 1e-5 * h.norm() * target.norm()  # normal equations hold
    # on [1, 2] the hidden layers sit at B and the output layer moves linearly to B's
    s15 = path(1.5)
    torch.testing.assert_close(s15[key_w], 0.5 * (path(1.0)[key_w] + b.state_dict()[key_w]))
    torch.testing.assert_close(s15["net.1.weight"], b.state_dict()["net.1.weight"])


def test_least_squares_ridge_shrinks():
    h, y = torch.randn(50, 6), torch.randn(50, 3)
    w0, _ = least_squares_output_layer(h, y)
    w1, _ = least_squares_output_layer(h, y, ridge=10.0)
    assert w1.norm() < w0.norm()


def test_path_configs_build_paths():
    """Every conf/path option is a _target_ config: instantiated, a builder (a, b, data=...) -> WeightPath."""
    from lossland.config import CONFIG_DIR, check_overrides
    from lossland.errors import LosslandError
    from lossland.studies.connect.paths import PathData, WeightPath
    from lossland.studies.connect.run import compose_connect, instantiate_method

    a, b = _pair()
    data = PathData(x=X)
    expected = {"linear": ("linear", (0.0, 1.0)), "arc": ("arc", (0.0, 1.0)),
                "weight_adjustment": ("weight_adjustment", (0.0, 2.0)),
                "weight_adjustment_arc": ("weight_adjustment", (0.0, 2.0))}
    for option, (name, t_range) in expected.items():
        path = instantiate_method(compose_connect([f"path={option}"]).path)(a, b, data=data)
        assert isinstance(path, WeightPath) and path.name == name and path.t_range == t_range, option
    wa_arc = instantiate_method(compose_connect(["path=weight_adjustment_arc", "path.fit_examples=50"]).path)
    p = wa_arc(a, b, data=data)
    assert len(p.x) == 50
    torch.testing.assert_close(p.base(0.3)["net.1.weight"], arc(a, b)(0.3)["net.1.weight"])
    with pytest.raises(LosslandError, match="valid path options: arc, bezier, linear"):
        check_overrides(["path=spline"], "connect", CONFIG_DIR)


def test_bezier_is_differentiable_in_the_bend():
    a, b = _pair()
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in a.named_parameters()}
    state = bezier(a, b, theta)(0.4)
    out = torch.func.functional_call(a, state, (X,))
    out.pow(2).mean().backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in theta.values())


def test_least_squares_with_dead_units_reproduces_the_targets():
    # units that are zero on every fitting example (dead ReLUs) must not break the fast solver
    g = torch.Generator().manual_seed(0)
    h = torch.relu(torch.randn(400, 30, generator=g))
    h[:, [3, 17]] = 0.0
    w_true, b_true = torch.randn(5, 30, generator=g), torch.randn(5, generator=g)
    w_true[:, [3, 17]] = 0.0
    y = h @ w_true.T + b_true
    w, b = least_squares_output_layer(h, y)
    torch.testing.assert_close(h @ w.T + b, y, rtol=0, atol=1e-4)
    assert torch.all(w[:, [3, 17]] == 0)
    torch.testing.assert_close(w, w_true, rtol=0, atol=1e-4)
