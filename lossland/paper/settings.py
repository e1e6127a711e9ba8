"""The papers' full-scale settings as data: ``lossland/studies/<study>/settings.yaml`` (package data), loaded,
checked for form, and checked against the Hydra configs that claim them (``conf/experiment/paper/*.yaml``).

A file holds ``study``, ``seed``, ``readings`` (where the seed is ambiguous: the reading taken and why),
optional ``blocks`` (named ``expect`` / ``grid`` / ``source`` shared by experiments: ``with: [block]``) and
``experiments``. Each experiment has ``title``, ``app`` (the entry point), ``config``, ``recipe``, ``out``,
``expect`` ({config key: value}; a key naming a config group is compared with the chosen option), ``grid``
({key: values} of its sweep), ``source`` ({topic: the seed's words}) and, as they apply, ``overrides``,
``steps``, ``eval_every_epochs``, ``jobs``, ``needs``. :func:`check` composes every job of an experiment the
way its entry point would and lists every difference (docs/scale.md, "The papers' scale").
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, field
from importlib import resources

import yaml
from omegaconf import DictConfig, OmegaConf

from lossland.config import compose, config_sweep, expand_jobs, groups, parse_overrides
from lossland.errors import LosslandError

APPS = {"train": "lossland train", "connect": "lossland connect", "nas": "lossland nas", "lab": "lossland lab",
        "keskar": "lossland keskar"}  # the command that runs an experiment of each app
# what the source of a training experiment must cover (issue 20: the seed's full-scale setting)
TRAIN_TOPICS = ("data", "model", "loss", "optimizer", "grid", "length", "batch", "eval", "seeds")
FIELDS = ("title", "app", "config", "recipe", "out", "source")
# full training / test split sizes of the data sets read from data.root (their standard files)
DATA_SIZES = {"cifar10": (50_000, 10_000), "mnist": (60_000, 10_000)}
PLACEHOLDER = "/nonexistent/paper-check"  # stands for a path the user gives (data.root, init_from, a, b, ...)


@dataclass
class Experiment:
    study: str
    name: str
    title: str
    app: str
    config: str
    recipe: str
    out: str
    expect: dict
    grid: dict
    source: dict
    overrides: list = field(default_factory=list)
    steps: int | dict | None = None  # per job; {train_size: steps} when the size is swept
    eval_every_epochs: int | None = None
    jobs: int | None = None
    needs: dict = field(default_factory=dict)

    @property
    def command(self) -> list[str]:
        """The command line that runs it (before the paths the user gives): ``-m`` and the experiment."""
        sel = f"experiment={self.config}" if self.app == "train" else f"+experiment={self.config}"
        return ["-m", sel, *self.overrides]


@dataclass
class Settings:
    study: str
    seed: str
    readings: dict
    experiments: dict[str, Experiment]


def settings_text(package: str) -> str:
    """The ``settings.yaml`` of a study's package (the study names its package: this layer knows no study)."""
    return (resources.files(package) / "settings.yaml").read_text(encoding="utf-8")


def _merged(doc: dict, e: dict) -> dict:
    """The experiment with its blocks' ``expect``, ``grid`` and ``source`` merged under its own."""
    merged = {"expect": {}, "grid": {}, "source": {}}
    for b in e.get("with") or []:
        block = (doc.get("blocks") or {}).get(b) or {}
        for k, acc in merged.items():
            acc.update(block.get(k) or {})
    return {**e, **{k: {**acc, **(e.get(k) or {})} for k, acc in merged.items()}}


def problems(doc: dict) -> list[str]:
    """Everything wrong with a settings file's form (empty when well-formed)."""
    out = [f"missing {k}" for k in ("study", "seed", "readings", "experiments") if not doc.get(k)]
    for name, raw in (doc.get("experiments") or {}).items():
        for b in raw.get("with") or []:
            if b not in (doc.get("blocks") or {}):
                out.append(f"{name}: unknown block {b}")
        e = _merged(doc, raw)
        out += [f"{name}: missing {k}" for k in FIELDS if not e.get(k)]
        if e.get("app") not in APPS:
            out.append(f"{name}: app {e.get('app')!r} is not one of {', '.join(APPS)}")
        if e.get("app") == "train":
            out += [f"{name}: no source for {t}" for t in TRAIN_TOPICS if not e["source"].get(t)]
            if e.get("eval_every_epochs") is None:
                out.append(f"{name}: missing eval_every_epochs")
        for k, v in (e.get("grid") or {}).items():
            if not isinstance(v, list) or not v:
                out.append(f"{name}: grid {k} is not a non-empty list")
        for k, v in e["source"].items():
            if not isinstance(v, str) or not v.strip():
                out.append(f"{name}: source {k} is empty")
    return out


