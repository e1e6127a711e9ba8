"""``run(cfg)``: one training job from a composed config, leaving a complete record in its directory.

Its directory tells what to do (see docs/reliability.md):
- empty (or ``overwrite=true``, which clears it first): train;
- the same run (same config digest) finished ``ok``: skip and return its summary;
- the same run unfinished (killed, preempted, failed) with a checkpoint: resume from the newest one
  (``resume=auto``, the default; ``resume=true`` resumes even if the config changed, e.g. a longer run);
- another run: refused in one line.

With several devices (``trainer.devices=N``, DDP) the ranks are launched first; rank 0 alone decides and
writes the records (summary, config, initial weights, metrics, checkpoints, W&B) and tells the others what
it decided, so no rank mistakes rank 0's ``running`` summary for another run in progress.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import time
import traceback
import uuid
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from lossland import records
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
from lossland.callbacks import PhaseMetrics
from lossland.config import job_overrides, output_dir, under_hydra
from lossland.errors import LosslandError
from lossland.loop import Diverged, Interrupted, start_fabric
from lossland.metrics.gradients import evaluate
from lossland.module import LandscapeModule
from lossland.records import CONFIG_YAML, atomic_torch_save, atomic_write
from lossland.runs import Run, load_checkpoint, load_weights
from lossland.schema import validate
from lossland.seeding import stream_seed

log = logging.getLogger("lossland")

# Keys that do not change what a run computes: a run re-launched with other values is the same run.
# What a run writes into its directory (Hydra's .hydra/ and <app>.log are not a run's records).
RECORDS = ("summary.json", "metrics.csv", "checkpoints", "wandb", "error.log", "curvature.json", "slice.json",
           "slice.png")
NOT_IN_DIGEST = ("out_dir", "resume", "overwrite", "logger", "trainer.enable_progress_bar", "threads", "grid")


def config_digest(cfg: DictConfig) -> str:
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in NOT_IN_DIGEST:
        parent, _, leaf = key.rpartition(".")
        node = plain.get(parent, {}) if parent else plain
        if isinstance(node, dict):
            node.pop(leaf, None)
    return hashlib.sha1(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


def clear_run_dir(out: Path) -> None:
    """Remove an earlier run's records (checkpoints, W&B runs, metrics, summary); Hydra's own files stay."""
    for name in RECORDS:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def newest_checkpoint(run: Run) -> dict | None:
    """The checkpoint with the highest step among ``last.ckpt`` and the scheduled ones (None if none)."""
    best = None
    for path in reversed(run.checkpoints()):
        try:
            ckpt = load_checkpoint(path)
        except LosslandError as e:
            log.warning("skipping %s", e)
            continue
        if "lossland" in ckpt and run.owns(ckpt) and (best is None or ckpt["global_step"] > best["global_step"]):
            best = ckpt
    return best


def decide(cfg: DictConfig, out: Path, digest: str) -> tuple[str, dict | None]:
    """What to do in ``out``: ("train", None), ("skip", summary) or ("resume", checkpoint)."""
    run = Run(out)
    previous = run.summary if (out / "summary.json").exists() else None
    has_records = any((out / name).exists() for name in RECORDS)
    if cfg.get("overwrite"):
        if has_records:
            clear_run_dir(out)
        return "train", None
    if not has_records:
        return "train", None
    same = previous is not None and previous.get("config_digest") == digest
    resume = str(cfg.get("resume", "auto")).lower()
    if previous is None or not (same or resume == "true"):
        what = "records of another run" if previous is not None else "files of an unknown run"
        raise LosslandError(f"{out} holds {what}; choose another directory or pass overwrite=true "
                            "(which deletes them)")
    status = run.status
    if status == "running" and previous.get("scheduler_job") and previous["scheduler_job"] == scheduler_job():
        status = "interrupted"  # this job is its own requeued self (SLURM/submitit): the earlier attempt is gone
    if same and status == "ok" and resume != "true":
        return "skip", previous
    if status == "running":
        raise LosslandError(f"{out} belongs to a run still in progress (pid {previous.get('pid')})")
    if resume == "false":
        raise LosslandError(f"{out} holds an unfinished run ({status}); pass resume=auto to continue it "
                            "or overwrite=true to start again")
    ckpt = newest_checkpoint(run)
    if ckpt is None:
        clear_run_dir(out)
        return "train", None
    return "resume", ckpt


def scheduler_job() -> str | None:
    """The scheduler's id of this job, the same across its requeues (SLURM, submitit's local executor)."""
    for key in ("SLURM_ARRAY_JOB_ID", "SLURM_JOB_ID", "SUBMITIT_LOCAL_JOB_ID"):
        if os.environ.get(key):
            task = os.environ.get("SLURM_ARRAY_TASK_ID") if key == "SLURM_ARRAY_JOB_ID" else None
            return f"{os.environ[key]}_{task}" if task else os.environ[key]
    return None


def run(cfg: DictConfig) -> dict:
    """Train one job and write ``summary.json``, ``metrics.csv`` and checkpoints into its directory.
    Returns the summary. User errors raise :class:`LosslandError` (after writing a ``failed`` summary);
    a divergence is a status, not an error; SIGTERM / SIGINT raise :class:`Interrupted`."""
    validate(cfg)
    out = output_dir(cfg)
    fabric = start_fabric(**OmegaConf.to_container(cfg.trainer, resolve=True))
    writer = fabric.is_global_zero  # the one process that writes the run's records
    if writer:
        out.mkdir(parents=True, exist_ok=True)
    digest = config_digest(cfg)
    action, state = agreed(fabric, lambda: decide(cfg, out, digest))
    if action == "skip":
        if writer:
            log.info("%s already finished ok: skipped", out)
        return state
    previous = Run(out).summary if action == "resume" else {}
    write_json = records.write_json if writer else (lambda *a, **k: None)
    t0 = time.time()
    rates = {"elr": cfg.optimizer.get("elr"), "lr": cfg.optimizer.get("lr")}  # until used_rates() knows
    summary = {"status": "running", "seed": int(cfg.seed), **rates,
               "overrides": job_overrides(), "steps": 0, "epochs": 0, "wall_s": 0.0, "diverged_at_step": None,
               "final": {}, "run_id": previous.get("run_id") or uuid.uuid4().hex[:12], "config_digest": digest,
               "pid": os.getpid(), "host": socket.gethostname(), "scheduler_job": scheduler_job()}
    if action == "resume":
        summary["resumed_from_step"] = int(state["global_step"])
        if writer:
            log.info("%s: resuming from step %d", out, state["global_step"])
    write_json(out / "summary.json", summary)
    if writer and not under_hydra():  # run outside a Hydra app (tests, notebooks): the record is still complete
        atomic_write(out / CONFIG_YAML, OmegaConf.to_yaml(cfg))
    trainer = None
    try:
        trainer, module, dm = prepare(cfg, out, summary["run_id"], state, fabric)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(stream_seed(cfg.seed, "noise"))
                trainer.fit(module, dm, resume=state)
            summary["status"] = "ok"
            trainer.log(trainer.evaluate("test"))
            summary["final"] = final_metrics(trainer)
        except Diverged as d:
            summary.update(status="diverged", diverged_at_step=d.step, diverged_cause=d.cause)
            summary["final"] = {k: v for k, v in final_metrics(trainer, scheduled=False).items()}
            log.warning("run diverged at step %d (%s)", d.step, d.cause)
        summary.update(callback_summaries(trainer), **used_rates(trainer))
        summary.update(steps=trainer.global_step, epochs=trainer.current_epoch, data_order=dm.order_digest,
                       bound_by="steps" if trainer.max_steps >= 0 else "epochs")
        save_last(trainer, out, summary)
    except Interrupted as e:
        summary.update(status="interrupted", steps=e.step, epochs=trainer.current_epoch, error=str(e))
        raise
    except LosslandError as e:
        summary.update(status="failed", error=str(e))
        raise
    except Exception as e:  # an unexpected failure is recorded; the sweep goes on
        summary.update(status="failed", error=f"{type(e).__name__}: {e}")
        if writer:
            (out / "error.log").write_text(traceback.format_exc())
        log.error("run failed: %s (traceback in %s)", summary["error"], out / "error.log")
    finally:
        summary["wall_s"] = round(time.time() - t0 + float(previous.get("wall_s") or 0.0), 3)
        summary.pop("pid", None)
        if summary["status"] == "running":  # ended by SystemExit (a scheduler's requeue signal handler)
            summary["status"] = "interrupted"
        if trainer is not None:
            for lg in trainer.loggers:
                try:
                    lg.finalize("success" if summary["status"] == "ok" else "failed")
                    if type(lg).__name__ == "WandbLogger":
                        summary["wandb"] = {"id": lg.experiment.id, "group": lg.experiment.group,
                                            "dir": lg.experiment.dir}
                except Exception as e:  # a tracker's failure must not lose the local records
                    summary.setdefault("logger_errors", []).append(f"{type(lg).__name__}: {e}")
        write_json(out / "summary.json", summary)
        finish_wandb()
    return summary


def agreed(fabric, decide_here):
    """``decide_here()`` on rank 0, its result (or its refusal) on every rank."""
    if fabric.world_size == 1:
        return decide_here()
    result = None
    if fabric.is_global_zero:
        try:
            result = ("ok", decide_here())
        except LosslandError as e:
            result = ("refused", str(e))
    result = fabric.broadcast(result, src=0)
    if result[0] == "refused":
        raise LosslandError(result[1])
    return result[1]


def prepare(cfg: DictConfig, out: Path, run_id: str, resume: dict | None, fabric=None):
    """The trainer, module and data of a job: data, model (+ ``init_from`` weights), optimizer, callbacks and
    loggers. Saves the initial weights to ``checkpoints/init.pt``. ``fabric``: the run's started Fabric (DDP:
    only global rank 0 writes, so the other ranks get no loggers)."""
    writer = fabric is None or fabric.is_global_zero
    dm = build_data(cfg)
    loss = build_loss(cfg)
    model = build_model(cfg, dm, loss)
    if cfg.get("init_from"):
        init_from(model, dm, cfg.init_from)
    perturbation = apply_perturbation(cfg, model) if resume is None else None  # a resumed run restores weights
    if resume is None and writer:
        atomic_torch_save(model.state_dict(), out / "checkpoints" / "init.pt")
    steps = total_steps(cfg, dm)
    module = LandscapeModule(model, loss, optimizer=build_optimizer(cfg, model, dm),
                             regularizer=build_regularizer(cfg), schedule=build_schedule(cfg),
                             max_loss=cfg.get("max_loss"))
    rows = None if resume is None or not writer else [r for r in Run(out).rows() if r["step"] <= resume["global_step"]]
    loggers = build_loggers(cfg, out, rows=rows) if writer else []
    trainer = instantiate_node(cfg.trainer, "trainer")(
        callbacks=build_callbacks(cfg, steps, out), loggers=loggers, checkpoint_dir=out / "checkpoints",
        run_info={"run_id": run_id}, log_every_n_steps=int(cfg.steps_per_call), fabric=fabric)
    trainer.datamodule = dm
    if perturbation is not None:
        trainer.extra_summary["perturbation"] = perturbation
    return trainer, module, dm


def init_from(model: torch.nn.Module, dm, run_dir) -> None:
    """Start from another finished run's final weights and continue its data-order stream."""
    src = Run(run_dir)
    if not (src.path / "checkpoints" / "last.ckpt").exists():
        raise LosslandError(f"init_from={run_dir}: no checkpoints/last.ckpt there")
    if src.summary and src.status != "ok":
        raise LosslandError(f"init_from={run_dir}: that run did not finish ok (status {src.status})")
    ckpt = load_checkpoint(src.path / "checkpoints" / "last.ckpt")
    load_weights(model, ckpt, f"init_from={run_dir}")
    if type(dm).__qualname__ in ckpt:
        dm.load_state_dict(ckpt[type(dm).__qualname__])


