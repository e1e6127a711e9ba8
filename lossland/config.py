"""Config helpers: where the configs live, composing them in code, and checking command-line overrides
before Hydra starts, so that a mistake gets one clear line that names the valid choices."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import yaml
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict

from lossland import interpolations
from lossland.compose import CachingLoader
from lossland.errors import LosslandError

interpolations.install()  # every process that composes or resolves a config imports this module

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"
POSITIVE = ("elr", "lr")


def config_yaml(cfg) -> str:
    """``OmegaConf.to_yaml(cfg)``, the same text, through libyaml's emitter when PyYAML has it (a few times
    faster: every job writes its ``.hydra/config.yaml``). libyaml escapes characters beyond the BMP (``\\U``),
    which OmegaConf's dumper writes as they are: such a config takes OmegaConf's own path."""
    dumper = _c_dumper()
    if dumper is None:
        return OmegaConf.to_yaml(cfg)
    container = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True) if OmegaConf.is_config(cfg) else cfg
    text = yaml.dump(container, default_flow_style=False, allow_unicode=True, sort_keys=False, Dumper=dumper)
    return OmegaConf.to_yaml(cfg) if "\\U" in text else text


_DUMPER: list = []


def _c_dumper():
    """OmegaConf's YAML dumper (its quoting of strings) on libyaml's emitter; None without libyaml."""
    if not _DUMPER:
        from omegaconf._utils import get_omega_conf_dumper

        base = get_omega_conf_dumper()
        dumper = None
        if getattr(yaml, "__with_libyaml__", False):
            dumper = type("OmegaConfCDumper", (yaml.CDumper,), {})
            dumper.add_representer(str, base.str_representer)
        _DUMPER.append(dumper)
    return _DUMPER[0]


def _hydra():
    """Hydra's runtime config of the current job, or None outside a Hydra app (tests, notebooks)."""
    return HydraConfig.get() if HydraConfig.initialized() else None


def under_hydra() -> bool:
    """Is this a job of a Hydra app (which writes ``.hydra/config.yaml`` itself)?"""
    return _hydra() is not None


def output_dir(cfg: DictConfig) -> Path:
    """The job's directory: ``cfg.out_dir`` if set, else Hydra's output directory, else the cwd."""
    if cfg.get("out_dir"):
        return Path(cfg.out_dir)
    hc = _hydra()
    return Path(hc.runtime.output_dir) if hc is not None else Path.cwd()


def job_overrides() -> list[str]:
    hc = _hydra()
    return list(hc.overrides.task) if hc is not None else []


def _group(*, _root_) -> str:
    """Resolver ``${lossland.group:}``: the sweep directory of a multirun job, else the run directory."""
    hc = _hydra()
    if hc is not None and hc.mode is not None:  # a config left set by an earlier compose has no mode: not a job
        return Path(hc.sweep.dir if hc.mode.name == "MULTIRUN" else hc.run.dir).as_posix()
    return str(_root_.get("out_dir") or Path.cwd())


def _job_name(*, _root_) -> str:
    """Resolver ``${lossland.job_name:}``: the job's overrides, else the run directory's name."""
    return ",".join(job_overrides()) or Path(str(_root_.get("out_dir") or Path.cwd())).name


for _name, _fn in (("lossland.group", _group), ("lossland.job_name", _job_name)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)


def groups(config_name: str = "train", config_dir: Path = CONFIG_DIR) -> dict[str, list[str]]:
    """The config groups an app's primary config (``conf/<config_name>.yaml``) composes -> their options
    (YAML file paths below the group's folder, without ``.yaml``)."""
    primary = OmegaConf.load(config_dir / f"{config_name}.yaml")
    names = []
    for entry in primary.get("defaults", []):
        if isinstance(entry, str) or OmegaConf.is_config(entry) is False and not hasattr(entry, "keys"):
            continue
        for key in entry.keys():
            group = str(key).removeprefix("override ").split("@")[0].strip()
            if not group.startswith("hydra"):
                names.append(group)
    out = {}
    for group in names:  # sub-folders too: experiment=paper/sphere_ce is conf/experiment/paper/sphere_ce.yaml
        opts = sorted(f.relative_to(config_dir / group).with_suffix("").as_posix()
                      for f in (config_dir / group).rglob("*.yaml"))
        if opts:
            out[group] = opts
    return out


def compose(overrides: list[str] | None = None, config_name: str = "train",
            config_dir: Path = CONFIG_DIR, return_hydra_config: bool = False) -> DictConfig:
    """The config ``lossland train`` would run with these overrides (for tests, notebooks and tools); another
    app's with ``config_name`` (e.g. ``compose(overrides, "connect")`` for ``lossland connect``). Equal to Hydra's
    own composition (``hydra.compose``), each distinct defaults list composed once (:class:`CachingLoader`)."""
    from hydra.types import RunMode

    cfg = _loader(config_dir).load_configuration(config_name, list(overrides or []), RunMode.RUN, from_shell=False)
    if not return_hydra_config:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


