"""Sweeps on the Hydra launcher plugins (docs/scale.md): joblib and submitit_local sweeps write ordinary run
records, jobs take their thread count from the launcher, a requeued submitit job resumes from its newest
checkpoint with the same final metrics, DDP in a basic multirun is refused. Ray: under the ``ray`` marker."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from omegaconf import OmegaConf

from lossland.runs import Run
from lossland.sweep.launchers import cores, ddp_refusal, job_threads, launcher_kind
from tests.conftest import ROOT, run_cli

TINY = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[16]", "optimizer=sgd",
        "metrics.every_n_steps=4", "metrics.eval_batches=2", "trainer.max_steps=8", "logger=csv"]


def statuses(sweep, n):
    return [json.loads((sweep / str(i) / "summary.json").read_text())["status"] for i in range(n)]


def ordinary_records(job_dir):
    return all((job_dir / f).exists() for f in ("summary.json", "metrics.csv", ".hydra/config.yaml",
                                                 "checkpoints/last.ckpt"))


def test_joblib_sweep_of_3_jobs_writes_ordinary_records_with_shared_cores(tmp_path):
    sweep = tmp_path / "s"
    res = run_cli("train.py", "-m", *TINY, "lr=0.1,0.05,0.02", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                  f"hydra.sweep.dir={sweep}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert statuses(sweep, 3) == ["ok"] * 3 and all(ordinary_records(sweep / str(i)) for i in range(3))
    assert sorted(Run(sweep / str(i)).summary["lr"] for i in range(3)) == [0.02, 0.05, 0.1]
    expected = max(1, cores() // 2)
    assert f"threads: {expected} (joblib launcher" in (sweep / "0" / "train.log").read_text()
    again = run_cli("train.py", "-m", *TINY, "lr=0.1,0.05,0.02", "hydra/launcher=joblib",
                    "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}")
    assert again.returncode == 0 and "already finished ok: skipped" in (sweep / "1" / "train.log").read_text()


def test_joblib_sweep_lists_its_failed_job(tmp_path):
    sweep = tmp_path / "s"
    res = run_cli("train.py", "-m", *TINY, "data=digits,mnist", "hydra/launcher=joblib", f"hydra.sweep.dir={sweep}")
    assert res.returncode == 1
    assert "1 of 2 job(s) failed" in res.stderr and "data.root must be set" in res.stderr


def test_submitit_local_sweep_of_2_jobs_writes_ordinary_records(tmp_path):
    sweep = tmp_path / "s"
    res = run_cli("train.py", "-m", *TINY, "lr=0.1,0.05", "hydra/launcher=submitit_local",
                  f"hydra.sweep.dir={sweep}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert statuses(sweep, 2) == ["ok"] * 2 and all(ordinary_records(sweep / str(i)) for i in range(2))
    assert (sweep / ".submitit").is_dir()


# 45 steps per epoch; scheduled checkpoints mid-epoch; one thread in both runs, so results can be bit-identical.
LONG = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[64,32]", "optimizer=momentum", "lr=0.02",
        "trainer.max_steps=2000", "metrics.every_n_steps=100", "checkpoint.every_n_steps=250",
        "trainer.deterministic=true", "logger=csv", "trainer.enable_progress_bar=false", "threads=1"]


def test_a_preempted_submitit_job_is_requeued_and_resumes_bit_identically(tmp_path):
    ref = tmp_path / "ref"
    res = run_cli("train.py", *LONG, f"hydra.run.dir={ref}")
    assert res.returncode == 0, res.stderr[-2000:]
    reference = json.loads((ref / "summary.json").read_text())

    sweep = tmp_path / "s"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "train.py", "-m", *LONG, "seed=0", "hydra/launcher=submitit_local",
                             f"hydra.sweep.dir={sweep}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    job = sweep / "0"
    t0 = time.time()
    while not (job / "checkpoints" / "step=00000500.ckpt").exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - t0 < 300
        time.sleep(0.05)
    pid = json.loads((job / "summary.json").read_text())["pid"]
    # What SLURM/submitit do on preemption or before a timeout: SIGUSR2; submitit checkpoints and requeues.
    os.kill(pid, signal.SIGUSR2)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    resumed = json.loads((job / "summary.json").read_text())
    assert resumed["status"] == "ok" and resumed["resumed_from_step"] >= 500
    assert resumed["final"] == reference["final"] and resumed["data_order"] == reference["data_order"]
    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*.out"))
    assert "Requeued job" in logs or "requeu" in logs.lower()


def test_thread_count_follows_the_launchers_parallelism():
    joblib = OmegaConf.create({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
                               "n_jobs": 2})
    assert job_threads(None, joblib, n_cores=2) == 1
    assert job_threads(None, joblib, n_cores=16) == 8
    joblib.n_jobs = -1
    assert job_threads(None, joblib, n_cores=2, sweep_jobs=4) == 1
    assert job_threads(None, joblib, n_cores=16, sweep_jobs=4) == 4
    local = OmegaConf.create({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
                              "cpus_per_task": None})
    assert job_threads(None, local, n_cores=8, sweep_jobs=2) == 4
    slurm = OmegaConf.create({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
                              "cpus_per_task": 6})
    assert job_threads(None, slurm, n_cores=64) == 6
    ray = OmegaConf.create({"_target_": "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher",
                            "ray": {"remote": {"num_cpus": 3}}})
    assert job_threads(None, ray) == 3
    basic = OmegaConf.create({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"})
    assert job_threads(None, basic) is None and job_threads(3, basic) == 3


def test_ddp_in_a_basic_multirun_is_refused_in_one_line(tmp_path):
    res = run_cli("train.py", "-m", *TINY, "trainer.devices=2", "lr=0.1,0.2", f"hydra.sweep.dir={tmp_path / 's'}")
    assert res.returncode == 2
    line = res.stderr.strip()
    assert "\n" not in line and "basic-launcher multirun" in line and "submitit_slurm" in line
    assert not (tmp_path / "s").exists()
    slurm = OmegaConf.create({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"})
    assert ddp_refusal(2, slurm) is None and ddp_refusal(1, None) is None


@pytest.mark.ray
def test_ray_sweep_on_a_local_ray_cluster(tmp_path):
    """Needs the ``ray`` extra in its own environment (hydra-ray-launcher pins cloudpickle<3, which the joblib
    of the ``scale`` extra excludes): ``make test-ray`` (CI runs it), which sets LOSSLAND_REQUIRE_RAY=1 so that
    a missing plugin fails instead of skipping."""
    if os.environ.get("LOSSLAND_REQUIRE_RAY"):
        import hydra_plugins.hydra_ray_launcher  # noqa: F401
    else:
        pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    sweep = tmp_path / "s"
    res = run_cli("train.py", "-m", *TINY, "lr=0.1,0.05", "hydra/launcher=ray", f"hydra.sweep.dir={sweep}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert statuses(sweep, 2) == ["ok"] * 2 and all(ordinary_records(sweep / str(i)) for i in range(2))


def test_every_launcher_option_composes_against_its_plugin_schema():
    from lossland.config import compose

    for name, kind in (("joblib", "joblib"), ("submitit_local", "submitit_local"),
                       ("submitit_slurm", "submitit_slurm"), ("ray", "ray")):
        cfg = compose([f"hydra/launcher={name}"], return_hydra_config=True)
        assert launcher_kind(cfg.hydra.launcher) == kind
    slurm = compose(["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=1",
                     "hydra.launcher.timeout_min=240", "hydra.launcher.array_parallelism=12"],
                    return_hydra_config=True).hydra.launcher
    assert (slurm.partition, slurm.gpus_per_node, slurm.array_parallelism) == ("gpu", 1, 12)
    assert slurm.additional_parameters.requeue is True and slurm.max_num_timeout > 0
    with pytest.raises(Exception, match="timeout_min"):  # typed by the plugin's schema: a wrong type is refused
        compose(["hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=soon"], return_hydra_config=True)


def test_jobs_the_scheduler_ended_without_a_result_are_listed(tmp_path):
    """lossland.sweep.submitit records them as lost (a real SLURM scancel: tests/test_slurm.py); the end-of-sweep
    listing names them, with or without a summary of their own."""
    from lossland.entry import failed_in

    for i, status in ((0, "ok"), (1, "interrupted")):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "summary.json").write_text(json.dumps({"status": status, "error": f"e{i}"}))
    (tmp_path / "2").mkdir()  # Hydra made its directory, the job died before its summary
    lost = {str(tmp_path / "1"): "cancelled", str(tmp_path / "2"): "killed", str(tmp_path / "3"): "never ran"}
    failed, count = failed_in(tmp_path, lost)
    assert count == 4
    assert failed == [(str(tmp_path / "1"), "e1 (cancelled)"), (str(tmp_path / "2"), "killed"),
                      (str(tmp_path / "3"), "never ran")]
    assert failed_in(tmp_path) == ([(str(tmp_path / "1"), "e1")], 2)
