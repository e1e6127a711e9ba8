"""``run_connect(cfg)``: one mode-connectivity job (``lossland connect A B``, alias ``connect.py``) from a composed
``conf/connect.yaml`` config (groups ``conf/align``, ``conf/path``): load two finished runs, align B to A,
build (or train) a path, evaluate it, and write ``connect.json`` and ``connect.png`` into the job directory.

``connect.json`` holds: ``status``, ``config`` (the resolved job config), ``a`` / ``b`` (run directory, seed,
model / regularizer / data config and the run's own final metrics), ``width`` (hidden widths of the model:
an int for one hidden layer), ``prior`` (none | weight_decay | dropout | weight_decay+dropout, from the runs'
configs), ``method`` ({align, path, label}), ``result`` (per-point t, losses, accuracies in %, cumulative
length; see :func:`lossland.studies.connect.evaluate.evaluate_path`), ``summary`` (= ``result["summary"]``) and
timings. Analysis (:mod:`lossland.studies.connect.study`) reads only these files.

The ``align`` and ``path`` configs are ``_target_`` configs with ``_partial_: true``: instantiated, they are an
alignment method (:mod:`lossland.studies.connect.align`) and a path builder
(:mod:`lossland.studies.connect.paths`); their keys
``name`` / ``label`` are not arguments but what ``connect.json`` calls the method.
"""

from __future__ import annotations

import copy
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lossland.config import CONFIG_DIR, compose, output_dir
from lossland.data import TensorBatches
from lossland.errors import LosslandError
from lossland.runs import open_run
from lossland.studies.connect.align import align
from lossland.studies.connect.bn import has_bn
from lossland.studies.connect.evaluate import evaluate_path, write_connect_json
from lossland.studies.connect.paths import PathData
from lossland.studies.connect.plots import plot_paths

log = logging.getLogger("lossland.studies.connect")

RECORD_KEYS = ("name", "label")  # keys of align / path configs naming the method in connect.json


def compose_connect(overrides: list[str] | None = None) -> DictConfig:
    """The config ``lossland connect`` would run with these overrides (``conf/connect.yaml``)."""
    return compose(overrides, "connect", CONFIG_DIR)


