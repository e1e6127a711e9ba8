"""``run(cfg)``: one training job from a composed config, leaving a complete record in its directory.

What its directory holds decides whether it trains, skips, resumes or refuses (:class:`lossland.job.Job`, the
one job lifecycle; docs/reliability.md). With several devices (``trainer.devices=N``, DDP) the ranks are
launched first; rank 0 alone decides and writes the records (summary, config, initial weights, metrics,
checkpoints, W&B) and tells the others what it decided, so no rank mistakes rank 0's ``running`` summary for
another run in progress.
"""

from __future__ import annotations

import json
from copy import deepcopy
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from lossland.build import (
    apply_perturbation,
    build_callbacks,
    build_data,
    build_loggers,
    build_loss,
    build_model,
    build_optimizer,
    build_regularizer,
    build_schedule,
    instantiate_node,
    total_steps,
)
from lossland.config import output_dir
from lossland.errors import LosslandError
from lossland.job import Job
from lossland.loop import start_fabric
from lossland.module import LandscapeModule
from lossland.optim.schedules import Shifted
from lossland.records import atomic_write, torch_bytes
from lossland.runs import Run, load_checkpoint, load_weights
from lossland.schema import resolve_checked
from lossland.seeding import stream_seed


def run(cfg: DictConfig) -> dict:
    """Train one job and write ``summary.json``, ``metrics.csv`` and checkpoints into its directory.
    Returns the summary. User errors raise :class:`LosslandError` (after writing a ``failed`` summary);
    a divergence is a status, not an error; SIGTERM / SIGINT raise :class:`lossland.loop.Interrupted`."""
    resolved = resolve_checked(cfg)
    fabric = start_fabric(**resolved["trainer"])
    job = Job(cfg, output_dir(cfg), fabric, resolved=resolved)
    if job.open() == "skip":
        return job.summary
    job.start()
    with job.recording():
        trainer, module, dm = prepare(cfg, job.out, job.run_id, job.checkpoint, fabric, resolved=resolved)
        job.attach(trainer)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(cfg.seed, "noise"))  # dropout, random-walk steps: their own stream
            trainer.fit(module, dm, resume=job.checkpoint)
        job.complete(trainer)
    return job.summary


def prepare(cfg: DictConfig, out: Path, run_id: str, resume: dict | None, fabric=None, shared: dict | None = None,
            resolved: dict | None = None):
    """The trainer, module and data of a job: data, model (+ ``init_from`` weights), optimizer, callbacks and
    loggers. Saves the initial weights to ``checkpoints/init.pt``. ``fabric``: the run's started Fabric (DDP:
    only global rank 0 writes, so the other ranks get no loggers). ``shared``: the members of a vectorized grid
    share one such dict: the data module, loss, model, regularizer and trainer factory are then built once per
    distinct (resolved) config node and seed, and each member gets a copy (:func:`_once`). ``resolved``: ``cfg``
    resolved to a container, if the caller has it (nodes are then read from there: no interpolation parsed
    again)."""
    writer = fabric is None or fabric.is_global_zero
    node = resolved if resolved is not None else cfg
    augment = node.get("augment") or {}
    dm = _once(shared, ("data", node["data"], node["model"].get("_target_"), node["seed"]), lambda: build_data(cfg),
               keep=lambda d: [t for pair in d.splits.values() for t in pair])  # one copy of the data for all
    loss = _once(shared, ("loss", node["loss"]), lambda: build_loss(cfg))
    model_key = ("model", node["model"], augment.get("model"), node["data"], node["loss"], node["seed"])
    model = _once(shared, model_key, lambda: build_model(cfg, dm, loss))
    source = init_from(model, dm, cfg.init_from) if cfg.get("init_from") else None
    continued = source is not None and str(cfg.get("init_state", "weights")) == "continue"
    perturbation = None
    if resume is None:  # a resumed run restores its weights
        before = perturbation_pass(model, loss, dm) if _perturbs(cfg) else None
        perturbation = apply_perturbation(cfg, model)
        if perturbation is not None:  # the training split's loss before and at the perturbed weights
            after = perturbation_pass(model, loss, dm)
            perturbation.update(loss_before=before["loss"], error_before=before["error"], loss_after=after["loss"],
                                error_after=after["error"])
    if resume is None and writer:
        if source is None and perturbation is None:  # a grid's copies of one built model: serialized once
            data = _once(shared, ("init.pt", *model_key), lambda: torch_bytes(model.state_dict()), copy=False)
        else:
            data = torch_bytes(model.state_dict())
        atomic_write(out / "checkpoints" / "init.pt", data)
    steps = total_steps(cfg, dm)
    schedule = build_schedule(cfg, steps, node["schedule"])
    if continued:  # the rates the source run would have taken next
        schedule = Shifted(schedule, int(source["global_step"]))
    module = LandscapeModule(model, loss, optimizer=build_optimizer(cfg, model, dm),
                             regularizer=_once(shared, ("regularizer", node["regularizer"], augment.get("penalty")),
                                               lambda: build_regularizer(cfg)), schedule=schedule,
                             max_loss=cfg.get("max_loss"))
    rows = None if resume is None or not writer else [r for r in Run(out).rows() if r["step"] <= resume["global_step"]]
    loggers = build_loggers(cfg, out, rows=rows) if writer else []
    trainer = _once(shared, ("trainer", node["trainer"]), lambda: instantiate_node(cfg.trainer, "trainer"), copy=False)(
        callbacks=build_callbacks(cfg, steps, out), loggers=loggers, checkpoint_dir=out / "checkpoints",
        run_info={"run_id": run_id}, fabric=fabric)
    trainer.datamodule = dm
    trainer.job_saves_last = True  # its job ends with Job.complete
    if continued:
        trainer.initial_optimizer_state = source["optimizer_states"][0]
        trainer.extra_summary["continued_from_step"] = int(source["global_step"])
    if perturbation is not None:
        trainer.extra_summary["perturbation"] = perturbation
    return trainer, module, dm


