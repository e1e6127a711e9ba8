"""A whole grid as one vectorized model (``hydra/launcher=vectorized``, lossland/sweep/vectorized/): each member's
records equal its sequential run's, a diverging member stops alone, and grids that do not stack are refused in
one line."""

import csv
import json

import pytest
import torch
from omegaconf import OmegaConf
from torchmetrics import MeanMetric

from lossland.build import build_data, build_loss, build_model, build_optimizer
from lossland.config import compose
from lossland.errors import LosslandError
from lossland.module import LandscapeModule, add_to_means, clear_means
from lossland.sweep.vectorized import run_grid, step
from lossland.sweep.vectorized.stack import Stack, check_model, check_stackable
from lossland.train import run
from tests.conftest import run_cli

MLP = ["data=digits", "model=mlp", "model.hidden=[16]", "optimizer=sgd", "data.batch_size=32",
       "trainer.max_steps=30", "metrics.every_n_steps=10", "metrics.eval_batches=2", "metrics.test_examples=128"]
FINAL = ("train_loss", "train_error", "test_loss", "test_error", "gm")


def _pairs(make_cfg, base, points):
    seq = [make_cfg(*base, *p, out=f"seq{i}") for i, p in enumerate(points)]
    vec = [make_cfg(*base, *p, "grid=vectorized", out=f"vec{i}") for i, p in enumerate(points)]
    return seq, vec


def _same_final(a: dict, b: dict, rel: float = 1e-5) -> None:
    assert a["status"] == b["status"] and a["steps"] == b["steps"]
    assert a["diverged_at_step"] == b["diverged_at_step"] and a.get("data_order") == b.get("data_order")
    for key in FINAL:
        if b["final"].get(key) is not None:
            assert a["final"][key] == pytest.approx(b["final"][key], rel=rel, abs=1e-6, nan_ok=True), key


