"""Evaluation along paths, BN recomputation, records and plots, and curve training."""

import json

import numpy as np
import pytest
import torch

from lossland.losses import CrossEntropy
from lossland.models import MLP, ConvNetSI
from lossland.studies.connect.bn import recompute_bn
from lossland.studies.connect.evaluate import evaluate_path, summarize, write_connect_json
from lossland.studies.connect.paths import linear, weight_adjustment
from lossland.studies.connect.plots import plot_paths

LOSS = CrossEntropy()


def _data(n, shape, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


@torch.no_grad()
def full_pass(model, x, y):
    """(mean loss, accuracy in %) of one forward pass over all of (x, y) in eval mode: the ground truth of the
    batched evaluation along a path (lossland.metrics.gradients.evaluate)."""
    model.eval()
    out = model(x)
    return float(LOSS(out, y)), 100.0 * float((out.argmax(dim=1) == y).double().mean())


def _mlp(seed):
    torch.manual_seed(seed)
    return MLP((8, 8), 5, hidden=(16,)).eval()


def test_endpoints_equal_the_endpoints_own_metrics():
    a, b = _mlp(0), _mlp(1)
    train, test = _data(300, (8, 8)), _data(100, (8, 8), seed=1)
    for path in (linear(a, b), weight_adjustment(a, b, train[0])):
        r = evaluate_path(path, a, LOSS, train, test, num_points=5, batch_size=64, progress=False)
        assert len(r["t"]) == 5 and r["t"][0] == path.t_range[0] and r["t"][-1] == path.t_range[1]
        for split, (x, y) in (("train", train), ("test", test)):
            for i, m in ((0, a), (-1, b)):
                lo, acc = full_pass(m, x, y)
                assert r[f"{split}_loss"][i] == pytest.approx(lo, rel=1e-5, abs=1e-6)
                assert r[f"{split}_acc"][i] == pytest.approx(acc)
            s = r["summary"][split]
            assert s["acc_a"] == pytest.approx(r[f"{split}_acc"][0])
            assert s["max_acc_loss"] >= 0 and s["loss_barrier"] >= -1e-9


def test_endpoints_with_batchnorm_recomputed():
    torch.manual_seed(0)
    a = ConvNetSI((1, 32, 32), 10, width=0.125)
    torch.manual_seed(1)
    b = ConvNetSI((1, 32, 32), 10, width=0.125)
    x, y = _data(32, (1, 32, 32), classes=10)
    r = evaluate_path(linear(a, b), a, LOSS, (x, y), num_points=3, batch_size=16, progress=False)
    for i, m in ((0, a), (-1, b)):
        recompute_bn(m, x, batch_size=16)
        lo, acc = full_pass(m, x, y)
        assert r["train_loss"][i] == pytest.approx(lo, rel=1e-4)
        assert r["train_acc"][i] == pytest.approx(acc)
    assert "test" not in r["summary"]


def test_recompute_bn_is_the_cumulative_average_and_restores_state():
    torch.manual_seed(0)
    m = ConvNetSI((1, 32, 32), 10, width=0.125).eval()
    bn = m.features[1]
    x = torch.randn(48, 1, 32, 32) * 2 + 1
    recompute_bn(m, [x[:16], x[16:32], x[32:]])
    assert not m.training and bn.momentum == 0.1
    with torch.no_grad():
        conv = m.features[0](x)
    batch_means = torch.stack([conv[i:i + 16].mean((0, 2, 3)) for i in (0, 16, 32)])
    torch.testing.assert_close(bn.running_mean, batch_means.mean(0), rtol=1e-4, atol=1e-5)
    mlp = _mlp(0)
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    assert recompute_bn(mlp, [x]) is mlp  # no BN: nothing to do
    assert all(torch.equal(before[k], v) for k, v in mlp.state_dict().items())


def test_summaries_on_known_curves():
    t = np.linspace(0, 2, 5)  # a [0, 2] path: the straight line uses s = t / 2
    loss = np.array([1.0, 2.0, 4.0, 3.5, 3.0])
    acc = np.array([90.0, 80.0, 50.0, 85.0, 80.0])
    length = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    s = summarize(t, loss, acc, (0.0, 2.0), length)
    assert s["loss_barrier"] == pytest.approx(4.0 - 2.0)  # line at s=0.5: (1+3)/2
    assert s["mid_loss_barrier"] == pytest.approx(2.0)
    assert s["max_acc_loss"] == pytest.approx(85.0 - 50.0)
    assert s["mid_acc_barrier"] == pytest.approx(35.0)
    assert s["mean_loss"] == pytest.approx(np.trapezoid(loss, length) / 4.0)
    s_uneven = summarize(t, loss, acc, (0.0, 2.0), np.array([0.0, 0.1, 0.2, 0.3, 4.0]))
    assert s_uneven["mean_loss"] == pytest.approx((0.15 + 0.3 + 0.375 + 3.7 * 3.25) / 4.0)


def test_identical_endpoints_have_no_barrier(tmp_path):
    a = _mlp(0)
    train = _data(100, (8, 8))
    r = evaluate_path(linear(a, a), a, LOSS, train, train, num_points=4, progress=False)
    assert 0.5 in r["t"]  # the midpoint is added to an even grid
    assert r["summary"]["path_length"] == pytest.approx(0, abs=1e-5)
    for split in ("train", "test"):
        s = r["summary"][split]
        assert s["max_acc_loss"] == pytest.approx(0, abs=1e-9)
        assert s["loss_barrier"] == pytest.approx(0, abs=1e-6)
        assert s["mean_loss"] == pytest.approx(s["loss_a"], rel=1e-6)
    out = tmp_path / "sub" / "connect.json"
    write_connect_json({"pair": 0, "nan": float("nan"), "result": r}, out)
    back = json.loads(out.read_text())
    assert back["result"]["train_acc"] == r["train_acc"] and back["nan"] is None
    assert [p.name for p in out.parent.iterdir()] == ["connect.json"]  # no temp file left behind
    png = plot_paths({"linear": r, "again": r}, tmp_path / "connect.png")
    assert (tmp_path / "connect.png").stat().st_size > 1000 and png.endswith("connect.png")


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target)
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:1000]
    return x[idx], y[idx]


