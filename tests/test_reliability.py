"""Reliability (docs/reliability.md): kills by real signals, resumption, reused directories, failed jobs in
a sweep, max_steps, divergence, long analyses keeping partial work."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from lossland.runs import Run
from lossland.train import run
from tests.conftest import ROOT, run_cli

# 45 steps per epoch (1437 training digits / 32); checkpoints at 250, 500, 750: mid-epoch.
LONG = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[64,32]", "optimizer=momentum", "lr=0.02",
        "trainer.max_steps=3000", "metrics.every_n_steps=100", "checkpoint.every_n_steps=250",
        "trainer.deterministic=true", "logger=csv", "trainer.enable_progress_bar=false"]


def start(out, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "train.py", *LONG, *extra, f"hydra.run.dir={out}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=120):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path.name} appeared: {proc.stderr.read()[-2000:]}"
        assert time.time() - t0 < timeout
        time.sleep(0.02)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    proc = start(out)
    assert proc.wait() == 0, proc.stderr.read()[-2000:]
    return Run(out)


def resume(out):
    """The same command again, with torch's default thread count (the interrupted part ran on one thread)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    res = subprocess.run([sys.executable, "train.py", *LONG, f"hydra.run.dir={out}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads((out / "summary.json").read_text())


def test_sigkill_mid_epoch_then_resume_is_bit_identical(uninterrupted, tmp_path):
    out = tmp_path / "run"
    proc = start(out)
    wait_for(out / "checkpoints" / "step=00000750.ckpt", proc)
    proc.kill()
    proc.wait()
    killed = Run(out)
    assert killed.status == "interrupted"  # summary says running, the process is gone
    steps = killed.series("gm")[0]
    assert len(steps) and steps.max() >= 700  # metrics.csv is complete up to the last evaluation
    res = run_cli("-m", "lossland.cli", "collect", str(out))
    assert "interrupted" in res.stdout
    resumed = resume(out)
    assert resumed["status"] == "ok" and resumed["resumed_from_step"] >= 750
    assert resumed["final"] == uninterrupted.summary["final"]  # bit-identical, not approximately equal
    assert resumed["data_order"] == uninterrupted.summary["data_order"] and resumed["steps"] == 3000
    assert Run(out).rows() == uninterrupted.rows()  # every logged number, step for step


def test_sigterm_saves_last_checkpoint_and_exits_nonzero(uninterrupted, tmp_path):
    out = tmp_path / "run"
    proc = start(out)
    wait_for(out / "checkpoints" / "step=00000250.ckpt", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM" in proc.stderr.read()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] >= 250
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == summary["steps"]
    assert resume(out)["final"] == uninterrupted.summary["final"]
    # the block in progress was finished before saving: the logged block means are an uninterrupted run's
    assert Run(out).rows() == uninterrupted.rows()


TINY = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[16]", "optimizer=sgd",
        "metrics.every_n_steps=4", "metrics.eval_batches=2"]


def test_sweep_rerun_skips_finished_jobs_and_refuses_another_sweep(tmp_path):
    sweep = tmp_path / "s"
    args = ["-m", *TINY, "trainer.max_steps=8", "lr=0.1,0.05", "logger=csv", f"hydra.sweep.dir={sweep}"]
    assert run_cli("train.py", *args).returncode == 0
    first = json.loads((sweep / "1" / "summary.json").read_text())
    again = run_cli("train.py", *args)
    assert again.returncode == 0 and "already finished ok: skipped" in again.stderr + again.stdout
    assert json.loads((sweep / "1" / "summary.json").read_text()) == first
    other = run_cli("train.py", "-m", *TINY, "trainer.max_steps=8", "lr=0.2", "logger=csv", f"hydra.sweep.dir={sweep}")
    assert other.returncode == 2 and "holds another sweep" in other.stderr
    over = run_cli("train.py", "-m", *TINY, "trainer.max_steps=8", "lr=0.2", "logger=csv", "overwrite=true",
                   f"hydra.sweep.dir={sweep}")
    assert over.returncode == 0, over.stderr[-2000:]
    assert not (sweep / "1").exists()  # the extra job directory of the old sweep is gone
    assert json.loads((sweep / "0" / "summary.json").read_text())["lr"] == 0.2


