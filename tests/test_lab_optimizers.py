"""The lab's optimizers (the training loop's own configs) against hand-derived steps on a quadratic."""

import math

import numpy as np
import pytest
import torch

from lossland.errors import LosslandError
from lossland.optim import NoisyGD
from lossland.studies.optim.functions import Quadratic, Saddle
from lossland.studies.optim.trajectories import make_optimizer, optimizer_config, optimizer_names, run_trajectory

A, B = 2.0, 0.5            # f = (A·x1² + B·x2²)/2, ∇f = (A·x1, B·x2)
X0 = np.array([1.0, -2.0])
LR = 0.1


def grad(x):
    return np.array([A * x[0], B * x[1]])


def two_steps(name, **over):
    fn = Quadratic(a=A, b=B, start=X0.tolist())
    t = run_trajectory(fn, name, X0.tolist(), 2, LR, over or None)
    return t.points  # θ0, θ1, θ2


def test_lab_offers_every_optimizer_of_the_issue():
    assert {"gd", "noisy_gd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"} <= set(optimizer_names())
    assert "sphere_sgd" not in optimizer_names()


def test_gd():
    x1 = X0 - LR * grad(X0)
    x2 = x1 - LR * grad(x1)
    np.testing.assert_allclose(two_steps("gd")[1:], [x1, x2], rtol=1e-12)


def test_noisy_gd_is_gd_plus_sigma_times_its_generator_draws():
    sigma = 0.3
    g = torch.Generator().manual_seed(0)  # run_trajectory seeds its generator with seed=0
    e1, e2 = (torch.randn(2, generator=g, dtype=torch.float64).numpy() for _ in range(2))
    x1 = X0 - LR * grad(X0) + sigma * e1
    x2 = x1 - LR * grad(x1) + sigma * e2
    np.testing.assert_allclose(two_steps("noisy_gd", sigma=sigma)[1:], [x1, x2], rtol=1e-12)


def test_momentum():  # torch / the lecture: v ← ρv + ∇L, W ← W − λv (v0 = ∇L at the first step)
    rho = 0.9
    v1 = grad(X0)
    x1 = X0 - LR * v1
    v2 = rho * v1 + grad(x1)
    x2 = x1 - LR * v2
    np.testing.assert_allclose(two_steps("momentum")[1:], [x1, x2], rtol=1e-12)


def test_nesterov():  # torch's form: v ← ρv + g, step along g + ρv
    rho = 0.9
    g0 = grad(X0)
    v1 = g0
    x1 = X0 - LR * (g0 + rho * v1)
    g1 = grad(x1)
    v2 = rho * v1 + g1
    x2 = x1 - LR * (g1 + rho * v2)
    np.testing.assert_allclose(two_steps("nesterov")[1:], [x1, x2], rtol=1e-12)


def test_adagrad():  # cache ← cache + g², W ← W − λ g / (√cache + 1e-10)
    g0 = grad(X0)
    c1 = g0 ** 2
    x1 = X0 - LR * g0 / (np.sqrt(c1) + 1e-10)
    g1 = grad(x1)
    c2 = c1 + g1 ** 2
    x2 = x1 - LR * g1 / (np.sqrt(c2) + 1e-10)
    np.testing.assert_allclose(two_steps("adagrad")[1:], [x1, x2], rtol=1e-10)


def test_rmsprop():  # cache ← γ·cache + (1 − γ)·g², W ← W − λ g / (√cache + 1e-8), γ = alpha = 0.99
    gamma = 0.99
    g0 = grad(X0)
    c1 = (1 - gamma) * g0 ** 2
    x1 = X0 - LR * g0 / (np.sqrt(c1) + 1e-8)
    g1 = grad(x1)
    c2 = gamma * c1 + (1 - gamma) * g1 ** 2
    x2 = x1 - LR * g1 / (np.sqrt(c2) + 1e-8)
    np.testing.assert_allclose(two_steps("rmsprop")[1:], [x1, x2], rtol=1e-10)


def test_adam():  # bias-corrected moments, β = (0.9, 0.999), eps 1e-8
    b1, b2 = 0.9, 0.999
    g0 = grad(X0)
    m, v = (1 - b1) * g0, (1 - b2) * g0 ** 2
    x1 = X0 - LR * (m / (1 - b1)) / (np.sqrt(v / (1 - b2)) + 1e-8)
    g1 = grad(x1)
    m, v = b1 * m + (1 - b1) * g1, b2 * v + (1 - b2) * g1 ** 2
    x2 = x1 - LR * (m / (1 - b1 ** 2)) / (np.sqrt(v / (1 - b2 ** 2)) + 1e-8)
    np.testing.assert_allclose(two_steps("adam")[1:], [x1, x2], rtol=1e-10)


@pytest.mark.parametrize("lr", [1e-3, 0.1, 1.0])
def test_adam_first_step_is_lr_per_coordinate(lr):
    fn = Quadratic(a=1e3, b=1e-3)
    t = run_trajectory(fn, "adam", [0.7, -3.0], 1, lr)
    np.testing.assert_allclose(np.abs(t.points[1] - t.points[0]), [lr, lr], rtol=1e-4)


def test_gd_on_the_stable_manifold_stays_at_the_saddle_noisy_gd_leaves():
    fn = Saddle(saddle=[0, 0])
    gd = run_trajectory(fn, "gd", [1.5, 0.0], 300, 0.05)
    assert gd.points[-1][1] == 0.0 and abs(gd.points[-1][0]) < 1e-12   # converged onto the saddle
    noisy = run_trajectory(fn, "noisy_gd", [1.5, 0.0], 300, 0.05, {"sigma": 1e-3}, seed=0)
    assert noisy.stopped is not None or np.linalg.norm(noisy.points[-1]) > 1.0  # left it
    assert noisy.losses[-1] < -1.0
    again = run_trajectory(fn, "noisy_gd", [1.5, 0.0], 300, 0.05, {"sigma": 1e-3}, seed=0)
    np.testing.assert_array_equal(noisy.points, again.points)  # fixed seed: reproducible


def test_lab_uses_the_training_configs():
    opt = make_optimizer("nesterov", [torch.nn.Parameter(torch.zeros(2))], 0.01)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] and opt.defaults["lr"] == 0.01
    assert isinstance(make_optimizer("noisy_gd", [torch.nn.Parameter(torch.zeros(2))], 0.01), NoisyGD)


def test_noisy_gd_in_the_training_config(make_cfg):
    from lossland.build import instantiate_node as build

    cfg = make_cfg("optimizer=noisy_gd", "lr=0.2")
    opt = build(cfg.optimizer, "optimizer")([torch.nn.Parameter(torch.zeros(3))])
    assert isinstance(opt, NoisyGD) and opt.defaults == {"lr": 0.2, "sigma": 0.001}


@pytest.mark.parametrize("name, over, match", [
    ("bfgs", None, "unknown optimizer 'bfgs'; valid lab optimizers: adagrad, adam"),
    ("noisy_gd", {"sigma": -1.0}, "sigma must be a finite number ≥ 0"),
    ("adam", {"lr": -1.0}, "lr must be a positive number"),
    ("adam", {"betaz": 1}, "unknown argument"),
])
def test_bad_optimizer_input(name, over, match):
    with pytest.raises(LosslandError, match=match):
        optimizer_config(name, 0.1, over)


def test_noisy_gd_refuses_bad_sigma():
    with pytest.raises(LosslandError, match="sigma"):
        NoisyGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, sigma=math.nan)
