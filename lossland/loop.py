"""The training loop: Lightning Fabric around the same :class:`~lossland.module.LandscapeModule`.

One loop that reads top to bottom: data resident on the device, sliced from a per-epoch permutation of
the ``data`` RNG stream; one optimizer step per mini-batch; scheduled work (phase metrics, checkpoints)
at exactly the step it is due. Why Fabric and not ``lightning.Trainer``: the Trainer's per-step hooks cost
more than a small model's SGD step, and exact mid-epoch resumption needs the loop to own the data order
(see docs/architecture.md for the measurements).

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
from pathlib import Path

import torch
from lightning.fabric import Fabric
from tqdm.auto import tqdm

from lossland.data.base import block_sizes
from lossland.errors import LosslandError
from lossland.metrics.gradients import evaluate
from lossland.records import atomic_torch_save

CHECKPOINT_VERSION = 2


class Diverged(Exception):
    """The training loss became non-finite (or exceeded ``max_loss``) at ``step``."""

    def __init__(self, step: int, cause: str = "non-finite or too large loss"):
        super().__init__(f"diverged at step {step} ({cause})")
        self.step, self.cause = step, cause


class Interrupted(Exception):
    """A SIGTERM / SIGINT arrived; ``last.ckpt`` holds the state at ``step``."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step = signum, step


def start_fabric(accelerator: str = "cpu", devices: int | str = 1, precision: str = "32-true", **_) -> Fabric:
    """The run's Fabric; with more than one device its processes are launched here (DDP): before the run
    decides anything, so that rank 0 can decide and tell the others (:func:`lossland.train.run`). Fabric's
    launcher re-runs the command for the other local ranks (under Hydra into the same run directory, with
    ``hydra.output_subdir=null``); under SLURM/torchrun the ranks already exist."""
    fabric = Fabric(accelerator=accelerator, devices=devices, precision=precision)
    if fabric.world_size > 1:
        fabric.launch()
    return fabric


