"""The one place that turns a composed config into objects: data, loss, model, optimizer, regularizer,
rate schedule, callbacks and loggers. ``lossland train``, :mod:`lossland.runs` (rebuilding a finished run),
``connect`` and every command build through these functions.

Every object comes from a ``_target_`` node via :func:`instantiate_node`, which turns a bad option into
one line naming the config group. Models are built under the ``init`` RNG stream, so the same seed gives
the same initial weights whatever the optimizer, schedule or regularizer.
"""

from __future__ import annotations

import dataclasses
import os
import re
from functools import lru_cache, partial
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from lossland.callbacks import DueSteps, PhaseMetrics, StepCheckpoint
from lossland.callbacks.convergence import convergence_callback
from lossland.callbacks.curvature import curvature_extra
from lossland.callbacks.early_stop import early_stop_callback
from lossland.callbacks.grad_norms import grad_norm_callback
from lossland.data import TensorDataModule
from lossland.errors import DataError, LosslandError
from lossland.loggers import RecordLogger
from lossland.models.exp_neuron import perturb
from lossland.optim import SphereSGD, require_scale_invariant
from lossland.regularizers import NoRegularizer, Sum
from lossland.seeding import generator, stream_seed

__all__ = ["instantiate_node", "build_data", "build_loss", "build_model", "build_optimizer", "build_regularizer",
           "build_schedule", "build_callbacks", "build_loggers", "total_steps", "target_class", "apply_perturbation",
           "check_received_config", "target_allowed"]


def instantiate_node(node, what: str, **kwargs):
    """``hydra.utils.instantiate`` with a user error (one line naming the group) for a bad option."""
    try:
        return instantiate(node, **kwargs)
    except MissingMandatoryValue as e:
        raise LosslandError(f"{what}.{e.key} must be set ({what}.{e.key}=...)") from None
    except InstantiationException as e:
        cause = e.__cause__ if e.__cause__ is not None else e
        if isinstance(cause, LosslandError):
            raise cause from None
        msg = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
        raise LosslandError(f"cannot build {what} ({node.get('_target_')}): {msg}") from None


def target_class(node) -> type:
    return get_class(node._target_)


# ------------------------------------------------------------------------------------------------ data
@lru_cache(maxsize=4)
def _prepared_splits(data_yaml: str, pad_to: int | None):
    """Load, split, normalize and pad once per data config and process (the split does not depend on the
    run's seed, which only drives the batch order and the evaluation subset)."""
    dm = instantiate_node(OmegaConf.create(data_yaml), "data")
    if pad_to and dm.pad_to is None:
        dm.pad_to = pad_to
    dm.prepare()
    for split, (x, _) in dm.splits.items():
        if not torch.isfinite(x).all():
            raise DataError(f"data={dm.name}: the {split} split holds non-finite values (NaN or inf)")
    return dm.splits, dm.num_classes, dm.pad_to


def build_data(cfg: DictConfig) -> TensorDataModule:
    """The run's data module, prepared (tensors on the CPU; moved to the training device at setup)."""
    pad_to = getattr(target_class(cfg.model), "input_size", None)
    splits, num_classes, pad = _prepared_splits(OmegaConf.to_yaml(cfg.data, resolve=True), pad_to)
    dm = instantiate_node(cfg.data, "data", seed=cfg.seed)
    dm.splits, dm.num_classes, dm.pad_to = dict(splits), num_classes, pad
    return dm


# ---------------------------------------------------------------------------------------- model, loss
def build_loss(cfg: DictConfig):
    return instantiate_node(cfg.loss, "loss")


def build_model(cfg: DictConfig, dm: TensorDataModule, loss) -> torch.nn.Module:
    """The model under the ``init`` RNG stream, wrapped by ``cfg.augment.model`` when the ``augment`` group sets
    one (e.g. the exponential neuron, after the base model's weights are drawn: the base's initial weights do
    not depend on the augmentation)."""
    model_cfg = cfg.model
    if model_cfg.get("last_norm", None) == "auto":  # FSI ConvNet: 10 for CE, 1.5 for MSE (Kodryan et al.)
        model_cfg = OmegaConf.merge(model_cfg, {"last_norm": 1.5 if loss.name == "mse" else 10.0})
    try:
        num_outputs = loss.num_outputs(dm.num_classes)
    except ValueError as e:
        raise LosslandError(f"loss={loss.name} does not fit data={dm.name}: {e}") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(cfg.seed, "init"))
        model = instantiate_node(model_cfg, "model", input_shape=list(dm.input_shape), num_outputs=num_outputs)
        wrap = (cfg.get("augment") or {}).get("model")
        if wrap is not None:
            model = instantiate_node(wrap, "augment")(base=model, input_shape=list(dm.input_shape),
                                                      num_outputs=num_outputs)
        return model


def apply_perturbation(cfg: DictConfig, model: torch.nn.Module) -> dict | None:
    """``augment.perturb``: noise on one neuron (after ``init_from``), drawn from the ``noise`` stream.
    Returns what was done (for the summary), None when off."""
    p = (cfg.get("augment") or {}).get("perturb")
    if p is None or p.get("target") is None:
        return None
    return perturb(model, str(p.target), float(p.get("scale", 0.1)), generator(cfg.seed, "noise"),
                   int(p.get("index", 0)))


