"""The members of a vectorized grid: each an ordinary job (:class:`lossland.job.Job`: its directory, summary,
config, metrics, checkpoints) prepared by :func:`lossland.train.prepare`, trained together in lockstep.

Each member's phase metrics, checkpoints and ``metrics.csv`` are the ones its sequential run writes. Only the
forward / backward / update of the training steps are shared (:class:`Stack`); the loop around them is
:class:`lossland.loop.Trainer`'s, step for step: the same data order per member, the same blocks of logged
steps, the callbacks at the same due steps, ``last.ckpt`` at every due step, the epoch means.

Members whose directory holds a finished run are skipped; members with an unfinished run resume one by one
through :func:`lossland.train.run` (their own resume path). A SIGTERM / SIGINT saves every member's
``last.ckpt`` and records it ``interrupted``; the same command resumes them (sequentially).
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from lossland.build import build_data, build_loss, build_model
from lossland.config import compose
from lossland.data.base import block_sizes
from lossland.errors import LosslandError
from lossland.job import Job
from lossland.loop import Diverged, Interrupted
from lossland.optim.schedules import Constant
from lossland.records import atomic_write
from lossland.schema import validate
from lossland.sweep.launchers import launcher_kind
from lossland.sweep.vectorized.fast import stacked_mlp
from lossland.sweep.vectorized.stack import Stack, check_model, check_stackable
from lossland.train import prepare
from lossland.train import run as run_one

log = logging.getLogger("lossland")


def launch_grid(jobs: list[list[str]], config_name: str, task_overrides: list[str]) -> list[tuple[str, str]]:
    """Run the jobs of a multirun as one vectorized grid in Hydra's sweep layout
    (``<hydra.sweep.dir>/<job number>/``, each with ``.hydra/config.yaml`` and ``overrides.yaml``).
    Returns the failed jobs as (directory, reason)."""
    hydra_cfg = compose(jobs[0], config_name, return_hydra_config=True).hydra
    if (kind := launcher_kind(hydra_cfg.launcher)) != "basic":
        raise LosslandError(f"grid=vectorized trains the whole grid in this process; it does not run on "
                            f"hydra/launcher={kind} (drop one of the two)")
    sweep = Path(hydra_cfg.sweep.dir)
    sweep.mkdir(parents=True, exist_ok=True)
    atomic_write(sweep / "multirun.yaml", OmegaConf.to_yaml(
        {"hydra": {"mode": "MULTIRUN", "sweep": {"dir": str(sweep)}, "overrides": {"task": task_overrides}},
         "grid": "vectorized"}))
    cfgs = []
    jobs = [[o for o in job if not o.startswith(("hydra.", "hydra/"))] for job in jobs]  # Hydra's task overrides
    for num, overrides in enumerate(jobs):
        cfg = compose(overrides, config_name)
        cfg.out_dir = str(sweep / str(num))
        atomic_write(sweep / str(num) / ".hydra" / "overrides.yaml", OmegaConf.to_yaml(list(overrides)))
        cfgs.append(cfg)
    print(f"lossland: grid=vectorized: {len(cfgs)} jobs in {sweep}/", flush=True)
    summaries = run_grid(cfgs, jobs)
    return [(str(c.out_dir), str(s.get("error", s["status"]))) for c, s in zip(cfgs, summaries)
            if s["status"] in ("failed", "interrupted")]


def run_grid(cfgs: list[DictConfig], overrides: list[list[str]] | None = None) -> list[dict]:
    """Train the jobs ``cfgs`` (each with its own ``out_dir``) as one stacked model; returns each job's
    summary. Raises :class:`LosslandError` (one line) when they do not stack."""
    overrides = overrides or [[] for _ in cfgs]
    for cfg in cfgs:
        validate(cfg)
    check_stackable(cfgs)
    results: list[dict | None] = [None] * len(cfgs)
    jobs = [Job(cfg, Path(cfg.out_dir), overrides=o) for cfg, o in zip(cfgs, overrides)]
    fresh = []
    for i, job in enumerate(jobs):
        action = job.open()
        if action == "skip":
            results[i] = job.summary
        elif action == "resume":  # its own resume path, one member at a time
            results[i] = _sequential(cfgs[i])
        else:
            fresh.append(i)
    if fresh and not worth_stacking(cfgs[fresh[0]]):
        print("lossland: grid=vectorized: this model has no stacked fast path (the vmap path measured no faster "
              "than sequential runs, docs/scale.md): running the jobs one after another; grid=vmap forces it",
              flush=True)
        for i in fresh:
            results[i] = _sequential(cfgs[i])
    elif len(fresh) == 1:
        results[fresh[0]] = _sequential(cfgs[fresh[0]])
    elif fresh:
        for i, summary in zip(fresh, train_members([jobs[i] for i in fresh])):
            results[i] = summary
    return results


def worth_stacking(cfg: DictConfig) -> bool:
    """``grid=vmap``: always; ``grid=vectorized``: when the model has the stacked fast path (MLPs).
    Refuses models that do not stack (dropout) before any member starts."""
    model = build_model(cfg, build_data(cfg), build_loss(cfg))
    check_model(model)
    return str(cfg.get("grid")) == "vmap" or stacked_mlp(model) is not None


def _sequential(cfg: DictConfig) -> dict:
    try:
        return run_one(cfg)
    except LosslandError as e:
        return {"status": "failed", "error": str(e)}


class Member:
    """One job of the grid in training: its :class:`Job` and (once prepared) its trainer, module and data."""

    def __init__(self, job: Job):
        self.job, self.cfg, self.out = job, job.cfg, job.out
        self.trainer = self.module = self.dm = None
        self.stopped: str | None = None  # "diverged" / "stopped" (by a callback)

    def prepare(self) -> None:
        self.trainer, self.module, self.dm = prepare(self.cfg, self.out, self.job.run_id, None)
        self.job.attach(self.trainer)
        tr = self.trainer
        tr.datamodule, tr.module = self.dm, self.module
        self.dm.to(tr.fabric.device)
        self.module.to(tr.fabric.device)
        tr.optimizer = self.module.configure_optimizers()

    def finish(self, index: int, size: int) -> dict:
        """End the member's job as its sequential run ends (its own failure is recorded; the others go on)."""
        job = self.job
        if job.summary["status"] == "running" and self.trainer is not None:
            try:
                job.complete(self.trainer)
            except Exception as e:  # noqa: BLE001 - recorded in this member only
                job.fail(e)
        job.summary["grid"] = {"vectorized": True, "members": size, "index": index}
        return job.finish()


