"""The one training loop: Lightning Fabric around a LightningModule (:class:`~lossland.module.LandscapeModule`).

One loop (:class:`Loop`) that reads top to bottom: data resident on the device, sliced from a per-epoch
permutation of the ``data`` RNG stream; one optimizer step per mini-batch, its loss checked before the update;
scheduled work (phase metrics, checkpoints) at exactly the step it is due; SIGTERM / SIGINT end it after the
step in progress with ``last.ckpt`` saved. Why Fabric and not ``lightning.Trainer``: the Trainer's per-step
hooks cost more than a small model's SGD step, and exact mid-epoch resumption needs the loop to own the data
order (see docs/architecture.md for the measurements).

Its two public hooks:

- **what one step computes** is the module's ``training_step(batch, step) -> (objective, loss, outputs)`` (and
  ``is_bad(loss)``, what counts as divergence): a study with another step subclasses the module (the NAS search,
  connect's curves), it does not write a loop;
- **who is stepped** is a :class:`Step`: :class:`ModuleStep` steps one :class:`Trainer`'s module; a vectorized
  grid steps many trainers ("members") as one stacked model (:mod:`lossland.sweep.vectorized.step`). Each member
  keeps its own loggers, callbacks, checkpoints and counters; a member that diverges or that a callback stops
  leaves alone.

Checkpoints hold everything a bit-identical resumption needs: weights, optimizer state (ρ0 and the
random-walk generator of sphere SGD included), the epoch's data order, the global RNG, callback state
(phase-metric history) and the step counter. They are written atomically, by global rank 0.

Several devices (``trainer.devices=N``, DDP; :func:`start_fabric`): every rank holds the whole data and the
same permutation; each step's global batch (``data.batch_size``) is split into N equal contiguous slices, one
per rank, and DDP averages the gradients, so for a mean loss a step is the step of one process on the whole
batch. The logged batch loss/error and the divergence check use the whole batch (all-reduced / gathered);
callbacks and evaluations run on every rank over the whole split (identical weights: identical numbers, and
the ranks agree on early stops); only rank 0 writes (its loggers, checkpoints).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.fabric import Fabric
from tqdm.auto import tqdm

from lossland.data.base import block_sizes
from lossland.errors import LosslandError
from lossland.metrics.gradients import evaluate
from lossland.module import stage_means
from lossland.records import atomic_torch_save

CHECKPOINT_VERSION = 2


@dataclass(frozen=True)
class Diverged:
    """The training loss became non-finite (or exceeded ``max_loss``) at ``step``; no update was applied."""

    step: int
    cause: str = "non-finite or too large loss"

    def __str__(self) -> str:
        return f"diverged at step {self.step} ({self.cause})"


class Interrupted(Exception):
    """A SIGTERM / SIGINT arrived; ``last.ckpt`` holds the state at ``step``."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step = signum, step


def start_fabric(accelerator: str = "cpu", devices: int | str = 1, precision: str = "32-true", **_) -> Fabric:
    """The run's Fabric; with more than one device its processes are launched here (DDP): before the run
    decides anything, so that rank 0 can decide and tell the others (:class:`lossland.job.Job`). Fabric's
    launcher re-runs the command for the other local ranks (under Hydra into the same run directory, with
    ``hydra.output_subdir=null``); under SLURM/torchrun the ranks already exist."""
    fabric = Fabric(accelerator=accelerator, devices=devices, precision=precision)
    if fabric.world_size > 1:
        fabric.launch()
    return fabric


