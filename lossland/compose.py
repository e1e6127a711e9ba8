"""Hydra's composition, once per distinct defaults list.

Composing a config (reading the defaults tree, merging every file, checking Hydra's own schema) costs 0.1–0.2 s,
and a sweep composes each of its jobs (the sweeper checks it, the launcher runs it). The jobs of a sweep mostly
differ in values (``lr=0.1,0.2``), not in config group options. :class:`CachingLoader` wraps Hydra's config
loader: the overrides that shape the defaults list (a config group's option, ``hydra...`` overrides) select a
composed template, composed by Hydra the first time; the value overrides are applied to a copy of it by Hydra's
own override code, and the records Hydra keeps of the overrides (``hydra.overrides.task``,
``hydra.job.override_dirname``) are set as Hydra sets them. The result equals Hydra's composition
(tests/test_compose.py checks every option of every config group).
"""

from __future__ import annotations

import copy
import os

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

STATS = {"composed": 0, "reused": 0}  # Hydra compositions / jobs built from a template (benchmarks/overhead.py)


class CachingLoader:
    """A Hydra ``ConfigLoader`` (every attribute but the two loading methods is the wrapped loader's) that
    composes once per distinct defaults list (module docstring)."""

    def __init__(self, inner):
        self.inner = inner
        self.templates: dict[tuple, DictConfig] = {}
        self.jobs: dict[tuple, DictConfig] = {}  # the templates without their hydra node
        self.group_keys: dict[str, bool] = {}

    @classmethod
    def wrap(cls, loader) -> CachingLoader:
        return loader if isinstance(loader, cls) else cls(loader)

    def __getattr__(self, name):
        if name == "inner":  # unpickling: not set yet
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __getstate__(self) -> dict:  # a launcher's worker process (joblib) gets the loader, not the templates
        return {"inner": self.inner, "templates": {}, "jobs": {}, "group_keys": {}}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def _shapes_defaults(self, o) -> bool:
        """Does the override choose or change a config group option (or touch Hydra's config)?"""
        if o.is_hydra_override() or o.package is not None:
            return True
        key = o.key_or_group
        if key not in self.group_keys:
            self.group_keys[key] = bool(self.inner.repository.group_exists(key))
        return self.group_keys[key]

    def _template(self, config_name, parsed, run_mode, from_shell: bool) -> tuple[tuple, list]:
        """The key of the template these overrides select (composed now if new), and the value overrides."""
        shaping = [o.input_line for o in parsed if self._shapes_defaults(o)]
        key = (config_name, run_mode, tuple(shaping))
        if key not in self.templates:
            STATS["composed"] += 1
            self.templates[key] = self.inner.load_configuration(config_name=config_name, overrides=shaping,
                                                                run_mode=run_mode, from_shell=from_shell,
                                                                validate_sweep_overrides=False)
        else:
            STATS["reused"] += 1
        return key, [o for o in parsed if not self._shapes_defaults(o)]

    def load_configuration(self, config_name, overrides, run_mode, from_shell: bool = True,
                           validate_sweep_overrides: bool = True) -> DictConfig:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
        if validate_sweep_overrides:
            self.inner.validate_sweep_overrides_legal(overrides=parsed, run_mode=run_mode, from_shell=from_shell)
        key, values = self._template(config_name, parsed, run_mode, from_shell)
        cfg = copy.deepcopy(self.templates[key])
        cfg.hydra.runtime.cwd = os.getcwd()
        if not values:
            return cfg
        try:
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        except (OmegaConfBaseException, ConfigCompositionException):  # Hydra's own composition says why
            return self.inner.load_configuration(config_name=config_name, overrides=list(overrides),
                                                 run_mode=run_mode, from_shell=from_shell,
                                                 validate_sweep_overrides=False)
        task = [o for o in parsed if not o.is_hydra_override()]
        cfg.hydra.overrides.task = [o.input_line for o in task]
        dirname = cfg.hydra.job.config.override_dirname
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=task, kv_sep=dirname.kv_sep, item_sep=dirname.item_sep, exclude_keys=dirname.exclude_keys)
        return cfg

    def load_job_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        """The config a sweep's job gets (its task config: :meth:`load_sweep_config` without the ``hydra`` node),
        without copying the template's ``hydra`` node: what a sweeper checks of each job."""
        from hydra.types import RunMode

        overrides = [*OmegaConf.to_container(master_config.hydra.overrides.hydra), *sweep_overrides]
        parsed = OverridesParser.create().parse_overrides(overrides)
        self.inner.validate_sweep_overrides_legal(overrides=parsed, run_mode=RunMode.RUN, from_shell=True)
        key, values = self._template(master_config.hydra.job.config_name, parsed, RunMode.RUN, True)
        if key not in self.jobs:
            job = OmegaConf.masked_copy(self.templates[key], [k for k in self.templates[key] if k != "hydra"])
            OmegaConf.set_struct(job, True)
            self.jobs[key] = job
        cfg = copy.deepcopy(self.jobs[key])
        try:
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        except (OmegaConfBaseException, ConfigCompositionException):  # Hydra's own composition says why
            cfg = self.load_sweep_config(master_config, sweep_overrides)
            with open_dict(cfg):
                del cfg["hydra"]
        return cfg

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        """Hydra's ``load_sweep_config`` over :meth:`load_configuration`."""
        from hydra.types import RunMode

        overrides = [*OmegaConf.to_container(master_config.hydra.overrides.hydra), *sweep_overrides]
        cfg = self.load_configuration(config_name=master_config.hydra.job.config_name, overrides=overrides,
                                      run_mode=RunMode.RUN)
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        return cfg
