"""The stacked update rules of a vectorized grid (lossland/optim/stacked.py) against ``torch.optim``, member by
member: each member's weights after every step equal those its own optimizer reaches on the same batches, with
hyperparameters that differ between members; members that left the stack keep their weights."""

import pytest
import torch

from lossland.build import build_data, build_loss, build_model, build_optimizer
from lossland.config import compose
from lossland.module import LandscapeModule
from lossland.sweep.vectorized.stack import Stack

MLP = ["data=digits", "model=mlp", "model.hidden=[16]", "data.batch_size=32", "logger=none"]
RULES = {  # name: (overrides, per-member optimizer overrides)
    "sgd": (["optimizer=sgd"], [{}, {}]),
    "sgd_weight_decay": (["optimizer=sgd", "+optimizer.weight_decay=0"],
                         [{"weight_decay": 1e-3}, {"weight_decay": 0.1}]),
    "momentum": (["optimizer=momentum"], [{"momentum": 0.9}, {"momentum": 0.5}]),
    "momentum_dampening_decay": (["optimizer=momentum", "+optimizer.dampening=0.1", "+optimizer.weight_decay=1e-2"],
                                 [{}, {"weight_decay": 0.0}]),
    "nesterov": (["optimizer=nesterov"], [{"momentum": 0.9}, {"momentum": 0.7}]),
    "adam": (["optimizer=adam"], [{}, {"betas": (0.8, 0.99), "eps": 1e-6}]),
    "adam_weight_decay": (["optimizer=adam", "+optimizer.weight_decay=1e-2"], [{}, {"weight_decay": 0.0}]),
    "adamw": (["optimizer=adam", "optimizer._target_=torch.optim.AdamW", "+optimizer.weight_decay=1e-2"],
              [{}, {"weight_decay": 0.1}]),
}


def _members(overrides, per_member, lrs, dtype):
    cfg = compose([*MLP, *overrides])
    dm, loss = build_data(cfg), build_loss(cfg)
    dm.splits = {k: (x.to(dtype), y) for k, (x, y) in dm.splits.items()}
    modules, opts = [], []
    for k, (lr, extra) in enumerate(zip(lrs, per_member)):
        torch.manual_seed(k)
        model = build_model(cfg, dm, loss).to(dtype)
        module = LandscapeModule(model, loss, build_optimizer(cfg, model, dm))
        opt = module.configure_optimizers()
        opt.param_groups[0].update(lr=lr, **extra)
        modules.append(module)
        opts.append(opt)
    return dm, loss, modules, opts


@pytest.mark.parametrize("rule, fuse", [(r, False) for r in sorted(RULES)] + [("sgd", True)])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_stacked_rule_equals_torch_optim_member_by_member(rule, fuse, dtype, tol):
    """``fuse``: plain SGD's step folded into the chain rule's backward pass (what the grid's loop takes)."""
    overrides, per_member = RULES[rule]
    lrs = [0.05, 0.01] if "adam" not in rule else [1e-2, 3e-3]
    dm, loss, modules, opts = _members(overrides, per_member, lrs, dtype)
    stack = Stack(modules, opts)
    assert stack.rule is not None and stack.fusable == (rule == "sgd")
    g = torch.Generator().manual_seed(0)
    x_all, y_all = dm.splits["train"]
    for _ in range(12):
        idx = torch.randperm(len(x_all), generator=g)[:32]
        x, y = x_all[idx], y_all[idx]
        grads, (losses, _) = stack.forward_backward(x, y, shared=True, fuse=fuse)
        assert (grads is None) == fuse
        stack.update(grads, torch.tensor(lrs, dtype=dtype))
        for module, opt in zip(modules, opts):
            opt.zero_grad()
            loss(module.model(x), y).backward()
            opt.step()
    for i, module in enumerate(modules):
        for name, p in module.model.named_parameters():
            torch.testing.assert_close(stack.params[name][i].detach(), p.detach(), rtol=tol, atol=tol)
    # the member's own optimizer receives the stacked state in torch's format (its checkpoints resume)
    own = {id(p): dict(s) for p, s in opts[1].state.items()}
    for p in modules[1].model.parameters():
        p.data.zero_()
    stack.sync(1)
    for name, p in modules[1].model.named_parameters():
        assert torch.equal(p.detach(), stack.params[name][1].detach())
        for key, value in own.get(id(p), {}).items():
            if value is None:  # SGD without momentum keeps no buffer
                continue
            torch.testing.assert_close(torch.as_tensor(opts[1].state[p][key]), torch.as_tensor(value),
                                       rtol=tol, atol=tol)


def test_a_member_that_left_keeps_its_weights_and_state():
    dm, loss, modules, opts = _members(["optimizer=adam"], [{}, {}], [1e-2, 1e-2], torch.float64)
    stack = Stack(modules, opts)
    x, y = dm.splits["train"][0][:32], dm.splits["train"][1][:32]
    stack.update(stack.forward_backward(x, y, True)[0], torch.tensor([1e-2, 1e-2], dtype=torch.float64))
    before = {n: v[1].clone() for n, v in stack.params.items()}
    moments = {n: st["exp_avg"][1].clone() for n, st in stack.rule.state.items()}
    stack.alive[1] = False
    stack.update(stack.forward_backward(x, y, True)[0], torch.tensor([1e-2, 1e-2], dtype=torch.float64))
    for n, v in before.items():
        assert torch.equal(stack.params[n][1], v) and not torch.equal(stack.params[n][0], v)
        assert torch.equal(stack.rule.state[n]["exp_avg"][1], moments[n])
    stack.compact()
    assert stack.rows == [0] and stack.rule.state[stack.names[0]]["exp_avg"].shape[0] == 1


def test_a_member_that_left_keeps_its_weights_in_the_fused_sgd_step():
    """The fused step of a member that left is undone bit for bit, even from a non-finite output gradient (what
    a diverged member's loss gives)."""
    dm, loss, modules, opts = _members(["optimizer=sgd"], [{}, {}], [1e-2, 1e-2], torch.float64)
    stack = Stack(modules, opts)
    x, y = dm.splits["train"][0][:32], dm.splits["train"][1][:32]
    before = {n: v.detach().clone() for n, v in stack.params.items()}
    assert stack.forward_backward(x, y, True, fuse=True)[0] is None
    stack._pending[1] = float("nan")
    stack.alive[1] = False
    stack.update(None, torch.tensor([1e-2, 1e-2], dtype=torch.float64))
    for n, v in before.items():
        assert torch.equal(stack.params[n][1], v[1]) and not torch.equal(stack.params[n][0], v[0])
        assert bool(torch.isfinite(stack.params[n]).all())


def test_members_leaving_at_two_different_steps_keep_the_others_hyperparameters():
    dm, loss, modules, opts = _members(["optimizer=momentum"], [{"momentum": m} for m in (0.9, 0.5, 0.1)],
                                       [1e-2] * 3, torch.float64)
    stack = Stack(modules, opts)
    stack.alive[0] = False
    stack.compact()  # rows: members 1, 2
    stack.alive[0] = False
    stack.compact()  # rows: member 2 (stacked row 1 of the previous stack)
    assert stack.rows == [2] and stack.rule.hyper["momentum"] == [0.1]
