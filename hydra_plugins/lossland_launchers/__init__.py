"""lossland's launcher plugins (Hydra finds plugins only in the ``hydra_plugins`` namespace): the vectorized
launcher (``hydra/launcher=vectorized``: a sweep's batch trained as one stacked model,
:mod:`lossland.sweep.vectorized.run`), the submitit launchers that wait for every job of a sweep
(:mod:`lossland.sweep.submitit`), and the joblib launcher whose jobs run in processes of their own
(:mod:`lossland.sweep.joblib_jobs`)."""

from hydra.plugins.launcher import Launcher

try:
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher as _plugin
except ImportError:  # hydra-submitit-launcher is not installed (the ".[scale]" extra): no submitit launchers
    _plugin = None


class VectorizedLauncher(Launcher):
    """Every batch a sweeper hands over, trained in this process as one stacked model
    (``conf/hydra/launcher/vectorized.yaml``). torch is imported when a batch is launched, not when Hydra
    discovers its plugins."""

    def __init__(self, vmap: bool = False) -> None:
        self.vmap = bool(vmap)
        self.config = self.hydra_context = self.task_function = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides, initial_job_idx: int):
        from lossland.sweep.vectorized.run import launch_batch

        return launch_batch(self, job_overrides, initial_job_idx)


if _plugin is not None:
    from lossland.sweep.submitit import AwaitAll

    class SlurmLauncher(AwaitAll, _plugin.SlurmLauncher):
        """A SLURM job array (``conf/hydra/launcher/submitit_slurm.yaml``)."""

    class LocalLauncher(AwaitAll, _plugin.LocalLauncher):
        """Local processes through submitit (``conf/hydra/launcher/submitit_local.yaml``)."""

try:
    from hydra_plugins.hydra_joblib_launcher import joblib_launcher as _joblib
except ImportError:  # hydra-joblib-launcher is not installed (the ".[scale]" extra)
    _joblib = None

if _joblib is not None:
    from lossland.sweep.joblib_jobs import OwnProcesses

    class JoblibLauncher(OwnProcesses, _joblib.JoblibLauncher):
        """Local processes, n_jobs at a time; a killed worker costs its own job only
        (``conf/hydra/launcher/joblib.yaml``)."""