def _same_init(tmp_path, members):
    """Each member's ``init.pt`` (a grid serializes it once per built model) holds its sequential run's weights."""
    for i in members:
        a, b = (torch.load(tmp_path / f"{side}{i}" / "checkpoints" / "init.pt", weights_only=True)
                for side in ("vec", "seq"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), i


def test_mlp_lr_grid_equals_sequential_runs_and_a_diverging_member_stops_alone(make_cfg, tmp_path):
    seq, vec = _pairs(make_cfg, MLP, [["lr=0.05"], ["lr=0.5"], ["lr=1e4"]])
    expected = [run(c) for c in seq]
    got = run_grid(vec)
    assert [s["status"] for s in got] == ["ok", "ok", "diverged"]
    for a, b in zip(got, expected):
        _same_final(a, b)
    assert got[2]["diverged_cause"] == expected[2]["diverged_cause"]
    assert got[0]["grid"] == {"vectorized": True, "members": 3, "index": 0}
    assert [(s["lr"], s["elr"]) for s in got] == [(s["lr"], s["elr"]) for s in expected] == \
        [(0.05, None), (0.5, None), (1e4, None)]  # the rate each optimizer used, no default elr
    for i in range(3):  # ordinary records: the same metrics.csv rows and columns, the same checkpoints
        a, b = (tmp_path / f"vec{i}" / "metrics.csv").read_text(), (tmp_path / f"seq{i}" / "metrics.csv").read_text()
        assert a.splitlines()[0] == b.splitlines()[0] and len(a.splitlines()) == len(b.splitlines())
        assert sorted(p.name for p in (tmp_path / f"vec{i}" / "checkpoints").iterdir()) == \
            sorted(p.name for p in (tmp_path / f"seq{i}" / "checkpoints").iterdir())
    _same_init(tmp_path, range(3))  # one seed: one serialization for all three
    for i in range(3):  # each member's config as written (from the container the grid made for its checks)
        assert (tmp_path / f"vec{i}" / ".hydra" / "config.yaml").read_text() == OmegaConf.to_yaml(vec[i])
    again = run_grid(vec)  # finished members are skipped
    assert [s["run_id"] for s in again] == [s["run_id"] for s in got]


def test_a_shared_batch_order_gathered_per_epoch_equals_gathering_batch_by_batch(make_cfg, tmp_path, monkeypatch):
    """Members of one seed take views of the training split gathered once per epoch in its order
    (``GATHER_EPOCH_BYTES``); a split above that size is gathered batch by batch: the same records, over epochs."""
    base = [*MLP, "data.train_size=320", "trainer.max_steps=35"]  # 10 steps per epoch: 3 epochs and a half
    epoch = [make_cfg(*base, f"lr={lr}", "grid=vectorized", out=f"epoch{i}") for i, lr in enumerate((0.05, 0.5))]
    batch = [make_cfg(*base, f"lr={lr}", "grid=vectorized", out=f"batch{i}") for i, lr in enumerate((0.05, 0.5))]
    gathered = run_grid(epoch)
    monkeypatch.setattr(step, "GATHER_EPOCH_BYTES", 0)
    per_batch = run_grid(batch)
    assert [s["epochs"] for s in gathered] == [3, 3]
    for i, (a, b) in enumerate(zip(gathered, per_batch)):
        assert a["final"] == b["final"] and a["data_order"] == b["data_order"]
        assert _rows(tmp_path / f"epoch{i}" / "metrics.csv") == _rows(tmp_path / f"batch{i}" / "metrics.csv")


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_seed_and_weight_decay_grid_equals_sequential_runs_row_for_row(make_cfg, tmp_path):
    # the third member diverges in the first epoch and leaves the stack; the others (own batch orders) go on
    points = [["seed=0", "regularizer.coef=1e-3"], ["seed=2", "regularizer.coef=1e-3", "lr=1e4"],
              ["seed=1", "regularizer.coef=0.1"]]
    seq, vec = _pairs(make_cfg, [*MLP, "lr=0.2", "regularizer=weight_decay", "data.val_size=64",
                                  "data.train_size=320"], points)
    got = run_grid(vec)
    assert [s["status"] for s in got] == ["ok", "diverged", "ok"]
    for a, b in zip(got, [run(c) for c in seq]):
        _same_final(a, b)
    _same_init(tmp_path, range(3))  # three seeds: three initial models
    for i in (0, 2):  # every logged value: batch means, epoch means, validation, phase metrics
        got, want = _rows(tmp_path / f"vec{i}" / "metrics.csv"), _rows(tmp_path / f"seq{i}" / "metrics.csv")
        assert len(got) == len(want) and any("val/loss" in r and r["val/loss"] for r in want)
        for r, w in zip(got, want):
            assert r.keys() == w.keys()
            for k in w:
                assert (r[k] == w[k] == "") or float(r[k]) == pytest.approx(float(w[k]), rel=1e-4, abs=1e-6), k


@pytest.mark.slow
def test_convnet_si_sphere_grid_with_batchnorm_equals_sequential_runs(make_cfg):
    base = ["experiment=smoke", "trainer.max_steps=6", "metrics.every_n_steps=3", "optimizer.mode=per_layer"]
    seq = [make_cfg(*base, f"elr={e}", out=f"seq{i}") for i, e in enumerate((1e-4, 3e-4))]
    vec = [make_cfg(*base, f"elr={e}", "grid=vmap", out=f"vec{i}") for i, e in enumerate((1e-4, 3e-4))]
    for a, b in zip(run_grid(vec), [run(c) for c in seq]):
        _same_final(a, b, rel=1e-3)  # float32 round-off of the batched convolutions


def test_stacked_sphere_steps_match_sphere_sgd_in_float64(float64):
    """Ground truth: each member's own SphereSGD (BN in train mode, batch statistics per member)."""
    cfg = compose(["experiment=smoke", "logger=none"])
    dm, loss = build_data(cfg), build_loss(cfg)
    dm.splits = {k: (x.double(), y) for k, (x, y) in dm.splits.items()}
    modules, opts = [], []
    for elr in (1e-3, 1e-2):
        model = build_model(cfg, dm, loss)
        module = LandscapeModule(model, loss, build_optimizer(cfg, model, dm))
        opt = module.configure_optimizers()
        opt.elr = elr
        modules.append(module)
        opts.append(opt)
    stack = Stack(modules, opts)
    rates = torch.tensor([1e-3, 1e-2])
    g = torch.Generator().manual_seed(0)
    for _ in range(8):
        idx = torch.randperm(len(dm.splits["train"][0]), generator=g)[:32]
        x, y = dm.splits["train"][0][idx], dm.splits["train"][1][idx]
        grads, (losses, _) = stack.forward_backward(x, y, shared=True)
        stack.update(grads, rates)
        for i, (module, opt) in enumerate(zip(modules, opts)):
            opt.zero_grad()
            step_loss = loss(module.model(x), y)
            step_loss.backward()
            opt.step()
            assert float(losses[i]) == pytest.approx(float(step_loss), rel=1e-10)
    for i, module in enumerate(modules):
        for name, p in module.model.named_parameters():
            if p.requires_grad:
                torch.testing.assert_close(stack.params[name][i].detach(), p.detach(), rtol=1e-10, atol=1e-12)
        for name, b in module.model.named_buffers():
            torch.testing.assert_close(stack.buffers[name][i], b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("other, key", [(["model.hidden=[8]"], "model.hidden"),
                                        (["data.batch_size=16"], "data.batch_size")])
def test_grids_that_differ_in_other_keys_are_refused_naming_the_key(other, key):
    a, b = compose([*MLP, "lr=0.1"]), compose([*MLP, "lr=0.2", *other])
    with pytest.raises(LosslandError, match=rf"differ in {key}"):
        check_stackable([a, b])
    check_stackable([a, compose([*MLP, "lr=0.2", "seed=3"])])  # rates and seeds stack


@pytest.mark.parametrize("overrides, match", [(["optimizer=rmsprop"], "RMSprop does not stack"),
                                              (["optimizer=noisy_gd"], "NoisyGD does not stack"),
                                              (["optimizer=adam", "+optimizer.amsgrad=true"], "amsgrad"),
                                              (["optimizer=sphere_sgd", "optimizer.direction=random"], "random")])
def test_optimizers_that_do_not_stack_are_refused(overrides, match):
    cfgs = [compose([*MLP, *overrides, f"lr={lr}"]) for lr in (0.1, 0.2)]
    with pytest.raises(LosslandError, match=match):
        check_stackable(cfgs)


def test_dropout_is_refused():
    cfg = compose([*MLP, "model.dropout=0.1"])
    dm, loss = build_data(cfg), build_loss(cfg)
    with pytest.raises(LosslandError, match="dropout"):
        check_model(build_model(cfg, dm, loss))


def _train_py(argv):
    from lossland.entry import launch
    from lossland.schema import validate

    launch("train", run, validate=validate, argv=argv)


def test_train_py_grid_writes_a_sweep_that_collect_reads(tmp_path):
    sweep = tmp_path / "sweep"
    _train_py(["-m", *MLP, "logger=none", "trainer.enable_progress_bar=false", "lr=0.05,1e4",
               "hydra/launcher=vectorized", f"hydra.sweep.dir={sweep}"])
    statuses = [json.loads((sweep / str(i) / "summary.json").read_text())["status"] for i in range(2)]
    assert statuses == ["ok", "diverged"]
    assert (sweep / "0" / ".hydra" / "config.yaml").exists() and (sweep / "1" / ".hydra" / "overrides.yaml").exists()
    overrides = json.loads((sweep / "1" / "summary.json").read_text())["overrides"]
    assert "lr=1e4" in overrides or "lr=10000.0" in overrides
    assert (sweep / "multirun.yaml").exists() and (sweep / "0" / ".hydra" / "hydra.yaml").exists()
    from lossland.sweep.collect import collect

    rows, _ = collect(sweep)
    assert sorted(r["status"] for r in rows) == ["diverged", "ok"]


def test_train_py_refuses_a_grid_that_does_not_stack_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _train_py(["-m", *MLP, "lr=0.05,0.1", "model.hidden=[8],[16]", "optimizer=rmsprop", "hydra/launcher=vectorized",
                   f"hydra.sweep.dir={tmp_path / 'bad'}"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "lossland: error: grid=vectorized: optimizer torch.optim.RMSprop does not stack (optimizer=sgd, momentum, "
        "nesterov, adam or sphere_sgd; run without grid=vectorized)"]


def test_the_grid_alias_on_another_launcher_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _train_py(["-m", *MLP, "lr=0.05,0.1", "grid=vectorized", "hydra/launcher=joblib",
                   f"hydra.sweep.dir={tmp_path / 'bad'}"])
    assert e.value.code == 2
    assert "grid=vectorized is now hydra/launcher=vectorized" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_grid_end_to_end(tmp_path):
    sweep = tmp_path / "sweep"
    res = run_cli("train.py", "-m", *MLP, "logger=none", "trainer.enable_progress_bar=false", "lr=0.05,1e4",
                  "grid=vectorized", f"hydra.sweep.dir={sweep}")  # the alias, one release
    assert res.returncode == 0, res.stderr[-2000:]
    assert "grid=vectorized is replaced by hydra/launcher=vectorized" in res.stderr
    assert [json.loads((sweep / str(i) / "summary.json").read_text())["status"] for i in range(2)] == \
        ["ok", "diverged"]


def test_an_interrupted_member_resumes_from_its_grid_checkpoint_through_its_own_resume_path(make_cfg, tmp_path):
    """A member's scheduled checkpoint from the grid holds everything the sequential resume path needs
    (weights, data order mid-epoch, optimizer, callback history): resumed, it ends where the grid ended."""
    base = [*MLP, "checkpoint.every_n_steps=10"]
    vec = [make_cfg(*base, f"lr={lr}", "grid=vectorized", out=f"vec{i}") for i, lr in enumerate((0.05, 0.5))]
    first = run_grid(vec)
    ckpts = tmp_path / "vec1" / "checkpoints"
    for name in ("last.ckpt", "step=00000020.ckpt", "step=00000030.ckpt"):
        (ckpts / name).unlink()
    summary = json.loads((tmp_path / "vec1" / "summary.json").read_text())
    summary["status"] = "interrupted"
    (tmp_path / "vec1" / "summary.json").write_text(json.dumps(summary))
    again = run_grid(vec)
    assert again[0]["run_id"] == first[0]["run_id"] and "resumed_from_step" not in again[0]  # skipped
    assert again[1]["resumed_from_step"] == 10
    _same_final(again[1], first[1])


def test_gradient_clipping_does_not_stack():
    cfgs = [compose([*MLP, "trainer.gradient_clip_val=1", f"lr={lr}"]) for lr in (0.1, 0.2)]
    with pytest.raises(LosslandError, match="gradient_clip_val does not stack"):
        check_stackable(cfgs)


@pytest.mark.parametrize("overrides, points", [
    (["optimizer=momentum", "schedule=cosine"],
     [["lr=0.05", "optimizer.momentum=0.9"], ["lr=0.2", "optimizer.momentum=0.5"]]),
    (["optimizer=nesterov", "schedule=linear", "schedule.start=0.1", "schedule.end=0.01",
      "schedule.transition_start=5", "schedule.transition_length=20", "schedule.log=true"],
     [["lr=0.1"], ["lr=0.1", "seed=1"]]),
    (["optimizer=adam", "schedule=step", "schedule.value=${lr}", "schedule.at_step=15", "schedule.factor=0.1"],
     [["lr=0.01"], ["lr=0.003", "+optimizer.weight_decay=1e-3"]]),
    (["optimizer=sgd", "schedule=constant", "+optimizer.weight_decay=1e-3"], [["lr=0.1"], ["lr=0.3"]]),
])
def test_optimizer_and_schedule_grids_stack_and_equal_sequential_runs(make_cfg, overrides, points):
    seq, vec = _pairs(make_cfg, [*MLP, *overrides], points)
    got = run_grid(vec)
    assert all(s["grid"]["vectorized"] for s in got)
    for a, b in zip(got, [run(c) for c in seq]):
        _same_final(a, b, rel=1e-4)
        assert (a.get("lr_final"), a["lr"]) == (b.get("lr_final"), b["lr"])


def test_a_width_by_seed_grid_trains_one_stack_per_width(tmp_path, capsys):
    """The connect study's endpoints (widths × seeds, SGD with momentum): one stack of seeds per width."""
    sweep = tmp_path / "sweep"
    _train_py(["-m", *MLP, "optimizer=momentum", "lr=0.05", "logger=none", "trainer.enable_progress_bar=false",
               "model.hidden=[8],[16]", "seed=0,10", "grid=vectorized", f"hydra.sweep.dir={sweep}"])
    assert "2 stacks of 2, 2 jobs" in capsys.readouterr().out
    summaries = [json.loads((sweep / str(i) / "summary.json").read_text()) for i in range(4)]
    assert [s["grid"]["members"] for s in summaries] == [2, 2, 2, 2]
    assert all(s["status"] == "ok" for s in summaries)


EXP_SPEED = ["data=digits", "data.classes=[1,7]", "data.val_size=40", "data.test_size=80",
             "data.batch_size=32", "data.normalize=standard", "model=mlp", "model.hidden=[16,8]",
             "model.activation=sigmoid", "loss=hinge3", "optimizer=adam", "augment=exp_neuron",
             "metrics.enabled=false", "metrics.convergence.enabled=true", "metrics.convergence.stop_at_zero_error=true",
             "trainer.max_steps=-1", "trainer.max_epochs=8"]


def test_the_exp_neuron_speed_grid_stacks_per_data_size_and_equals_sequential_runs(make_cfg):
    """Study E's speed protocol (Adam, the exponential neuron and its penalty, runs that stop at zero training
    errors): one stack of rates × λ per training-set size; every member as its sequential run."""
    points = [[f"lr={lr}", f"augment.lam={lam}", f"data.train_size={n}"]
              for n in (128, 224) for lr in (1e-3, 3e-2) for lam in (1e-3, 1e-1)]
    seq, vec = _pairs(make_cfg, EXP_SPEED, points)
    got = run_grid(vec)
    assert [s["grid"]["members"] for s in got] == [4] * 8
    want = [run(c) for c in seq]
    assert any(s["stopped_early"] for s in want) and not all(s["stopped_early"] for s in want)
    for a, b in zip(got, want):
        _same_final(a, b, rel=1e-4)
        assert (a["stopped_early"], a.get("converged_step")) == (b["stopped_early"], b.get("converged_step"))


def test_members_built_from_one_template_share_the_data_and_start_as_their_own_runs(tmp_path):
    """prepare(..., shared): the members' data modules hold the one cached copy of the data (so the stacked step
    gathers one batch per data order), and each member's initial weights and data order are its own run's."""
    from lossland.train import prepare

    cfgs = [compose([*MLP, f"seed={s}", f"lr={lr}"]) for s in (0, 1) for lr in (0.1, 0.2)]
    shared: dict = {}
    built = [prepare(c, tmp_path / f"m{i}", "x", None, None, shared) for i, c in enumerate(cfgs)]
    alone = [prepare(c, tmp_path / f"a{i}", "x", None, None) for i, c in enumerate(cfgs)]
    x0 = built[0][2].splits["train"][0]
    assert all(dm.splits["train"][0] is x0 for _, _, dm in built)
    for (_, m, dm), (_, m_alone, dm_alone) in zip(built, alone):
        own, theirs = m.model.state_dict().values(), m_alone.model.state_dict().values()
        assert all(torch.equal(p, q) for p, q in zip(own, theirs))
        assert torch.equal(dm.epoch_order(), dm_alone.epoch_order())
    assert not torch.equal(next(built[0][1].model.parameters()), next(built[2][1].model.parameters()))  # seeds
    assert built[0][1].model is not built[1][1].model


def test_means_added_at_once_and_cleared_in_place_equal_meanmetrics_own_update_and_reset():
    """The grid adds every member's block sums to its MeanMetric states in one call, and every run clears its
    epoch means in place: the states (and the mean) are bit for bit what torchmetrics' own update / reset give."""
    torch.manual_seed(0)
    own, batched = [MeanMetric(), MeanMetric()], [MeanMetric(), MeanMetric()]
    for _epoch in range(2):
        for n in (5, 17, 3):
            values = [torch.rand(n), (torch.rand(n) > 0.5).float()]
            for metric, v in zip(own, values):
                metric.update(v)
            add_to_means([(metric, float(v.sum()), v.numel()) for metric, v in zip(batched, values)])
        for a, b in zip(own, batched):
            assert torch.equal(a.mean_value, b.mean_value) and torch.equal(a.weight, b.weight)
            assert a._update_count == b._update_count == 3 and torch.equal(a.compute(), b.compute())
            a.reset()
            clear_means([b])
            assert torch.equal(a.mean_value, b.mean_value) and torch.equal(a.weight, b.weight)
            assert a._update_count == b._update_count == 0 and b._computed is None