def parse(doc: dict) -> Settings:
    bad = problems(doc)
    if bad:
        raise LosslandError(f"settings of {doc.get('study', '?')}: " + "; ".join(bad))
    exps = {}
    for name, raw in doc["experiments"].items():
        e = _merged(doc, raw)
        exps[name] = Experiment(
            study=doc["study"], name=name, title=e["title"], app=e["app"], config=e["config"], recipe=e["recipe"],
            out=str(e["out"]), expect=dict(e["expect"]), grid=dict(e.get("grid") or {}), source=dict(e["source"]),
            overrides=list(e.get("overrides") or []), steps=e.get("steps"),
            eval_every_epochs=e.get("eval_every_epochs"), jobs=e.get("jobs"), needs=dict(e.get("needs") or {}))
    return Settings(doc["study"], doc["seed"], dict(doc["readings"]), exps)


def load(package: str) -> Settings:
    """The full-scale settings of the study whose package is ``package`` (``lossland.studies.<study>``)."""
    return parse(yaml.safe_load(settings_text(package)))


# ------------------------------------------------------------------------------------------- composing
def _missing_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    out = []
    for k in cfg.keys():
        key = f"{prefix}{k}"
        if key == "hydra":
            continue
        if OmegaConf.is_missing(cfg, k):
            out.append(key)
        else:
            v = cfg._get_node(k)
            if isinstance(v, DictConfig):
                out += _missing_keys(v, f"{key}.")
    return out


def fill_paths(argv: list[str], app: str) -> list[str]:
    """``argv`` plus a placeholder for every value the config leaves to the user (``???``: data.root,
    init_from, a, b, sweep) that ``argv`` does not give."""
    cfg = compose([a for a in expand_jobs(argv)[0]], app)
    given = {a.split("=", 1)[0].lstrip("+") for a in argv if "=" in a}
    return [*argv, *(f"{k}={PLACEHOLDER}" for k in _missing_keys(cfg) if k not in given)]


def jobs_of(argv: list[str], app: str) -> list[list[str]]:
    """The override list of every job ``<app>.py argv`` launches (the config's own sweep included)."""
    params, _ = config_sweep(argv, app) if "-m" in argv else ([], None)
    return expand_jobs(argv, params)


def compose_jobs(exp: Experiment, extra: list[str] | tuple[str, ...] = ()) -> list[tuple[list[str], DictConfig]]:
    """Every job of ``exp`` as its entry point composes it (paths filled with placeholders), with Hydra's
    runtime node (``hydra.runtime.choices``: the option of every group). Jobs that choose the same group
    options are composed once and differ by their plain values (as Hydra applies them: parsed, then set)."""
    argv = fill_paths([*exp.command, *extra], exp.app)
    known = _groups(exp.app)
    out, base = [], {}
    for job in jobs_of(argv, exp.app):
        parsed = parse_overrides(job)
        structural = tuple(o.input_line for o in parsed if o.key_or_group in known or o.is_add()
                           or o.key_or_group.startswith("hydra") or o.is_delete())
        if structural not in base:
            base[structural] = compose(job, exp.app, return_hydra_config=True)
            out.append((job, base[structural]))
            continue
        cfg = copy.deepcopy(base[structural])
        for o in parsed:
            if o.input_line not in structural:
                OmegaConf.update(cfg, o.key_or_group, o.value(), merge=False)
        out.append((job, cfg))
    return out


@functools.cache
def _groups(app: str) -> frozenset[str]:
    return frozenset(groups(app))


def train_split(cfg: DictConfig) -> int:
    """The number of training examples a ``train.py`` job trains on (train_size × fraction, as the data
    module takes it)."""
    data = cfg.data
    n = data.get("train_size")
    if n is None:
        name = str(OmegaConf.select(cfg, "hydra.runtime.choices.data", default="") or "")
        if name not in DATA_SIZES or data.get("classes") is not None:
            raise LosslandError(f"data={name}: the full training split's size is not known here; set "
                                "data.train_size")
        n = DATA_SIZES[name][0] - int(data.get("val_size") or 0)
    return max(1, int(round(int(n) * float(data.get("fraction", 1.0)))))


def steps_per_epoch(cfg: DictConfig) -> int:
    return train_split(cfg) // int(cfg.data.batch_size)  # full batches only (the last partial one is dropped)


def total_steps(cfg: DictConfig) -> int:
    """Optimizer steps of a ``train.py`` job: ``trainer.max_steps`` when ≥ 0, else epochs × steps per epoch."""
    if int(cfg.trainer.max_steps) >= 0:
        return int(cfg.trainer.max_steps)
    return int(cfg.trainer.max_epochs) * steps_per_epoch(cfg)