class Trainer:
    """Lightning's names for Lightning's knobs (``accelerator``, ``devices``, ``precision``, ``max_epochs``,
    ``max_steps``, ``deterministic``, ``enable_progress_bar``, ``check_val_every_n_epoch``), over Fabric.

    ``max_steps ≥ 0`` bounds the run by optimizer steps (``max_epochs`` is then ignored); otherwise
    ``max_epochs`` epochs. ``log_every_n_steps``: the batch loss/error mean is logged every so many steps
    (and at every due step).
    """

    def __init__(self, accelerator: str = "cpu", devices: int | str = 1, precision: str = "32-true",
                 max_epochs: int | None = 10, max_steps: int = -1, deterministic: bool = False,
                 enable_progress_bar: bool = True, check_val_every_n_epoch: int = 1, log_every_n_steps: int = 16,
                 callbacks: Sequence | None = None, loggers: Sequence | None = None, checkpoint_dir=None,
                 run_info: dict | None = None, fabric: Fabric | None = None):
        # ``fabric``: one already started (:func:`start_fabric`, DDP ranks launched); else a new one
        self.fabric = fabric or Fabric(accelerator=accelerator, devices=devices, precision=precision)
        self.callbacks, self.loggers = list(callbacks or []), list(loggers or [])
        self.max_epochs, self.max_steps = max_epochs, int(max_steps)
        self.deterministic, self.progress = deterministic, enable_progress_bar
        self.check_val_every_n_epoch, self.log_every_n_steps = int(check_val_every_n_epoch), int(log_every_n_steps)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.run_info = dict(run_info or {})
        self.global_step = self.current_epoch = self.epoch_start_step = 0
        self.datamodule = self.module = self.optimizer = None
        self._signal: int | None = None
        self._fast = False
        self.should_stop = False  # a callback may end the run early (e.g. at zero training errors)
        self.extra_summary: dict = {}  # recorded in the run's summary.json (e.g. a perturbation applied at start)

    # ------------------------------------------------------------------------------ public hooks
    @property
    def total_steps(self) -> int:
        if self.max_steps >= 0:
            return self.max_steps
        return int(self.max_epochs) * self.datamodule.steps_per_epoch

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

    # ------------------------------------------------------------------------------ checkpoints
    def checkpoint(self, finite: bool = True) -> dict:
        dm, module = self.datamodule, self.module
        return {
            "state_dict": module.state_dict(), "global_step": self.global_step, "epoch": self.current_epoch,
            "optimizer_states": [self.optimizer.state_dict()],
            type(dm).__qualname__: dm.state_dict(),  # continue the data order (init_from)
            "lossland": {"version": CHECKPOINT_VERSION, "epoch_start_step": self.epoch_start_step,
                         "rng": torch.get_rng_state(), "threads": torch.get_num_threads(), "finite": finite,
                         **self.run_info,
                         "callbacks": {type(c).__name__: c.state_dict() for c in self.callbacks
                                       if hasattr(c, "state_dict")}},
        }

    def save_checkpoint(self, path: str | Path, finite: bool = True) -> None:
        if self.fabric.is_global_zero:
            atomic_torch_save(self.checkpoint(finite), path)
        self.flush()
        self.fabric.barrier()

    def _restore(self, ckpt: dict) -> None:
        meta = ckpt["lossland"]
        self.module.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer_states"][0])
        self.datamodule.load_state_dict(ckpt[type(self.datamodule).__qualname__])
        self.global_step, self.current_epoch = int(ckpt["global_step"]), int(ckpt["epoch"])
        self.epoch_start_step = int(meta["epoch_start_step"])
        torch.set_rng_state(meta["rng"])
        if self.deterministic and meta.get("threads"):  # CPU reductions depend on the thread count
            torch.set_num_threads(int(meta["threads"]))
        for c in self.callbacks:
            state = meta["callbacks"].get(type(c).__name__)
            if state is not None:
                c.load_state_dict(state)

    # ---------------------------------------------------------------------------------- signals
    def _on_signal(self, signum, frame) -> None:
        self._signal = signum

    def _install_signals(self):
        old = {}
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                old[s] = signal.signal(s, self._on_signal)
            except ValueError:  # not the main thread (e.g. a launcher's worker thread): leave it
                pass
        return old

    # -------------------------------------------------------------------------------------- fit
    def fit(self, module, datamodule, resume: dict | None = None) -> None:
        """Train to ``total_steps``. Raises :class:`Diverged` (after saving the last finite weights) or
        :class:`Interrupted` (after saving ``last.ckpt``)."""
        if self.deterministic:
            torch.use_deterministic_algorithms(True)
        fabric, dm = self.fabric, datamodule
        self.datamodule, self.module = dm, module
        if fabric.world_size > 1 and dm.batch_size % fabric.world_size:
            raise LosslandError(f"data.batch_size={dm.batch_size} does not split evenly across "
                                f"{fabric.world_size} devices (DDP: the global batch is split across the ranks)")
        dm.to(fabric.device)
        fabric.to_device(module)
        self.optimizer = module.configure_optimizers()
        wrapped, self.optimizer = fabric.setup(module, self.optimizer, move_to_device=False)
        self._fast = fabric.world_size == 1 and str(fabric.strategy.precision.__class__.__name__) == "Precision"
        if resume is not None:
            self._restore(resume)
        old_handlers = self._install_signals()
        try:
            self.call("on_train_start", trainer=self, module=module)
            self.call("on_step", trainer=self, module=module)
            self._train(wrapped if not self._fast else module)
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)

    def _train(self, step_module) -> None:
        fabric, dm, module, opt = self.fabric, self.datamodule, self.module, self.optimizer
        optimizer = getattr(opt, "optimizer", opt)
        stepper = optimizer if self._fast else opt  # fp32 on one device: nothing for Fabric to add
        total = self.total_steps
        bar = self._progress_bar(total)
        scheduled = [c for c in self.callbacks if hasattr(c, "plan")]

        def next_due(step):
            return min((n for c in scheduled if (n := c.plan.next_due(step)) is not None), default=None)

        module.model.train()
        last_show = 0.0
        try:
            while self.global_step < total and self._signal is None and not self.should_stop:
                # resuming mid-epoch: the epoch's permutation again, from the step reached
                order = dm.epoch_order(replay=self.global_step > self.epoch_start_step)
                offset = self.global_step - self.epoch_start_step
                steps = min(dm.steps_per_epoch - offset, total - self.global_step)
                blocks = block_sizes(self.global_step, steps, self.log_every_n_steps, next_due)
                x_all, y_all = dm.splits["train"]
                b = dm.batch_size
                world, rank = fabric.world_size, fabric.global_rank
                share = b // world  # this rank's slice of each global batch
                pos = offset
                for size in blocks:
                    losses, outputs, targets = [], [], []
                    for _ in range(size):
                        idx = order[pos * b:(pos + 1) * b]
                        if world > 1:
                            idx = idx[rank * share:(rank + 1) * share]
                        x, y = x_all[idx], y_all[idx]
                        module.set_rate(optimizer, self.global_step)
                        objective, loss, out = step_module.training_step((x, y), self.global_step)
                        if world > 1:  # the whole batch's loss, outputs and targets on every rank
                            loss = fabric.all_reduce(loss.detach(), reduce_op="mean")
                            out, y = fabric.all_gather(out.detach()).flatten(0, 1), fabric.all_gather(y).flatten(0, 1)
                        if module.is_bad(loss):
                            value = float(loss.detach())
                            raise Diverged(self.global_step + 1, "non-finite training loss" if value != value
                                           or abs(value) == float("inf") else f"training loss {value:.4g} > max_loss")
                        optimizer.zero_grad(set_to_none=True)
                        if self._fast:
                            objective.backward()
                        else:
                            fabric.backward(objective)
                        stepper.step()
                        self.global_step += 1
                        pos += 1
                        losses.append(loss.detach())
                        outputs.append(out.detach())
                        targets.append(y)
                    batch_loss, batch_error = module.update_stage(
                        "train", torch.stack(losses), torch.cat(outputs), torch.cat(targets))
                    row = {"train/batch_loss": batch_loss, "train/batch_error": batch_error}
                    stats = getattr(optimizer, "last_stats", None)
                    if stats is not None:
                        row.update(stats())
                    self.log(row)
                    if bar is not None:
                        bar.update(len(losses))
                        if time.monotonic() - last_show >= 1.0:
                            last_show = time.monotonic()
                            bar.set_postfix(loss=f"{batch_loss:.4g}", refresh=False)
                    if next_due(self.global_step - 1) == self.global_step:
                        self.call("on_step", trainer=self, module=module)
                        self._save_last()
                        if self.should_stop:
                            break
                    # A signal is honoured once the block (at most steps_per_call steps) and the work due at its
                    # last step are done (below: and the epoch's end, if it ends there): the records up to that
                    # step and the block boundaries after a resume are then exactly an uninterrupted run's.
                    if self._signal is not None:
                        break
                if pos >= dm.steps_per_epoch:  # the epoch is complete
                    self.log(module.compute_stage("train"))
                    self.current_epoch += 1
                    self.epoch_start_step = self.global_step
                    if "val" in dm.splits and self.current_epoch % self.check_val_every_n_epoch == 0:
                        self.log(self.evaluate("val"))
                if self._signal is not None:
                    break
        finally:
            if bar is not None:
                bar.close()
        if self._signal is not None:
            self.save_checkpoint(self.checkpoint_dir / "last.ckpt")
            raise Interrupted(self._signal, self.global_step)

    def _save_last(self) -> None:
        if self.checkpoint_dir is not None:
            self.save_checkpoint(self.checkpoint_dir / "last.ckpt")

    def _progress_bar(self, total: int):
        if not self.progress or not self.fabric.is_global_zero:
            return None
        return tqdm(total=total, initial=self.global_step, desc="train", unit="step", dynamic_ncols=True,
                    leave=False)

    def evaluate(self, split: str) -> dict[str, float]:
        """Full-pass mean loss and error (fractions) of ``split`` with BN in eval mode, as ``<split>/loss``,
        ``<split>/error``."""
        m = evaluate(self.module.model, self.module.loss, self.datamodule.eval_loader(split), mode="eval")
        return {f"{split}/{k}": v for k, v in m.items()}
