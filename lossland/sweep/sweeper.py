"""The sweeper of ``lossland train -m`` (``conf/hydra/sweeper/lossland.yaml``, the default of ``conf/hydra/app/
train.yaml``; the plugin class is in ``hydra_plugins/lossland_sweeper``, where Hydra looks for plugins).

It is Hydra's basic sweeper — the cartesian product of the sweep values, ``range()`` and ``glob()`` sweeps, the
``hydra.sweeper.params`` a config sets (a paper experiment's grid), ``max_batch_size`` batches — with the checks
lossland makes before the first job starts:

- every job of the sweep is composed and validated (``validate``: the app's checks, :mod:`lossland.schema` for
  ``train``), so a bad value in the fifth job is refused before the first one trains;
- a sweep directory that holds another sweep is refused unless ``overwrite=true`` (which also removes job
  directories the new sweep does not have);
- DDP jobs (``trainer.devices`` > 1) the launcher cannot run are refused; the jobs learn how many of them there
  are (their thread count, :mod:`lossland.sweep.launchers`).

A refusal is one line (``lossland: error: ...``, exit 2). Every job is composed through
:class:`lossland.compose.CachingLoader` (the launcher's too), so a sweep composes once per distinct defaults list.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf

from lossland.compose import CachingLoader
from lossland.errors import LosslandError
from lossland.sweep.launchers import SWEEP_JOBS_ENV, ddp_refusal, launcher_kind

# Overrides that do not make another sweep of the same directory.
NOT_A_NEW_SWEEP = ("overwrite=", "resume=", "hydra.", "hydra/", "threads=", "trainer.enable_progress_bar=")


class Preflight(BasicSweeper):
    """Hydra's basic sweeper with lossland's checks of every job before the first starts (module docstring).
    ``validate``: ``module.function`` called as ``validate(cfg, recipe)`` on each job's config (null: none)."""

    def __init__(self, max_batch_size: int | None = None, params: dict | None = None,
                 validate: str | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.validate = validate

    def setup(self, *, hydra_context: HydraContext, task_function, config: DictConfig) -> None:
        context = HydraContext(config_loader=CachingLoader.wrap(hydra_context.config_loader),
                               callbacks=hydra_context.callbacks)
        super().setup(hydra_context=context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]):
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        batches = self.split_arguments(parser.parse_overrides([*self._parse_config(), *arguments]), None)
        try:
            self.preflight([list(job) for batch in batches for job in batch])
        except LosslandError as e:
            print(f"lossland: error: {e}", file=sys.stderr)
            sys.exit(2)
        return super().sweep(arguments)

    def validate_batch_is_legal(self, batch) -> None:
        """Nothing: :meth:`preflight` composed every job of the sweep before the first batch."""

    def preflight(self, jobs: list[list[str]]) -> None:
        validate = _function(self.validate) if self.validate else None
        launcher = self.config.hydra.launcher
        kind = launcher_kind(launcher)
        devices, first = set(), None
        for overrides in jobs:
            cfg = self.hydra_context.config_loader.load_job_config(self.config, overrides)
            first = cfg if first is None else first
            if validate is not None:
                recipe = next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), None)
                validate(on_launching_machine(cfg, kind), recipe)
            devices.add(str(OmegaConf.select(cfg, "trainer.devices", default=1)))
        check_sweep_dir(Path(str(self.config.hydra.sweep.dir)), list(self.config.hydra.overrides.task),
                        len(jobs), bool(first is not None and first.get("overwrite")))
        os.environ[SWEEP_JOBS_ENV] = str(len(jobs))
        for d in sorted(devices - {"1"}):
            if why := ddp_refusal(d, launcher):
                raise LosslandError(why)


def _function(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def check_sweep_dir(sweep: Path, overrides: list[str], jobs: int, overwrite: bool) -> None:
    """Refuse a sweep into a directory that holds another sweep (different overrides), unless ``overwrite``,
    which then also removes job directories the new sweep does not have."""
    previous = sweep / "multirun.yaml"
    if not previous.exists():
        return
    old = sorted(o for o in OmegaConf.load(previous).hydra.overrides.task if not o.startswith(NOT_A_NEW_SWEEP))
    new = sorted(o for o in overrides if not o.startswith(NOT_A_NEW_SWEEP))
    if old == new:
        return
    if not overwrite:
        raise LosslandError(f"{sweep} holds another sweep ({' '.join(old) or 'no overrides'}); choose another "
                            "hydra.sweep.dir or pass overwrite=true (which deletes its runs)")
    for d in sweep.iterdir():
        if d.is_dir() and d.name.isdigit() and int(d.name) >= jobs:
            shutil.rmtree(d)


def on_launching_machine(cfg: DictConfig, kind: str) -> DictConfig:
    """What the launching process can check of a job that runs on another machine (``submitit_slurm``, ``ray``):
    everything but the presence of its GPU — a SLURM login node has none; the job checks it again on its node."""
    if kind not in ("submitit_slurm", "ray") or str(OmegaConf.select(cfg, "trainer.accelerator", default="cpu")) \
            not in ("gpu", "cuda"):
        return cfg
    return OmegaConf.merge(cfg, {"trainer": {"accelerator": "cpu"}})
