"""Sphere training through the real config and ``run``: elr, schedules, fine-tuning with ``init_from``."""

import pytest
import torch

from lossland.errors import LosslandError
from lossland.runs import Run
from lossland.train import run

SPHERE = ["data=digits", "data.batch_size=32", "data.pad_to=32", "model=convnet_si", "model.width=0.125",
          "optimizer=sphere_sgd", "metrics.every_n_steps=10", "metrics.eval_batches=2"]


def test_sphere_norm_and_logged_stats(make_cfg, tmp_path):
    s = run(make_cfg(*SPHERE, "elr=0.01", "trainer.max_steps=20"))
    assert s["status"] == "ok"
    rows = [r for r in Run(tmp_path / "run").rows() if "elr" in r]
    assert rows and all(r["elr"] == pytest.approx(0.01) for r in rows)
    rho0 = rows[0]["rho0"]
    assert all(r["weight_norm"] == pytest.approx(rho0, rel=1e-6) for r in rows)
    assert all(r["lr"] == pytest.approx(0.01 * rho0**2, rel=1e-6) for r in rows)
    assert all(0 <= r["retraction_error"] < 1 for r in rows)


def test_step_schedule_changes_elr_at_its_step(make_cfg, tmp_path):
    run(make_cfg(*SPHERE, "elr=0.01", "trainer.max_steps=32", "schedule=step", "schedule.at_step=16",
                 "schedule.factor=0.1", "trainer.log_every_n_steps=8"))
    elr = {int(r["step"]): r["elr"] for r in Run(tmp_path / "run").rows() if "elr" in r}
    # the row at step s reports the elr of the s-th update; updates 1..16 use 0.01, later ones 0.001
    assert len(elr) >= 4 and min(elr) <= 16 < max(elr)
    assert all(v == pytest.approx(0.01 if s <= 16 else 0.001) for s, v in elr.items())


def test_init_from_continues_weights_and_data_order(make_cfg, tmp_path):
    per_epoch = 1437 // 32  # digits train split / batch size
    first = run(make_cfg(*SPHERE, "elr=0.01", f"trainer.max_steps={2 * per_epoch}", out="first"))
    tuned = run(make_cfg(*SPHERE, "elr=0.002", f"trainer.max_steps={2 * per_epoch}",
                         f"init_from={tmp_path / 'first'}", out="tuned"))
    whole = run(make_cfg(*SPHERE, "elr=0.01", f"trainer.max_steps={4 * per_epoch}", out="whole"))
    assert tuned["data_order"] == whole["data_order"] != first["data_order"]
    last = torch.load(tmp_path / "first/checkpoints/last.ckpt", weights_only=False)["state_dict"]
    init = torch.load(tmp_path / "tuned/checkpoints/init.pt", weights_only=True)
    assert all(torch.equal(init[k], last[f"model.{k}"]) for k in init)


def test_sphere_optimizer_refuses_a_non_scale_invariant_model(make_cfg):
    with pytest.raises(LosslandError, match="not scale-invariant"):
        run(make_cfg("data=digits", "model=mlp", "optimizer=sphere_sgd", "trainer.max_steps=2"))