def test_a_run_directory_of_another_run_is_refused(make_cfg):
    run(make_cfg(*TINY, "trainer.max_steps=4", "lr=0.1"))
    with pytest.raises(Exception, match="holds records of another run"):
        run(make_cfg(*TINY, "trainer.max_steps=4", "lr=0.2"))
    assert run(make_cfg(*TINY, "trainer.max_steps=4", "lr=0.2", "overwrite=true"))["lr"] == 0.2


def test_one_bad_job_does_not_end_the_sweep(tmp_path):
    sweep = tmp_path / "s"
    res = run_cli("train.py", "-m", *TINY, "trainer.max_steps=4", "data=digits,mnist", "logger=csv",
                  f"hydra.sweep.dir={sweep}")
    assert res.returncode == 1
    assert "1 of 2 job(s) failed" in res.stderr and "data.root must be set" in res.stderr
    statuses = {json.loads((sweep / j / "summary.json").read_text())["status"] for j in ("0", "1")}
    assert statuses == {"ok", "failed"}


def test_max_steps_beyond_max_epochs_is_honoured(make_cfg, tmp_path):
    s = run(make_cfg(*TINY, "trainer.max_epochs=1", "trainer.max_steps=100", "metrics.every_n_steps=30"))
    assert s["status"] == "ok" and s["steps"] == 100 and s["epochs"] == 2 and s["bound_by"] == "steps"
    gm_steps = Run(tmp_path / "run").series("gm")[0]
    assert gm_steps[-1] == 100  # the final phase metrics are measured at the last step


def test_divergence_stops_before_the_bad_update(make_cfg, tmp_path):
    s = run(make_cfg(*TINY, "lr=1e12", "trainer.max_steps=12"))
    assert s["status"] == "diverged"
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    weights = [v for k, v in ckpt["state_dict"].items() if k.startswith("model.")]
    assert ckpt["lossland"]["finite"] and all(torch.isfinite(w).all() for w in weights)
    assert ckpt["global_step"] == s["diverged_at_step"] - 1 == s["last_ckpt_step"]
    assert "gm" not in s["final"]  # no pre-divergence phase metric is presented as final


def test_non_finite_data_is_refused_as_data(make_cfg, monkeypatch):
    from lossland.data import Digits
    from lossland.errors import DataError

    real = Digits.load

    def poisoned(self):
        raw = real(self)
        x, y = raw["train"]
        x = x.astype("float32")
        x[3, 0] = float("nan")
        return {"train": (x, y)}

    monkeypatch.setattr(Digits, "load", poisoned)
    with pytest.raises(DataError, match="non-finite"):
        run(make_cfg(*TINY, "trainer.max_steps=4", "data.normalize=none"))


def test_report_on_only_failed_runs_says_so(tmp_path):
    d = tmp_path / "s" / "0"
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"status": "failed", "error": "boom"}))
    res = run_cli("-m", "lossland.cli", "report", str(tmp_path / "s"), "--no-wandb")
    assert res.returncode == 2 and "no run under" in res.stderr and "1 failed" in res.stderr


