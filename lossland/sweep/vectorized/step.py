"""The grid's step for the one training loop (:class:`lossland.loop.Loop`): the optimizer step of every member
at once, as one stacked model (:class:`~lossland.sweep.vectorized.stack.Stack`). The loop around it (blocks,
divergence, due callbacks, checkpoints, epochs, signals) is the loop of every run, so each member's records are
those of its sequential run: the same data order per member, the same blocks of logged steps, the callbacks at
the same due steps, ``last.ckpt`` at every due step, the epoch means.

The stacked weights are copied into a member's own model (:meth:`StackStep.sync`) only when something reads
them: its callbacks, evaluations and checkpoints, and (sphere SGD) its optimizer's recorded statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lossland.loop import Step, Trainer
from lossland.optim.schedules import Constant
from lossland.sweep.vectorized.stack import Stack


class StackStep(Step):
    """The members' step as one :class:`Stack`. Members that share the data order (the seed) share each batch;
    the others each take their own. A member that leaves (diverged, stopped by a callback) keeps its weights
    and leaves the stack at the end of the block."""

    def __init__(self, members: Sequence[Trainer]):
        super().__init__(members)
        self.stack = Stack([m.module for m in self.members], [m.optimizer for m in self.members])
        self.constant = all(m.module.schedule is None or isinstance(m.module.schedule, Constant)
                            for m in self.members)
        self.b = self.members[0].datamodule.batch_size
        self.rates: torch.Tensor | None = None  # each member's lr (elr) at this step, over all members
        self.orders: dict[int, torch.Tensor] = {}
        self.shared = True
        self.grads: dict = {}
        self.updates = 0
        self.synced: dict[int, int] = {}  # member -> update count its own model holds
        self.losses, self.outputs, self.targets = [], [], []
        self._block: tuple | None = None

    def begin_epoch(self, replay: bool) -> None:  # the grid never resumes: its unfinished members run alone
        self.orders = {i: self.members[i].datamodule.epoch_order() for i in self.stack.rows}
        first = next(iter(self.orders.values()))
        self.shared = all(torch.equal(first, o) for o in self.orders.values())

    def _batch(self, pos: int):
        sl = slice(pos * self.b, (pos + 1) * self.b)
        if self.shared:
            i = self.stack.rows[0]
            x, y = self.members[i].datamodule.splits["train"]
            idx = self.orders[i][sl]
            return x[idx], y[idx]
        splits = [(self.members[i].datamodule.splits["train"], self.orders[i][sl]) for i in self.stack.rows]
        return torch.stack([x[idx] for (x, _), idx in splits]), torch.stack([y[idx] for (_, y), idx in splits])

    def forward(self, pos: int, step: int):
        st = self.stack
        x, y = self._batch(pos)
        if self.rates is None or not self.constant:
            rates = []
            for m in self.members:
                opt = m.optimizer
                m.module.set_rate(opt, step)
                rates.append(opt.elr if st.sphere else opt.param_groups[0]["lr"])
            self.rates = torch.tensor(rates, dtype=st.params[st.names[0]].dtype)
        self.grads, (loss, out) = st.forward_backward(x, y, self.shared)
        self.losses.append(loss)
        self.outputs.append(out)
        self.targets.append(y)
        return loss

    def bad(self, loss) -> Sequence[tuple[int, float]]:
        st = self.stack
        bad = st.bad(loss) & st.alive
        if not bool(bad.any()):
            return ()
        rows = bad.nonzero().flatten()
        return list(zip(st.members_of(rows), (float(loss[k]) for k in rows.tolist())))

    def update(self) -> None:
        self.stack.update(self.grads, self.rates)
        self.updates += 1

    def block(self, i: int):
        if self._block is None:  # (S, M), (S, M, B, ...), targets: once per block for all members
            self._block = torch.stack(self.losses), torch.stack(self.outputs), \
                torch.cat(self.targets) if self.shared else None
        loss, out, y_shared = self._block
        st, k = self.stack, self.stack.row(i)
        y = y_shared if y_shared is not None else torch.cat([t[k] for t in self.targets])
        if st.sphere:  # what its own step() would record
            self.sync(i)
            opt = self.members[i].optimizer
            opt.record_step(opt.elr, **st.grad_stats(self.grads, i))
        return loss[:, k], out[:, k].flatten(0, 1), y

    def end_block(self) -> None:
        self.stack.compact()  # members that left leave the stack: the next steps compute only the others
        self.losses, self.outputs, self.targets = [], [], []
        self._block = None

    def sync(self, i: int) -> None:
        if self.synced.get(i) != self.updates:
            self.stack.sync(i)
            self.synced[i] = self.updates

    def drop(self, i: int) -> None:
        self.stack.alive[self.stack.row(i)] = False
        self.sync(i)
