"""Per-layer gradient norms: the training metric grad_norm/<layer> and the vanishing-gradient study."""

import math

import pytest
import torch

from lossland.callbacks.grad_norms import grad_norm_callback, layer_grad_norms
from lossland.losses import CrossEntropy
from lossland.models import MLP
from lossland.runs import Run
from lossland.studies.optim.vanishing import linear_grad_norms, seed_example, study
from lossland.train import run

TINY = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[16,16]", "optimizer=sgd", "lr=0.1",
        "trainer.max_steps=6", "metrics.enabled=false"]


def test_seed_worked_example_vanishes():
    """y = σ(σ(a + b) + σ(b·c)) at a = 9, b = 1, c = 100 (the lecture): ∇y ≈ (0, 0, 0)."""
    ex = seed_example()
    s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    ds = lambda v: s(v) * (1 - s(v))  # noqa: E731
    inner = s(10) + s(100)
    assert ex["y"] == pytest.approx(s(inner))
    assert ex["dy_da"] == pytest.approx(ds(inner) * ds(10), rel=1e-9)
    assert ex["dy_db"] == pytest.approx(ds(inner) * (ds(10) + 100 * ds(100)), rel=1e-9)
    assert max(abs(ex["dy_da"]), abs(ex["dy_db"]), abs(ex["dy_dc"])) < 1e-5


def test_layer_grad_norms_match_autograd_and_leave_the_model_alone():
    torch.manual_seed(0)
    model = MLP([10], 3, hidden=[8, 8], activation="tanh", batch_norm=True)
    x, y = torch.randn(16, 10), torch.randint(0, 3, (16,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    norms = layer_grad_norms(model, CrossEntropy(), (x, y))
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.train()
    CrossEntropy()(model(x), y).backward()
    for layer, n in norms.items():
        mod = dict(model.named_modules())[layer]
        want = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in mod.parameters()))
        assert n == pytest.approx(want, rel=1e-5)
    assert list(norms) == ["net.1", "net.2", "net.4", "net.5", "net.7"]  # Linear, BN, Linear, BN, Linear


def test_grad_norm_metric_in_a_training_run_every_step(make_cfg, tmp_path):
    cfg = make_cfg(*TINY, "metrics.grad_norms.enabled=true", out="on")
    a = run(cfg)
    rows = [r for r in Run(tmp_path / "on").rows() if "grad_norm/net.1" in r]
    assert [r["step"] for r in rows] == list(range(7))
    assert {"grad_norm/net.1", "grad_norm/net.3", "grad_norm/net.5"} <= rows[0].keys()
    b = run(make_cfg(*TINY, out="off"))  # switching the metric on does not change training
    assert a["final"]["train_loss"] == b["final"]["train_loss"]
    assert not any("grad_norm/net.1" in r for r in Run(tmp_path / "off").rows())


def test_grad_norm_callback_config():
    from omegaconf import OmegaConf

    assert grad_norm_callback(None, 10) is None
    assert grad_norm_callback(OmegaConf.create({"enabled": False}), 10) is None
    cb = grad_norm_callback(OmegaConf.create({"enabled": True, "every_n_steps": 4}), 10)
    assert cb.plan.steps == [0, 4, 8, 10]


def test_deep_sigmoid_vanishes_relu_and_bn_less_so():
    from lossland.config import CONFIG_DIR  # noqa: F401
    from lossland.data import Digits

    dm = Digits(batch_size=32, train_size=256, test_size=64).prepare()
    rows = study(dm, ["sigmoid", "tanh"], [2, 10], width=16, batch_norms=[False, True], steps=3, lr=0.1,
                 progress=False)
    first = {(r["activation"], r["depth"], r["batch_norm"], r["when"]): r["norm"] for r in rows if r["layer"] == 1}
    assert first[("sigmoid", 10, False, "init")] < 1e-3 * first[("sigmoid", 2, False, "init")]
    assert first[("sigmoid", 10, True, "init")] > 1e3 * first[("sigmoid", 10, False, "init")]
    assert first[("tanh", 10, False, "init")] > first[("sigmoid", 10, False, "init")]
    assert {r["when"] for r in rows} == {"init", "k"} and len(rows) == 2 * 2 * 2 * (3 + 11)


def test_linear_grad_norms_order():
    model = MLP([4], 2, hidden=[3, 3], activation="sigmoid")
    norms = linear_grad_norms(model, CrossEntropy(), (torch.randn(5, 4), torch.randint(0, 2, (5,))))
    assert len(norms) == 3 and norms[0] < norms[-1]


def test_zero_steps_measure_the_initial_weights_twice():
    from lossland.data import Digits

    dm = Digits(batch_size=32, train_size=128, test_size=64).prepare()
    rows = study(dm, ["relu"], [2], width=8, batch_norms=[False], steps=0, progress=False)
    assert [r["norm"] for r in rows if r["when"] == "init"] == [r["norm"] for r in rows if r["when"] == "k"]