def test_curvature_keeps_partial_work_and_reports_unreadable_checkpoints(make_cfg, tmp_path):
    from lossland.cli import main

    run(make_cfg(*TINY, "trainer.max_steps=8", "checkpoint.every_n_steps=4", "metrics.curvature.enabled=false"))
    d = tmp_path / "run"
    (d / "checkpoints" / "step=00000004.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as e:
        main(["curvature", str(d), "selection=[hessian_top]", "examples=32", "progress=false"])
    assert e.value.code == 2
    done = json.loads((d / "curvature.json").read_text())["checkpoints"]
    assert sorted(c["step"] for c in done) == [0, 8]  # the readable ones were measured and written


def test_runs_recorded_before_the_rename_keep_their_digest(make_cfg):
    """``steps_per_call`` became ``trainer.log_every_n_steps`` and ``trainer.gradient_clip_val`` was added: a run
    recorded before (its config holds the old key, not the new one) still has the same digest, so it still skips
    or resumes."""
    from omegaconf import OmegaConf

    from lossland.job import config_digest

    cfg = make_cfg(*TINY)
    old = OmegaConf.to_container(cfg, resolve=True)
    old["steps_per_call"] = old["trainer"].pop("log_every_n_steps")
    del old["trainer"]["gradient_clip_val"]
    assert config_digest(OmegaConf.create(old)) == config_digest(cfg)
    assert config_digest(make_cfg(*TINY, "trainer.gradient_clip_val=1")) != config_digest(cfg)
    assert config_digest(make_cfg(*TINY, "trainer.log_every_n_steps=4")) != config_digest(cfg)


def test_a_run_resumed_from_the_last_step_of_an_epoch_ends_that_epoch_first(make_cfg, tmp_path):
    """A checkpoint of an epoch's last step is taken before the epoch's end (its means, the epoch counter):
    resumed from it, the run ends that epoch, then goes on as the uninterrupted run did."""
    args = [*TINY, "data.train_size=320", "trainer.max_steps=20", "metrics.every_n_steps=10",
            "checkpoint.every_n_steps=10", "trainer.deterministic=true"]  # 10 steps per epoch
    whole = run(make_cfg(*args, out="whole"))
    run(make_cfg(*args))
    d = tmp_path / "run"
    for name in ("last.ckpt", "step=00000020.ckpt"):
        (d / "checkpoints" / name).unlink()
    summary = json.loads((d / "summary.json").read_text())
    (d / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    resumed = run(make_cfg(*args))
    assert resumed["resumed_from_step"] == 10 and resumed["epochs"] == whole["epochs"] == 2
    assert resumed["final"] == whole["final"] and resumed["data_order"] == whole["data_order"]
    epochs = [(r["step"], r["epoch"]) for r in Run(d).rows() if "train/loss" in r]
    assert epochs == [(r["step"], r["epoch"]) for r in Run(tmp_path / "whole").rows() if "train/loss" in r]


def test_a_checkpoint_with_the_former_validation_and_test_means_resumes(make_cfg, tmp_path):
    """Checkpoints written before the module kept only the training means carried empty ``val_`` / ``test_``
    means: such a checkpoint still resumes, to the uninterrupted run's finals; any other unknown key is refused."""
    args = [*TINY, "data.train_size=320", "trainer.max_steps=20", "metrics.every_n_steps=10",
            "checkpoint.every_n_steps=10", "trainer.deterministic=true"]
    whole = run(make_cfg(*args, out="whole"))
    run(make_cfg(*args))
    d = tmp_path / "run"
    ckpt = torch.load(d / "checkpoints" / "step=00000010.ckpt", weights_only=True)
    assert not any(k.startswith(("stage_metrics.val_", "stage_metrics.test_")) for k in ckpt["state_dict"])
    for stage in ("val", "test"):
        for metric in ("loss", "error"):
            for state in ("mean_value", "weight"):
                ckpt["state_dict"][f"stage_metrics.{stage}_.{metric}.{state}"] = torch.tensor(0.0)
    (d / "checkpoints" / "step=00000020.ckpt").unlink()
    torch.save(ckpt, d / "checkpoints" / "last.ckpt")
    summary = json.loads((d / "summary.json").read_text())
    (d / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    resumed = run(make_cfg(*args))
    assert resumed["resumed_from_step"] == 10 and resumed["final"] == whole["final"]

    from lossland.module import LandscapeModule
    module = LandscapeModule(torch.nn.Linear(2, 1), torch.nn.MSELoss(), optimizer=None)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        module.load_state_dict({**module.state_dict(), "stage_metrics.other_.loss.weight": torch.tensor(0.0)})