def save_last(trainer, out: Path, summary: dict) -> None:
    """``last.ckpt``: the final weights; after a divergence, the last finite ones (and it says so)."""
    finite = all(bool(torch.isfinite(p).all()) for p in trainer.module.parameters())
    if finite:
        trainer.save_checkpoint(out / "checkpoints" / "last.ckpt", finite=True)
        summary["last_ckpt_step"] = trainer.global_step
    else:  # keep the newest earlier checkpoint, whose weights were finite
        summary["last_ckpt_step"] = summary.get("resumed_from_step")
        path = out / "checkpoints" / "last.ckpt"
        if path.exists():
            summary["last_ckpt_step"] = int(load_checkpoint(path)["global_step"])


def used_rates(trainer) -> dict:
    """``elr`` / ``lr``: the rates the optimizer used at step 0 (sphere optimizers: elr and lr = elr·ρ0²; the
    others: lr, elr None), never a config default it did not read; ``elr_final`` / ``lr_final`` at the last step
    when a schedule changed them."""
    opt = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    if opt is None:
        return {}
    first, last = trainer.module.rates(opt, 0), trainer.module.rates(opt, max(trainer.global_step - 1, 0))
    return {**first, **{f"{k}_final": v for k, v in last.items() if v != first[k]}}


def callback_summaries(trainer) -> dict:
    """What the trainer and its callbacks record in ``summary.json`` beside the final metrics (each callback's
    optional ``summary()`` dict, e.g. ``converged_step``)."""
    out = dict(trainer.extra_summary)
    for cb in trainer.callbacks:
        if callable(getattr(cb, "summary", None)):
            out.update(cb.summary())
    return out