def instantiate_method(node: DictConfig):
    """The callable an ``align`` or ``path`` config stands for: its ``_target_`` with the options bound
    (``_partial_: true``), leaving out the record keys ``name`` / ``label`` at every depth."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in RECORD_KEYS}
        return [strip(x) for x in v] if isinstance(v, list) else v

    return instantiate(strip(OmegaConf.to_container(node, resolve=True)))


def method_record(acfg: DictConfig, pcfg: DictConfig) -> dict:
    """``connect.json``'s ``method``: ``align`` (the alignment's ``name``), ``path`` (the path's ``label``) and
    ``label``: ``<path>`` for the naive path (alignment label null), ``<path>, <alignment label>`` after
    alignment (e.g. ``arc+WA, weight``)."""
    path = str(pcfg.label)
    suffix = acfg.get("label")
    return {"align": str(acfg.name), "path": path, "label": f"{path}, {suffix}" if suffix else path}


def load_run(run_dir: str | Path, checkpoint: str | None = None, key: str = "a") -> dict:
    """A finished run as {dir, model, loss, dm, cfg, summary} (models cached by :func:`lossland.runs.open_run`)."""
    d = Path(str(run_dir)).expanduser()
    try:
        run = open_run(d)
        run.config  # noqa: B018 — refuse a directory that is not a run before anything else
        model, loss, dm = run.model(checkpoint)
        summary = run.summary
    except LosslandError as e:  # one line naming the argument: "b=DIR: no such run directory"
        msg = str(e)
        for prefix in (f"{d}: ", f"{d.resolve()}: "):
            msg = msg.removeprefix(prefix)
        raise LosslandError(f"{key}={run_dir}: {msg}") from None
    return {"dir": str(run.path.resolve()), "model": model, "loss": loss, "dm": dm, "cfg": run.config,
            "summary": summary}


def prior_of(cfg: DictConfig) -> str:
    """The prior of a training run from its config: none | weight_decay | dropout | weight_decay+dropout."""
    parts = []
    reg = cfg.get("regularizer") or {}
    target = str(reg.get("_target_", "") or "")
    if target.endswith("WeightDecay") and float(reg.get("coef", 0) or 0) > 0:
        parts.append("weight_decay")
    if float(cfg.model.get("dropout", 0) or 0) > 0:
        parts.append("dropout")
    return "+".join(parts) or "none"


def _width(cfg: DictConfig):
    hidden = cfg.model.get("hidden")
    if hidden is None:
        return cfg.model.get("width")
    hidden = list(hidden)
    return int(hidden[0]) if len(hidden) == 1 else hidden


def _run_info(run: dict) -> dict:
    cfg = run["cfg"]
    info = {"dir": run["dir"], "seed": int(cfg.seed),
            "model": OmegaConf.to_container(cfg.model, resolve=True),
            "regularizer": (OmegaConf.to_container(cfg.regularizer, resolve=True)
                            if cfg.get("regularizer") else None),
            "data": OmegaConf.to_container(cfg.data, resolve=True),
            "prior": prior_of(cfg), "width": _width(cfg),
            "status": run["summary"].get("status"), "final": run["summary"].get("final", {})}
    return info


_ARCH_IGNORE = ("dropout",)
_DATA_KEYS = ("_target_", "classes", "normalize", "pad_to", "split_seed", "train_size", "val_size",
              "test_size",
              "fraction", "root")


def check_compatible(ra: dict, rb: dict) -> None:
    """Refuse two runs whose models or data splits differ (one line naming the difference)."""
    def arch(run):
        return {k: v for k, v in OmegaConf.to_container(run["cfg"].model, resolve=True).items()
                if k not in _ARCH_IGNORE}

    ma, mb = arch(ra), arch(rb)
    if ma != mb:
        diff = sorted(k for k in ma.keys() | mb.keys() if ma.get(k) != mb.get(k))
        what = ", ".join(f"model.{k}: {ma.get(k)} vs {mb.get(k)}" for k in diff)
        raise LosslandError(f"runs a and b have different models ({what})")
    da, db = ra["cfg"].data, rb["cfg"].data
    for k in _DATA_KEYS:
        va, vb = da.get(k), db.get(k)
        if va != vb:
            raise LosslandError(f"runs a and b use different data (data.{k}: {va} vs {vb})")
    if type(ra["loss"]) is not type(rb["loss"]):
        raise LosslandError(f"runs a and b use different losses ({ra['loss'].name} vs {rb['loss'].name})")
    sa, sb = ra["model"].state_dict(), rb["model"].state_dict()
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise LosslandError("runs a and b have weights of different shapes")


def _limit(xy, n):
    x, y = xy
    return (x, y) if n is None else (x[: int(n)], y[: int(n)])


def gm_batches(cfg: DictConfig, run: dict) -> list | None:
    """``gm=true``: run A's fixed evaluation mini-batches (``metrics.eval_batches`` of its ``data.batch_size``,
    the ones its phase metrics used), on which GM is measured at every point; else None."""
    if not cfg.get("gm"):
        return None
    n = int(OmegaConf.select(run["cfg"], "metrics.eval_batches", default=8))
    device = torch.device(cfg.get("device") or "cpu")
    return [(x.to(device), y.to(device)) for x, y in run["dm"].eval_batches(n)]


def run_connect(cfg: DictConfig) -> dict:
    """One connectivity job; returns the record written to ``connect.json``. User errors raise
    :class:`LosslandError` (missing or incompatible runs, a path that does not fit the model).

    Steps: check the config, load runs A and B (refusing incompatible ones), put models and data on the device,
    align B to A, build (or train) the path, evaluate it, write ``connect.json`` (and ``connect.png``)."""
    _check(cfg)
    t_start = time.time()
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    ra = load_run(cfg.a, cfg.get("checkpoint"), "a")
    rb = load_run(cfg.b, cfg.get("checkpoint"), "b")
    check_compatible(ra, rb)
    job = _Job.on_device(cfg, ra, rb, out)
    method = method_record(cfg.align, cfg.path)
    wall = {}
    with _timed(wall, "align"), _refused(f"align={method['align']}"):
        b_aligned = align(job.a, job.b, instantiate_method(cfg.align), x=job.full_train[0])
    with _timed(wall, "path"), _refused(f"path={method['path']}"):
        path = instantiate_method(cfg.path)(job.a, b_aligned, data=job.path_data(cfg, out))
    with _timed(wall, "evaluate"):
        result = evaluate_path(path, job.a, job.loss, job.train, job.test, num_points=int(cfg.num_points),
                               bn_batches=job.bn_batches, batch_size=job.batch_size, progress=bool(cfg.progress),
                               desc=method["label"], gm_batches=gm_batches(cfg, ra))
    wall["total"] = round(time.time() - t_start, 3)
    record = _record(cfg, ra, rb, method, result, path, wall)
    _write(cfg, record, out)
    return record


def _check(cfg: DictConfig) -> None:
    for key in ("a", "b"):
        if OmegaConf.is_missing(cfg, key) or not cfg.get(key):
            raise LosslandError(f"{key} must be set: lossland connect RUN_A RUN_B (two training run "
                                "directories)")
    if int(cfg.num_points) < 2:
        raise LosslandError(f"num_points={cfg.num_points} is not valid: at least 2 points")


@contextmanager
def _timed(wall: dict, key: str):
    t0 = time.time()
    yield
    wall[key] = round(time.time() - t0, 3)


@contextmanager
def _refused(what: str):
    """A method that does not fit the models (``ValueError``, ``NotImplementedError``): one line naming it."""
    try:
        yield
    except (ValueError, NotImplementedError) as e:
        raise LosslandError(f"{what}: {e}") from None


@dataclass
class _Job:
    """The endpoints, loss and data of a job on its device."""

    a: torch.nn.Module
    b: torch.nn.Module
    loss: torch.nn.Module
    full_train: tuple
    train: tuple
    test: tuple | None
    batch_size: int
    bn_batches: list | None
    device: torch.device

    @classmethod
    def on_device(cls, cfg: DictConfig, ra: dict, rb: dict, out: Path) -> _Job:
        device = torch.device(cfg.get("device") or "cpu")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise LosslandError("device=cuda but no CUDA device is available")
        a = copy.deepcopy(ra["model"]).eval().to(device)
        dm = ra["dm"]
        full_train = tuple(t.to(device) for t in dm.splits["train"])
        test = (_limit(tuple(t.to(device) for t in dm.splits["test"]), cfg.get("test_examples"))
                if "test" in dm.splits else None)
        bs = int(cfg.batch_size)
        n_bn = int(cfg.bn_batches) if cfg.get("bn_batches") else None
        bn = list(islice(TensorBatches(*full_train, bs), n_bn)) if has_bn(a) else None
        return cls(a, copy.deepcopy(rb["model"]).eval().to(device), ra["loss"], full_train,
                   _limit(full_train, cfg.get("train_examples")), test, bs, bn, device)

    def path_data(self, cfg: DictConfig, out: Path) -> PathData:
        return PathData(x=self.full_train[0], y=self.full_train[1], loss=self.loss, bn_batches=self.bn_batches,
                        batch_size=self.batch_size, out=out, device=str(self.device), seed=int(cfg.seed),
                        progress=bool(cfg.progress))


def _record(cfg: DictConfig, ra: dict, rb: dict, method: dict, result: dict, path, wall: dict) -> dict:
    """``connect.json`` (module docstring)."""
    info_a, info_b = _run_info(ra), _run_info(rb)
    prior = info_a["prior"] if info_a["prior"] == info_b["prior"] else f"{info_a['prior']}|{info_b['prior']}"
    return {"status": "ok", "config": OmegaConf.to_container(cfg, resolve=True), "a": info_a, "b": info_b,
            "width": info_a["width"], "prior": prior, "method": method, "result": result,
            "summary": result["summary"], "curve": path.training or None,
            "wall_s": {k: wall[k] for k in ("align", "path", "evaluate", "total")}}


def _write(cfg: DictConfig, record: dict, out: Path) -> None:
    write_connect_json(record, out / "connect.json")
    label, result = record["method"]["label"], record["result"]
    if cfg.get("plot", True):
        title = (f"{label} | width {record['width']} | prior {record['prior']} | "
                 f"seeds {record['a']['seed']}, {record['b']['seed']}")
        plot_paths({label: result}, out / "connect.png", title=title)
    s = result["summary"].get("test", result["summary"]["train"])
    log.info("%s: max test accuracy loss %.2f points, loss barrier %.4f (%s)", label, s["max_acc_loss"],
             s["loss_barrier"], out)
