"""Sphere optimizer, scale-invariance check and elr schedules (docs/studies.md#s)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from lossland.models import ConvNetSI
from lossland.optim import (
    Constant,
    NotScaleInvariantError,
    PiecewiseLinear,
    SphereSGD,
    StepChange,
    check_scale_invariance,
    require_scale_invariant,
    retraction_error,
)

MODES = ("whole", "per_layer", "per_filter")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is faster, and far faster on a shared, busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def si_mlp(d_in=6, hidden=8, classes=3, seed=0, eps=1e-12) -> nn.Module:
    """A tiny fully scale-invariant MLP: Linear(no bias)-BN(affine=False)-ReLU ×2, frozen last layer.

    BN's eps is ~0 (float64) so that SI is exact to round-off: the tests below compare trajectories
    to 1e-9, which eps = 1e-5 would blur (it breaks SI at the 1e-4 level for these small variances).
    """
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(d_in, hidden, bias=False), nn.BatchNorm1d(hidden, eps, affine=False),
                        nn.ReLU(), nn.Linear(hidden, hidden, bias=False),
                        nn.BatchNorm1d(hidden, eps, affine=False), nn.ReLU(), nn.Linear(hidden, classes))
    net[-1].requires_grad_(False)
    return net.double()


def data(n=32, d_in=6, classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64)
    return x, torch.randint(0, classes, (n,), generator=g)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def si_params(net):
    return [p for p in net.parameters() if p.requires_grad]


def loss_of(net, x, y):
    return nn.functional.cross_entropy(net(x), y)


def train(net, opt, batches):
    for x, y in batches:
        opt.zero_grad()
        loss_of(net, x, y).backward()
        opt.step()


def batches(n_steps, seed=2):
    return [data(16, seed=seed + i) for i in range(n_steps)]


def whole_norm(params):
    return torch.sqrt(sum((p.detach() ** 2).sum() for p in params)).item()


# ---------------------------------------------------------------- scale-invariance check

def test_si_check_accepts_convnet_si():
    torch.manual_seed(0)
    model = ConvNetSI((1, 32, 32), 10, width=0.125)
    x = torch.randn(6, 1, 32, 32)
    state = copy.deepcopy(model.state_dict())
    assert check_scale_invariance(model, x) == []
    require_scale_invariant(model, x)
    for k, v in model.state_dict().items():  # the check leaves weights and BN running stats alone
        assert torch.equal(v, state[k]), k


def test_si_check_rejects_affine_bn_and_names_params():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    net[-1].requires_grad_(False)
    x, _ = data()
    bad = check_scale_invariance(net, x)
    assert bad == ["1.weight", "1.bias"]  # the BN bias is zero at init: probed at a random value
    with pytest.raises(NotScaleInvariantError, match=r"1\.weight, 1\.bias.*affine BN") as ei:
        require_scale_invariant(net, x)
    assert isinstance(ei.value, ValueError) and "\n" not in str(ei.value)
    # an unfrozen last layer is caught too, and group specs are honoured
    assert check_scale_invariance(si_mlp().requires_grad_(True), x.double()) == ["6.weight", "6.bias"]
    assert check_scale_invariance(net, x, params={"first": ["0.weight"]}) == []


# ---------------------------------------------------------------- sphere SGD

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("direction", ("gradient", "random", "ascent"))
def test_norm_stays_rho0(mode, direction):
    net = si_mlp()
    params = si_params(net)
    before = [p.detach().clone() for p in params]
    opt = SphereSGD(params, elr=0.05, mode=mode, direction=direction, generator=gen(0))
    train(net, opt, batches(150))
    if mode == "whole":
        rho0 = math.sqrt(sum((b ** 2).sum().item() for b in before))
        assert abs(whole_norm(params) / rho0 - 1) < 1e-6
        assert opt.rho0 == pytest.approx(rho0, rel=1e-12)
    for p, b in zip(params, before):
        if mode == "per_layer":
            assert abs(p.norm().item() / b.norm().item() - 1) < 1e-6
        elif mode == "per_filter":
            torch.testing.assert_close(p.norm(dim=1), b.norm(dim=1), rtol=1e-6, atol=0)
    stats = opt.last_stats()
    assert stats["weight_norm"] == pytest.approx(whole_norm(params), rel=1e-12)
    assert all(math.isfinite(v) for v in stats.values())
    assert not any(torch.equal(p, b) for p, b in zip(params, before))  # it moved


@pytest.mark.parametrize("mode", MODES)
def test_elr_invariant_to_initial_scale(mode):
    c = 3.7
    net_a = si_mlp()
    net_b = copy.deepcopy(net_a)
    with torch.no_grad():
        for p in si_params(net_b):
            p.mul_(c)
    opt_a = SphereSGD(si_params(net_a), elr=0.02, mode=mode)
    opt_b = SphereSGD(si_params(net_b), elr=0.02, mode=mode)
    bs = batches(40)
    train(net_a, opt_a, bs)
    train(net_b, opt_b, bs)
    for pa, pb in zip(si_params(net_a), si_params(net_b)):
        torch.testing.assert_close(pb / c, pa, rtol=1e-9, atol=1e-12)
    x, _ = data(seed=99)
    net_a.train(), net_b.train()
    torch.testing.assert_close(net_b(x), net_a(x), rtol=1e-8, atol=1e-10)
    # a plain SGD with the same lr is *not* invariant: sanity check that the test can fail
    assert opt_b.last_stats()["lr"] == pytest.approx(c ** 2 * opt_a.last_stats()["lr"])


def _one_step(mode, direction, elr=0.05):
    net = si_mlp()
    params = si_params(net)
    opt = SphereSGD(params, elr=elr, mode=mode, direction=direction, generator=gen(3))
    x, y = data()
    opt.zero_grad()
    loss = loss_of(net, x, y)
    loss.backward()
    before = [p.detach().clone() for p in params]
    grads = [p.grad.detach().clone() for p in params]
    opt.step()
    return net, opt, params, before, grads, (x, y, loss.item())


@pytest.mark.parametrize("direction", ("gradient", "random"))
def test_step_length_is_gradient_norm(direction):
    """The step direction is tangent with the gradient's norm: the retracted step turns θ by arctan(x)."""
    for mode in ("whole", "per_layer"):
        net, opt, params, before, grads, _ = _one_step(mode, direction)
        if mode == "whole":
            flat = lambda ts: torch.cat([t.detach().ravel() for t in ts])
            spheres = [(flat(before), flat(params), flat(grads), opt.rho0)]
        else:
            spheres = [(b.ravel(), p.detach().ravel(), g.ravel(), r.item())
                       for b, p, g, r in zip(before, params, grads, opt.rho0)]
        for old, new, g, rho in spheres:
            lr = opt.elr * rho ** 2
            x = lr * g.norm().item() / rho
            cos = (old @ new / (old.norm() * new.norm())).item()
            assert cos == pytest.approx(1 / math.sqrt(1 + x * x), rel=1e-10)
            move = (new * math.sqrt(1 + x * x) - old)  # the pre-retraction displacement, −lr·d
            assert move.norm().item() == pytest.approx(lr * g.norm().item(), rel=1e-8)
            dcos = (move @ -g / (move.norm() * g.norm())).item()
            if direction == "gradient":
                assert dcos == pytest.approx(1.0, abs=1e-8)
            else:
                assert abs(dcos) < 0.9  # a random direction, not the gradient