def _once(shared: dict | None, key: tuple, build, keep=None, copy: bool = True):
    """``build()``, or (``shared``) a copy of the object built for the first job with the same ``key`` (config
    nodes compared resolved; ``keep(obj)``: what the copies share rather than copy, e.g. the data module's
    prepared splits, which the stacked step then gathers once for all members); ``copy=False``: that object
    itself (a factory)."""
    if shared is None:
        return build()
    k = json.dumps([OmegaConf.to_container(n, resolve=True) if OmegaConf.is_config(n) else n for n in key],
                   sort_keys=True, default=str)
    if k not in shared:
        shared[k] = build()
    if not copy:
        return shared[k]
    return deepcopy(shared[k], {id(o): o for o in keep(shared[k])} if keep is not None else {})


def _perturbs(cfg: DictConfig) -> bool:
    p = (cfg.get("augment") or {}).get("perturb")
    return p is not None and p.get("target") is not None


def perturbation_pass(model: torch.nn.Module, loss, dm) -> dict:
    """Mean loss and error of the whole training split (a perturbation's record: before and after the noise;
    ``loss`` inf when the model's output overflows)."""
    from lossland.metrics.gradients import evaluate

    with torch.random.fork_rng(devices=[]):  # draws nothing, touches no stream of the run
        out = evaluate(model, loss, dm.eval_loader("train"), mode="eval")
    return {k: float(v) for k, v in out.items()}


def init_from(model: torch.nn.Module, dm, run_dir) -> dict:
    """Start from another finished run's final weights and continue its data-order stream; returns that run's
    ``last.ckpt`` (its optimizer state and step, for ``init_state=continue``)."""
    src = Run(run_dir)
    if not (src.path / "checkpoints" / "last.ckpt").exists():
        raise LosslandError(f"init_from={run_dir}: no checkpoints/last.ckpt there")
    if src.summary and src.status != "ok":
        raise LosslandError(f"init_from={run_dir}: that run did not finish ok (status {src.status})")
    ckpt = load_checkpoint(src.path / "checkpoints" / "last.ckpt")
    load_weights(model, ckpt, f"init_from={run_dir}")
    if type(dm).__qualname__ in ckpt:
        dm.load_state_dict(ckpt[type(dm).__qualname__])
    return ckpt


def print_summary(summary: dict, cfg: DictConfig) -> None:
    """What a newcomer sees at the end of one run: the final numbers, where the records are, what next."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) != 0:  # DDP: rank 0 speaks for the run
        return
    out = output_dir(cfg)
    final = summary.get("final") or {}

    def pct(key):
        return f"{100 * final[key]:.2f} %" if final.get(key) is not None else "n/a"

    gm = f"{final['gm']:.4g}" if final.get("gm") is not None else "n/a"
    console = Console(stderr=False, soft_wrap=True)
    console.print(f"\n[bold]lossland[/bold]: run {summary['status']} after {summary['steps']} steps "
                  f"({summary['wall_s']:.0f} s)")
    console.print(f"  final train error {pct('train_error')}, test error {pct('test_error')}, GM {gm}")
    console.print(f"  records: {out}/ (summary.json, metrics.csv, checkpoints/)")
    console.print("  next: a sweep     python train.py -m elr=1e-4,1e-3,1e-2")
    console.print("        its table   lossland collect multirun/<date>/<time>")
    console.print("        its report  lossland report multirun/<date>/<time>")