def train_members(jobs: list[Job]) -> list[dict]:
    """Start every member's job, train them in lockstep, and end each one as its sequential run ends."""
    members = [Member(job) for job in jobs]
    received: list[int] = []
    old = {}
    for s in (signal.SIGTERM, signal.SIGINT):
        try:
            old[s] = signal.signal(s, lambda signum, frame: received.append(signum))
        except ValueError:  # not the main thread
            pass
    try:
        for job in jobs:
            job.start()
        for m in members:
            m.prepare()
        Lockstep(members, Stack([m.module for m in members], [m.trainer.optimizer for m in members]),
                 received).run()
    except Exception as e:  # recorded in every member still training; the sweep lists them as failed
        for m in members:
            if m.stopped is None:
                m.job.fail(e)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return [m.finish(i, len(members)) for i, m in enumerate(members)]


class Lockstep:
    """:meth:`lossland.loop.Trainer._train` for all members at once: the same blocks, due steps and epochs."""

    def __init__(self, members: list[Member], stack: Stack, signals: list[int]):
        self.members, self.stack, self.signals = members, stack, signals
        self.lead = members[0].trainer
        self.constant = all(m.module.schedule is None or isinstance(m.module.schedule, Constant) for m in members)
        self.rates: torch.Tensor | None = None

    def alive(self) -> list[int]:
        return [i for i, m in enumerate(self.members) if m.stopped is None]

    def run(self) -> None:
        for m in self.members:
            tr = m.trainer
            if tr.deterministic:
                torch.use_deterministic_algorithms(True)
            tr.call("on_train_start", trainer=tr, module=m.module)
            tr.call("on_step", trainer=tr, module=m.module)
            m.module.model.train()
        lead = self.lead
        total = lead.total_steps
        scheduled = [c for c in lead.callbacks if hasattr(c, "plan")]

        def next_due(step):
            return min((n for c in scheduled if (n := c.plan.next_due(step)) is not None), default=None)

        dm0 = self.members[0].dm
        step = 0
        while step < total and self.alive() and not self.signals:
            orders = [m.dm.epoch_order() for m in self.members]
            shared = all(torch.equal(orders[0], o) for o in orders[1:])
            steps = min(dm0.steps_per_epoch, total - step)
            pos = 0
            for size in block_sizes(step, steps, lead.log_every_n_steps, next_due):
                losses, outputs, targets, grads = [], [], [], None
                for _ in range(size):
                    grads = self._step(orders, shared, pos, step, losses, outputs, targets)
                    step += 1
                    pos += 1
                self._end_block(losses, outputs, targets, grads, shared, due=next_due(step - 1) == step)
                self.stack.compact()  # stopped members leave the stack: the next steps compute only the others
                if self.signals or not self.alive():
                    break
            if self.signals or pos < dm0.steps_per_epoch:
                continue  # the while condition ends the run
            for i in self.alive():  # the epoch is complete
                tr, m = self.members[i].trainer, self.members[i]
                tr.log(m.module.compute_stage("train"))
                tr.current_epoch += 1
                tr.epoch_start_step = tr.global_step
                if "val" in m.dm.splits and tr.current_epoch % tr.check_val_every_n_epoch == 0:
                    self.stack.sync(i)
                    tr.log(tr.evaluate("val"))
        for i in self.alive():  # the final weights, for the final metrics and last.ckpt
            self.stack.sync(i)
        if self.signals:
            for i in self.alive():
                tr = self.members[i].trainer
                tr.save_checkpoint(tr.checkpoint_dir / "last.ckpt")
            raise Interrupted(self.signals[0], self.lead.global_step)

    def _step(self, orders, shared, pos, step, losses, outputs, targets):
        st, members = self.stack, self.members
        b = members[0].dm.batch_size
        if shared:
            x_all, y_all = members[0].dm.splits["train"]
            idx = orders[0][pos * b:(pos + 1) * b]
            x, y = x_all[idx], y_all[idx]
        else:
            xs, ys = zip(*((members[i].dm.splits["train"][0][orders[i][pos * b:(pos + 1) * b]],
                            members[i].dm.splits["train"][1][orders[i][pos * b:(pos + 1) * b]]) for i in st.rows))
            x, y = torch.stack(xs), torch.stack(ys)
        if self.rates is None or not self.constant:  # each member's rate at this step
            rates = []
            for m in members:
                m.module.set_rate(m.trainer.optimizer, step)
                opt = m.trainer.optimizer
                rates.append(opt.elr if st.sphere else opt.param_groups[0]["lr"])
            self.rates = torch.tensor(rates, dtype=st.params[st.names[0]].dtype)
        grads, (loss, out) = st.forward_backward(x, y, shared)
        bad = st.bad(loss) & st.alive
        if bool(bad.any()):
            for k, i in zip(bad.nonzero().flatten().tolist(), st.members_of(bad.nonzero().flatten())):
                value = float(loss[k])
                cause = ("non-finite training loss" if value != value or abs(value) == float("inf")
                         else f"training loss {value:.4g} > max_loss")
                self._stop(i, "diverged", step + 1, cause)
        st.update(grads, self.rates)
        for i in self.alive():
            members[i].trainer.global_step += 1
        losses.append(loss.detach())
        outputs.append(out.detach())
        targets.append(y)
        return grads

    def _stop(self, i: int, why: str, step: int | None = None, cause: str | None = None) -> None:
        m = self.members[i]
        self.stack.alive[self.stack.row(i)] = False
        self.stack.sync(i)
        m.stopped = why
        if why == "diverged":
            m.trainer.diverged = Diverged(step, cause)

    def _end_block(self, losses, outputs, targets, grads, shared, due: bool) -> None:
        st = self.stack
        loss, out = torch.stack(losses), torch.stack(outputs)  # (S, M), (S, M, B, ...)
        y_shared = torch.cat(targets) if shared else None
        for i in self.alive():
            m = self.members[i]
            if st.sphere or due:  # what reads the member's own weights: its optimizer's statistics, callbacks
                st.sync(i)
            k = st.row(i)
            y = y_shared if shared else torch.cat([t[k] for t in targets])
            batch_loss, batch_error = m.module.update_stage("train", loss[:, k], out[:, k].flatten(0, 1), y)
            row = {"train/batch_loss": batch_loss, "train/batch_error": batch_error}
            opt = m.trainer.optimizer
            if st.sphere:
                opt.record_step(opt.elr, **st.grad_stats(grads, i))  # what its own step() would record
                row.update(opt.last_stats())
            m.trainer.log(row)
            if due and not self.signals:
                tr = m.trainer
                tr.call("on_step", trainer=tr, module=m.module)
                tr.save_checkpoint(tr.checkpoint_dir / "last.ckpt")
                if tr.should_stop:
                    self._stop(i, "stopped")
