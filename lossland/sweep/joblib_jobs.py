"""The joblib launcher (``hydra/launcher=joblib``; the class is in ``hydra_plugins/lossland_launchers``):
hydra-joblib-launcher's, except that a job whose worker process dies (the OOM killer, ``kill -9``) costs only
that job. The plugin runs the sweep in one ``joblib.Parallel`` call: one lost worker breaks the pool, ends the
other running jobs, never starts the queued ones and ends the sweep with a traceback. Here every job runs in a
process of its own (loky's, as the plugin's: the job function is cloudpickled), ``n_jobs`` at a time; a job
whose process dies is recorded in :data:`lossland.sweep.launchers.LAUNCHED` (``lost``) and the others go on;
the end-of-sweep listing (:func:`lossland.entry.failed_in`) names it, and the command exits 1.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals

from lossland.sweep.launchers import LAUNCHED

log = logging.getLogger("lossland")


def jobs_at_once(n_jobs, n_cores: int | None = None) -> int:
    """joblib's ``n_jobs``: a positive count, or -1 for every core, -2 for all but one, ..."""
    n, cores = int(n_jobs or -1), n_cores or os.cpu_count() or 1
    return n if n > 0 else max(1, cores + 1 + n)


class OwnProcesses:
    """``launch`` of the joblib launcher, one process per job (mixed into the plugin's launcher)."""

    def launch(self, job_overrides, initial_job_idx: int) -> list[JobReturn]:
        from hydra_plugins.hydra_joblib_launcher._core import execute_job
        from joblib.externals.loky import ProcessPoolExecutor

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep = Path(str(self.config.hydra.sweep.dir))
        sweep.mkdir(parents=True, exist_ok=True)
        at_once = jobs_at_once(self.joblib.get("n_jobs"))
        log.info("joblib: %d jobs, %d at a time, each in its own process; sweep: %s", len(job_overrides), at_once,
                 sweep)
        for i, overrides in enumerate(job_overrides):
            log.info("\t#%d : %s", initial_job_idx + i, " ".join(filter_overrides(overrides)))
        state = Singleton.get_state()

        def one(i: int, overrides) -> JobReturn:
            n = initial_job_idx + i
            with ProcessPoolExecutor(max_workers=1) as pool:
                try:
                    return pool.submit(execute_job, n, list(overrides), self.hydra_context, self.config,
                                       self.task_function, state).result()
                except Exception as e:  # noqa: BLE001 - the worker died (TerminatedWorkerError) or could not start
                    if not type(e).__name__.startswith(("TerminatedWorker", "BrokenProcessPool")):
                        raise
                    why = f"its worker process died ({_exit(e)}); the other jobs went on"
            log.error("job %d: %s", n, why)
            LAUNCHED.setdefault("lost", {})[str(sweep / str(n))] = why
            ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
            ret.return_value = {"status": "failed", "error": why}
            return ret

        with ThreadPoolExecutor(max_workers=at_once) as threads:
            return list(threads.map(one, range(len(job_overrides)), job_overrides))


def _exit(e: Exception) -> str:
    """The worker's exit code in loky's message (``{SIGKILL(-9)}``), else the error's first line."""
    text = str(e)
    if "exit codes" in text:
        return "exit code " + text.rsplit("exit codes of the workers are", 1)[-1].strip().strip(".{}")
    return (text.strip().splitlines() or [type(e).__name__])[0][:200]
