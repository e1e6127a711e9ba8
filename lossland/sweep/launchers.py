"""Sweeps on other Hydra launchers (``hydra/launcher=joblib | submitit_local | submitit_slurm | ray``,
``conf/hydra/launcher/``; docs/scale.md): the thread count of each job, the sweep directory the parent
process launched, and the one-line refusal of DDP inside a basic-launcher multirun.

Threads: jobs that run side by side on one machine share its cores. Each job sets torch's (and OpenMP's)
thread count to ``cores // jobs running at once`` (at least 1): oversubscribed OpenMP threads spin and can
make every job several times slower. Jobs at once = the launcher's parallelism (joblib ``n_jobs``;
submitit_local: every job of the sweep; Ray: the cores per task), capped by the number of jobs in the sweep
(``LOSSLAND_SWEEP_JOBS``, set by lossland's sweeper, :mod:`lossland.sweep.sweeper`). On SLURM a job gets its own
allocation: ``cpus_per_task`` threads (or the cores it may run on). ``threads=<n>`` overrides all of this; the basic
launcher (one job at a time) leaves torch's default.
"""

from __future__ import annotations

import logging
import os

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("lossland")
SWEEP_JOBS_ENV = "LOSSLAND_SWEEP_JOBS"
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
# The sweep directory of the multirun started in this process (set by the SweepRecord callback), its launcher,
# and the jobs that ended without a result.
LAUNCHED: dict = {}


def cores() -> int:
    """The cores this process may run on (its CPU affinity: a SLURM allocation, a container's quota)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def launcher_kind(launcher: DictConfig | None) -> str:
    """``basic``, ``vectorized``, ``joblib``, ``submitit_local``, ``submitit_slurm``, ``ray`` or ``other``."""
    target = str((launcher or {}).get("_target_", BASIC))
    for key, kind in (("BasicLauncher", "basic"), ("VectorizedLauncher", "vectorized"), ("Joblib", "joblib"),
                      ("LocalLauncher",
                      "submitit_local"), ("SlurmLauncher", "submitit_slurm"), ("Ray", "ray")):
        if key in target:
            return kind
    return "other"


def job_threads(threads, launcher: DictConfig | None, n_cores: int | None = None,
                sweep_jobs: int | None = None) -> int | None:
    """The thread count a job should use (None: leave torch's default). ``threads``: the config's explicit
    value (null: decide from the launcher)."""
    if threads is not None:
        return max(1, int(threads))
    n_cores = n_cores or cores()
    kind = launcher_kind(launcher)
    if kind in ("basic", "vectorized") or launcher is None:  # one job (or one stacked grid) at a time
        return None
    if kind == "submitit_slurm":  # the job's own allocation
        return int(launcher.get("cpus_per_task") or n_cores)
    if kind == "ray":
        remote = OmegaConf.select(launcher, "ray.remote", default=None) or {}
        return max(1, int(remote.get("num_cpus") or 1))
    if kind == "submitit_local" and launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    at_once = n_cores
    if kind == "joblib":
        n = int(launcher.get("n_jobs") or -1)
        at_once = n if n > 0 else max(1, n_cores + 1 + n)  # joblib: -1 = all cores, -2 = all but one
    if sweep_jobs:
        at_once = min(at_once, sweep_jobs)
    return max(1, n_cores // max(1, at_once))


def set_job_threads(cfg: DictConfig) -> int | None:
    """Set this job's torch / OpenMP thread count (see the module docstring); returns it (None: unchanged)."""
    from hydra.core.hydra_config import HydraConfig

    launcher = HydraConfig.get().launcher if HydraConfig.initialized() else None
    env = os.environ.get(SWEEP_JOBS_ENV)
    n = job_threads(cfg.get("threads"), launcher, sweep_jobs=int(env) if env else None)
    if n is not None:
        import torch  # here: the analysis apps start without importing torch

        torch.set_num_threads(n)
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
        log.info("threads: %d (%s launcher, %d cores)", n, launcher_kind(launcher), cores())
    return n


def ddp_refusal(devices, launcher: DictConfig | None) -> str | None:
    """Why a multirun job with ``trainer.devices=<devices>`` cannot run on this launcher (None: it can)."""
    try:
        n = int(devices)
    except (TypeError, ValueError):
        n = 2 if str(devices) in ("auto", "-1") else 1
    if n <= 1 or (kind := launcher_kind(launcher)) not in ("basic", "vectorized"):
        return None
    return (f"trainer.devices={devices} (DDP) inside a {kind}-launcher multirun is not supported (DDP re-launches "
            "the script, which would re-run the sweep); run each job alone without -m, or sweep with "
            "hydra/launcher=submitit_slurm (one DDP job per allocation) — see docs/scale.md")


class SweepRecord(Callback):
    """Remembers the sweep directory in the process that launches the sweep, so that the end-of-sweep failure
    listing can read the jobs' records when they ran in other processes or on other machines."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        LAUNCHED["dir"] = str(config.hydra.sweep.dir)
        LAUNCHED["launcher"] = launcher_kind(config.hydra.launcher)
        LAUNCHED["lost"] = {}  # jobs that ended without a result (lossland.sweep.submitit): directory -> why
