"""Keskar ε-sharpness against closed forms; loss-landscape slices and their plots."""

import numpy as np
import pytest
import torch
from torch import nn

from lossland.losses import CrossEntropy
from lossland.measure.slice_plots import plot_slice_1d, plot_slice_2d
from lossland.metrics.landscape import direction_to, normalize_direction, random_direction, slice_1d, slice_2d
from lossland.metrics.sharpness import keskar_sharpness
from lossland.models import MLP


class Quadratic(nn.Module):
    """Outputs √d ⊙ w for every input, so with ``half_sq`` the loss is L(w) = ½ Σ d_i w_i²."""

    def __init__(self, w, d):
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.register_buffer("sqrt_d", d.sqrt())

    def forward(self, x):
        return (self.sqrt_d * self.w).expand(len(x), -1)


def half_sq(out, y):
    return 0.5 * out.pow(2).sum(dim=1).mean()


def quad_case():
    w = torch.tensor([1.0, -2.0, 1.5, -1.2, 3.0, 1.1], dtype=torch.float64)
    d = torch.tensor([4.0, 0.5, 2.0, 1.0, 0.1, 3.0], dtype=torch.float64)
    data = (torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4, dtype=torch.long))
    return Quadratic(w, d), data, w, d


def keskar_percent(max_value, base):
    return 100 * (max_value - base) / (1 + base)


def test_sharpness_of_diagonal_quadratic_matches_closed_form():
    # a convex, separable L: the box maximum is the vertex moving every w_i away from 0
    model, data, w, d = quad_case()
    eps = 0.05
    base = 0.5 * (d * w**2).sum().item()
    vertex = 0.5 * (d * (w.abs() + eps * (w.abs() + 1)) ** 2).sum().item()
    got = keskar_sharpness(model, half_sq, data, eps=eps, maxiter=50)
    np.testing.assert_allclose(got, keskar_percent(vertex, base), rtol=1e-8)
    assert torch.equal(model.w.detach(), w)  # model untouched


def test_sharpness_searches_the_box_of_a_well_fitted_net():
    # loss ≈ 1e-9 and gradient entries ≈ 1e-6 (a well-fitted net, Keskar's SB minima): scipy's default stopping
    # tests (pgtol 1e-5) end L-BFGS-B at its random start; the search must still reach the box's vertex
    model, data, w, d = quad_case()
    w, d = 1e-3 * w, 1e-3 * d
    model = Quadratic(w, d)
    eps = 1e-3
    base = 0.5 * (d * w**2).sum().item()
    vertex = 0.5 * (d * (w.abs() + eps * (w.abs() + 1)) ** 2).sum().item()
    got = keskar_sharpness(model, half_sq, data, eps=eps, maxiter=50)
    np.testing.assert_allclose(got, keskar_percent(vertex, base), rtol=1e-6)


@pytest.mark.parametrize("c", [1.0, 1e-6])
def test_sharpness_reaches_the_vertex_in_keskars_ten_iterations_whatever_the_loss_scale(c):
    # Keskar et al.'s 10 L-BFGS-B iterations: on the raw loss × 1e-6 (a well-fitted net's size) its steps, about
    # the gradient's size, would not leave the random start; the search must not depend on the scale
    model, data, w, d = quad_case()
    eps = 1e-3
    model = Quadratic(w, c * d)
    base = 0.5 * (c * d * w**2).sum().item()
    vertex = 0.5 * (c * d * (w.abs() + eps * (w.abs() + 1)) ** 2).sum().item()
    np.testing.assert_allclose(keskar_sharpness(model, half_sq, data, eps=eps, maxiter=10),
                               keskar_percent(vertex, base), rtol=1e-6)


def test_a_scaled_loss_is_searched_the_same_way_on_a_net(mlp_case):
    # φ = 100 (max L − L0) / (1 + L0): with L → c·L the rise found must scale by c exactly when the search is
    # scale-free (the same point found), on a nonconvex loss where the maximizer is a local search
    model, data = mlp_case
    model = model.double()
    data = (data[0].double(), data[1])
    ce = CrossEntropy()
    base = ce(model(data[0]), data[1]).item()
    rise = keskar_sharpness(model, ce, data, eps=1e-3, maxiter=10) * (1 + base) / 100
    c = 1e-6
    small = keskar_sharpness(model, lambda o, y: c * ce(o, y), data, eps=1e-3, maxiter=10) * (1 + c * base) / 100
    assert rise > 0
    np.testing.assert_allclose(small / c, rise, rtol=1e-6)


