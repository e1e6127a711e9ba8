"""Every value of a training config checked up front, from one table (:data:`RULES`), before the first job of
a sweep starts (``lossland train`` composes and validates every job of a multirun: :func:`lossland.entry.launch`)
and again when a job starts (:func:`lossland.train.run`, the vectorized grid). A bad value is one line:
``<key>=<value> is not valid: <what it must be>``.

Beyond the table, :func:`validate` refuses phase metrics without a schedule, a GPU accelerator on a machine
without one, a perturbed exponential neuron without the neuron, and model keys that are not parameters of the
model's class: a recipe that sets a key another model does not have (``experiment=smoke`` sets ``model.width``,
which ``model=mlp`` lacks) is refused naming both. Objects that check their own arguments (loss, regularizer,
rate schedule) refuse a bad value when the job builds them (:mod:`lossland.build`).
"""

from __future__ import annotations

import inspect
import math

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from lossland.config import CONFIG_DIR
from lossland.errors import LosslandError


def _num(v) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _int(v) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    x = _num(v)
    return int(x) if x is not None and x == int(x) and not isinstance(v, str) else None


def positive(v):
    return (x := _num(v)) is not None and x > 0


def non_negative(v):
    return (x := _num(v)) is not None and x >= 0


def positive_int(v):
    return (x := _int(v)) is not None and x >= 1


def non_negative_int(v):
    return (x := _int(v)) is not None and x >= 0


def boolean(v):
    return isinstance(v, bool)


def optional(check):
    def f(v):
        return v is None or check(v)
    f.__name__ = f"optional_{check.__name__}"
    return f


def one_of(*choices):
    def f(v):
        return str(v).lower() in choices
    f.what = "one of " + ", ".join(choices)
    return f


def at_most(check, limit: int):
    """``check`` and no more than ``limit``: a count that sizes memory (a plan of due steps, a data set, a layer)
    is refused in one line before it is allocated (docs/reliability.md)."""
    def f(v):
        return check(v) and (v is None or (x := _num(v)) is None or x <= limit)
    f.what = f"{_what(check)}, at most {limit:.0e}".replace("e+0", "e").replace("e+", "e")
    return f


# The most due steps (phase metrics, checkpoints, convergence checks) one run may plan: its plan is a list in
# memory, and each point is an evaluation or a file.
MAX_DUE_POINTS = 10**6  # (lossland.callbacks.schedule.MAX_DUE_POINTS checks epoch-bounded runs at start)
MAX_STEPS = 10**9


WHAT = {positive: "a positive number", non_negative: "a number ≥ 0", positive_int: "a positive integer",
        non_negative_int: "an integer ≥ 0", boolean: "true or false"}


def _what(check) -> str:
    if hasattr(check, "what"):
        return check.what
    name = check.__name__
    if name.startswith("optional_"):
        base = {f.__name__: w for f, w in WHAT.items()}[name[len("optional_"):]]
        return f"{base} or null"
    return WHAT[check]


# key -> check; keys absent from a config (another data or model option) are skipped.
RULES = {
    "seed": non_negative_int,
    "elr": positive,
    "lr": positive,
    "max_loss": optional(positive),
    "overwrite": boolean,
    "resume": one_of("auto", "true", "false"),
    "init_state": one_of("weights", "continue"),
    "grid": one_of("sequential", "vectorized", "vmap"),
    "trainer.max_steps": lambda v: (x := _int(v)) is not None and (x == -1 or 1 <= x <= MAX_STEPS),
    "trainer.max_epochs": at_most(optional(positive_int), 10**7),
    "trainer.devices": lambda v: str(v) == "auto" or positive_int(v),
    "trainer.accelerator": one_of("cpu", "gpu", "cuda", "auto"),
    "trainer.check_val_every_n_epoch": positive_int,
    "trainer.log_every_n_steps": positive_int,
    "trainer.gradient_clip_val": optional(positive),
    "trainer.deterministic": boolean,
    "trainer.enable_progress_bar": boolean,
    "metrics.enabled": boolean,
    "metrics.every_n_steps": optional(positive_int),
    "metrics.log_spaced": boolean,
    "metrics.num_points": at_most(positive_int, MAX_DUE_POINTS),
    "metrics.eval_batches": at_most(positive_int, 10**6),
    "metrics.test_examples": at_most(positive_int, 10**8),
    "checkpoint.every_n_steps": optional(positive_int),
    "checkpoint.log_spaced": boolean,
    "checkpoint.num_points": at_most(positive_int, MAX_DUE_POINTS),
    "data.batch_size": at_most(positive_int, 10**7),
    "data.eval_batch_size": at_most(positive_int, 10**7),
    "data.train_size": at_most(optional(positive_int), 10**8),
    "data.val_size": at_most(non_negative_int, 10**8),
    "data.test_size": at_most(optional(positive_int), 10**8),
    "data.fraction": lambda v: (x := _num(v)) is not None and 0 < x <= 1,
    "data.dim": at_most(positive_int, 10**7),
    "data.split_seed": non_negative_int,
    "model.width": at_most(positive, 10**6),
    "model.hidden": lambda v: isinstance(v, (list, tuple)) and all(positive_int(h) and h <= 10**6 for h in v),
    "model.dropout": lambda v: (x := _num(v)) is not None and 0 <= x < 1,
    "regularizer.coef": non_negative,
    "augment.lam": optional(non_negative),
    "augment.model.w_std": non_negative,
    "augment.model.w_init": one_of("normal", "linear"),
    "augment.perturb.target": lambda v: v is None or str(v) in ("exp_neuron", "hidden_neuron"),
    "augment.perturb.scale": non_negative,
    "augment.perturb.index": non_negative_int,
    "metrics.convergence.enabled": boolean,
    "metrics.convergence.every_n_steps": optional(positive_int),
    "metrics.convergence.stop_at_zero_error": boolean,
    "metrics.early_stop.phase": boolean,
    "metrics.early_stop.points": positive_int,
    "metrics.early_stop.converged": boolean,
    "metrics.early_stop.min_fraction": lambda v: (x := _num(v)) is not None and 0 <= x <= 1,
}
RULES["trainer.max_steps"].what = "-1 (bounded by max_epochs) or a positive number of steps, at most 1e9"
RULES["trainer.devices"].what = "a positive integer or auto"
RULES["data.fraction"].what = "a number in (0, 1]"
RULES["model.hidden"].what = "a list of positive integers (at most 1e6), e.g. [100,50]"
RULES["model.dropout"].what = "a number in [0, 1)"
RULES["augment.perturb.target"].what = "null, exp_neuron or hidden_neuron"
RULES["metrics.early_stop.min_fraction"].what = "a number in [0, 1]"