def _train_endpoint(x, y, seed, steps=150):
    torch.manual_seed(seed)
    m = MLP((64,), 10, hidden=(16,))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        LOSS(m(x), y).backward()
        opt.step()
    return m.eval()


@pytest.fixture
def one_thread():
    """Tiny models: one intra-op thread is faster (and robust to a busy machine); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("kind", ["bezier", "polychain"])
def test_trained_curve_beats_the_linear_path(kind, tmp_path, one_thread):
    from lossland.studies.connect.curves import train_curve
    from lossland.studies.connect.paths import PathData

    x, y = _digits()
    a, b = _train_endpoint(x, y, 0), _train_endpoint(x, y, 1)
    lin = evaluate_path(linear(a, b), a, LOSS, (x, y), num_points=11, progress=False)
    path = train_curve(a, b, PathData(x=x, y=y, loss=LOSS, out=tmp_path, seed=0), curve=kind, steps=120,
                       batch_size=200, lr=0.05)
    assert path.training == {"steps": 120}
    assert "train/batch_loss" in (tmp_path / "metrics.csv").read_text().splitlines()[0]
    for t, ref in ((0.0, a), (1.0, b)):  # the endpoints stayed fixed
        for k, v in ref.state_dict().items():
            torch.testing.assert_close(path(t)[k], v)
    cur = evaluate_path(path, a, LOSS, (x, y), num_points=11, progress=False)
    assert lin["summary"]["train"]["loss_barrier"] > 0.1
    assert cur["summary"]["train"]["mean_loss"] < 0.5 * lin["summary"]["train"]["mean_loss"]


def test_curve_checkpoint_round_trip(tmp_path, one_thread):
    from lossland.studies.connect.curves import CurveModule, train_curve
    from lossland.studies.connect.paths import PathData

    x, y = _data(64, (8, 8))
    a, b = _mlp(0), _mlp(1)
    path = train_curve(a, b, PathData(x=x, y=y, loss=LOSS, out=tmp_path, seed=3), curve="polychain", steps=5,
                       batch_size=16, optimizer="adam", lr=1e-2)
    loaded = CurveModule.from_checkpoint(tmp_path / "checkpoints" / "curve.ckpt", a=a, b=b, loss=LOSS)
    assert loaded.settings["curve"] == "polychain" and loaded.settings["seed"] == 3
    for k, v in path.theta.items():
        assert torch.equal(loaded.path().theta[k], v)
    mid = {k: (a.state_dict()[k] + b.state_dict()[k]) / 2 for k in a.state_dict()}
    assert any(not torch.allclose(v, mid[k]) for k, v in path.theta.items())  # the bend moved
    fresh = CurveModule("polychain", a, b, LOSS, optimizer="adam", lr=1e-2, seed=3)
    for _ in range(5):
        fresh.model.sample_t()
    assert loaded.model.sample_t() == fresh.model.sample_t()  # the t-sampler resumes where it stopped
