"""Config helpers: where the configs live, composing them in code, and checking command-line overrides
before Hydra starts, so that a mistake gets one clear line that names the valid choices."""

from __future__ import annotations

import re
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from lossland.errors import LosslandError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"
POSITIVE = ("elr", "lr")


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
    if hc is not None:
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
    (YAML file stems)."""
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
    for group in names:
        opts = sorted(f.stem for f in (config_dir / group).glob("*.yaml"))
        if opts:
            out[group] = opts
    return out


def compose(overrides: list[str] | None = None, config_name: str = "train",
            config_dir: Path = CONFIG_DIR, return_hydra_config: bool = False) -> DictConfig:
    """The config ``lossland train`` would run with these overrides (for tests, notebooks and tools); another
    app's with ``config_name`` (e.g. ``compose(overrides, "connect")`` for ``lossland connect``)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []),
                             return_hydra_config=return_hydra_config)


def _values(override) -> list:
    if override.is_sweep_override():
        return list(override.sweep_iterator()) if not override.is_interval_sweep() else []
    return [override.value()]


def check_overrides(argv: list[str], config_name: str = "train", config_dir: Path = CONFIG_DIR) -> None:
    """Raise :class:`LosslandError` for an unknown group option, an unknown key, or a non-positive rate."""
    args = [a for a in argv if "=" in a and not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(args)
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
    cfg = compose([g for g in group_choices if g], config_name, config_dir)
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


def override_value(value: str) -> str:
    """A Hydra override value for an arbitrary string such as a path (quoted when it holds characters the
    override grammar reserves)."""
    if re.fullmatch(r"[\w/.\-~+:@]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
