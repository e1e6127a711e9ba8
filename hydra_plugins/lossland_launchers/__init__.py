"""lossland's launcher plugins (Hydra finds plugins only in the ``hydra_plugins`` namespace): the submitit
launchers that wait for every job of a sweep (:mod:`lossland.sweep.submitit`)."""

try:
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher as _plugin
except ImportError:  # hydra-submitit-launcher is not installed (the ".[scale]" extra): no submitit launchers
    _plugin = None

if _plugin is not None:
    from lossland.sweep.submitit import AwaitAll

    class SlurmLauncher(AwaitAll, _plugin.SlurmLauncher):
        """A SLURM job array (``conf/hydra/launcher/submitit_slurm.yaml``)."""

    class LocalLauncher(AwaitAll, _plugin.LocalLauncher):
        """Local processes through submitit (``conf/hydra/launcher/submitit_local.yaml``)."""
