"""The stacked MLP's own backward pass (``StackedMLP.backward`` with each loss's closed-form output gradient,
lossland/sweep/vectorized/fast.py) against the ground truth: each member's own model, its loss plus ½·c·‖θ‖²,
differentiated by autograd, in float64; for every activation the path knows, every loss, shared and own batches."""

import pytest
import torch

from lossland.build import build_data, build_loss, build_model, build_optimizer, build_regularizer
from lossland.config import compose
from lossland.module import LandscapeModule
from lossland.sweep.vectorized.fast import stacked_mlp
from lossland.sweep.vectorized.stack import Stack

LOSSES = {"ce": ["data=digits"], "mse": ["data=digits"],
          "hinge3": ["data=spheres", "data.train_size=200", "data.dim=20"]}


def _stack(loss_name, activation, hidden, coefs):
    cfg = compose([*LOSSES[loss_name], f"loss={loss_name}", "model=mlp", f"model.hidden={hidden}",
                   f"model.activation={activation}", "optimizer=sgd", "regularizer=weight_decay", "logger=none"])
    dm, loss = build_data(cfg), build_loss(cfg)
    dm.splits = {k: (x.double(), y) for k, (x, y) in dm.splits.items()}
    modules = []
    for k, coef in enumerate(coefs):
        torch.manual_seed(k)
        model = build_model(cfg, dm, loss).double()
        reg = build_regularizer(cfg)
        reg.coef = coef
        modules.append(LandscapeModule(model, loss, build_optimizer(cfg, model, dm), regularizer=reg))
    stack = Stack(modules, [m.configure_optimizers() for m in modules])
    return dm, loss, modules, stack


@pytest.mark.parametrize("activation, hidden", [("sigmoid", "[12,6]"), ("tanh", "[12]"), ("relu", "[12,6]"),
                                                ("relu", "[]")])
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("shared", [True, False])
def test_stacked_backward_equals_each_members_autograd_gradient(float64, activation, hidden, loss_name, shared):
    coefs = [0.0, 1e-2, 0.3]
    dm, loss, modules, stack = _stack(loss_name, activation, hidden, coefs)
    assert stack.fast.manual
    x_all, y_all = dm.splits["train"]
    g = torch.Generator().manual_seed(1)
    idx = [torch.randperm(len(x_all), generator=g)[:16] for _ in coefs]
    x, y = (x_all[idx[0]], y_all[idx[0]]) if shared else (x_all[torch.stack(idx)], y_all[torch.stack(idx)])
    grads, (losses, out) = stack.forward_backward(x, y, shared)
    for i, (module, coef) in enumerate(zip(modules, coefs)):
        xi, yi = (x, y) if shared else (x[i], y[i])
        data_loss = loss(module.model(xi), yi)
        total = data_loss + 0.5 * coef * sum(p.pow(2).sum() for p in module.model.parameters())
        want = torch.autograd.grad(total, list(module.model.parameters()))
        assert float(losses[i]) == pytest.approx(float(data_loss), rel=1e-12)
        for name, w in zip(dict(module.model.named_parameters()), want):
            torch.testing.assert_close(grads[name][i], w, rtol=1e-10, atol=1e-12)


def test_models_the_chain_rule_does_not_know_keep_autograd():
    cfg = compose(["data=digits", "model=mlp", "model.hidden=[8]", "model.activation=gelu", "logger=none"])
    dm = build_data(cfg)
    assert stacked_mlp(build_model(cfg, dm, build_loss(cfg))).manual is False
