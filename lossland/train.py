"""``run(cfg)``: one training job from a composed config, leaving a complete record in its directory."""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lossland.callbacks import PhaseMetrics, StepCheckpoint, StepSchedule, save_checkpoint
from lossland.errors import LosslandError
from lossland.metrics.gradients import evaluate
from lossland.module import LandscapeModule
from lossland.records import atomic_torch_save, write_json
from lossland.seeding import stream_seed

log = logging.getLogger("lossland")


def output_dir(cfg: DictConfig) -> Path:
    """The job's directory: Hydra's output dir under ``train.py``, else ``cfg.out_dir``, else cwd."""
    if cfg.get("out_dir"):
        return Path(cfg.out_dir)
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path.cwd()


def job_overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def sweep_name(cfg: DictConfig) -> str:
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        return str(Path(hc.sweep.dir).as_posix()) if hc.mode.name == "MULTIRUN" else Path(hc.run.dir).as_posix()
    except ValueError:
        return str(output_dir(cfg))


def build(node, what: str, **kwargs):
    """``hydra.utils.instantiate`` with a user error (one line naming the group) for a bad option."""
    from hydra.errors import InstantiationException
    from omegaconf.errors import MissingMandatoryValue

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


def check_rates(cfg: DictConfig) -> None:
    for key in ("elr", "lr"):
        v = cfg.get(key)
        if v is not None and not float(v) > 0:
            raise LosslandError(f"{key}={v} is not valid: {key} must be a positive number")


def build_model(cfg: DictConfig, dm, loss) -> torch.nn.Module:
    """Build the model under the ``init`` RNG stream: the same seed gives the same initial weights whatever
    the optimizer, schedule or regularizer."""
    model_cfg = cfg.model
    if model_cfg.get("last_norm", None) == "auto":  # FSI ConvNet: 10 for CE, 1.5 for MSE (Kodryan et al.)
        model_cfg = OmegaConf.merge(model_cfg, {"last_norm": 1.5 if loss.name == "mse" else 10.0})
    try:
        num_outputs = loss.num_outputs(dm.num_classes)
    except ValueError as e:
        raise LosslandError(f"loss={loss.name} does not fit data={dm.name}: {e}") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(cfg.seed, "init"))
        return build(model_cfg, "model", input_shape=list(dm.input_shape),
                     num_outputs=num_outputs)


def build_data(cfg: DictConfig):
    dm = build(cfg.data, "data", seed=cfg.seed)
    model_cls = hydra_target(cfg.model)
    need = getattr(model_cls, "input_size", None)
    if need and dm.pad_to is None:
        dm.pad_to = need
    return dm.prepare()


def hydra_target(node):
    from hydra.utils import get_class

    return get_class(node._target_)


def build_loggers(cfg: DictConfig, out: Path):
    from lossland.loggers import RecordLogger

    loggers = [RecordLogger(out)]
    if cfg.logger.get("kind") == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        wcfg = cfg.logger
        loggers.append(WandbLogger(project=wcfg.project, entity=wcfg.get("entity"), group=sweep_name(cfg),
                                   name=",".join(job_overrides()) or out.name, save_dir=str(out),
                                   offline=wcfg.mode == "offline", job_type="train",
                                   config=OmegaConf.to_container(cfg, resolve=True)))
    return loggers


def build_optimizer(cfg: DictConfig, model, dm):
    """The optimizer factory ``params -> Optimizer``. Sphere optimizers first check numerically that every
    trainable parameter is scale-invariant (refusing the model otherwise) and draw random-walk directions
    from the ``noise`` stream."""
    from functools import partial

    from lossland.optim import SphereSGD, require_scale_invariant
    from lossland.seeding import generator

    factory = build(cfg.optimizer, "optimizer")
    if issubclass(hydra_target(cfg.optimizer), SphereSGD):
        x = dm.splits["train"][0][: min(64, dm.batch_size)]
        require_scale_invariant(model, x)
        factory = partial(factory, generator=generator(cfg.seed, "noise", x.device))
    return factory


def build_schedule(cfg: DictConfig):
    node = cfg.get("schedule")
    return build(node, "schedule") if node and node.get("_target_") else None


def total_steps(cfg: DictConfig, dm) -> int:
    max_steps = cfg.trainer.get("max_steps", -1)
    if max_steps is not None and max_steps >= 0:
        return int(max_steps)
    return int(cfg.trainer.max_epochs) * dm.steps_per_epoch


@dataclass
class Job:
    dm: object
    module: LandscapeModule
    callbacks: list
    trainer: L.Trainer


