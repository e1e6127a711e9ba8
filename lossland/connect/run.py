"""``run_connect(cfg)``: one mode-connectivity job (``connect.py`` / ``lossland connect``) from a composed
``conf/connect`` config: load two finished runs, align B to A, build (or train) a path, evaluate it, and write
``connect.json`` and ``connect.png`` into the job directory.

``connect.json`` holds: ``status``, ``config`` (the resolved job config), ``a`` / ``b`` (run directory, seed,
model / regularizer / data config and the run's own final metrics), ``width`` (hidden widths of the model:
an int for one hidden layer), ``prior`` (none | weight_decay | dropout | weight_decay+dropout, from the runs'
configs), ``method`` ({align, path, label}), ``result`` (per-point t, losses, accuracies in %, cumulative
length; see :func:`lossland.connect.evaluate.evaluate_path`), ``summary`` (= ``result["summary"]``) and
timings. Analysis (:mod:`lossland.connect.study`) reads only these files.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from lossland.config import output_dir
from lossland.connect.align import align
from lossland.connect.bn import has_bn, iterate_batches
from lossland.connect.evaluate import evaluate_path, write_connect_json
from lossland.connect.paths import make_path, weight_adjustment
from lossland.connect.plots import plot_paths
from lossland.errors import LosslandError
from lossland.runs import open_run

log = logging.getLogger("lossland.connect")

CONFIG_DIR = Path(__file__).resolve().parent.parent.parent / "conf" / "connect"
CURVES = ("bezier", "polychain")


def compose_connect(overrides: list[str] | None = None) -> DictConfig:
    """The config ``connect.py`` would run with these overrides."""
    from lossland.config import compose

    return compose(overrides, "connect", CONFIG_DIR)


def load_run(run_dir: str | Path, checkpoint: str | None = None, key: str = "a") -> dict:
    """A finished run as {dir, model, loss, dm, cfg, summary} (models cached by :func:`lossland.runs.open_run`)."""
    d = Path(str(run_dir)).expanduser()
    try:
        run = open_run(d)
        run.config  # noqa: B018 — refuse a directory that is not a run before anything else
        model, loss, dm = run.model(checkpoint)
        summary = run.summary
    except LosslandError as e:
        raise LosslandError(f"{key}={run_dir}: {e}") from None
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


def path_label(pcfg: DictConfig) -> str:
    kind = pcfg.kind
    if kind == "weight_adjustment":
        return f"{pcfg.get('base', 'linear')}+WA"
    return str(kind)


def method_label(acfg: DictConfig, pcfg: DictConfig) -> str:
    """``<path>`` for the naive path, ``<path>, <alignment>`` after alignment (e.g. ``arc+WA, weight``)."""
    p = path_label(pcfg)
    m = str(acfg.method)
    if m == "none":
        return p
    if m == "ot":
        m = "ot_" + str(acfg.get("ot_method", "exact")) + ("" if acfg.get("hard", True) else "_soft")
    return f"{p}, {m}"


def _align(cfg: DictConfig, a, b, x_train):
    acfg = cfg.align
    method = str(acfg.method)
    kw = {k: v for k, v in OmegaConf.to_container(acfg, resolve=True).items()
          if k not in ("method", "examples")}
    x = None
    if method == "activation":
        x = x_train[: int(acfg.get("examples") or len(x_train))]
    try:
        return align(a, b, method, x=x, **kw)
    except (ValueError, NotImplementedError) as e:
        raise LosslandError(f"align={method}: {e}") from None


def _train_curve(cfg: DictConfig, out: Path, a, b, loss, train, device):
    import lightning as L

    from lossland.connect.curves import Batches, CurveModule
    from lossland.loggers import RecordLogger

    p = cfg.path
    module = CurveModule(p.kind, a, b, loss, lr=float(p.lr), momentum=float(p.get("momentum", 0.9)),
                         weight_decay=float(p.get("weight_decay", 0.0)),
                         optimizer=str(p.get("optimizer", "sgd")),
                         seed=int(cfg.seed))
    x, y = train
    bs = int(p.batch_size)
    steps = int(p.steps) if p.get("steps") is not None and int(p.steps) > 0 else \
        int(p.epochs) * math.ceil(len(x) / bs)
    logger = RecordLogger(out)
    trainer = L.Trainer(max_steps=steps, max_epochs=-1, logger=logger, enable_checkpointing=False,
                        enable_progress_bar=bool(cfg.progress), enable_model_summary=False,
                        accelerator="gpu" if str(device).startswith("cuda") else "cpu", devices=1,
                        default_root_dir=str(out), log_every_n_steps=1, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=Batches(x, y, batch_size=bs, seed=int(cfg.seed)))
    save_atomically(trainer, out / "checkpoints" / "curve.ckpt")
    logger.finalize("success")
    return module.cpu().path(), {"steps": int(trainer.global_step)}


def save_atomically(trainer, path: Path) -> None:
    """``trainer.save_checkpoint`` (Lightning's public API) to a temp file, then renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    trainer.save_checkpoint(tmp)
    os.replace(tmp, path)


def run_connect(cfg: DictConfig) -> dict:
    """One connectivity job; returns the record written to ``connect.json``. User errors raise
    :class:`LosslandError` (missing or incompatible runs, a path that does not fit the model)."""
    for key in ("a", "b"):
        if OmegaConf.is_missing(cfg, key) or not cfg.get(key):
            raise LosslandError(f"{key} must be set: connect.py a=RUN_DIR b=RUN_DIR "
                                "(train.py job directories)")
    if int(cfg.num_points) < 2:
        raise LosslandError(f"num_points={cfg.num_points} is not valid: at least 2 points")
    t_start = time.time()
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    ra = load_run(cfg.a, cfg.get("checkpoint"), "a")
    rb = load_run(cfg.b, cfg.get("checkpoint"), "b")
    check_compatible(ra, rb)
    device = torch.device(cfg.get("device") or "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LosslandError("device=cuda but no CUDA device is available")
    loss = ra["loss"]
    a = copy.deepcopy(ra["model"]).eval().to(device)
    b = copy.deepcopy(rb["model"]).eval().to(device)
    dm = ra["dm"]
    full_train = tuple(t.to(device) for t in dm.splits["train"])
    train = _limit(full_train, cfg.get("train_examples"))
    test = _limit(tuple(t.to(device) for t in dm.splits["test"]), cfg.get("test_examples")) \
        if "test" in dm.splits else None
    bs = int(cfg.batch_size)
    bn_batches = int(cfg.bn_batches) if cfg.get("bn_batches") else None

    t0 = time.time()
    b_aligned = _align(cfg, a, b, full_train[0])
    align_s = time.time() - t0

    pcfg = cfg.path
    kind = str(pcfg.kind)
    extra = {}
    t0 = time.time()
    try:
        if kind in CURVES:
            path, extra = _train_curve(cfg, out, a.cpu(), b_aligned.cpu(), loss, full_train, device)
            a = a.to(device)
        elif kind == "weight_adjustment":
            fit = full_train[0][: int(pcfg.fit_examples)] if pcfg.get("fit_examples") else full_train[0]
            bn_src = list(iterate_batches(full_train[0], bs, bn_batches)) if has_bn(a) else None
            path = weight_adjustment(a, b_aligned, fit, base_path=str(pcfg.get("base", "linear")), template=a,
                                     ridge=float(pcfg.get("ridge", 0.0)), bn_batches=bn_src, batch_size=bs)
        else:
            path = make_path(kind, a, b_aligned, template=a)
    except (ValueError, NotImplementedError) as e:
        raise LosslandError(f"path={kind}: {e}") from None
    build_s = time.time() - t0

    t0 = time.time()
    bn_src = list(iterate_batches(full_train[0], bs, bn_batches)) if has_bn(a) else None
    label = method_label(cfg.align, pcfg)
    result = evaluate_path(path, a, loss, train, test, num_points=int(cfg.num_points), bn_batches=bn_src,
                           batch_size=bs, progress=bool(cfg.progress), desc=label)
    eval_s = time.time() - t0

    info_a, info_b = _run_info(ra), _run_info(rb)
    prior = info_a["prior"] if info_a["prior"] == info_b["prior"] else f"{info_a['prior']}|{info_b['prior']}"
    record = {
        "status": "ok",
        "config": OmegaConf.to_container(cfg, resolve=True),
        "a": info_a, "b": info_b,
        "width": info_a["width"], "prior": prior,
        "method": {"align": str(cfg.align.method), "path": path_label(pcfg), "label": label},
        "result": result,
        "summary": result["summary"],
        "curve": extra or None,
        "wall_s": {"align": round(align_s, 3), "path": round(build_s, 3), "evaluate": round(eval_s, 3),
                   "total": round(time.time() - t_start, 3)},
    }
    write_connect_json(record, out / "connect.json")
    if cfg.get("plot", True):
        title = (f"{label} | width {info_a['width']} | prior {prior} | "
                 f"seeds {info_a['seed']}, {info_b['seed']}")
        plot_paths({label: result}, out / "connect.png", title=title)
    s = result["summary"].get("test", result["summary"]["train"])
    log.info("%s: max test accuracy loss %.2f points, loss barrier %.4f (%s)", label, s["max_acc_loss"],
             s["loss_barrier"], out)
    return record


def _quote(value: str) -> str:
    """A Hydra override value for an arbitrary path (quoted when it holds characters the grammar reserves)."""
    import re

    if re.fullmatch(r"[\w/.\-~+:@]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def connect_command(args) -> dict:
    """``lossland connect A B [--align X] [--path Y] [--out DIR] [key=value ...]``: the same job as
    ``python connect.py a=A b=B align=X path=Y ...`` (config composed from ``conf/connect``)."""
    from datetime import datetime

    from lossland.config import check_overrides

    overrides = [f"a={_quote(str(args.a))}", f"b={_quote(str(args.b))}", f"align={args.align}",
                 f"path={args.path}", *(args.overrides or [])]
    check_overrides(overrides, "connect", CONFIG_DIR)
    stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
    out = Path(args.out) if args.out else Path("outputs/connect") / stamp
    cfg = compose_connect([*overrides, f"out_dir={_quote(str(out))}"])
    record = run_connect(cfg)
    s = record["summary"].get("test", record["summary"]["train"])
    print(f"{record['method']['label']}: max accuracy loss {s['max_acc_loss']:.2f} points, "
          f"loss barrier {s['loss_barrier']:.4g}, mean loss {s['mean_loss']:.4g}")
    print(out / "connect.json")
    return record