def test_subspace_sharpness_uses_the_pseudo_inverse_box():
    # A = 2·[e_0, e_2, e_4]: A⁺w = w_S / 2, box |z| ≤ ε(|w_S|/2 + 1), so y = Az moves w_S by ≤ ε(|w_S| + 2)
    model, data, w, d = quad_case()
    eps, S = 0.05, [0, 2, 4]
    A = torch.zeros(6, 3, dtype=torch.float64)
    A[S, range(3)] = 2.0
    base = 0.5 * (d * w**2).sum().item()
    moved = w.abs().clone()
    moved[S] += eps * (w.abs()[S] + 2)
    expected = keskar_percent(0.5 * (d * moved**2).sum().item(), base)
    np.testing.assert_allclose(keskar_sharpness(model, half_sq, data, eps=eps, subspace=A, maxiter=50),
                               expected, rtol=1e-8)
    random = keskar_sharpness(model, half_sq, data, eps=eps, subspace=3, maxiter=50, seed=1)
    assert np.isfinite(random) and random > 0


@pytest.fixture
def mlp_case():
    torch.manual_seed(0)
    model = MLP((6,), 3, hidden=(10, 8))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g)
    return model, (x, y)


def test_filter_normalized_direction_has_weight_filter_norms(mlp_case):
    model, _ = mlp_case
    d = random_direction(model, seed=3)
    weights = dict(model.named_parameters())
    assert set(d) == set(weights)
    for name, t in d.items():
        w = weights[name].detach()
        if w.dim() >= 2:
            torch.testing.assert_close(t.flatten(1).norm(dim=1), w.flatten(1).norm(dim=1))
        else:
            assert torch.count_nonzero(t) == 0  # default: biases and BN parameters ignored
    kept = random_direction(model, seed=3, bias_bn="filter")
    torch.testing.assert_close(kept["net.1.bias"].norm(), weights["net.1.bias"].detach().norm())
    copied = normalize_direction(d, weights, bias_bn="copy")
    torch.testing.assert_close(copied["net.3.bias"], weights["net.3.bias"].detach())


def test_slices_at_origin_equal_the_solution_and_model_is_unchanged(mlp_case):
    model, (x, y) = mlp_case
    loss = CrossEntropy()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        out = model(x)
        ref_loss, ref_acc = loss(out, y).item(), (out.argmax(1) == y).double().mean().item()
    d1, d2 = random_direction(model, seed=1), random_direction(model, seed=2)
    s1 = slice_1d(model, loss, (x, y), d1, alphas=np.linspace(-1, 1, 11), batch_size=16, points_per_call=4,
                  progress=False)
    np.testing.assert_allclose(s1["loss"][5], ref_loss, rtol=1e-6)
    np.testing.assert_allclose(s1["accuracy"][5], ref_acc, rtol=1e-6)
    s1b = slice_1d(model, loss, (x, y), d1, alphas=np.linspace(-1, 1, 11), points_per_call=11, progress=False)
    np.testing.assert_allclose(s1["loss"], s1b["loss"], rtol=1e-5)
    assert s1["loss"].min() >= 0 and s1["loss"].max() > ref_loss
    s2 = slice_2d(model, loss, (x, y), d1, d2, alphas=np.linspace(-1, 1, 5), betas=np.linspace(-0.5, 0.5, 3),
                  progress=False)
    assert s2["loss"].shape == (5, 3) and s2["accuracy"].shape == (5, 3)
    np.testing.assert_allclose(s2["loss"][2, 1], ref_loss, rtol=1e-6)
    np.testing.assert_allclose(s2["loss"][:, 1], slice_1d(model, loss, (x, y), d1, alphas=s2["alphas"],
                                                          progress=False)["loss"], rtol=1e-5)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_direction_to_second_model_reaches_its_loss(mlp_case):
    model, (x, y) = mlp_case
    torch.manual_seed(7)
    other = MLP((6,), 3, hidden=(10, 8))
    with torch.no_grad():
        other_loss = CrossEntropy()(other(x), y).item()
    s = slice_1d(model, CrossEntropy(), (x, y), direction_to(model, other), alphas=[0.0, 0.5, 1.0],
                 progress=False)
    np.testing.assert_allclose(s["loss"][2], other_loss, rtol=1e-5)


def test_bn_train_slices_leave_running_statistics_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2)).train()
    x, y = torch.randn(20, 4), torch.randint(0, 2, (20,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = slice_1d(model, CrossEntropy(), (x, y), random_direction(model), alphas=[-0.5, 0.0, 0.5], bn="train",
                 progress=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.training
    with torch.no_grad():
        ref = CrossEntropy()(model(x), y).item()  # a train-mode forward: batch statistics
    np.testing.assert_allclose(s["loss"][1], ref, rtol=1e-5)


def test_plots_write_pngs(tmp_path, mlp_case):
    model, data = mlp_case
    d1, d2 = random_direction(model, seed=1), random_direction(model, seed=2)
    s1 = slice_1d(model, CrossEntropy(), data, d1, alphas=np.linspace(-1, 1, 5), progress=False)
    grid = np.linspace(-1, 1, 4)
    s2 = slice_2d(model, CrossEntropy(), data, d1, d2, alphas=grid, betas=grid, progress=False)
    for path in (plot_slice_1d(s1, tmp_path / "a" / "line.png", title="1-d"),
                 plot_slice_2d(s2, tmp_path / "contour.png", log=True)):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