def prepare_job(cfg: DictConfig, out: Path) -> Job:
    """Everything ``run`` trains with: data, model (+ ``init_from`` weights), optimizer, callbacks,
    loggers and the Lightning trainer. Saves the initial weights to ``checkpoints/init.pt``."""
    dm = build_data(cfg)
    loss = build(cfg.loss, "loss")
    model = build_model(cfg, dm, loss)
    if cfg.get("init_from"):
        from lossland.runs import load_weights_into

        load_weights_into(model, dm, cfg.init_from)
    atomic_torch_save(model.state_dict(), out / "checkpoints" / "init.pt")
    steps = total_steps(cfg, dm)
    module = LandscapeModule(model, loss, optimizer=build_optimizer(cfg, model, dm),
                             regularizer=build(cfg.regularizer, "regularizer"), schedule=build_schedule(cfg),
                             max_loss=cfg.get("max_loss"))
    callbacks = []
    mcfg = cfg.metrics
    if mcfg.get("enabled", True):
        schedule = StepSchedule(mcfg.every_n_steps, mcfg.log_spaced, mcfg.num_points).bind(steps)
        from lossland.callbacks.curvature import curvature_extra

        callbacks.append(PhaseMetrics(schedule, mcfg.eval_batches, mcfg.test_examples, gm=mcfg.gm,
                                      test=mcfg.test, cosines=mcfg.cosines,
                                      extra=curvature_extra(mcfg.get("curvature"))))
    from lossland.callbacks.grad_norms import grad_norm_callback  # per-layer grad_norm/<layer> (docs/optim_lab.md)

    if (grad_norms := grad_norm_callback(mcfg.get("grad_norms"), steps)) is not None:
        callbacks.append(grad_norms)
    ck = cfg.checkpoint
    if ck.get("every_n_steps") or ck.get("log_spaced"):
        callbacks.append(StepCheckpoint(out / "checkpoints", StepSchedule(
            ck.every_n_steps, ck.get("log_spaced", False), ck.get("num_points", 20)).bind(steps)))
    scheduled = [c for c in callbacks if hasattr(c, "schedule")]
    dm.next_boundary = lambda s: min((n for c in scheduled if (n := c.schedule.next_due(s)) is not None),
                                     default=None)
    dm.max_block = int(cfg.steps_per_call)
    trainer = instantiate(cfg.trainer, logger=build_loggers(cfg, out), callbacks=callbacks,
                          default_root_dir=str(out), enable_checkpointing=False,
                          reload_dataloaders_every_n_epochs=1, num_sanity_val_steps=0, log_every_n_steps=1)
    return Job(dm, module, callbacks, trainer)


def quiet_lightning() -> None:
    """Lightning's start-up banners (accelerator, tips) and a torch-version deprecation warning repeat on every
    job of a sweep; keep Lightning's warnings and errors only."""
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def run(cfg: DictConfig) -> dict:
    """Train one job and write ``summary.json``, ``metrics.csv`` and checkpoints into its directory.
    Returns the summary. User errors raise :class:`LosslandError`; a divergence is a status, not an error."""
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    check_rates(cfg)
    quiet_lightning()
    t0 = time.time()
    summary = {"status": "failed", "seed": int(cfg.seed), "elr": cfg.get("elr"), "lr": cfg.get("lr"),
               "overrides": job_overrides(), "steps": 0, "epochs": 0, "wall_s": 0.0, "diverged_at_step": None,
               "final": {}}
    loggers = []
    try:
        job = prepare_job(cfg, out)
        dm, module, callbacks, trainer = job.dm, job.module, job.callbacks, job.trainer
        loggers = trainer.loggers
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(cfg.seed, "noise"))
            trainer.fit(module, datamodule=dm)
            summary.update(steps=trainer.global_step, epochs=trainer.current_epoch, data_order=dm.order_digest)
            if module.diverged_at is not None:
                summary.update(status="diverged", diverged_at_step=module.diverged_at)
                log.warning("run diverged at step %d (non-finite or too large loss)", module.diverged_at)
            else:
                trainer.test(module, datamodule=dm, verbose=False)
                summary["status"] = "ok"
        summary["final"] = final_metrics(module, dm, callbacks)
        save_checkpoint(trainer, out / "checkpoints" / "last.ckpt")
    except LosslandError as e:
        summary["error"] = str(e)
        raise
    except Exception as e:  # an unexpected failure is recorded; the sweep goes on
        summary["error"] = f"{type(e).__name__}: {e}"
        (out / "error.log").write_text(traceback.format_exc())
        log.error("run failed: %s (traceback in %s)", summary["error"], out / "error.log")
    finally:
        summary["wall_s"] = round(time.time() - t0, 3)
        write_json(out / "summary.json", summary)
        for lg in loggers:
            lg.finalize("success" if summary["status"] == "ok" else "failed")
            if hasattr(lg, "experiment") and type(lg).__name__ == "WandbLogger":
                summary["wandb"] = {"id": lg.experiment.id, "group": lg.experiment.group, "dir": lg.experiment.dir}
        write_json(out / "summary.json", summary)
        finish_wandb()
    return summary


def final_metrics(module: LandscapeModule, dm, callbacks) -> dict[str, float]:
    """Full-pass loss and error (BN in eval mode) on every split at the final weights, plus the last value
    of every scheduled metric (e.g. ``gm``, measured with BN in train mode on the evaluation subset)."""
    final: dict[str, float] = {}
    dm.to(next(module.model.parameters()).device)  # Lightning may have moved the model back to the CPU
    for cb in callbacks:
        if isinstance(cb, PhaseMetrics):
            final.update({k: v for k, v in cb.last.items() if not k.startswith(("train_", "test_"))})
    for split in dm.splits:
        m = evaluate(module.model, module.loss, dm.eval_loader(split), mode="eval")
        final[f"{split}_loss"], final[f"{split}_error"] = m["loss"], m["error"]
    return final


def finish_wandb() -> None:
    """End the process's W&B run, if any, so that the next job of a multirun starts a new one."""
    import sys

    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
