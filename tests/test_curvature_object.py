"""The Curvature object, the Hessian-vector paths, Lanczos, deflated Hutchinson, the registry and the shared
BN-mode context, against dense ground truth and the functions."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lossland.losses import MSE, CrossEntropy
from lossland.metrics.bn import bn_mode
from lossland.metrics.curvature import (
    HVPS,
    METRICS,
    Curvature,
    compute_curvature,
    curvature_operator,
    hessian_density,
    hessian_top_eigs,
    hessian_trace,
    hutchinson,
    top_eigenvalues,
)
from lossland.metrics.gradients import evaluate, gradient_stats
from lossland.metrics.registry import register_metric
from lossland.metrics.sharpness import keskar_sharpness
from tests.test_curvature import as_matrix, bn_net, data, dense_hessian, tiny_dense, tiny_mlp

pytestmark = pytest.mark.usefixtures("float64")  # exact comparisons with dense ground truth


@pytest.mark.parametrize("hvp", HVPS)
@pytest.mark.parametrize("bn", ["train", "eval"])
def test_every_hvp_path_is_the_dense_hessian(hvp, bn):
    model, (x, y) = bn_net(), data()
    model.train()
    before = copy.deepcopy(model.state_dict())
    H = as_matrix(curvature_operator(model, CrossEntropy(), (x, y), bn=bn, batch_size=10, hvp=hvp))
    torch.testing.assert_close(H, _dense_batched(model, x, y, bn))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def _dense_batched(model, x, y, bn):
    """Dense Hessian of the sample-weighted mean over batches of 10 (batches matter in BN train mode)."""
    parts = [(x[i:i + 10], y[i:i + 10]) for i in range(0, len(x), 10)]
    return sum(dense_hessian(model, CrossEntropy(), xb, yb, train=bn == "train") * len(xb) / len(x) for xb, yb in parts)


def test_uncached_double_backward_and_rebuild_after_a_weight_change():
    model, (x, y) = tiny_mlp(), data()
    cached = curvature_operator(model, MSE(), (x, y), batch_size=7)
    fresh = curvature_operator(model, MSE(), (x, y), batch_size=7, cache=False)
    torch.testing.assert_close(as_matrix(cached), as_matrix(fresh))
    torch.testing.assert_close(as_matrix(cached), tiny_dense("mse"))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.1)
    torch.testing.assert_close(as_matrix(cached), dense_hessian(model, MSE(), x, y))  # graphs rebuilt


@pytest.mark.parametrize("method", ["lanczos", "arpack", "power"])
def test_eigen_solvers_agree_with_dense(method):
    model, (x, y), H = tiny_mlp(), data(), tiny_dense("ce")
    exact = np.linalg.eigvalsh(H.numpy())
    op = curvature_operator(model, CrossEntropy(), (x, y))
    k, tol = (3, 1e-10) if method != "power" else (1, 1e-9)
    steps = 2000 if method == "power" else None
    np.testing.assert_allclose(top_eigenvalues(op, k, tol, method=method, max_steps=steps), exact[::-1][:k], rtol=1e-4)
    np.testing.assert_allclose(top_eigenvalues(op, 2, 1e-10, which="SA"), np.sort(exact[:2])[::-1], rtol=1e-4,
                               atol=1e-8)


def test_lanczos_stops_early_at_a_loose_tolerance_within_it():
    model, (x, y), H = tiny_mlp(), data(), tiny_dense("ce")
    top = np.linalg.eigvalsh(H.numpy())[-1]
    op = curvature_operator(model, CrossEntropy(), (x, y))
    value = top_eigenvalues(op, 1, tol=1e-3)[0]
    assert op.products < 40 and abs(value - top) <= 1e-3 * top


def test_deflated_hutchinson_is_unbiased_and_exact_on_a_full_krylov_space():
    model, (x, y), H = tiny_mlp(), data(), tiny_dense("ce")
    exact = H.trace().item()
    op = curvature_operator(model, CrossEntropy(), (x, y))
    est, se = hutchinson(op, probes=30, seed=1, deflate=20)
    plain, plain_se = hutchinson(op, probes=30, seed=1)
    assert abs(est - exact) < 3 * se and se < plain_se
    full, full_se = hutchinson(op, probes=10, deflate=op.shape[0])  # Krylov space: all of the spectrum
    assert abs(full - exact) <= 3 * full_se + 1e-8 and full_se < 1e-3 * plain_se
    assert hessian_trace(model, CrossEntropy(), (x, y), probes=30, seed=1, deflate=20) == (est, se)


def test_curvature_object_agrees_with_the_functions_and_dense():
    model, (x, y), H = tiny_mlp(), data(), tiny_dense("ce")
    loss = CrossEntropy()
    curv = Curvature(model, loss, [(x[:10], y[:10]), (x[10:], y[10:])], params="all", bn="eval")
    exact = np.linalg.eigvalsh(H.numpy())[::-1]
    np.testing.assert_allclose(curv.top_eigs(3, tol=1e-10), exact[:3], rtol=1e-4)
    same = dict(rtol=1e-10, atol=0)  # the same algorithm; batches of 10 + 14 vs one batch: rounding only
    np.testing.assert_allclose(curv.top_eigs(2, tol=1e-8), hessian_top_eigs(model, loss, (x, y), k=2, tol=1e-8),
                               **same)
    np.testing.assert_allclose(curv.trace(probes=9, seed=4), hessian_trace(model, loss, (x, y), probes=9, seed=4),
                               **same)
    grid, dens = curv.density(ncv=20, num_repeats=2, seed=3)
    grid2, dens2 = hessian_density(model, loss, (x, y), ncv=20, num_repeats=2, seed=3)
    np.testing.assert_allclose(dens, dens2, rtol=1e-6, atol=1e-9)
    v = torch.randn(curv.op.shape[0])
    torch.testing.assert_close(curv.hvp(v), H @ v)
    assert curv.param_names == ["net.1.weight", "net.1.bias", "net.3.weight", "net.3.bias"]
    part = Curvature(model, loss, (x, y), params="net.3")
    n_first = H.shape[0] - part.op.shape[0]
    np.testing.assert_allclose(part.top_eigs(1, tol=1e-10)[0], np.linalg.eigvalsh(H[n_first:, n_first:].numpy())[-1],
                               rtol=1e-6)


def test_registry_dispatches_keskar_sharpness_and_refuses_unknown_options():
    model, (x, y) = tiny_mlp(), data()
    loss = CrossEntropy()
    assert list(METRICS)[:2] == ["hessian_top", "hessian_trace"] and "keskar_sharpness" in METRICS
    out = compute_curvature(model, loss, x, y, {"keskar_sharpness": {"eps": 1e-2, "maxiter": 3}, "sharpness": {
        "eps": 1e-2, "maxiter": 3}}, seed=2)
    ref = keskar_sharpness(model, loss, (x, y), eps=1e-2, maxiter=3, seed=2)
    assert out == {"keskar_sharpness": ref, "sharpness": ref}
    with pytest.raises(ValueError, match="unknown option"):
        compute_curvature(model, loss, x, y, {"hessian_top": {"kk": 2}})

    @register_metric("test_param_count")
    def _count(model, loss, data, params, bn, batch_size, seed):
        return {"n": float(sum(p.numel() for p in model.parameters()))}
    try:
        assert compute_curvature(model, loss, x, y, {"test_param_count": None}) == {"n": 147.0}
        with pytest.raises(ValueError, match="already registered"):
            register_metric("hessian_top")(lambda *a, **k: {})
    finally:
        METRICS.pop("test_param_count")


def test_one_bn_context_for_gm_and_curvature():
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Dropout(0.3), nn.Linear(8, 3)).double()
    model[1].eval()  # mixed flags are restored per module
    state = copy.deepcopy(model.state_dict())
    x, y = data(n=16)
    for mode in ("train", "eval"):
        for elementary in (False, True):
            with bn_mode(model, mode, elementary=elementary):
                assert model[1].training == (mode == "train") and not model[2].training
                out = model(x)
            ref = copy.deepcopy(model).eval()
            ref[1].train(mode == "train")
            torch.testing.assert_close(out, ref(x))
    gradient_stats(model, CrossEntropy(), [(x, y)])
    evaluate(model, CrossEntropy(), [(x, y)], mode="train")
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert model.training and not model[1].training and model[2].training
    assert "forward" not in model[1].__dict__


def test_hutchinson_target_se_stops_once_the_standard_error_is_reached():
    model, (x, y) = tiny_mlp(), data()
    op = curvature_operator(model, CrossEntropy(), (x, y))
    _, se_all = hutchinson(op, probes=100, seed=2)
    before = op.products
    est, se = hutchinson(op, probes=100, seed=2, target_se=2 * se_all)
    assert se <= 2 * se_all and 4 <= op.products - before < 100
    assert abs(est - tiny_dense("ce").trace().item()) < 4 * se
