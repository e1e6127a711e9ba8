"""Curvature metrics against independent ground truth (dense autograd Hessians, explicit loops)."""

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from lossland.losses import MSE, CrossEntropy
from lossland.metrics.curvature import (
    bn_mode,
    compute_curvature,
    curvature_operator,
    empirical_fisher_trace,
    flatten,
    ggn_trace,
    hessian_density,
    hessian_top_eigs,
    hessian_trace,
    per_layer,
    per_sample_grads,
    select_params,
    true_fisher_trace,
    unflatten,
)
from lossland.models import MLP

pytestmark = pytest.mark.usefixtures("float64")  # exact comparisons with dense ground truth


def tiny_mlp(seed=0):
    torch.manual_seed(seed)
    return MLP((5,), 3, hidden=(16,), activation="tanh").double()  # 6·16 + 16·3 + 3 = 147 params


def data(n=24, d=5, classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g)


def bn_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3)).double()
    net.train()
    with torch.no_grad():  # non-trivial running statistics
        for _ in range(3):
            net(torch.randn(16, 5, dtype=torch.float64) * 2 + 1)
    return net


def dense_hessian(model, loss, x, y, params="all", train=False):
    """Ground truth: torch.autograd.functional.hessian over the flat selected parameter vector."""
    model = copy.deepcopy(model).train(train)
    named = {n: p.detach() for n, p in select_params(model, params).items()}
    f = lambda v: loss(functional_call(model, unflatten(v, named), (x,)), y)
    return torch.autograd.functional.hessian(f, flatten(named), vectorize=True)


def as_matrix(op):
    return op @ torch.eye(op.shape[1], dtype=torch.float64)


_DENSE = {}


def tiny_dense(name):
    """Dense Hessian of the tiny MLP on the default data (cached: each takes a second)."""
    if name not in _DENSE:
        model, (x, y) = tiny_mlp(), data()
        _DENSE[name] = dense_hessian(model, {"ce": CrossEntropy(), "mse": MSE()}[name], x, y)
    return _DENSE[name]


@pytest.mark.parametrize("name", ["ce", "mse"])
def test_top_eigs_and_operator_match_dense_hessian(name):
    model, (x, y), H = tiny_mlp(), data(), tiny_dense(name)
    loss = {"ce": CrossEntropy(), "mse": MSE()}[name]
    torch.testing.assert_close(as_matrix(curvature_operator(model, loss, (x, y), batch_size=10)), H)
    exact = np.linalg.eigvalsh(H.numpy())[::-1][:3]
    top = hessian_top_eigs(model, loss, (x, y), k=3, tol=1e-10, batch_size=10)
    np.testing.assert_allclose(top, exact, rtol=1e-4)
    if name == "mse":  # lossland MSE sums over classes; per_class_mean divides by K = 3
        op = curvature_operator(model, MSE(per_class_mean=True), (x, y))
        torch.testing.assert_close(as_matrix(op), H / 3)


def test_hutchinson_trace_within_three_standard_errors():
    model, (x, y) = tiny_mlp(), data()
    exact = tiny_dense("ce").trace().item()
    est, se = hessian_trace(model, CrossEntropy(), (x, y), probes=60, seed=3)
    assert se > 0 and abs(est - exact) < 3 * se


def test_layer_selection_is_the_dense_sub_block():
    model, (x, y), H = tiny_mlp(), data(), tiny_dense("ce")
    n_first = sum(p.numel() for p in model.net[1].parameters())
    op = curvature_operator(model, CrossEntropy(), (x, y), params="net.1")
    assert op.param_names == ["net.1.weight", "net.1.bias"]
    torch.testing.assert_close(as_matrix(op), H[:n_first, :n_first])
    layers = per_layer(hessian_top_eigs, model, CrossEntropy(), (x, y), tol=1e-10)
    assert list(layers) == ["net.1", "net.3"]
    exact_last = np.linalg.eigvalsh(H[n_first:, n_first:].numpy()).max()
    np.testing.assert_allclose(layers["net.3"][0], exact_last, rtol=1e-4)
    with pytest.raises(ValueError, match="no trainable"):
        select_params(model, "nope")


def test_bn_mode_selects_operator_and_leaves_model_untouched():
    model, (x, y) = bn_net(), data()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = CrossEntropy()
    H_train = as_matrix(curvature_operator(model, loss, (x, y), bn="train"))
    H_eval = as_matrix(curvature_operator(model, loss, (x, y), bn="eval"))
    torch.testing.assert_close(H_train, dense_hessian(model, loss, x, y, train=True))
    torch.testing.assert_close(H_eval, dense_hessian(model, loss, x, y, train=False))
    assert (H_train - H_eval).abs().max() > 1e-3
    ggn_trace(model, loss, (x, y), bn="train")
    empirical_fisher_trace(model, loss, (x, y), bn="train")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.training and model[1].training and model[1].track_running_stats