# --------------------------------------------------------------------------------------------- checking
def same(a, b) -> bool:
    """Equal as config values: numbers within 1e-9 relative (1e-4 == 0.0001), lists element-wise."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    try:
        fa, fb = float(a), float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)
    return math.isclose(fa, fb, rel_tol=1e-9, abs_tol=0.0)


def value_of(cfg: DictConfig, key: str, app: str):
    """A config key's value, or for a config group its chosen option."""
    if key in _groups(app):
        return OmegaConf.select(cfg, f"hydra.runtime.choices.{key}")
    v = OmegaConf.select(cfg, key, default="<absent>")
    return OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v


def _job_value(job: list[str], key: str):
    for o in job:
        k, _, v = o.partition("=")
        if k.lstrip("+") == key:
            return yaml.safe_load(v) if v else v
    return None


def check(exp: Experiment, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Every way the composed jobs of ``exp`` (with ``extra`` overrides) differ from its settings: expected
    values, the grid (values and number of jobs), the length in steps, the evaluation cadence; and, for
    ``train.py``, lossland's own validation. Empty when the config says what the settings claim."""
    try:
        jobs = compose_jobs(exp, extra)
    except Exception as e:  # a config that does not compose: one line
        return [f"{exp.config}: does not compose: {str(e).splitlines()[0]}"]
    out = _grid_problems(exp, jobs)
    validated: set[str] = set()
    for i, (job, cfg) in enumerate(jobs):
        shown = [o for o in job if not o.startswith(("experiment=", "+experiment=")) and PLACEHOLDER not in o]
        tag = f"{exp.config} [{' '.join(shown)}]"
        out += [f"{tag}: {key} = {got!r}, settings: {value!r}" for key, value in exp.expect.items()
                if not same(got := value_of(cfg, key, exp.app), value)]
        if exp.app == "train":
            # lossland's own validation (no GPU needed here) of the first and last job of each composition: the
            # jobs between differ in plain values inside the same bounds
            choices = str(OmegaConf.to_container(cfg.hydra.runtime.choices))
            first_or_last = choices not in validated or i == len(jobs) - 1
            validated.add(choices)
            out += [f"{tag}: {p}" for p in _train_job_problems(exp, cfg, first_or_last)]
    return out


def _grid_problems(exp: Experiment, jobs: list) -> list[str]:
    """The number of jobs and each swept key's values against the settings' grid."""
    out = []
    want = math.prod(len(v) for v in exp.grid.values()) if exp.grid else 1
    if len(jobs) != want:
        out.append(f"{exp.config}: {len(jobs)} jobs, the settings' grid has {want}")
    for key, values in exp.grid.items():
        got = {_norm(_job_value(job, key)) for job, _ in jobs}
        if got != {_norm(v) for v in values}:
            out.append(f"{exp.config}: grid {key} = {sorted(map(str, got))}, settings: {values}")
    return out


def _train_job_problems(exp: Experiment, cfg: DictConfig, validate_it: bool) -> list[str]:
    """A training job's validation (when ``validate_it``), its length in steps and its evaluation cadence."""
    from lossland.schema import validate

    out = []
    try:
        if validate_it:
            validate(OmegaConf.merge(cfg, {"trainer": {"accelerator": "cpu"}}), exp.config)
    except LosslandError as e:
        out.append(str(e))
    steps, want_steps = total_steps(cfg), exp.steps
    if isinstance(want_steps, dict):  # per training-set size (a swept size)
        want_steps = {int(k): v for k, v in want_steps.items()}.get(int(cfg.data.train_size))
    if exp.steps is not None and steps != want_steps:
        out.append(f"{steps} steps, settings: {want_steps}")
    k = exp.eval_every_epochs
    metrics = cfg.get("metrics") or {}
    if k == 0 and metrics.get("enabled"):
        out.append("phase metrics are on, settings: final evaluation only")
    elif k and (not metrics.get("enabled") or metrics.get("log_spaced")
                or metrics.get("every_n_steps") != k * steps_per_epoch(cfg)):
        out.append(f"phase metrics every {metrics.get('every_n_steps')} steps (enabled={metrics.get('enabled')}), "
                   f"settings: every {k} epoch(s) = {k * steps_per_epoch(cfg)} steps")
    return out


def _norm(v):
    """A grid value as a comparable key: a number as float (1e-4 and 0.0001 agree), anything else as text."""
    if isinstance(v, bool) or v is None:
        return str(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v).replace(" ", "")