_LOADERS: dict[str, CachingLoader] = {}


def _loader(config_dir: Path) -> CachingLoader:
    """One Hydra config loader per config directory for the life of the process (Hydra's compose API builds a
    new one per call and reads and merges every file again)."""
    key = str(config_dir)
    if key not in _LOADERS:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=key, version_base="1.3"):
            _LOADERS[key] = CachingLoader(GlobalHydra.instance().config_loader())
    return _LOADERS[key]


def _values(override) -> list:
    if override.is_sweep_override():
        return list(override.sweep_iterator()) if not override.is_interval_sweep() else []
    return [override.value()]


def check_overrides(argv: list[str], config_name: str = "train", config_dir: Path = CONFIG_DIR) -> None:
    """Raise :class:`LosslandError` for an unknown group option, an unknown key, or a non-positive rate."""
    args = [a for a in argv if "=" in a and not a.startswith("-")]
    try:
        parsed = OverridesParser.create(config_loader=_loader(config_dir)).parse_overrides(args)  # glob() reads it
    except HydraException as e:
        raise LosslandError(f"cannot parse overrides: {str(e).splitlines()[0]}") from None
    known = groups(config_name, config_dir)
    group_choices = []
    for o in parsed:
        key = o.key_or_group
        if key.startswith("hydra") or o.is_delete():
            continue
        if key in known:
            for v in _values(o):
                if v is not None and str(v) not in known[key]:
                    raise LosslandError(f"unknown option {key}={v}; valid {key} options: {', '.join(known[key])}")
            group_choices.append(f"{key}={_values(o)[0]}" if _values(o) else None)
        elif key in POSITIVE:
            for v in _values(o):
                try:
                    ok = float(v) > 0
                except (TypeError, ValueError):
                    ok = False
                if not ok:
                    raise LosslandError(f"{key}={v} is not valid: {key} must be a positive number")
    # a group added on the command line (+experiment=paper/...) changes which keys exist: compose with it too
    added = [o.input_line for o in parsed if o.is_add() and (config_dir / o.key_or_group).is_dir()]
    cfg = compose([g for g in group_choices if g] + added, config_name, config_dir)
    for o in parsed:
        key = o.key_or_group
        if key.startswith("hydra") or key in known or o.is_add() or o.is_force_add() or o.is_delete():
            continue
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if not isinstance(node, DictConfig) or leaf not in list(node.keys()):
            where = f"under {parent}" if parent else "at top level"
            valid = ", ".join(sorted(str(k) for k in node.keys())) if isinstance(node, DictConfig) else "none"
            raise LosslandError(f"unknown config key {key!r}; valid keys {where}: {valid} "
                                f"(use +{key}=... to add a new key)")


def parse_overrides(argv: list[str]):
    """The ``key=value`` arguments of a command line, parsed by Hydra's override grammar."""
    parser = OverridesParser.create(config_loader=_loader(CONFIG_DIR))  # glob() sweeps list a group's options
    return parser.parse_overrides([a for a in argv if "=" in a and not a.startswith("-")])


def expand_jobs(argv: list[str], params: list[str] | tuple[str, ...] = ()) -> list[list[str]]:
    """The override list of every job a basic multirun of ``argv`` would launch (cartesian product of the
    sweep values, as Hydra's basic sweeper does); one job without ``-m``. ``params``: the sweep the config sets
    itself (``hydra.sweeper.params``, :func:`config_sweep`), placed first; a command-line override of the same
    key replaces its values (Hydra's order)."""
    multirun = "-m" in argv or "--multirun" in argv
    parsed = parse_overrides([*params, *argv] if multirun else argv)
    axes: dict[str, list[str]] = {}
    for o in parsed:
        key = o.get_key_element()
        if o.is_sweep_override() and multirun and not o.is_interval_sweep():
            axes[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            axes[key] = [o.input_line if o.input_line is not None else f"{key}={o.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*axes.values())] if axes else [[]]


def config_sweep(argv: list[str], config_name: str = "train") -> tuple[list[str], DictConfig]:
    """The sweep the composed config sets itself — ``hydra.sweeper.params`` (a paper experiment's rate grid,
    ``conf/experiment/paper/``) — as ``key=values`` overrides, and the ``hydra.launcher`` node."""
    cfg = compose(expand_jobs(argv)[0], config_name, return_hydra_config=True)
    params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None) or {}
    return [f"{k}={v}" for k, v in params.items()], cfg.hydra.launcher


def override_value(value: str) -> str:
    """A Hydra override value for an arbitrary string such as a path (quoted when it holds characters the
    override grammar reserves)."""
    if re.fullmatch(r"[\w/.\-~+:@]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