# ------------------------------------------------------------------------------- optimization pieces
def build_optimizer(cfg: DictConfig, model: torch.nn.Module, dm: TensorDataModule):
    """The optimizer factory ``params -> Optimizer``. Sphere optimizers first check numerically that every
    trainable parameter is scale-invariant (refusing the model otherwise) and draw random-walk directions
    from the ``noise`` stream."""
    factory = instantiate_node(cfg.optimizer, "optimizer")
    if issubclass(target_class(cfg.optimizer), SphereSGD):
        x = dm.splits["train"][0][: min(64, dm.batch_size)]
        require_scale_invariant(model, x)
        factory = partial(factory, generator=generator(cfg.seed, "noise", x.device))
    return factory


def build_regularizer(cfg: DictConfig):
    """The ``regularizer`` group's term plus the penalty the ``augment`` group brings (e.g. λa²/2)."""
    reg = instantiate_node(cfg.regularizer, "regularizer")
    node = (cfg.get("augment") or {}).get("penalty")
    if node is None:
        return reg
    penalty = instantiate_node(node, "augment")
    return penalty if isinstance(reg, NoRegularizer) else Sum(reg, penalty)


def build_schedule(cfg: DictConfig, steps: int | None = None, node=None):
    """The rate schedule ``step -> rate`` (``elr`` of sphere optimizers, else ``lr``); a schedule whose length
    is null (``schedule=cosine``) runs over the whole run, ``steps``. ``node``: ``cfg.schedule``, resolved
    (its rate interpolation is then not parsed again)."""
    schedule = instantiate_node(cfg.schedule if node is None else node, "schedule")
    if getattr(schedule, "steps", 0) is None and steps is not None:
        schedule = dataclasses.replace(schedule, steps=max(1, int(steps)))
    return schedule


def total_steps(cfg: DictConfig, dm: TensorDataModule) -> int:
    """``trainer.max_steps`` when set (≥ 1; epochs then do not bound the run), else
    ``trainer.max_epochs`` epochs."""
    max_steps = cfg.trainer.get("max_steps", -1)
    if max_steps is not None and int(max_steps) >= 0:
        return int(max_steps)
    return int(cfg.trainer.max_epochs) * dm.steps_per_epoch


# ------------------------------------------------------------------------------ callbacks and loggers
def build_callbacks(cfg: DictConfig, steps: int, out: Path) -> list:
    """Phase metrics and scheduled checkpoints, each on its own :class:`DueSteps` plan."""
    callbacks = []
    m = cfg.metrics
    phase_metrics = None
    if m.get("enabled", True):
        plan = DueSteps(m.every_n_steps, m.log_spaced, m.num_points).bind(steps)
        phase_metrics = PhaseMetrics(plan, m.eval_batches, m.test_examples, gm=m.gm, test=m.test,
                                     cosines=m.cosines, extra=curvature_extra(m.get("curvature")))
        callbacks.append(phase_metrics)
    if (grad_norms := grad_norm_callback(m.get("grad_norms"), steps)) is not None:  # docs/optim_lab.md
        callbacks.append(grad_norms)
    if (convergence := convergence_callback(m.get("convergence"), steps)) is not None:  # docs/exp_neuron.md
        callbacks.append(convergence)
    early = early_stop_callback(m.get("early_stop"), phase_metrics, steps,  # after the phase metrics it reads
                                lambda node: instantiate_node(node, "metrics.early_stop.rule"))
    if early is not None:  # docs/phase_boundary.md
        callbacks.append(early)
    ck = cfg.checkpoint
    if ck.get("every_n_steps") or ck.get("log_spaced"):
        plan = DueSteps(ck.every_n_steps, ck.get("log_spaced", False), ck.get("num_points", 20)).bind(steps)
        callbacks.append(StepCheckpoint(out / "checkpoints", plan))
    return callbacks


def _quiet_wandb(offline: bool) -> None:
    """Silence W&B's console (its deprecation notice about Lightning's ``anonymous`` argument included)
    before its first run starts."""
    import wandb  # here: W&B is imported only by runs that log to it

    wandb.setup(settings=wandb.Settings(silent=True, show_warnings=False, mode="offline" if offline else "online"))


def build_loggers(cfg: DictConfig, out: Path, rows: list[dict] | None = None) -> list:
    """``metrics.csv`` (always; continuing ``rows`` when resuming) plus every ``_target_`` logger of
    ``cfg.logger`` (e.g. W&B), given the run directory and the resolved run config."""
    loggers = [RecordLogger(out, rows=rows)]
    config = None
    for name, node in (cfg.get("logger") or {}).items():
        if isinstance(node, DictConfig) and node.get("_target_"):
            config = OmegaConf.to_container(cfg, resolve=True) if config is None else config
            if node.get("quiet", False):  # W&B reads this once per process, like its WANDB_MODE
                os.environ.setdefault("WANDB_SILENT", "true")
                _quiet_wandb(offline=bool(node.get("offline", True)))
            node = OmegaConf.create({k: v for k, v in node.items() if k != "quiet"})
            make = instantiate_node(node, f"logger.{name}", _partial_=True, save_dir=str(out))
            loggers.append(make(config=config))  # `config` would clash with instantiate's own argument
    return loggers


