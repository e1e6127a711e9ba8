"""Sweeps through a real SLURM scheduler (``hydra/launcher=submitit_slurm``; docs/scale.md#testing-on-slurm): a
single-node cluster (munged, slurmctld, slurmd; tests/slurm_cluster.py) is brought up for the session by the
``slurm_cluster`` fixture. What is tested is the scheduler's behaviour, not a stand-in for it: a job array
throttled to its parallelism, the failure listing (a failed job, a job cancelled before it started), a job
preempted by ``scontrol requeue``, the signal SLURM sends before a time limit (``--signal=USR2@<delay>``, which
submitit turns into a requeue), a requeue of a finished job, and the submitting process dying mid-sweep. Run
with ``make test-slurm`` (``pytest -m slurm``); skipped where the cluster cannot be brought up, except in CI.

The jobs are stopped (SIGSTOP) at a known step while the scheduler acts on them, so that what it does (its
SIGCONT + SIGTERM, its warning signal) reaches them mid-training however loaded the machine is; SLURM's own
signals resume them.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slurm

TINY = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[16]", "optimizer=sgd",
        "metrics.every_n_steps=4", "metrics.eval_batches=2", "trainer.max_steps=8", "logger=csv"]
# 2000 steps of 45 per epoch, scheduled checkpoints every 250 steps, one deterministic thread: a resumed run can
# be bit-identical to an uninterrupted one (the comparison of tests/test_launchers.py, here through the scheduler).
LONG = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[64,32]", "optimizer=momentum",
        "trainer.max_steps=2000", "metrics.every_n_steps=100", "checkpoint.every_n_steps=250",
        "trainer.deterministic=true", "logger=csv", "trainer.enable_progress_bar=false", "threads=1"]
# One CPU and 1 GB per job (the node has this machine's CPUs and memory), the cluster's partition.
ON_SLURM = ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10"]


def sweep_cmd(*args) -> list[str]:
    return [sys.executable, "train.py", "-m", *args]


def env_of(cluster) -> dict:
    return dict(cluster.env, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0", OMP_NUM_THREADS="1")


def run_sweep(cluster, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(sweep_cmd(*args), cwd=ROOT, env=env_of(cluster), capture_output=True, text=True,
                          timeout=timeout)


def start_sweep(cluster, *args) -> subprocess.Popen:
    return subprocess.Popen(sweep_cmd(*args), cwd=ROOT, env=env_of(cluster), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


def rows(job: Path) -> list[dict]:
    with open(job / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def wait_until(what: str, ok, proc: subprocess.Popen | None = None, timeout: float = 240) -> None:
    t0 = time.time()
    while not ok():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep ended while waiting for {what}: {proc.communicate()[1][-3000:]}")
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def stop_at_checkpoint(job: Path, step: int, proc: subprocess.Popen) -> int:
    """Wait until the job has written its scheduled checkpoint at ``step``, then stop its process (SIGSTOP);
    returns its pid. The job then stands mid-training until a signal from the scheduler (SIGCONT) or the test."""
    wait_until(f"{job} to reach step {step}", (job / "checkpoints" / f"step={step:08d}.ckpt").exists, proc)
    pid = summary(job)["pid"]
    os.kill(pid, signal.SIGSTOP)
    return pid


def submitit_logs(sweep: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted((sweep / ".submitit").rglob("*_log.*")))


def assert_identical(job: Path, reference: Path) -> None:
    got, ref = summary(job), summary(reference)
    assert got["status"] == "ok", got
    assert got["final"] == ref["final"] and got["data_order"] == ref["data_order"] and got["steps"] == ref["steps"]
    assert rows(job) == rows(reference)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The LONG run at lr=0.02, uninterrupted and without a scheduler: what every resumed job must equal."""
    out = tmp_path_factory.mktemp("reference") / "run"
    res = subprocess.run([sys.executable, "train.py", *LONG, "lr=0.02", f"hydra.run.dir={out}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_a_sweep_runs_as_a_job_array_throttled_to_its_parallelism(slurm, tmp_path):
    sweep = tmp_path / "s"
    res = run_sweep(slurm, *TINY, "lr=0.1,0.05,0.02", *ON_SLURM, "hydra.launcher.array_parallelism=2",
                    f"hydra.sweep.dir={sweep}")
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = [sweep / str(i) for i in range(3)]
    for job in jobs:
        assert summary(job)["status"] == "ok"
        assert all((job / f).exists() for f in ("metrics.csv", ".hydra/config.yaml", "checkpoints/last.ckpt"))
        assert "threads: 1 (submitit_slurm launcher" in (job / "train.log").read_text()
    # one array of 3 tasks, throttled to 2 at once, submitted with the launcher's options
    ids = [summary(job)["scheduler_job"] for job in jobs]
    array = ids[0].split("_")[0]
    assert ids == [f"{array}_{i}" for i in range(3)]
    script = next((sweep / ".submitit").rglob("*_submission.sh")).read_text()
    for option in ("--array=0-2%2", "--partition=debug", "--cpus-per-task=1", "--requeue", "--signal=USR2@"):
        assert option in script, script
    # the sweep returns once every job has written its result; the last one may still be completing
    wait_until("the array's jobs to complete", lambda: all(slurm.job(i).get("JobState") == "COMPLETED" for i in ids))
    tasks = [slurm.job(i) for i in ids]
    assert all(t["ArrayTaskThrottle"] == "2" for t in tasks), tasks
    spans = [(datetime.fromisoformat(t["StartTime"]), datetime.fromisoformat(t["EndTime"])) for t in tasks]
    at_once = max(sum(s <= start < e for s, e in spans) for start, _ in spans)
    assert at_once == 2, spans  # two ran side by side, never three

    # lossland collect / lossland report read them (their command-line entry, in this process: no second start-up)
    from lossland.cli import main

    main(["collect", str(sweep)])
    with open(sweep / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert sorted(float(r["lr"]) for r in table) == [0.02, 0.05, 0.1] and {r["status"] for r in table} == {"ok"}
    main(["report", "--no-wandb", str(sweep)])
    assert (sweep / "report" / "index.html").stat().st_size > 0


def test_a_failed_job_and_one_the_scheduler_cancelled_are_listed_after_the_others_ended(slurm, tmp_path):
    """A job that fails (mnist without data.root) and one cancelled before it started (no record at all: the
    plugin's launcher stopped at it with a traceback, no longer waiting for the others) are listed; exit 1."""
    sweep = tmp_path / "s"
    proc = start_sweep(slurm, *TINY, "data=digits,mnist,spheres", *ON_SLURM, "hydra.launcher.array_parallelism=2",
                       f"hydra.sweep.dir={sweep}")
    try:  # job 2 waits for a slot
        wait_until("the array to be queued", slurm.jobs, proc)
        slurm.run("scancel", f"{slurm.jobs()[0].split('_')[0]}_2")
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 1, err[-3000:]
    assert "2 of 3 job(s) failed" in err and "Traceback" not in err, err[-3000:]
    assert f"{sweep / '1'}: data.root must be set" in err
    assert f"{sweep / '2'}: the scheduler ended job" in err and "without a result (CANCELLED)" in err
    assert [summary(sweep / str(i))["status"] for i in (0, 1)] == ["ok", "failed"]
    assert not (sweep / "2").exists()


def test_a_job_preempted_by_the_scheduler_resumes_identically_and_a_requeue_after_its_end_is_skipped(
        slurm, tmp_path, reference):
    sweep, job = tmp_path / "s", tmp_path / "s" / "0"
    proc = start_sweep(slurm, *LONG, "lr=0.02", *ON_SLURM, f"hydra.sweep.dir={sweep}")
    try:
        stop_at_checkpoint(job, 500, proc)
        task = summary(job)["scheduler_job"]
        slurm.run("scontrol", "requeue", task)  # preemption: SLURM sends SIGCONT + SIGTERM and requeues the job
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    resumed = summary(job)
    assert resumed["resumed_from_step"] >= 500, resumed  # SIGTERM: last.ckpt at the end of the block in progress
    assert_identical(job, reference)
    assert f"interrupted by SIGTERM at step {resumed['resumed_from_step']}" in submitit_logs(sweep)
    assert slurm.job(task).get("Restarts") == "1"

    # The finished job requeued again (a preemption after the run ended): it runs, finds the run done, skips it.
    before = (job / "summary.json").read_bytes()
    slurm.run("scontrol", "requeue", task)
    wait_until("the requeued finished job to end",
               lambda: slurm.job(task).get("Restarts") == "2" and slurm.job(task).get("JobState") == "COMPLETED")
    assert "already finished ok: skipped" in (job / "train.log").read_text()
    assert (job / "summary.json").read_bytes() == before


def test_the_signal_before_a_time_limit_checkpoints_requeues_and_resumes_identically(slurm, tmp_path, reference):
    """submitit asks SLURM for ``--signal=USR2@<signal_delay_s>``; on it submitit's handler in the job calls the
    Hydra launcher's ``checkpoint`` (a resubmission of the same job), requeues it (``scontrol requeue``) and
    exits; lossland marks the run interrupted and the next attempt resumes from the newest scheduled checkpoint.
    The job's time limit is brought near while it is stopped, so that slurmctld's next time-limit check (every
    30 s) sends the warning; SLURM continues the stopped job step to deliver it."""
    sweep, job = tmp_path / "s", tmp_path / "s" / "0"
    proc = start_sweep(slurm, *LONG, "lr=0.02", *ON_SLURM, "hydra.launcher.signal_delay_s=120",
                       f"hydra.sweep.dir={sweep}")
    try:
        stop_at_checkpoint(job, 500, proc)
        task = summary(job)["scheduler_job"]
        ran_s = (datetime.now() - datetime.fromisoformat(slurm.job(task)["StartTime"])).total_seconds()
        limit_min = int(ran_s // 60) + 2  # ends 60-120 s from now: the 120 s warning is due at the next check
        slurm.run("scontrol", "update", f"JobId={task}", f"TimeLimit={limit_min}")
        wait_until("SLURM's time-limit warning and submitit's requeue", lambda: slurm.job(task).get("Restarts") == "1",
                   proc, timeout=90)
        slurm.run("scontrol", "update", f"JobId={task}", "TimeLimit=10")  # the next attempt gets its 10 minutes
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    resumed = summary(job)
    assert resumed["resumed_from_step"] == 500, resumed  # the newest scheduled checkpoint
    assert_identical(job, reference)
    logs = submitit_logs(sweep)
    assert "Caught signal SIGUSR2" in logs and "this job is timed-out" in logs and f"Requeued job {task}" in logs
    assert slurm.job(task).get("Restarts") == "1"


def test_the_same_command_after_the_submitter_died_skips_finished_jobs_and_resumes_the_others(
        slurm, tmp_path, reference):
    sweep = tmp_path / "s"
    args = [*LONG, "lr=0.05,0.02", *ON_SLURM, "hydra.launcher.array_parallelism=2", f"hydra.sweep.dir={sweep}"]
    proc = start_sweep(slurm, *args)
    try:
        stop_at_checkpoint(sweep / "1", 500, proc)  # job 1 stands mid-run
        wait_until("job 0 to finish", lambda: (sweep / "0" / "summary.json").exists()
                   and summary(sweep / "0")["status"] == "ok", proc)
        proc.kill()  # the submitting process dies (SIGKILL: no chance to clean up)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    task = summary(sweep / "1")["scheduler_job"]
    assert slurm.job(task).get("JobState") == "RUNNING"  # the array outlives its submitter
    slurm.run("scancel", task.split("_")[0])  # and is cancelled: job 1 gets SIGCONT + SIGTERM, saves, exits
    wait_until("the cancelled array to leave the queue", lambda: not slurm.jobs())
    assert summary(sweep / "1")["status"] == "interrupted"

    res = run_sweep(slurm, *args)  # the same command again
    assert res.returncode == 0, res.stderr[-3000:]
    assert "already finished ok: skipped" in (sweep / "0" / "train.log").read_text()
    first, second = summary(sweep / "0"), summary(sweep / "1")
    assert first["status"] == "ok" and "resumed_from_step" not in first
    assert second["resumed_from_step"] >= 500 and second["scheduler_job"] != task  # a job of the new array
    assert_identical(sweep / "1", reference)


def documented_slurm_command() -> list[str]:
    """The full-scale SLURM launch of docs/scale.md ("On a SLURM cluster, step by step", step 4), as tokens: the
    one code block there that launches ``hydra/launcher=submitit_slurm`` with ``experiment=paper/...``."""
    import re
    import shlex

    text = (ROOT / "docs" / "scale.md").read_text()
    section = text.split("### On a SLURM cluster, step by step", 1)[1].split("\n### ", 1)[0]
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        line = " ".join(part.strip() for part in block.replace("\\\n", " ").splitlines())
        if "hydra/launcher=submitit_slurm" in line and "experiment=paper/" in line:
            return shlex.split(line)
    raise AssertionError("docs/scale.md: no full-scale submitit_slurm command in 'On a SLURM cluster, step by step'")


def test_the_documented_full_scale_slurm_command_runs_on_the_cluster(slurm, tmp_path):
    """docs/scale.md's SLURM command, as written (partition gpu, a GPU, 8 CPUs, time limit, requeues, array
    parallelism, the setup line), against this cluster on synthetic CIFAR-10 of the real format and size; only
    the paths are replaced and the experiment is capped (two of its elrs, one CPU step, the rehearsal's limits:
    lossland.paper.rehearsal.TRAIN), so the doc cannot drift from what works."""
    from lossland.data.synthetic_files import write_cifar10
    from lossland.paper.rehearsal import TRAIN

    cmd = documented_slurm_command()
    assert cmd[:3] == ["lossland", "train", "-m"], cmd
    data, sweep = tmp_path / "data", tmp_path / "sphere_cifar"
    write_cifar10(data)
    activate = Path(sys.executable).parent / "activate"
    placed = {"data.root": str(data), "hydra.sweep.dir": str(sweep),
              "hydra.launcher.setup": f'["source {activate}"]' if activate.exists() else "[]"}
    args = [f"{k}={placed[k]}" if (k := a.split("=", 1)[0]) in placed else a for a in cmd[3:]]
    assert sorted(a.split("=", 1)[0] for a in args if a.split("=", 1)[0] in placed) == sorted(placed), args
    caps = [a for a in TRAIN if a != "hydra.sweeper.params=null"] + ["elr=7e-4,2e-2", "threads=1"]
    res = subprocess.run([sys.executable, "-m", "lossland.cli", "train", "-m", *args, *caps], cwd=ROOT,
                         env=env_of(slurm), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:] + submitit_logs(sweep)[-3000:]
    jobs = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert len(jobs) == 2, jobs
    for job in jobs:
        s = summary(job)
        assert s["status"] == "ok" and s["steps"] == 1, s
        cfg = (job / ".hydra" / "config.yaml").read_text()
        assert f"root: {data}" in cfg and "train_size: 50000" in cfg, cfg[:2000]
    assert "#SBATCH --partition=gpu" in "".join(p.read_text() for p in (sweep / ".submitit").rglob("*.sh"))
