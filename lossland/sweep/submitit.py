"""The submitit launchers (``hydra/launcher=submitit_slurm | submitit_local``; the classes are in
``hydra_plugins/lossland_launchers``, where Hydra looks for plugins): hydra-submitit-launcher's, except that the
sweep waits for every job. The plugin collects the jobs' results in order and stops at the first job
that ended without one — cancelled (``scancel``), killed at its time limit or for its memory, its node lost —
with a traceback, leaving the later jobs of the array unwatched and no failure listing. Here such a job is
recorded in :data:`lossland.sweep.launchers.LAUNCHED` (``lost``: job directory → why) and the others are awaited;
the end-of-sweep listing (:func:`lossland.entry.failed_in`) names it, and the command exits 1.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

from lossland.sweep.launchers import LAUNCHED

log = logging.getLogger("lossland")


class AwaitAll:
    """``launch`` of the submitit launchers, waiting for every job (mixed into the plugin's launchers)."""

    def launch(self, job_overrides, initial_job_idx: int) -> list[JobReturn]:
        import submitit  # here: choosing a launcher stays fast

        kind = self._EXECUTOR  # "slurm" or "local"
        params = dict(self.params)
        folder, max_num_timeout = params.pop("submitit_folder"), params.pop("max_num_timeout", None)
        extra = {} if max_num_timeout is None else {f"{kind}_max_num_timeout": max_num_timeout}
        executor = submitit.AutoExecutor(folder=folder, cluster=kind, **extra)
        shared = set(OmegaConf.structured(BaseQueueConf).keys())  # the others take the executor's prefix
        executor.update_parameters(**{k if k in shared else f"{kind}_{k}": v for k, v in params.items()})
        sweep = Path(str(self.config.hydra.sweep.dir))
        sweep.mkdir(parents=True, exist_ok=True)
        log.info("submitit '%s' sweep: %s", kind, sweep)
        numbers = list(range(initial_job_idx, initial_job_idx + len(job_overrides)))
        for n, overrides in zip(numbers, job_overrides):
            log.info("\t#%d : %s", n, " ".join(filter_overrides(overrides)))
        state = Singleton.get_state()
        jobs = executor.map_array(self, [list(o) for o in job_overrides], ["hydra.sweep.dir"] * len(numbers),
                                  numbers, [f"job_id_for_{n}" for n in numbers], [state] * len(numbers))
        returns = []
        for n, overrides, job in zip(numbers, job_overrides, jobs):
            try:
                returns.append(job.results()[0])
            except (submitit.core.utils.UncompletedJobError, submitit.core.utils.FailedJobError) as e:
                why = (f"the scheduler ended job {job.job_id} without a result ({job.state}); its log: "
                       f"{job.paths.stderr}" if isinstance(e, submitit.core.utils.UncompletedJobError)
                       else f"job {job.job_id} raised: {str(e).strip().splitlines()[-1]}")
                log.error("job %d: %s", n, why)
                LAUNCHED.setdefault("lost", {})[str(sweep / str(n))] = why
                ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
                ret.return_value = {"status": "failed", "error": why}
                returns.append(ret)
        return returns
