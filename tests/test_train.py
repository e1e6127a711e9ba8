import json
import math

import pytest
import torch

from lossland.errors import LosslandError
from lossland.losses import CrossEntropy
from lossland.metrics.gradients import gradient_stats
from lossland.models import MLP
from lossland.train import run

TINY = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[16]", "optimizer=sgd",
        "trainer.max_steps=12", "metrics.every_n_steps=4", "metrics.eval_batches=2"]


def test_run_writes_complete_records(make_cfg, tmp_path):
    summary = run(make_cfg(*TINY, "lr=0.1"))
    d = tmp_path / "run"
    assert summary["status"] == "ok" and summary["steps"] == 12
    on_disk = json.loads((d / "summary.json").read_text())
    for key in ("status", "seed", "elr", "lr", "overrides", "steps", "epochs", "wall_s", "diverged_at_step", "final"):
        assert key in on_disk
    assert {"train_loss", "train_error", "test_error", "gm"} <= on_disk["final"].keys()
    assert all(math.isfinite(v) for v in on_disk["final"].values())
    assert (d / "checkpoints" / "last.ckpt").exists() and (d / "checkpoints" / "init.pt").exists()
    header = (d / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["step", "epoch"] and "gm" in header and "train/batch_loss" in header
    # scheduled metrics ran at exactly the steps they asked for
    from lossland.runs import Run

    gm_steps = [r["step"] for r in Run(d).rows() if "gm" in r]
    assert gm_steps == [0, 4, 8, 12]


def test_same_init_and_batch_order_across_rates(make_cfg):
    a = run(make_cfg(*TINY, "lr=0.1", out="a"))
    b = run(make_cfg(*TINY, "lr=0.01", "regularizer=weight_decay", out="b"))
    c = run(make_cfg(*TINY, "lr=0.1", "seed=1", out="c"))
    assert a["data_order"] == b["data_order"] != c["data_order"]
    init = [torch.load(p, weights_only=True) for p in
            (make_cfg(out="a").out_dir + "/checkpoints/init.pt", make_cfg(out="b").out_dir + "/checkpoints/init.pt",
             make_cfg(out="c").out_dir + "/checkpoints/init.pt")]
    assert all(torch.equal(init[0][k], init[1][k]) for k in init[0])
    assert not all(torch.equal(init[0][k], init[2][k]) for k in init[0])
    assert a["final"]["train_loss"] != b["final"]["train_loss"]


def test_divergence_is_a_status(make_cfg):
    s = run(make_cfg(*TINY, "lr=1e12"))
    assert s["status"] == "diverged" and 1 <= s["diverged_at_step"] <= 12


def test_non_positive_rate_is_refused(make_cfg):
    with pytest.raises(LosslandError, match="positive"):
        run(make_cfg(*TINY, "lr=-1"))


def test_gm_equals_naive_loop():
    torch.manual_seed(0)
    model, loss = MLP((10,), 3, hidden=[8]), CrossEntropy()
    batches = [(torch.randn(16, 10), torch.randint(0, 3, (16,))) for _ in range(4)]
    stats = gradient_stats(model, loss, batches)
    norms, grads = [], []
    for x, y in batches:
        model.zero_grad()
        loss(model(x), y).backward()
        g = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        norms.append(g.norm())
        grads.append(g)
    assert stats["gm"] == pytest.approx(float(torch.stack(norms).mean()), rel=1e-5)
    assert stats["grad_mean_norm"] == pytest.approx(float(torch.stack(grads).mean(0).norm()), rel=1e-5)


def test_gradient_clipping_bounds_every_update_and_cosine_anneals_the_rate(make_cfg, tmp_path):
    """Plain SGD with ``trainer.gradient_clip_val=c`` (c far below the gradient norm) moves the weights by exactly
    lr_s·c at step s; ``schedule=cosine`` gives lr_s = end + (start − end)(1 + cos(π s / steps))/2."""
    s = run(make_cfg(*TINY, "lr=0.5", "schedule=cosine", "schedule.end=0.05", "trainer.gradient_clip_val=1e-3",
                     "checkpoint.every_n_steps=1"))
    assert s["status"] == "ok" and s["lr"] == 0.5
    rate = [0.05 + 0.45 * (1 + math.cos(math.pi * k / 12)) / 2 for k in range(12)]
    assert s["lr_final"] == pytest.approx(rate[-1])
    ckpts = tmp_path / "run" / "checkpoints"
    weights = [torch.load(ckpts / f"step={k:08d}.ckpt", weights_only=False)["state_dict"] for k in range(1, 13)]
    weights.insert(0, {f"model.{k}": v for k, v in torch.load(ckpts / "init.pt", weights_only=True).items()})
    for k in range(12):
        step = torch.cat([(weights[k + 1][n] - weights[k][n]).flatten() for n in weights[k] if n.startswith("model.")])
        assert float(step.norm()) == pytest.approx(rate[k] * 1e-3, rel=1e-3)