def test_bn_mode_context_sets_modes_and_dropout_off():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.BatchNorm1d(4)).train()
    with bn_mode(model, "train"):
        assert model[2].training and not model[1].training and model[2].running_mean is None
    with bn_mode(model, "eval", dropout=True):
        assert not model[2].training and model[1].training
    assert all(m.training for m in model.modules())
    assert model[2].running_mean is not None


def test_spectral_density_of_quadratic_puts_mass_at_eigenvalues():
    # linear model + MSE: Hessian = 2/N XᵀX, built to have eigenvalue clusters at 1, 5, 10 (30/20/10 of 60)
    d, g = 60, torch.Generator().manual_seed(0)
    evals = torch.cat([1 + 0.01 * torch.randn(30, generator=g), 5 + 0.01 * torch.randn(20, generator=g),
                       10 + 0.01 * torch.randn(10, generator=g)])
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    x = (d / 2) ** 0.5 * torch.diag(evals.sqrt()) @ Q.T  # N = d samples, (2/N) XᵀX = Q diag(λ) Qᵀ
    y = torch.zeros(d, dtype=torch.long)
    model = nn.Linear(d, 1, bias=False).double()
    grid, density = hessian_density(model, MSE(), (x, y), ncv=30, num_repeats=8, seed=0)
    total = np.trapezoid(density, grid)
    assert abs(total - 1) < 0.05
    for centre, frac in [(1, 0.5), (5, 1 / 3), (10, 1 / 6)]:
        win = np.abs(grid - centre) < 1.0
        assert abs(np.trapezoid(density[win], grid[win]) - frac) < 0.08, centre


@pytest.mark.parametrize("kind", ["mlp", "bn"])
def test_empirical_fisher_trace_equals_per_sample_loop(kind):
    model, (x, y) = (tiny_mlp() if kind == "mlp" else bn_net()), data()
    loss = CrossEntropy()
    ref = []
    eval_model = copy.deepcopy(model).eval()
    for i in range(len(x)):
        eval_model.zero_grad()
        loss(eval_model(x[i:i + 1]), y[i:i + 1]).backward()
        ref.append(sum(p.grad.pow(2).sum() for p in eval_model.parameters()).item())
    np.testing.assert_allclose(empirical_fisher_trace(model, loss, (x, y), batch_size=10), np.mean(ref),
                               rtol=1e-10)


@pytest.mark.parametrize("loss", [CrossEntropy(), MSE()], ids=["ce", "mse"])
def test_fisher_and_ggn_traces_equal_curvlinops_operators(loss):
    model, (x, y) = tiny_mlp(), data()
    ef = as_matrix(curvature_operator(model, loss, (x, y), kind="ef")).trace().item()
    np.testing.assert_allclose(empirical_fisher_trace(model, loss, (x, y)), ef, rtol=1e-8)
    ggn = as_matrix(curvature_operator(model, loss, (x, y), kind="ggn")).trace().item()
    np.testing.assert_allclose(ggn_trace(model, loss, (x, y), chunk=7), ggn, rtol=1e-8)


def test_bn_train_per_sample_gradients_are_taken_through_the_batch():
    model, (x, y) = bn_net(), data()
    loss = CrossEntropy()
    g = per_sample_grads(model, loss, x, y, bn="train")
    ggn_op = as_matrix(curvature_operator(model, loss, (x, y), kind="ggn", bn="train")).trace().item()
    np.testing.assert_allclose(ggn_trace(model, loss, (x, y), bn="train"), ggn_op, rtol=1e-8)
    ref = copy.deepcopy(model).train()
    loss(ref(x), y).backward()
    for (name, p) in ref.named_parameters():
        torch.testing.assert_close(g[name].mean(0), p.grad)


def test_true_fisher_is_ggn_in_expectation_for_cross_entropy():
    model, (x, y) = tiny_mlp(), data()
    exact = ggn_trace(model, CrossEntropy(), (x, y))
    est, se = true_fisher_trace(model, CrossEntropy(), (x, y), samples=64,
                                generator=torch.Generator().manual_seed(5))
    assert abs(est - exact) < 3.5 * se and se < 0.1 * exact
    with pytest.raises(ValueError):
        true_fisher_trace(model, MSE(), (x, y))


def test_compute_curvature_returns_flat_floats():
    model, (x, y) = tiny_mlp(), data()
    out = compute_curvature(model, CrossEntropy(), x, y, {
        "hessian_top": {"k": 2}, "hessian_trace": {"probes": 5}, "fisher_trace": None,
        "ggn_trace": {}, "hessian_trace_per_layer": {"probes": 3}, "sharpness": {"eps": 1e-3, "maxiter": 2}})
    assert {"hessian_top_eig", "hessian_eig_2", "hessian_trace", "hessian_trace_se", "fisher_trace",
            "ggn_trace", "hessian_trace/net.1", "hessian_trace/net.3", "sharpness"} <= set(out)
    assert all(isinstance(v, float) for v in out.values())
    with pytest.raises(ValueError, match="unknown"):
        compute_curvature(model, CrossEntropy(), x, y, {"nope": {}})
