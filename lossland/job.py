"""The one job lifecycle: what a job does with its directory, from the decision to start to the final
``summary.json`` (docs/reliability.md). Used by :func:`lossland.train.run`, by every member of a vectorized
grid (:mod:`lossland.sweep.vectorized.run`) and by the NAS search (:mod:`lossland.studies.nas.app`)::

    job = Job(cfg, out, fabric)        # fabric: with DDP, rank 0 decides and writes for every rank
    if job.open() == "skip":           # train / skip / resume (from job.checkpoint) / refuse (LosslandError)
        return job.summary
    job.start()                        # summary.json says "running" (+ .hydra/config.yaml outside a Hydra app)
    with job.recording():              # a failure or a signal becomes the record; the final summary is written
        trainer = ...
        job.attach(trainer)            # its loggers end with the job (one W&B run per job, its record as summary)
        trainer.fit(...)
        job.complete(trainer)          # ok / diverged, final metrics, rates used, callback summaries, last.ckpt

What a directory holds decides what a job does there (:func:`decide`):

- nothing (or ``overwrite=true``, which clears it first): train;
- the same run (same config digest) finished ``ok`` or ``diverged``: skip, its summary is the result;
- the same run unfinished (killed, preempted, failed) with a checkpoint of its own: resume from the newest
  (``resume=auto``, the default; ``resume=true`` resumes even if the config changed, e.g. a longer run);
  without one: start again;
- a run that failed or was killed before its first checkpoint (nothing computed; e.g. a mistyped value):
  cleared, whatever its config;
- another run, or a run still in progress: refused in one line.

Beyond the config, what a job computes depends on the torch thread count (CPU reductions; :func:`numbers`). A
finished run computed on another thread count is not reused (refused in one line: the numbers would mix); an
unfinished one resumes on the thread count it was checkpointed with.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import socket
import time
import traceback
import uuid
from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from lossland.callbacks import PhaseMetrics
from lossland.config import config_yaml, job_overrides, under_hydra
from lossland.errors import LosslandError
from lossland.loggers import bind_loggers, close_loggers, finish_wandb
from lossland.loop import Interrupted
from lossland.metrics.gradients import evaluate
from lossland.records import CONFIG_YAML, SUMMARY_JSON, atomic_write, write_json
from lossland.runs import Run, load_checkpoint

log = logging.getLogger("lossland")

# What a run writes into its directory (Hydra's .hydra/ and <app>.log are not a run's records).
RECORDS = ("summary.json", "metrics.csv", "checkpoints", "wandb", "error.log", "curvature.json", "slice.json",
           "slice.png")
# Keys that do not change what a run computes: a run re-launched with other values is the same run.
NOT_IN_DIGEST = ("out_dir", "resume", "overwrite", "logger", "trainer.enable_progress_bar", "threads", "grid")
# Keys renamed or added since runs were first recorded: a renamed key is hashed under its old name, an added
# key only when it differs from its default, so that runs recorded before keep their digest (skip, resume).
OLD_NAMES = {"trainer.log_every_n_steps": "steps_per_call"}
ADDED = {"trainer.gradient_clip_val": None, "init_state": "weights", "augment.model.w_init": "normal"}
# Nodes added since, hashed only when their switch is on (off, nothing in them changes what a run computes).
SWITCHED = {"metrics.early_stop": "phase"}


class Job:
    """One job directory from :meth:`open` to :meth:`finish`; ``summary`` is its ``summary.json``.

    ``fabric``: the run's started Fabric (several devices: global rank 0 decides and writes; the other ranks
    follow). ``overrides``: the job's command-line overrides (default: Hydra's). ``resolved`` / ``raw``: ``cfg``
    already turned into a container, resolved / as written, if the caller has it (a grid makes both once per
    member)."""

    def __init__(self, cfg: DictConfig, out: str | Path, fabric=None, overrides: list[str] | None = None,
                 resolved: dict | None = None, raw: dict | None = None):
        self.cfg, self.out, self.fabric, self.raw = cfg, Path(out), fabric, raw
        self.writer = fabric is None or fabric.is_global_zero
        self.overrides = job_overrides() if overrides is None else list(overrides)
        self.resolved = resolved if resolved is not None else OmegaConf.to_container(cfg, resolve=True)
        self.digest = config_digest(cfg, self.resolved)
        self.summary: dict = {}
        self.checkpoint: dict | None = None  # what a resumed run starts from
        self.previous: dict = {}  # the summary of the unfinished run it resumes
        self.trainer = None
        self.loggers: list = []
        self.t0 = time.time()
        self.threads = torch.get_num_threads()  # put back when the job ends (a resume may change it)

    @property
    def run_id(self) -> str:
        return self.summary["run_id"]

    # ------------------------------------------------------------------------------------------ opening
    def open(self) -> str:
        """What to do in the directory: ``"train"``, ``"skip"`` (``summary`` is the finished run's) or
        ``"resume"`` (from ``checkpoint``). Refuses another run's records with :class:`LosslandError`."""
        if self.writer:
            with unwritable(self.out):
                self.out.mkdir(parents=True, exist_ok=True)
                remove_stray_temporaries(self.out)
        action, state = agreed(self.fabric, lambda: decide(self.cfg, self.out, self.digest))
        if action == "skip":
            self.summary = state
            if self.writer:
                log.info("%s already finished ok: skipped", self.out)
        elif action == "resume":
            self.checkpoint, self.previous = state, Run(self.out).summary
            if self.writer:
                log.info("%s: resuming from step %d", self.out, state["global_step"])
        return action

    def start(self, **fields) -> None:
        """Write ``summary.json`` saying ``running`` (with the run's id, config digest, pid, host and scheduler
        job: what :func:`decide` reads) and, outside a Hydra app, ``.hydra/config.yaml``. ``fields``: more
        entries (e.g. the NAS search's ``app`` and ``prior``)."""
        cfg = self.cfg
        rates = {"elr": cfg.optimizer.get("elr"), "lr": cfg.optimizer.get("lr")} if "optimizer" in cfg else {}
        self.summary = {"status": "running", "seed": int(cfg.seed), **rates, **fields,  # rates: until used_rates()
                        "overrides": self.overrides, "steps": 0, "epochs": 0, "wall_s": 0.0,
                        "diverged_at_step": None, "final": {},
                        "run_id": self.previous.get("run_id") or uuid.uuid4().hex[:12], "config_digest": self.digest,
                        "pid": os.getpid(), "host": socket.gethostname(), "scheduler_job": scheduler_job(),
                        **numbers(cfg)}
        if self.checkpoint is not None:
            self.summary["resumed_from_step"] = int(self.checkpoint["global_step"])
            if threads := (self.checkpoint.get("lossland") or {}).get("threads"):
                self.summary["threads"] = int(threads)  # the loop resumes on the checkpoint's thread count
        self.t0 = time.time()
        with unwritable(self.out):  # a full disk, a read-only directory: one line, nothing half-written
            self._write()
            if self.writer and not under_hydra():  # a job outside a Hydra app (grid members, tests): still complete
                atomic_write(self.out / CONFIG_YAML, config_yaml(cfg if self.raw is None else self.raw))

    def attach(self, trainer=None, loggers: list | None = None) -> None:
        """The job's trainer (its counters go into the record) and loggers (default: the trainer's), which
        :meth:`finish` closes. Trackers log to the job's own run (W&B: the run id, the same across resumes)."""
        if trainer is not None:
            self.trainer = trainer
        self.loggers = list(loggers if loggers is not None else getattr(trainer, "loggers", []))
        bind_loggers(self.loggers, self.run_id)

    # ------------------------------------------------------------------------------------------ ending
    def end_training(self, trainer) -> None:
        """Status ``ok`` or ``diverged`` (step and cause), steps, epochs, data order, what bounded the run."""
        s, d = self.summary, trainer.diverged
        if d is None:
            s["status"] = "ok"
        else:
            s.update(status="diverged", diverged_at_step=d.step, diverged_cause=d.cause)
            log.warning("%s: run diverged at step %d (%s)", self.out, d.step, d.cause)
        s.update(steps=trainer.global_step, epochs=trainer.current_epoch, data_order=trainer.datamodule.order_digest,
                 bound_by="steps" if trainer.max_steps >= 0 else "epochs")

    def complete(self, trainer) -> None:
        """The record of a run that trained to its end (:meth:`end_training`): the final metrics (after a
        divergence: the full-pass values only), the callbacks' summaries, the rates used, ``last.ckpt``."""
        self.end_training(trainer)
        s = self.summary
        if s["status"] == "ok":
            trainer.log(trainer.evaluate("test"))
        s["final"] = final_metrics(trainer, scheduled=s["status"] == "ok")
        s.update(callback_summaries(trainer), **used_rates(trainer), **stopped_early(trainer))
        save_last(trainer, self.out, s)

    def fail(self, e: Exception) -> None:
        """Record why the job ended early: ``interrupted`` (a signal; the step reached) or ``failed`` (a user
        error: its line; an unexpected error: its type and message, the traceback in ``error.log``)."""
        s = self.summary
        if isinstance(e, Interrupted):
            s.update(status="interrupted", steps=e.step, error=str(e))
            if self.trainer is not None:
                s["epochs"] = self.trainer.current_epoch
        elif isinstance(e, LosslandError):
            s.update(status="failed", error=str(e))
        else:
            s.update(status="failed", error=f"{type(e).__name__}: {e}")
            if self.writer and self.out.exists():
                try:
                    (self.out / "error.log").write_text(traceback.format_exc())
                except OSError:  # a full disk: the summary says why, if it can be written
                    pass
            log.error("%s: run failed: %s (traceback in error.log)", self.out, s["error"])

    def finish(self) -> dict:
        """The final ``summary.json``: wall time (a resumed run's included), the loggers closed (W&B run id),
        the process's W&B run ended. A job still ``running`` here was ended by ``SystemExit`` (a scheduler's
        requeue handler): ``interrupted``. The record is written before the loggers close: a tracker's run summary
        may be computed from the finished directory (the sphere study's phase)."""
        s = self.summary
        s["wall_s"] = round(time.time() - self.t0 + float(self.previous.get("wall_s") or 0.0), 3)
        s.pop("pid", None)
        if s["status"] == "running":
            s["status"] = "interrupted"
        self._write(final=True)
        if closed := close_loggers(self.loggers, s, Run(self.out)):  # what the trackers add (else: written)
            s.update(closed)
            self._write(final=True)
        finish_wandb()
        torch.set_num_threads(self.threads)
        return s

    @contextmanager
    def recording(self):
        """The job's work: a signal (:class:`Interrupted`) or a user error (:class:`LosslandError`) is recorded
        and raised; an unexpected error is recorded and not raised, so that a sweep goes on; the final summary
        is written in every case (:meth:`finish`)."""
        try:
            yield self
        except Exception as e:
            self.fail(e)
            if isinstance(e, (Interrupted, LosslandError)):
                raise
        finally:
            self.finish()

    def _write(self, final: bool = False) -> None:
        """``summary.json``; at the end (``final``) a write that fails (a full disk) is one logged line: the
        record on disk then still says ``running``, and the same command resumes from the newest checkpoint."""
        if not self.writer:
            return
        try:
            write_json(self.out / SUMMARY_JSON, self.summary)
        except OSError as e:
            if not final:
                raise
            log.error("%s: cannot write summary.json (%s); run the same command again when there is room: it "
                      "resumes from the newest checkpoint", self.out, e.strerror or e)


@contextmanager
def unwritable(out: Path):
    """An ``OSError`` of writing into ``out`` (no space left, read-only, no permission) as one line."""
    try:
        yield
    except OSError as e:
        raise LosslandError(f"cannot write the run's records in {out}: {e.strerror or e}") from None


# ---------------------------------------------------------------------------------------------- deciding
def config_digest(cfg: DictConfig, resolved: dict | None = None) -> str:
    """A hash of the resolved config without :data:`NOT_IN_DIGEST` (see :data:`OLD_NAMES`, :data:`ADDED`,
    :data:`SWITCHED`). ``resolved``: the config already resolved to a container (not changed here)."""
    plain = copy.deepcopy(resolved) if resolved is not None else OmegaConf.to_container(cfg, resolve=True)

    missing = object()

    def pop(key, default=None):
        *parents, leaf = key.split(".")
        node = plain
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        return node.pop(leaf, default) if isinstance(node, dict) else default

    for new, old in OLD_NAMES.items():
        if (value := pop(new, missing)) is not missing:
            plain[old] = value
    for key, default in ADDED.items():
        if (value := pop(key, default)) != default:
            plain[key] = value  # (under its dotted name: a hash input only)
    for key, switch in SWITCHED.items():
        if not isinstance(node := pop(key), dict) or not node.get(switch):
            continue
        plain[key] = node
    for key in NOT_IN_DIGEST:
        pop(key)
    return hashlib.sha1(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


def numbers(cfg: DictConfig) -> dict:
    """How the job computes, beyond its config (docs/reliability.md): ``threads``, torch's thread count (CPU
    reductions, hence the numbers, depend on it). (A stacked grid's members equal their sequential runs to float
    round-off, docs/scale.md: the grid is not part of a run's identity.)"""
    return {"threads": torch.get_num_threads()}


def mixed_numbers(out: Path, previous: dict, now: dict) -> str | None:
    """Why the finished run in ``out`` cannot be reused by this job (its numbers came from another thread count),
    or None. Records of older versions (no ``threads``) are reused."""
    for key in now:
        was = previous.get(key)
        if was is not None and str(was) != str(now[key]):
            return (f"{out} holds this run computed with {key}={was}; this job runs with {key}={now[key]}, which "
                    f"changes the numbers: pass {key}={was} to reuse it, or overwrite=true to compute it again")
    return None


def remove_stray_temporaries(out: Path) -> None:
    """Temporary files a killed writer left (``.<name>.*.tmp``, :func:`lossland.records.atomic_path`)."""
    for d in (out, out / "checkpoints"):
        for tmp in d.glob(".*.tmp") if d.is_dir() else ():
            tmp.unlink(missing_ok=True)


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
    previous = run.summary if (out / SUMMARY_JSON).exists() else None
    has_records = any((out / name).exists() for name in RECORDS)
    if cfg.get("overwrite"):
        if has_records:
            clear_run_dir(out)
        return "train", None
    if not has_records:
        return "train", None
    same = previous is not None and previous.get("config_digest") == digest
    resume = str(cfg.get("resume", "auto")).lower()
    if previous is not None and not same and never_computed(run, previous):
        log.info("%s: clearing the records of a run that ended before computing anything (%s)", out, run.status)
        clear_run_dir(out)
        return "train", None
    if previous is None or not (same or resume == "true"):
        what = "records of another run" if previous is not None else "files of an unknown run"
        raise LosslandError(f"{out} holds {what}; choose another directory or pass overwrite=true "
                            "(which deletes them)")
    status = run.status
    if status == "running" and previous.get("scheduler_job") and previous["scheduler_job"] == scheduler_job():
        status = "interrupted"  # this job is its own requeued self (SLURM/submitit): the earlier attempt is gone
    if status == "running" and previous.get("pid") == os.getpid() and previous.get("host") == socket.gethostname():
        status = "interrupted"  # an earlier job of this process whose last write failed (a full disk)
    if same and status in ("ok", "diverged") and resume != "true":  # a diverged run would diverge again
        if why := mixed_numbers(out, previous, numbers(cfg)):
            raise LosslandError(why)
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


def never_computed(run: Run, previous: dict) -> bool:
    """A run that failed or was killed before its first step (a bad value found at start, a full disk): its
    directory holds nothing worth keeping, so that the corrected command can use it."""
    if run.status not in ("failed", "interrupted") or int(previous.get("steps") or 0) > 0:
        return False
    ckpts = run.path / "checkpoints"
    return not (ckpts.is_dir() and any(ckpts.glob("*.ckpt"))) and not (run.path / "metrics.csv").exists()


def scheduler_job() -> str | None:
    """The scheduler's id of this job, the same across its requeues (SLURM, submitit's local executor)."""
    for key in ("SLURM_ARRAY_JOB_ID", "SLURM_JOB_ID", "SUBMITIT_LOCAL_JOB_ID"):
        if os.environ.get(key):
            task = os.environ.get("SLURM_ARRAY_TASK_ID") if key == "SLURM_ARRAY_JOB_ID" else None
            return f"{os.environ[key]}_{task}" if task else os.environ[key]
    return None


def agreed(fabric, decide_here):
    """``decide_here()`` on global rank 0, its result (or its refusal) on every rank."""
    if fabric is None or fabric.world_size == 1:
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


# ------------------------------------------------------------------------------------------ the record
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


def stopped_early(trainer) -> dict:
    """``stopped_early``: whether a callback ended the run before its planned end (e.g. at zero training errors,
    ``metrics.convergence.stop_at_zero_error``; a divergence is ``diverged_at_step``)."""
    return {"stopped_early": bool(trainer.should_stop)}


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
        m = trainer.full_pass(split) if hasattr(trainer, "full_pass") else \
            evaluate(module.model, module.loss, dm.eval_loader(split), mode="eval")
        final[f"{split}_loss"], final[f"{split}_error"] = m["loss"], m["error"]
        n = len(dm.splits[split][1])
        final[f"{split}_loss_sum"], final[f"{split}_misclassified"] = m["loss"] * n, int(round(m["error"] * n))
    return final
