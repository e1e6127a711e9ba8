"""The architecture search (lossland.studies.nas, docs/nas.md): mixed operations, the Dirichlet prior, annealing, the
unrolled hypergradient against finite differences, the discrete genotype, bad input."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from lossland.config import compose
from lossland.errors import LosslandError
from lossland.models.darts import OPS, GenotypeNet, load_genotype
from lossland.studies.nas.app import validate
from lossland.studies.nas.prior import alpha_schedule, check_alpha, log_density, log_density_kernel, neg_log_prior
from lossland.studies.nas.search import hypergradient, unrolled_objective
from lossland.studies.nas.supernet import MixedOp, Supernet
from tests.conftest import ROOT

OPS_SMALL = ["zero", "skip", "max_pool3x3", "avg_pool3x3", "conv3x3", "conv5x5", "dil_conv3x3", "sep_conv3x3"]


@pytest.mark.parametrize("stride", [1, 2])
def test_the_mixture_equals_the_chosen_op_when_gamma_is_one_hot(stride):
    torch.manual_seed(0)
    mixed = MixedOp(OPS_SMALL, channels=4, stride=stride).eval()
    x = torch.randn(2, 4, 8, 8)
    for k, op in enumerate(mixed.ops):
        w = torch.nn.functional.one_hot(torch.tensor(k), len(OPS_SMALL)).float()
        assert torch.allclose(mixed(x, w), op(x), atol=1e-6), OPS_SMALL[k]
    # and as the limit of softmax(gamma) with a dominant entry
    w = torch.softmax(torch.tensor([0.0, 0, 0, 0, 60.0, 0, 0, 0]), -1)
    assert torch.allclose(mixed(x, w), mixed.ops[4](x), atol=1e-5)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.5, 1e-30])
def test_the_dirichlet_log_density_matches_torch_where_both_are_finite(alpha):
    torch.manual_seed(1)
    gamma = torch.randn(6, 5, dtype=torch.float64) * 2
    p = torch.softmax(gamma, -1)
    ref = torch.distributions.Dirichlet(torch.full((5,), alpha, dtype=torch.float64)).log_prob(p)
    assert torch.isfinite(ref).all()
    assert torch.allclose(log_density(gamma, alpha), ref, rtol=1e-9, atol=1e-9)
    assert torch.allclose(log_density(p, alpha, logits=False), ref, rtol=1e-9, atol=1e-9)
    # the kernel (what the search minimizes) differs from it only by a gamma-independent constant
    diff = log_density(gamma, alpha) - log_density_kernel(gamma, alpha)
    assert torch.allclose(diff, diff[0].expand_as(diff))


def test_the_prior_is_finite_for_tiny_alpha_and_extreme_structures():
    gamma = torch.tensor([[1000.0, -1000.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)  # p ~ one-hot: log p = -2000
    r = neg_log_prior([gamma], 1e-30)
    r.backward()
    assert torch.isfinite(r) and torch.isfinite(gamma.grad).all()
    # dR/dgamma_j = (1 - alpha)(1 - K p_j): zero at the uniform mixture (a stationary point of the prior)
    assert torch.allclose(gamma.grad[1], torch.zeros(3), atol=1e-6)
    assert torch.isfinite(log_density(gamma.detach(), 1e-30)).all()
    assert neg_log_prior([gamma.detach()], 1.0) == 0  # weak prior: no pressure


def test_annealing_endpoints_and_bad_alpha():
    a = alpha_schedule(1.0, 1e-30, 10, "log")
    assert a(0) == 1.0 and math.isclose(a(9), 1e-30, rel_tol=1e-9)
    vals = [a(e) for e in range(10)]
    assert all(x > y for x, y in zip(vals, vals[1:]))
    assert math.isclose(a(5), 10 ** (-30 * 5 / 9), rel_tol=1e-9)  # log-linear
    assert alpha_schedule(1.0, 1e-30, 10)(9) == 1e-30 and alpha_schedule(1.0, 1e-30, 10)(3) == pytest.approx(2 / 3)
    with pytest.raises(LosslandError, match="prior.anneal must be one of linear, log"):
        alpha_schedule(1.0, 0.5, 3, "cosine")
    assert alpha_schedule(1e-30, 1.0, 4)(3) == pytest.approx(1.0)
    assert alpha_schedule(0.5, 0.5, 3)(1) == 0.5
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(LosslandError, match="must be a finite number > 0"):
            check_alpha(bad)


def test_the_annealed_prior_weight_grows_by_equal_steps_over_its_whole_range():
    """What is annealed is the prior's weight lambda (1 - alpha) in dQ/dgamma (docs/nas.md): from the annealed
    config it is monotone, from 0 to lambda, in equal steps; the log-linear alpha it replaced is a step."""
    from lossland.studies.nas.prior import DirichletPrior

    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "prior" / "annealed.yaml"))
    prior = DirichletPrior(**{k: v for k, v in cfg.items() if k != "_target_"})
    w = [prior.weight(12)(e) for e in range(12)]
    assert w[0] == 0 and w[-1] == pytest.approx(prior.strength)
    steps = [b - a for a, b in zip(w, w[1:])]
    assert all(d > 0 for d in steps) and max(steps) - min(steps) < 1e-12
    assert all(abs(x - prior.strength * e / 11) < 1e-12 for e, x in enumerate(w))  # half-way at half time
    log = DirichletPrior("log", 1.0, 1e-30, prior.strength, anneal="log").weight(12)
    assert log(1) > 0.99 * prior.strength  # the old schedule: full strength from epoch 1
    with pytest.raises(LosslandError, match="prior.anneal must be one of"):
        DirichletPrior("x", 1.0, 0.5, anneal="step")


def test_an_edge_frozen_at_a_vertex_is_saturated_not_stationary():
    """findings: at a vertex the prior's gradient stays (saturation); a stationary edge has its whole gradient
    small away from a vertex."""
    from lossland.studies.nas.app import edge_findings

    f = OmegaConf.create({"entropy_tol": 0.1, "grad_ratio_tol": 0.1, "move_tol": 0.02, "undecided_frac": 0.8})
    log_k = math.log(7)
    rows = []
    for step in range(8):
        late = step >= 4
        rows.append({"step": step, "gamma_grad_norm": 1.0,
                     "entropy/v": 0.001, "mix/v/a": 0.999, "grad/v": 0.65 if late else 1.0,  # vertex, prior pulls
                     "cegrad/v": 0.001 if late else 1.0,
                     "entropy/s": 1.9, "mix/s/a": 0.15, "grad/s": 0.001 if late else 1.0,  # mid-simplex, flat
                     "cegrad/s": 0.001 if late else 1.0,
                     "entropy/m": 1.0, "mix/m/a": 0.1 * step, "grad/m": 0.5, "cegrad/m": 0.5})  # moving
    _, edges = edge_findings(rows, rows, 4, f, log_k)
    assert edges["v"]["stalled"] and edges["v"]["saturated"] and not edges["v"]["stationary"]
    assert edges["s"]["stationary"] and edges["s"]["undecided"] and not edges["s"]["saturated"]
    assert not edges["m"]["stationary"] and not edges["m"]["saturated"]


def tiny_supernet():
    torch.manual_seed(0)
    net = Supernet([1, 6, 6], 3, ["skip", "conv3x3", "avg_pool3x3", "zero"], channels=2, cells=2, nodes=2,
                   reductions=[1], stem_multiplier=1, gamma_init=0.5).double()
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    xv = torch.randn(8, 1, 6, 6, dtype=torch.float64)
    yv = torch.randint(0, 3, (8,))
    return net, (x, y), (xv, yv)


def test_the_unrolled_hypergradient_matches_finite_differences():
    net, tb, vb = tiny_supernet()
    log_decay = torch.tensor(-1.0, dtype=torch.float64, requires_grad=True)
    xi, lam, alpha = 0.1, 0.3, 0.2
    _, g_gamma, g_a, _ = hypergradient(net, log_decay, tb, vb, xi, lam, alpha, unrolled=True)

    def f():
        return float(unrolled_objective(net, log_decay, tb, vb, xi, lam, alpha))

    h = 1e-5
    with torch.no_grad():
        log_decay += h
        up = f()
        log_decay -= 2 * h
        down = f()
        log_decay += h
    assert g_a.item() == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-9)
    assert abs(g_a.item()) > 0
    gamma = net.gamma_reduce
    for idx in [(0, 1), (2, 0), (4, 2), (3, 3)]:
        with torch.no_grad():
            gamma[idx] += h
            up = f()
            gamma[idx] -= 2 * h
            down = f()
            gamma[idx] += h
        assert g_gamma[1][idx].item() == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-8)
    gamma = net.gamma_normal
    with torch.no_grad():
        gamma[1, 1] += h
        up = f()
        gamma[1, 1] -= 2 * h
        down = f()
        gamma[1, 1] += h
    assert g_gamma[0][1, 1].item() == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-8)


def test_first_order_hypergradient_of_a_is_the_unrolled_formula_at_w():
    net, tb, vb = tiny_supernet()
    log_decay = torch.tensor(-1.0, dtype=torch.float64, requires_grad=True)
    _, g1, ga, _ = hypergradient(net, log_decay, tb, vb, 0.1, 0.3, 0.2, unrolled=False)
    _, g0, ga0, _ = hypergradient(net, log_decay, tb, vb, 1e-9, 0.3, 0.2, unrolled=True)
    # xi -> 0: the unrolled Gamma gradient tends to the first-order one
    for a, b in zip(g1, g0):
        assert torch.allclose(a, b, atol=1e-6)
    assert torch.isfinite(ga)


def test_the_discrete_genotype_rebuilds_and_trains(tmp_path):
    net, _, _ = tiny_supernet()
    with torch.no_grad():
        net.gamma_normal.zero_()
        net.gamma_normal[:, 1] = 5.0  # conv3x3 everywhere
        net.gamma_reduce.zero_()
        net.gamma_reduce[:, 3] = 5.0  # zero everywhere: a node without edges still has a value
        net.gamma_reduce[0, 2] = 9.0
    g = net.genotype()
    assert g["normal"] == ["conv3x3"] * 5 and g["reduce"] == ["avg_pool3x3"] + ["zero"] * 4
    path = tmp_path / "genotype.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(g)))
    torch.manual_seed(0)
    model = GenotypeNet([1, 8, 8], 2, str(path), channels=4)
    x = torch.randn(32, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > 0).long()  # learnable through global average pooling
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    first = None
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    assert GenotypeNet([3, 32, 32], 10)(torch.randn(2, 3, 32, 32)).shape == (2, 10)  # the built-in default
    with pytest.raises(LosslandError, match="no such file"):
        GenotypeNet([1, 8, 8], 4, str(tmp_path / "missing.yaml"))
    with pytest.raises(LosslandError, match="unknown operation 'conv9x9'"):
        load_genotype({**g, "normal": ["conv9x9"] * 5})


@pytest.mark.parametrize("override, message", [
    ("nas.ops=[conv3x3,conv9x9]", "unknown operation 'conv9x9' in nas.ops; valid: " + ", ".join(OPS)),
    ("prior.alpha=0", "prior.alpha must be a finite number > 0"),
    ("prior.alpha_end=-1", "prior.alpha_end must be a finite number > 0"),
    ("data.val_size=0", "the search needs a validation split for Gamma and A: data.val_size is 0"),
])
def test_bad_input_is_one_clear_line(override, message):
    with pytest.raises(LosslandError) as e:
        validate(compose([override], "nas"))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_face_dwell_counts_mixtures_at_face_centres():
    from lossland.studies.nas.search import face_dwell

    ops = ["a", "b", "c", "d"]

    def row(p):
        return {f"mix/normal/e0/{o}": v for o, v in zip(ops, p)}

    hist = [row([0.25] * 4), row([0.5, 0.49, 0.005, 0.005]), row([0.34, 0.33, 0.33, 0.0]), row([1.0, 0, 0, 0])]
    d = face_dwell(hist)
    assert d["by_m"] == {2: 0.25, 3: 0.25} and d["share"] == 0.5


def test_a_diverging_search_is_a_record_with_status_diverged(tmp_path):
    import json

    from lossland.studies.nas.app import run_search

    cfg = compose(["logger=csv", "data.train_size=64", "data.val_size=32", "data.test_size=32", "search.epochs=1",
                   "search.batch_size=32", "nas.channels=2", "search.max_loss=1e-6", f"out_dir={tmp_path}"], "nas")
    summary = run_search(cfg)
    assert summary["status"] == "diverged" and summary["steps"] == 0
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"
    assert (tmp_path / "metrics.csv").exists() and not (tmp_path / "genotype.yaml").exists()


def test_a_search_directory_is_handled_as_every_job_s(tmp_path):
    """The NAS job's lifecycle is every job's (lossland.job.Job): a diverged search is left as it is on a re-run,
    another run's directory is refused in one line, ``overwrite=true`` clears it."""
    from lossland.studies.nas.app import run_search

    base = ["logger=csv", "data.train_size=64", "data.val_size=32", "data.test_size=32", "search.epochs=1",
            "search.batch_size=32", "nas.channels=2", "search.max_loss=1e-6", f"out_dir={tmp_path}"]
    first = run_search(compose(base, "nas"))
    again = run_search(compose(base, "nas"))
    assert first["status"] == again["status"] == "diverged" and again["run_id"] == first["run_id"]
    assert first["diverged_at_step"] == 1 and first["config_digest"] == again["config_digest"]
    with pytest.raises(LosslandError, match="holds records of another run"):
        run_search(compose([*base, "prior=strong"], "nas"))
    assert run_search(compose([*base, "prior=strong", "overwrite=true"], "nas"))["prior"] == "strong"