# ------------------------------------------------------------------------- received configs (trust nothing)
# A run directory may come from someone else: its ``.hydra/config.yaml`` is instantiated only after every
# ``_target_`` in it is one lossland itself builds (docs/reliability.md#files-from-someone-else). Hydra alone
# would import and call any dotted name (``pathlib.Path.write_text`` writes a file).
TRUST_ENV = "LOSSLAND_TRUSTED_TARGETS"  # comma-separated module prefixes the person running a command trusts
# Resolvers a run's saved config may use (conf/ uses these); ``${oc.env:...}`` would read the environment.
RESOLVERS = frozenset({"now", "oc.select", "lossland.group", "lossland.job_name"})
_RESOLVER = re.compile(r"\$\{\s*([^\s:}]+)\s*:")
_CONF_TARGET = re.compile(r"^\s*_target_:\s*([\w.]+)", re.MULTILINE)


@lru_cache(maxsize=1)
def shipped_targets() -> frozenset[str]:
    """Every ``_target_`` of lossland's own ``conf/`` (the library classes a run may name come from here)."""
    from lossland.config import CONFIG_DIR

    return frozenset(t for p in CONFIG_DIR.rglob("*.yaml") for t in _CONF_TARGET.findall(p.read_text()))


def _role_classes() -> tuple[type, ...]:
    """The kinds of object a run is made of: models, losses, regularizers (modules), optimizers, schedules, data."""
    from lossland.optim.schedules import Schedule

    return torch.nn.Module, torch.optim.Optimizer, Schedule, TensorDataModule


def _resolve_own(path: str):
    """The object a ``lossland.``-dotted name stands for, importing lossland modules only (None: no such object).
    Private and dunder names are not followed."""
    import importlib
    from types import ModuleType

    parts = path.split(".")
    if parts[0] != "lossland" or not all(p.isidentifier() and not p.startswith("_") for p in parts):
        return None
    obj = importlib.import_module("lossland")
    for part in parts[1:]:
        if hasattr(obj, part):
            obj = getattr(obj, part)
        elif isinstance(obj, ModuleType) and obj.__name__.startswith("lossland"):
            try:
                obj = importlib.import_module(f"{obj.__name__}.{part}")
            except ImportError:
                return None
        else:
            return None
    return obj


def target_allowed(target: str) -> bool:
    """Is ``target`` one lossland builds? A target of conf/ (exact name: the library classes lossland uses, its
    trainer, connect methods, ...); a lossland class that is a model, loss, regularizer, optimizer, schedule or
    data module; another path to an object a ``lossland.`` target of conf/ names; or a name under a prefix of
    ``$LOSSLAND_TRUSTED_TARGETS``. A
    ``lossland.`` name is checked by what it resolves to, so that ``lossland.records.shutil.rmtree`` (a
    library function reachable through a lossland module) is not admitted."""
    return _allowed(target, os.environ.get(TRUST_ENV, ""))


@lru_cache(maxsize=256)
def _allowed(target: str, trust: str) -> bool:
    trusted = [p.strip().rstrip(".") for p in trust.split(",") if p.strip()]
    if any(target == p or target.startswith(p + ".") for p in trusted):
        return True
    shipped = shipped_targets()
    if target in shipped:  # exactly a name lossland's own conf/ uses
        return True
    obj = _resolve_own(target)
    if obj is None:
        return False
    if isinstance(obj, type) and obj.__module__.startswith("lossland.") and issubclass(obj, _role_classes()):
        return True
    name = getattr(obj, "__name__", None)  # another path to an object conf/ names (e.g. its defining module)
    return any(t.rsplit(".", 1)[-1] == name and _resolve_own(t) is obj for t in shipped if t.startswith("lossland."))


def check_received_config(cfg, where: str) -> None:
    """Refuse (one line naming the key) a config read from a run directory before anything in it is
    instantiated or resolved: every ``_target_`` must be :func:`target_allowed` and every interpolation a plain
    reference or one of :data:`RESOLVERS` (never ``${oc.env:...}``, which would read this user's
    environment into values a received record controls)."""
    def walk(node, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                sub = f"{key}.{k}" if key else str(k)
                if k == "_target_" and not (isinstance(v, str) and target_allowed(v)):
                    raise LosslandError(
                        f"{where}: refused {sub}={v!r}: not a target lossland builds (a received run config "
                        f"is instantiated only with lossland's own targets; if you trust it: {TRUST_ENV}=<module>)")
                walk(v, sub)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{key}[{i}]")
        elif isinstance(node, str):
            for name in _RESOLVER.findall(node):
                if name not in RESOLVERS:
                    raise LosslandError(f"{where}: refused {key}={node!r}: the interpolation ${{{name}:...}} is "
                                        "not allowed in a received run config")

    walk(OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else cfg, "")
