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
from lossland.module import add_to_means
from lossland.optim.schedules import Constant
from lossland.sweep.vectorized.measure import due_phase_metrics
from lossland.sweep.vectorized.stack import Stack

# A training split up to this size is gathered into its epoch's order once per epoch (the steps then take views);
# a larger one batch by batch (one copy of it per grid is then too much memory for what it saves).
GATHER_EPOCH_BYTES = 64 * 2**20


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
        self.row_rates: torch.Tensor | None = None  # the same over the stacked rows
        self.orders: dict[int, torch.Tensor] = {}
        self.shared = True
        self.epoch_data: tuple | None = None  # (order, x, y): the shared training split gathered in its epoch's order
        self.grads: dict = {}
        self.updates = 0
        self.synced: dict[int, int] = {}  # member -> update count its own model holds
        self.losses, self.outputs, self.targets = [], [], []
        self._block: tuple | None = None
        # each member's training means (MeanMetric of its loss and of its error), which every block adds to
        self.train_means = [(m.module.stage_metrics["train_"]["loss"], m.module.stage_metrics["train_"]["error"])
                            for m in self.members]

    def begin_epoch(self, replay: bool) -> None:  # the grid never resumes: its unfinished members run alone
        self.orders, drawn = {}, []  # drawn: (data module, its order) of the members that drew this epoch's
        for i in self.stack.rows:
            dm = self.members[i].datamodule
            order = next((o for d, o in drawn if dm.follow(d)), None)  # one draw per data order (seed)
            if order is None:
                order = dm.epoch_order()
                drawn.append((dm, order))
            self.orders[i] = order
        self._group()

    def _group(self) -> None:
        """Members with the same data order (the same seed) take the same batch: each step gathers one batch per
        distinct order and hands each stacked row its group's (one indexing for all rows)."""
        rows = self.stack.rows
        self.grouped_rows = list(rows)
        x0 = self.members[rows[0]].datamodule.splits["train"][0]
        same_data = all(self.members[i].datamodule.splits["train"][0] is x0 for i in rows)
        uniq: list[torch.Tensor] = []
        group = []
        for i in rows:
            o = self.orders[i]
            k = next((k for k, u in enumerate(uniq) if u is o or torch.equal(u, o)), None) if same_data else None
            if k is None:
                uniq.append(o)
                k = len(uniq) - 1
            group.append(k)
        self.uniq = uniq
        self.shared = len(uniq) == 1
        self.group = torch.tensor(group)
        self.identity = group == list(range(len(rows)))
        if not self.shared or x0.numel() * x0.element_size() > GATHER_EPOCH_BYTES:
            self.epoch_data = None
        elif self.epoch_data is None or self.epoch_data[0] is not uniq[0]:  # a new epoch's order
            y0 = self.members[rows[0]].datamodule.splits["train"][1]
            self.epoch_data = uniq[0], x0.index_select(0, uniq[0]), y0.index_select(0, uniq[0])

    def _batch(self, pos: int):
        if self.stack.rows != self.grouped_rows:  # members left the stack
            self._group()
        sl = slice(pos * self.b, (pos + 1) * self.b)
        if self.epoch_data is not None:
            return self.epoch_data[1][sl], self.epoch_data[2][sl]  # views of the epoch's data in its order
        if self.shared:
            x, y = self.members[self.stack.rows[0]].datamodule.splits["train"]
            idx = self.uniq[0][sl]
            return x.index_select(0, idx), y.index_select(0, idx)
        if self.identity:  # one order per member (its own data)
            splits = [(self.members[i].datamodule.splits["train"], self.orders[i][sl]) for i in self.stack.rows]
            return torch.stack([x[idx] for (x, _), idx in splits]), torch.stack([y[idx] for (_, y), idx in splits])
        x, y = self.members[self.stack.rows[0]].datamodule.splits["train"]
        idx = torch.stack([u[sl] for u in self.uniq])[self.group]  # (rows, B)
        return x[idx], y[idx]

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
            self.row_rates = None
        self.grads, (loss, out) = st.forward_backward(x, y, self.shared, fuse=True)  # plain SGD: grads in update
        self.losses.append(loss)
        self.outputs.append(out)
        self.targets.append(y)
        return loss

    def bad(self, loss) -> Sequence[tuple[int, float]]:
        st = self.stack
        bad = st.bad(loss)  # None: every loss is fine
        if bad is None:
            return ()
        bad &= st.alive
        if not bool(bad.any()):
            return ()
        rows = bad.nonzero().flatten()
        return list(zip(st.members_of(rows), (float(loss[k]) for k in rows.tolist())))

    def update(self) -> None:
        if self.row_rates is None:  # the rates of the stacked rows (until the rates or the rows change)
            rows = self.stack.rows
            self.row_rates = self.rates if len(rows) == len(self.rates) else self.rates[rows]
        self.stack.update(self.grads, self.row_rates)
        self.updates += 1

    def _stacked_block(self):
        if self._block is None:  # (S, M), (S, M, B, ...), targets (S, B) shared or (S, M, B): once per block
            self._block = torch.stack(self.losses), torch.stack(self.outputs), torch.stack(self.targets)
        return self._block

    def block(self, i: int):
        loss, out, y = self._stacked_block()
        k = self.stack.row(i)
        self._record_sphere(i)
        return loss[:, k], out[:, k].flatten(0, 1), (y if self.shared else y[:, k]).flatten()

    def _record_sphere(self, i: int) -> None:
        if self.stack.sphere:  # what its own step() would record
            self.sync(i)
            opt = self.members[i].optimizer
            opt.record_step(opt.elr, **self.stack.grad_stats(self.grads, i))

    @torch.no_grad()
    def block_means(self, members) -> dict[int, tuple[float, float]]:
        """Every member's block at once (the loop calls this instead of :meth:`block` per member): the
        per-member sums go straight into each module's training means (the states ``MeanMetric.update`` adds to;
        the members still training have finite losses)."""
        loss, out, y = self._stacked_block()
        rows = [self.stack.row(i) for i in members]
        sel = torch.tensor(rows)
        loss = loss[:, sel].t().contiguous()  # (members, S)
        out = out[:, sel]  # (S, members, B, ...)
        pred = self.members[members[0]].module.loss.predict(out.flatten(0, 2)).reshape(out.shape[:3])
        target = y.unsqueeze(1) if self.shared else y[:, sel]
        wrong = (pred != target).to(loss.dtype).transpose(0, 1).reshape(len(rows), -1)  # (members, S·B)
        sums = torch.stack([loss.sum(1), wrong.sum(1), loss.mean(1), wrong.mean(1)], 1).tolist()
        n_loss, n_wrong = loss.shape[1], wrong.shape[1]
        means, updates = {}, []
        for i, (ls, ws, lm, wm) in zip(members, sums):
            loss_mean, error_mean = self.train_means[i]
            updates += [(loss_mean, ls, n_loss), (error_mean, ws, n_wrong)]
            self._record_sphere(i)
            means[i] = (lm, wm)
        add_to_means(updates)
        return means

    def before_due(self, members) -> None:
        """The members' phase metrics due now, measured all at once (:mod:`~lossland.sweep.vectorized.measure`)."""
        due_phase_metrics(self.stack, [(i, self.members[i]) for i in members], self.members[members[0]].global_step
                          if members else 0)

    def end_block(self) -> None:
        self.stack.compact()  # members that left leave the stack: the next steps compute only the others
        self.row_rates = None
        self.losses, self.outputs, self.targets = [], [], []
        self._block = None

    def sync(self, i: int) -> None:
        if self.synced.get(i) != self.updates:
            self.stack.sync(i)
            self.synced[i] = self.updates

    def drop(self, i: int) -> None:
        self.stack.alive[self.stack.row(i)] = False
        self.sync(i)