class Trainer:
    """One run's side of the loop: its module, data, optimizer, counters, loggers, callbacks and checkpoints,
    with Lightning's names for Lightning's knobs (``accelerator``, ``devices``, ``precision``, ``max_epochs``,
    ``max_steps``, ``deterministic``, ``enable_progress_bar``, ``check_val_every_n_epoch``,
    ``log_every_n_steps``, ``gradient_clip_val``), over Fabric.

    ``max_steps ≥ 0`` bounds the run by optimizer steps (``max_epochs`` is then ignored); otherwise
    ``max_epochs`` epochs. ``log_every_n_steps``: the batch loss/error mean is logged every so many steps
    (and at every due step). ``gradient_clip_val``: the total gradient norm of the optimizer's parameters is
    clipped to it before every update (None: never).
    """

    def __init__(self, accelerator: str = "cpu", devices: int | str = 1, precision: str = "32-true",
                 max_epochs: int | None = 10, max_steps: int = -1, deterministic: bool = False,
                 enable_progress_bar: bool = True, check_val_every_n_epoch: int = 1, log_every_n_steps: int = 16,
                 gradient_clip_val: float | None = None, callbacks: Sequence | None = None,
                 loggers: Sequence | None = None, checkpoint_dir=None, run_info: dict | None = None,
                 fabric: Fabric | None = None):
        # ``fabric``: one already started (:func:`start_fabric`, DDP ranks launched); else a new one
        self.fabric = fabric or Fabric(accelerator=accelerator, devices=devices, precision=precision)
        self.callbacks, self.loggers = list(callbacks or []), list(loggers or [])
        self.max_epochs, self.max_steps = max_epochs, int(max_steps)
        self.deterministic, self.progress = deterministic, enable_progress_bar
        self.check_val_every_n_epoch, self.log_every_n_steps = int(check_val_every_n_epoch), int(log_every_n_steps)
        self.gradient_clip_val = None if gradient_clip_val is None else float(gradient_clip_val)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.run_info = dict(run_info or {})
        self.global_step = self.current_epoch = self.epoch_start_step = 0
        self.datamodule = self.module = self.optimizer = self.wrapped = None
        self.fast = False  # fp32 on one device: Fabric's wrappers add nothing, the loop steps the module itself
        self.should_stop = False  # a callback may end the run early (e.g. at zero training errors)
        self.diverged: Diverged | None = None  # where and why the run diverged
        self.extra_summary: dict = {}  # recorded in the run's summary.json (e.g. a perturbation applied at start)
        self.initial_optimizer_state: dict | None = None  # init_state=continue: the source run's, loaded at setup
        self.given_passes: dict[str, dict[str, float]] = {}  # full passes at the final weights a grid computed
        # the run's job saves last.ckpt after its final evaluations (lossland.job.Job.complete): the loop's own
        # save at the last step, which that one replaces at once, is skipped
        self.job_saves_last = False

    @property
    def total_steps(self) -> int:
        if self.max_steps >= 0:
            return self.max_steps
        return int(self.max_epochs) * self.datamodule.steps_per_epoch

    # -------------------------------------------------------------------------------------- fit
    def fit(self, module, datamodule, resume: dict | None = None) -> None:
        """Train to ``total_steps``, to a callback's stop or to a divergence (``diverged``: its step and cause;
        the weights are those before the bad update). Raises :class:`Interrupted` (after saving ``last.ckpt``)."""
        self.setup(module, datamodule, resume)
        Loop(ModuleStep(self)).run()

    def setup(self, module, datamodule, resume: dict | None = None) -> None:
        """Put the module and the data on the device, build the optimizer (in Fabric's wrappers where they add
        something: several devices, another precision) and restore the checkpoint ``resume``."""
        if self.deterministic:
            torch.use_deterministic_algorithms(True)
        fabric, dm = self.fabric, datamodule
        self.datamodule, self.module = dm, module
        if fabric.world_size > 1 and dm.batch_size % fabric.world_size:
            raise LosslandError(f"data.batch_size={dm.batch_size} does not split evenly across "
                                f"{fabric.world_size} devices (DDP: the global batch is split across the ranks)")
        dm.to(fabric.device)
        fabric.to_device(module)
        optimizer = module.configure_optimizers()
        self.fast = fabric.world_size == 1 and type(fabric.strategy.precision).__name__ == "Precision"
        if self.fast:
            self.wrapped, self.optimizer = module, optimizer
        else:
            self.wrapped, self.optimizer = fabric.setup(module, optimizer, move_to_device=False)
        if resume is not None:
            self._restore(resume)
        elif self.initial_optimizer_state is not None:  # init_state=continue: the optimizer goes on as it was
            self.optimizer.load_state_dict(self.initial_optimizer_state)

    # ------------------------------------------------------------------------------ records
    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Send scalars (plus ``epoch``) to every logger at an optimizer step (default: the current one)."""
        row = {"epoch": self.current_epoch, **metrics}
        row = {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in row.items()}
        for logger in self.loggers:
            logger.log_metrics(metrics=row, step=self.global_step if step is None else step)

    def call(self, hook: str, **kwargs) -> None:
        """Run ``hook`` of every callback that has it (as ``Fabric.call``)."""
        for cb in self.callbacks:
            if callable(fn := getattr(cb, hook, None)):
                fn(**kwargs)

    def flush(self) -> None:
        """Make the records on disk complete up to now (called at every due step)."""
        for logger in self.loggers:
            if hasattr(logger, "save"):
                logger.save()

    def evaluate(self, split: str) -> dict[str, float]:
        """Full-pass mean loss and error (fractions) of ``split`` with BN in eval mode, as ``<split>/loss``,
        ``<split>/error``."""
        return {f"{split}/{k}": v for k, v in self.full_pass(split).items()}

    def full_pass(self, split: str) -> dict[str, float]:
        """``{"loss", "error"}`` of the whole ``split`` at the current weights (BN in eval mode), or the values a
        vectorized grid computed for all its members at once at their final weights (``given_passes``)."""
        if split in self.given_passes:
            return self.given_passes[split]
        return evaluate(self.module.model, self.module.loss, self.datamodule.eval_loader(split), mode="eval")

    # ------------------------------------------------------------------------------ checkpoints
    def checkpoint(self, finite: bool = True) -> dict:
        dm, module = self.datamodule, self.module
        ckpt = {
            "state_dict": module.state_dict(), "global_step": self.global_step, "epoch": self.current_epoch,
            "optimizer_states": [self.optimizer.state_dict()],
            type(dm).__qualname__: dm.state_dict(),  # continue the data order (init_from)
            "lossland": {"version": CHECKPOINT_VERSION, "epoch_start_step": self.epoch_start_step,
                         "rng": torch.get_rng_state(), "threads": torch.get_num_threads(), "finite": finite,
                         **self.run_info,
                         "callbacks": {type(c).__name__: c.state_dict() for c in self.callbacks
                                       if hasattr(c, "state_dict")}},
        }
        if hasattr(module, "on_save_checkpoint"):  # a module's own state beyond its parameters (the NAS search's)
            module.on_save_checkpoint(ckpt)
        return ckpt

    def save_checkpoint(self, path: str | Path, finite: bool = True) -> None:
        self.flush()  # the records first: a kill between the two then loses no row (the resume logs later ones again)
        if self.fabric.is_global_zero:
            atomic_torch_save(self.checkpoint(finite), path)
        self.fabric.barrier()

    def _restore(self, ckpt: dict) -> None:
        meta = ckpt["lossland"]
        self.module.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer_states"][0])
        self.datamodule.load_state_dict(ckpt[type(self.datamodule).__qualname__])
        self.global_step, self.current_epoch = int(ckpt["global_step"]), int(ckpt["epoch"])
        self.epoch_start_step = int(meta["epoch_start_step"])
        torch.set_rng_state(meta["rng"])
        if meta.get("threads"):  # CPU reductions depend on the thread count: a resume never mixes two
            torch.set_num_threads(int(meta["threads"]))
        for c in self.callbacks:
            state = meta["callbacks"].get(type(c).__name__)
            if state is not None:
                c.load_state_dict(state)
        if hasattr(self.module, "on_load_checkpoint"):
            self.module.on_load_checkpoint(ckpt)

    def save_last(self) -> None:
        """``last.ckpt`` (runs without a checkpoint directory: the records only)."""
        if self.checkpoint_dir is not None:
            self.save_checkpoint(self.checkpoint_dir / "last.ckpt")
        else:
            self.flush()


class Step:
    """The loop's pluggable part: one optimizer step of its ``members`` (:class:`Trainer` s, set up), which the
    loop trains together. Per epoch the loop calls :meth:`begin_epoch`; per step :meth:`forward` (the members'
    data losses), :meth:`bad` (members whose loss went bad: they leave before the update), :meth:`update`; at
    the end of a block of steps :meth:`block` for every member still training, then :meth:`end_block`.
    :meth:`sync` comes before anything reads a member's own model (callbacks, evaluations, checkpoints)."""

    def __init__(self, members: Sequence[Trainer]):
        self.members = list(members)

    def begin_epoch(self, replay: bool) -> None:
        """Draw the epoch's batch order (``replay``: the current epoch's again, resuming mid-epoch)."""
        raise NotImplementedError

    def forward(self, pos: int, step: int):
        """Forward (and, if it fits the step, backward) pass of optimizer step ``step`` on batch ``pos`` of the
        epoch; returns the data loss(es) that :meth:`bad` reads."""
        raise NotImplementedError

    def bad(self, loss) -> Sequence[tuple[int, float]]:
        """``(member, loss value)`` of every member whose loss is non-finite or above its ``max_loss``."""
        raise NotImplementedError

    def update(self) -> None:
        """Apply the step to every member still training."""
        raise NotImplementedError

    def block(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Member ``i``'s per-step losses, outputs and targets since the last block (for its batch means)."""
        raise NotImplementedError

    def before_due(self, members: Sequence[int]) -> None:
        """Scheduled work is due now for ``members`` (before their callbacks run): a step of many members may
        measure for all of them at once what their callbacks would measure one by one."""

    def end_block(self) -> None:
        """The block's values have been read."""

    def sync(self, i: int) -> None:
        """Make member ``i``'s own model hold its current weights."""

    def drop(self, i: int) -> None:
        """Member ``i`` stops training (diverged, or stopped by a callback); its weights stay as they are."""


class ModuleStep(Step):
    """One run's step: its module's ``training_step`` on the batch, backward, gradient clipping, the optimizer's
    step. With several devices each rank takes its slice of the global batch; the loss, outputs and targets
    the loop sees are the whole batch's."""

    def __init__(self, trainer: Trainer):
        super().__init__([trainer])
        t, fabric = trainer, trainer.fabric
        self.module, self.fabric, self.fast = t.module, fabric, t.fast
        self.step_module = t.module if t.fast else t.wrapped
        self.optimizer = getattr(t.optimizer, "optimizer", t.optimizer)  # the rates live here
        self.stepper = self.optimizer if t.fast else t.optimizer
        self.dm = t.datamodule
        self.x, self.y = self.dm.splits["train"]
        self.b, self.world, self.rank = self.dm.batch_size, fabric.world_size, fabric.global_rank
        self.share = self.b // self.world  # this rank's slice of each global batch
        self.clip = t.gradient_clip_val
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.order = self.objective = None
        self.losses, self.outputs, self.targets = [], [], []

    def begin_epoch(self, replay: bool) -> None:
        self.order = self.dm.epoch_order(replay=replay)

    def forward(self, pos: int, step: int):
        idx = self.order[pos * self.b:(pos + 1) * self.b]
        if self.world > 1:
            idx = idx[self.rank * self.share:(self.rank + 1) * self.share]
        x, y = self.x[idx], self.y[idx]
        self.module.set_rate(self.optimizer, step)
        self.objective, loss, out = self.step_module.training_step((x, y), step)
        if self.world > 1:  # the whole batch's loss, outputs and targets on every rank
            fabric = self.fabric
            loss = fabric.all_reduce(loss.detach(), reduce_op="mean")
            out, y = fabric.all_gather(out.detach()).flatten(0, 1), fabric.all_gather(y).flatten(0, 1)
        self.losses.append(loss.detach())
        self.outputs.append(out.detach())
        self.targets.append(y)
        return loss

    def bad(self, loss) -> Sequence[tuple[int, float]]:
        return ((0, float(loss.detach())),) if self.module.is_bad(loss) else ()

    def update(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.fast:
            self.objective.backward()
        else:
            self.fabric.backward(self.objective)
        if self.clip is not None:
            if self.fast:
                torch.nn.utils.clip_grad_norm_(self.params, self.clip)
            else:
                self.fabric.clip_gradients(self.step_module, self.stepper, max_norm=self.clip, error_if_nonfinite=False)
        self.stepper.step()

    def block(self, i: int):
        values = torch.stack(self.losses), torch.cat(self.outputs), torch.cat(self.targets)
        self.losses, self.outputs, self.targets = [], [], []
        return values


class Loop:
    """The one training loop, over the members of a :class:`Step`: blocks of steps (a block ends every
    ``log_every_n_steps`` steps and at every due step of a scheduled callback), divergence, due callbacks,
    ``last.ckpt`` at every due step, epoch means and validation, signals. The first member's trainer sets what
    every member shares (length, schedule of due steps, block size, data per epoch, progress bar)."""

    def __init__(self, step: Step):
        self.step, self.members = step, step.members
        lead = self.members[0]
        self.total, self.every = lead.total_steps, lead.log_every_n_steps
        self.steps_per_epoch = lead.datamodule.steps_per_epoch
        self.scheduled = [c for c in lead.callbacks if hasattr(c, "plan")]  # (a plan may be bound at the start)
        self.global_step, self.epoch_start_step = lead.global_step, lead.epoch_start_step
        self.alive = list(range(len(self.members)))  # members still training
        self.stopping: list[int] = []  # members a callback stopped (they end the epoch if this step ends it)
        self.signal: int | None = None
        self.bar = self._progress_bar(lead)
        self.shown = 0.0

    def next_due(self, step: int) -> int | None:
        """The first step after ``step`` at which a scheduled callback is due."""
        return min((n for c in self.scheduled if (n := c.plan.next_due(step)) is not None), default=None)

    def run(self) -> None:
        """Train every member to the end, or until it diverges (``trainer.diverged``) or a callback stops it.
        Raises :class:`Interrupted` on SIGTERM / SIGINT, after every member still training saved ``last.ckpt``."""
        old_handlers = self._install_signals()
        try:
            for m in self.members:
                m.call("on_train_start", trainer=m, module=m.module)
            self.step.before_due(self.alive)
            for m in self.members:
                m.call("on_step", trainer=m, module=m.module)
                m.module.model.train()
            while self.alive and self.global_step < self.total and self.signal is None:
                self._epoch()
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            if self.bar is not None:
                self.bar.close()
        for i in self.alive:  # the final weights, for the final metrics and last.ckpt
            self.step.sync(i)
        if self.signal is not None:
            for i in self.alive:
                self.members[i].save_last()
            raise Interrupted(self.signal, self.global_step)

    def _epoch(self) -> None:
        """The rest of the current epoch (all of it unless resuming mid-epoch), block by block."""
        offset = self.global_step - self.epoch_start_step
        self.step.begin_epoch(replay=offset > 0)
        steps = min(self.steps_per_epoch - offset, self.total - self.global_step)
        if steps == 0:  # resumed from a checkpoint of an epoch's last step, taken before the epoch's end
            self._end_epoch()
        pos = offset
        for size in block_sizes(self.global_step, steps, self.every, self.next_due):
            start = self.global_step
            pos = self._steps(size, pos)
            self._log_block(self.global_step - start)
            if not self.alive:
                return
            if self.next_due(self.global_step - 1) == self.global_step:
                self._due()
            if pos >= self.steps_per_epoch:
                self._end_epoch()
            for i in self.stopping:
                self._leave(i)
            self.stopping.clear()
            self.step.end_block()
            # A signal is honoured once the block, the work due at its last step and the epoch's end (if it ends
            # there) are done: the records up to that step and the block boundaries after a resume are then
            # exactly an uninterrupted run's.
            if self.signal is not None or not self.alive:
                return

    def _steps(self, size: int, pos: int) -> int:
        """Up to ``size`` optimizer steps (fewer when no member is left); returns the position reached in the
        epoch."""
        step, s = self.step, self.global_step
        for _ in range(size):
            loss = step.forward(pos, s)
            if bad := step.bad(loss):  # checked before the update: a diverged member keeps its finite weights
                self._diverge(bad, s)
                if not self.alive:
                    break
            step.update()
            s += 1
            pos += 1
        self.global_step = s
        return pos

    def _diverge(self, bad: Sequence[tuple[int, float]], step: int) -> None:
        for i, value in bad:
            m = self.members[i]
            m.global_step = step
            m.diverged = Diverged(step + 1, "non-finite training loss" if value != value or abs(value) == float("inf")
                                  else f"training loss {value:.4g} > max_loss")
            self._leave(i)

    def _leave(self, i: int) -> None:
        self.step.drop(i)
        self.alive.remove(i)

    def _log_block(self, n: int) -> None:
        """Every member's batch loss and error means over the block (and its optimizer's statistics)."""
        batched = getattr(self.step, "block_means", None)  # a step of many members: all blocks at once
        means = batched(self.alive) if batched is not None and self.alive else None
        for i in self.alive:
            m = self.members[i]
            m.global_step = self.global_step
            if means is not None:
                batch_loss, batch_error = means[i]
            else:
                batch_loss, batch_error = m.module.update_stage("train", *self.step.block(i))
            row = {"train/batch_loss": batch_loss, "train/batch_error": batch_error}
            stats = getattr(getattr(m.optimizer, "optimizer", m.optimizer), "last_stats", None)
            if stats is not None:
                row.update(stats())
            m.log(row)
        if self.bar is not None and n:
            self.bar.update(n)
            if self.alive and time.monotonic() - self.shown >= 1.0:
                self.shown = time.monotonic()
                self.bar.set_postfix(loss=f"{batch_loss:.4g}", refresh=False)

    def _due(self) -> None:
        """The scheduled callbacks of every member, then its ``last.ckpt`` (at the run's last step: unless its
        job saves one at its end, ``job_saves_last``)."""
        self.step.before_due(self.alive)
        end = self.global_step >= self.total
        for i in self.alive:
            m = self.members[i]
            self.step.sync(i)
            m.call("on_step", trainer=m, module=m.module)
            if not (end and m.job_saves_last):
                m.save_last()
            if m.should_stop:
                self.stopping.append(i)

    def _end_epoch(self) -> None:
        """The epoch's training means, then the validation split's (every ``check_val_every_n_epoch``)."""
        self.epoch_start_step = self.global_step
        means = stage_means([self.members[i].module for i in self.alive], "train")  # every member's at once
        for i, row in zip(self.alive, means):
            m = self.members[i]
            m.log(row)
            m.current_epoch += 1
            m.epoch_start_step = self.global_step
            if "val" in m.datamodule.splits and m.current_epoch % m.check_val_every_n_epoch == 0:
                self.step.sync(i)
                m.log(m.evaluate("val"))

    def _progress_bar(self, lead: Trainer):
        if not lead.progress or not lead.fabric.is_global_zero:
            return None
        return tqdm(total=self.total, initial=self.global_step, desc="train", unit="step", dynamic_ncols=True,
                    leave=False)

    def _on_signal(self, signum, frame) -> None:
        self.signal = signum

    def _install_signals(self) -> dict:
        old = {}
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                old[s] = signal.signal(s, self._on_signal)
            except ValueError:  # not the main thread (e.g. a launcher's worker thread): leave it
                pass
        return old