def _lookup(resolved: dict, key: str):
    """``key`` (dotted) of a resolved config, ``"__absent__"`` where the config has no such key."""
    node = resolved
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "__absent__"
        node = node[part]
    return node


def _plain(v):
    return OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v


def validate(cfg: DictConfig, recipe: str | None = None, resolved: dict | None = None) -> None:
    """Raise :class:`LosslandError` (one line) for the first invalid value of a training config. ``resolved``:
    ``cfg`` already resolved to a container (its values are read from there: faster)."""
    for key, check in RULES.items():
        value = _lookup(resolved, key) if resolved is not None else None
        if resolved is None or value == "???":  # a missing mandatory value: OmegaConf's message names it
            try:
                value = OmegaConf.select(cfg, key, throw_on_missing=True, default="__absent__")
            except Exception as e:  # an interpolation that does not resolve, a missing mandatory value
                raise LosslandError(f"{key}: {str(e).splitlines()[0]}") from None
        if isinstance(value, str) and value == "__absent__":
            continue
        value = _plain(value)
        if not check(value):
            raise LosslandError(f"{key}={value} is not valid: {key.rpartition('.')[2]} must be {_what(check)}")
    metrics = cfg.get("metrics")
    if metrics is not None and metrics.get("enabled", True) and not metrics.get("log_spaced") \
            and metrics.get("every_n_steps") is None:
        raise LosslandError("metrics.every_n_steps=null is not valid without metrics.log_spaced=true")
    check_lengths(cfg)
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="cpu"))
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise LosslandError(f"trainer.accelerator={accelerator}: no CUDA GPU is available on this machine "
                                "(use trainer=cpu)")
    augment = cfg.get("augment")
    if augment is not None and augment.get("perturb") is not None \
            and augment.perturb.get("target") == "exp_neuron" and augment.get("model") is None:
        raise LosslandError("augment.perturb.target=exp_neuron is not valid without the neuron: "
                            "add augment=exp_neuron")
    if cfg.get("model") is not None:
        check_model_keys(cfg.model, recipe)


def resolve_checked(cfg: DictConfig, recipe: str | None = None) -> dict:
    """``cfg`` validated (:func:`validate`) and resolved to a container, resolving it once."""
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - validate names the key in one line
        validate(cfg, recipe)
        raise
    validate(cfg, recipe, resolved)
    return resolved


def check_lengths(cfg: DictConfig) -> None:
    """A run is bounded by steps or by epochs, and its plans of due steps fit in memory (:data:`MAX_DUE_POINTS`;
    an epoch-bounded run's plan is checked when the job knows its steps per epoch,
    :meth:`lossland.callbacks.DueSteps.bind`)."""
    steps = _int(OmegaConf.select(cfg, "trainer.max_steps", default=None))
    epochs = OmegaConf.select(cfg, "trainer.max_epochs", default=None)
    if steps == -1 and epochs is None and OmegaConf.select(cfg, "trainer", default=None) is not None:
        raise LosslandError("trainer.max_steps=-1 with trainer.max_epochs=null is not valid: the run would have no "
                            "end; set trainer.max_steps=<n> or trainer.max_epochs=<n>")
    if steps is None or steps < 1:
        return
    for key, enabled in (("metrics.every_n_steps", "metrics.enabled"), ("checkpoint.every_n_steps", None),
                         ("metrics.convergence.every_n_steps", "metrics.convergence.enabled")):
        every = _int(OmegaConf.select(cfg, key, default=None))
        if every and (enabled is None or OmegaConf.select(cfg, enabled, default=True)) \
                and steps // every > MAX_DUE_POINTS:
            raise LosslandError(f"{key}={every} with trainer.max_steps={steps} plans {steps // every:.3g} due "
                                f"steps, more than {MAX_DUE_POINTS:.0e}: raise {key} or use log-spaced points")


def check_model_keys(model: DictConfig, recipe: str | None = None) -> None:
    """Every key of the model node must be a parameter of its class."""
    try:
        cls = get_class(model._target_)
    except Exception as e:
        raise LosslandError(f"model: cannot import {model.get('_target_')} ({e})") from None
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    for key in model:
        if str(key).startswith("_") or key in params:
            continue
        by = f" (set by experiment={recipe})" if recipe and _recipe_sets(recipe, f"model.{key}") else ""
        raise LosslandError(f"model.{key}{by} is not an option of {model._target_}; its options: "
                            + ", ".join(k for k in params if k not in ("self", "input_shape", "num_outputs")))


def _recipe_sets(recipe: str, key: str) -> bool:
    path = CONFIG_DIR / "experiment" / f"{recipe}.yaml"
    return path.exists() and OmegaConf.select(OmegaConf.load(path), key, default=None) is not None