def test_random_per_filter_norms():
    net, opt, params, before, grads, _ = _one_step("per_filter", "random")
    for old, new, g, rho in zip(before, params, grads, opt.rho0):
        lr = opt.elr * rho ** 2
        x = lr * g.norm(dim=1) / rho
        move = new.detach() * torch.sqrt(1 + x * x).unsqueeze(1) - old
        torch.testing.assert_close(move.norm(dim=1), lr * g.norm(dim=1), rtol=1e-8, atol=1e-12)


def test_ascent_increases_loss():
    net, opt, params, before, grads, (x, y, loss0) = _one_step("whole", "ascent", elr=1e-3)
    with torch.no_grad():
        assert loss_of(net, x, y).item() > loss0
    net, opt, *_, (x, y, loss0) = _one_step("whole", "gradient", elr=1e-3)
    with torch.no_grad():
        assert loss_of(net, x, y).item() < loss0


def test_retraction_error_matches_direct_computation():
    for mode in MODES:
        net, opt, params, before, grads, _ = _one_step(mode, "gradient", elr=0.3)
        stats = opt.last_stats()
        if mode == "whole":
            gn = math.sqrt(sum((g ** 2).sum().item() for g in grads))
            rho = opt.rho0
            x = [opt.elr * rho ** 2 * gn / rho]
            assert stats["grad_norm"] == pytest.approx(gn, rel=1e-12)
            assert stats["lr"] == pytest.approx(opt.elr * rho ** 2)
        elif mode == "per_layer":
            x = [opt.elr * r.item() * g.norm().item() for g, r in zip(grads, opt.rho0)]
        else:
            x = [opt.elr * r_i * g_i for g, r in zip(grads, opt.rho0)
                 for g_i, r_i in zip(g.norm(dim=1).tolist(), r.tolist())]
        errs = [1 - math.atan(v) / v for v in x]
        assert stats["retraction_error"] == pytest.approx(max(errs), rel=1e-9)
        assert stats["retraction_error_mean"] == pytest.approx(sum(errs) / len(errs), rel=1e-9)
        assert stats["elr"] == 0.3 and stats["weight_norm"] > 0
    # the series branch of the formula agrees with the closed form where both are accurate
    xs = torch.tensor([1e-6, 1e-4, 9e-4, 1.1e-3, 0.5, 3.0], dtype=torch.float64)
    direct = 1 - torch.atan(xs) / xs
    torch.testing.assert_close(retraction_error(xs)[2:], direct[2:], rtol=1e-6, atol=0)
    assert retraction_error(1e-6).item() == pytest.approx(1e-12 / 3, rel=1e-6)


