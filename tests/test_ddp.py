"""A single run on several devices (``trainer.devices=2``, DDP on CPU with gloo; docs/scale.md): it finishes,
rank 0 alone writes the records, into the one Hydra run directory, and its weights and metrics equal one
process's run with the same global batch (a mean loss: the average of the two half-batch gradients is the
whole batch's gradient). A re-run is skipped by every rank alike."""

import json
import math

import pytest
import torch

from lossland.runs import Run, load_checkpoint
from lossland.train import run
from tests.conftest import run_cli

TINY = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[16]", "optimizer=sgd", "lr=0.1",
        "trainer.max_steps=20", "metrics.every_n_steps=10", "metrics.eval_batches=2", "checkpoint.every_n_steps=10",
        "threads=1"]


def test_a_ddp_run_on_2_cpu_ranks_equals_one_process_with_the_same_global_batch(tmp_path, make_cfg):
    ref = run(make_cfg(*TINY, out="ref"))
    assert ref["status"] == "ok"

    out = tmp_path / "ddp"
    res = run_cli("train.py", *TINY, "trainer.accelerator=cpu", "trainer.devices=2", "logger=csv",
                  "trainer.enable_progress_bar=false", f"hydra.run.dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "ref"]  # the child rank made no directory
    assert res.stdout.count("lossland: run ok") == 1  # rank 0 speaks for the run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["steps"] == 20
    assert (out / ".hydra" / "config.yaml").exists()

    rows, ref_rows = Run(out).rows(), Run(tmp_path / "ref").rows()
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]  # every row written once
    for r, q in zip(rows, ref_rows):  # every logged number (batch losses of the whole batch, not rank 0's half)
        assert r.keys() == q.keys() and all(math.isclose(r[k], q[k], rel_tol=1e-4, abs_tol=1e-6) for k in q), r
    for key, value in ref["final"].items():
        assert math.isclose(summary["final"][key], value, rel_tol=1e-4, abs_tol=1e-6), key
    a = load_checkpoint(out / "checkpoints" / "last.ckpt")["state_dict"]
    b = load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.ckpt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == sorted(
        p.name for p in (tmp_path / "ref" / "checkpoints").iterdir())


def test_a_ddp_run_through_the_lossland_command(tmp_path):
    """`lossland train ...`: the other rank re-runs the same command (`lossland train`, not the bare overrides)."""
    out = tmp_path / "ddp"
    res = run_cli("-m", "lossland.cli", "train", *TINY, "trainer.max_steps=4", "trainer.devices=2", "logger=csv",
                  "trainer.enable_progress_bar=false", f"hydra.run.dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("lossland: run ok") == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]
    assert json.loads((out / "summary.json").read_text())["steps"] == 4


@pytest.mark.slow
def test_a_finished_ddp_run_is_skipped_by_every_rank(tmp_path):
    out = tmp_path / "ddp"
    args = ["train.py", *TINY, "trainer.max_steps=4", "trainer.devices=2", "logger=csv",
            "trainer.enable_progress_bar=false", f"hydra.run.dir={out}"]
    assert run_cli(*args).returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    again = run_cli(*args)  # rank 0 decides "skip" and tells rank 1, which must not see a run in progress
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text()) == summary
    assert again.stdout.count("already finished ok: skipped") == 1 and "in progress" not in again.stderr


@pytest.mark.slow
def test_a_global_batch_that_does_not_split_across_ranks_is_refused(tmp_path):
    out = tmp_path / "odd"
    res = run_cli("train.py", *TINY, "data.batch_size=33", "trainer.devices=2", "logger=csv",
                  "trainer.enable_progress_bar=false", f"hydra.run.dir={out}")
    assert res.returncode == 2
    assert "data.batch_size=33 does not split evenly across 2 devices" in res.stderr
    assert json.loads((out / "summary.json").read_text())["status"] == "failed"