def final_metrics(trainer, scheduled: bool = True) -> dict[str, float]:
    """Full-pass loss and error (BN in eval mode) on every split at the final weights, plus the last value
    of every scheduled metric (e.g. ``gm``, measured at the last step with BN in train mode on the
    evaluation subset). ``scheduled=False`` (a diverged run): the full-pass values only.

    Units: ``<split>_loss`` is the mean loss per example and ``<split>_error`` the fraction misclassified;
    ``<split>_loss_sum`` (the loss summed over the split) and ``<split>_misclassified`` (a count of examples)
    are the same numbers in the units of study E's seed (docs/exp_neuron.md)."""
    module, dm = trainer.module, trainer.datamodule
    final: dict[str, float] = {}
    for cb in trainer.callbacks:
        if scheduled and isinstance(cb, PhaseMetrics) and cb.last_step == trainer.global_step:
            final.update({k: v for k, v in cb.last.items() if not k.startswith(("train_", "test_"))})
    for split in dm.splits:
        m = evaluate(module.model, module.loss, dm.eval_loader(split), mode="eval")
        final[f"{split}_loss"], final[f"{split}_error"] = m["loss"], m["error"]
        n = len(dm.splits[split][1])
        final[f"{split}_loss_sum"], final[f"{split}_misclassified"] = m["loss"] * n, int(round(m["error"] * n))
    return final


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


def finish_wandb() -> None:
    """End the process's W&B run, if any, so that the next job of a multirun starts a new one."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