def test_state_dict_round_trips_rho0_and_elr():
    for mode in MODES:
        net = si_mlp()
        opt = SphereSGD(si_params(net), elr=0.05, mode=mode)
        rho = copy.deepcopy(opt.rho0)
        train(net, opt, batches(3))
        sd = copy.deepcopy(opt.state_dict())
        other = si_mlp(seed=5)  # different weights and norms
        with torch.no_grad():
            for p in si_params(other):
                p.mul_(2.0)
        opt2 = SphereSGD(si_params(other), elr=1.0, mode=mode)
        opt2.load_state_dict(sd)
        assert opt2.elr == 0.05
        if mode == "whole":
            assert opt2.rho0 == pytest.approx(rho, rel=1e-12)
        else:
            for a, b in zip(opt2.rho0, rho):
                torch.testing.assert_close(a, b)
        train(other, opt2, batches(1))
        if mode == "whole":
            assert whole_norm(si_params(other)) == pytest.approx(rho, rel=1e-9)


def test_random_direction_reproducible_from_generator_state():
    runs = []
    for _ in range(2):
        net = si_mlp()
        opt = SphereSGD(si_params(net), elr=0.05, direction="random", generator=gen(7))
        train(net, opt, batches(3))
        runs.append([p.detach().clone() for p in si_params(net)])
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_elr_setter_and_validation():
    net = si_mlp()
    opt = SphereSGD(si_params(net), elr=0.01)
    opt.elr = 0.02
    assert opt.elr == 0.02 and opt.last_stats()["lr"] == pytest.approx(0.02 * opt.rho0 ** 2)
    for bad in (0.0, -1.0, float("nan"), "x"):
        with pytest.raises(ValueError, match="elr must be a positive number"):
            SphereSGD(si_params(net), elr=bad)
    with pytest.raises(ValueError, match="elr must be a positive"):
        opt.elr = 0
    with pytest.raises(ValueError, match="unknown mode"):
        SphereSGD(si_params(net), elr=0.1, mode="layer")
    with pytest.raises(ValueError, match="unknown direction"):
        SphereSGD(si_params(net), elr=0.1, direction="up")


# ---------------------------------------------------------------- schedules

def test_schedules():
    assert Constant(1e-3)(0) == Constant(1e-3)(10 ** 6) == 1e-3
    s = StepChange(1e-3, at_step=100, factor=0.1)
    assert s(99) == 1e-3 and s(100) == pytest.approx(1e-4) and s(5000) == pytest.approx(1e-4)
    assert StepChange(1e-3, 10, 2.0)(10) == pytest.approx(2e-3)
    p = PiecewiseLinear(1e-2, 1e-5, transition_start=100, transition_length=1000)
    assert p(0) == p(99) == p(100) == 1e-2
    assert p(600) == pytest.approx((1e-2 + 1e-5) / 2)
    assert p(1100) == p(10 ** 6) == 1e-5
    q = PiecewiseLinear(1e-2, 1e-5, transition_start=100, transition_length=1000, log=True)
    assert q(600) == pytest.approx(math.sqrt(1e-2 * 1e-5))
    assert q(100 + 1000 // 3) == pytest.approx(1e-3, rel=1e-2)
    assert PiecewiseLinear(1.0, 2.0, 5, 0)(4) == 1.0 and PiecewiseLinear(1.0, 2.0, 5, 0)(5) == 2.0
    with pytest.raises(ValueError):
        Constant(0.0)
    with pytest.raises(ValueError):
        PiecewiseLinear(1.0, -1.0, 0, 10)
    # a schedule drives the optimizer
    net = si_mlp()
    opt = SphereSGD(si_params(net), elr=p(0))
    for step, (x, y) in enumerate(batches(3)):
        opt.elr = p(step)
        opt.zero_grad()
        loss_of(net, x, y).backward()
        opt.step()
    assert opt.elr == 1e-2
