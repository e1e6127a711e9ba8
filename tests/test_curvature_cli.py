"""Curvature during training (metrics.curvature), `lossland curvature` over checkpoints and `lossland slice`,
checked against independent recomputation from the saved checkpoints."""

import csv
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lossland.callbacks.curvature import CurvatureExtra, curvature_extra, parse_selection
from lossland.cli import main
from lossland.losses import CrossEntropy
from lossland.metrics.curvature import compute_curvature
from lossland.models import MLP
from lossland.runs import Run, load_checkpoint

TINY = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[8]", "optimizer=sgd", "lr=0.1",
        "trainer.max_steps=8", "metrics.every_n_steps=4", "metrics.eval_batches=2",
        "metrics.test_examples=100", "checkpoint.every_n_steps=4", "logger=csv",
        "trainer.enable_progress_bar=false"]
CURV = ["metrics.curvature.enabled=true", "metrics.curvature.examples=48"]
STEPS = [0, 4, 8]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on shared cores: one thread avoids oversubscription (10x slower products otherwise)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def train(directory, *overrides):
    """Train in-process and leave the run directory as train.py does (.hydra/config.yaml included)."""
    from lossland.config import compose
    from lossland.train import run

    cfg = compose([*TINY, *overrides, f"out_dir={directory}"])
    (directory / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, directory / ".hydra" / "config.yaml")
    summary = run(cfg)
    assert summary["status"] == "ok", summary
    return directory


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, one_thread):
    return train(tmp_path_factory.mktemp("curv") / "run", *CURV)


def callback_rows(d):
    return [r for r in Run(d).rows() if "hessian_top_eig" in r and "gm" in r]


def eval_subset(dm, k, n):
    """The callback's measurement data, rebuilt by hand: first n examples of the k evaluation batches."""
    batches = dm.eval_batches(k)
    return torch.cat([b[0] for b in batches])[:n], torch.cat([b[1] for b in batches])[:n]


def test_callback_logs_curvature_at_scheduled_steps(run_dir):
    rows = callback_rows(run_dir)
    assert [r["step"] for r in rows] == STEPS
    assert all(r["hessian_top_eig"] > 0 and r["fisher_trace"] > 0 for r in rows)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final"]["hessian_top_eig"] == pytest.approx(rows[-1]["hessian_top_eig"])


def test_callback_values_equal_recomputation_from_checkpoints(run_dir):
    rows = {int(r["step"]): r for r in callback_rows(run_dir)}
    ckpts = {load_checkpoint(p)["global_step"]: p for p in Run(run_dir).checkpoints()
             if p.name.startswith("step=")}
    assert sorted(ckpts) == STEPS
    for step, path in ckpts.items():
        model, loss, dm = Run(run_dir).model(path)
        x, y = eval_subset(dm, 2, 48)
        ref = compute_curvature(model, loss, x, y, {"hessian_top": {}, "fisher_trace": {}}, bn="train",
                                batch_size=32)
        assert rows[step]["hessian_top_eig"] == pytest.approx(ref["hessian_top_eig"], rel=1e-6)
        assert rows[step]["fisher_trace"] == pytest.approx(ref["fisher_trace"], rel=1e-6)


def test_callback_values_against_dense_ground_truth(run_dir):
    """Final step: top eigenvalue of the dense Hessian, empirical Fisher trace by a per-sample loop."""
    model, loss, dm = Run(run_dir).model(Run(run_dir).checkpoints()[-1])
    model = model.double()
    x, y = eval_subset(dm, 2, 48)
    x = x.double()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(flat):
        parts = dict(zip(names, (t.view(s) for t, s in zip(flat.split([s.numel() for s in shapes]), shapes))))
        return loss(torch.func.functional_call(model, parts, (x,)), y)

    top = torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, theta))[-1].item()
    sq = []
    for i in range(len(x)):
        g = torch.autograd.grad(loss(model(x[i:i + 1]), y[i:i + 1]), list(model.parameters()))
        sq.append(sum((t ** 2).sum() for t in g).item())
    last = callback_rows(run_dir)[-1]
    assert last["hessian_top_eig"] == pytest.approx(top, rel=1e-3)
    assert last["fisher_trace"] == pytest.approx(np.mean(sq), rel=1e-4)


def test_curvature_command_appends_rows_for_every_checkpoint(run_dir, capsys):
    before = list(csv.DictReader(open(run_dir / "metrics.csv")))
    header = open(run_dir / "metrics.csv").readline().strip().split(",")
    main(["curvature", str(run_dir), "selection=[hessian_top,ggn_trace]"])
    capsys.readouterr()
    after = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert open(run_dir / "metrics.csv").readline().strip().split(",")[:len(header)] == header
    assert after[:len(before)] == [{**r, "ggn_trace": ""} for r in before]  # old rows and columns kept
    new = after[len(before):]
    assert [int(r["step"]) for r in new] == STEPS  # last.ckpt (same step as step=8) measured once
    assert all(r["epoch"] == "0" for r in new)
    logged = {int(r["step"]): r["hessian_top_eig"] for r in callback_rows(run_dir)}
    for r in new:  # same examples, batches, settings as the callback: the same numbers
        assert float(r["hessian_top_eig"]) == pytest.approx(logged[int(r["step"])], rel=1e-6)
        assert float(r["ggn_trace"]) > 0 and r["gm"] == ""
    record = json.loads((run_dir / "curvature.json").read_text())
    assert set(record["selection"]) == {"hessian_top", "ggn_trace"}
    assert record["settings"]["bn"] == "train" and record["settings"]["examples"] == 48
    assert [c["step"] for c in record["checkpoints"]] == STEPS
    # a second run replaces its previous rows instead of duplicating them
    main(["curvature", str(run_dir), "selection=[hessian_top]"])
    again = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert len(again) == len(after) and [int(r["step"]) for r in again[len(before):]] == STEPS
    assert all(r["ggn_trace"] == "" for r in again[len(before):])


def test_slice_command_writes_json_and_png(run_dir, tmp_path, capsys):
    main(["slice", str(run_dir), "points=5", "examples=64", f"out={tmp_path}"])
    out = capsys.readouterr().out
    assert "slice.json" in out and (tmp_path / "slice.png").stat().st_size > 1000
    rec = json.loads((tmp_path / "slice.json").read_text())
    assert rec["alphas"] == pytest.approx([-1, -0.5, 0, 0.5, 1]) and len(rec["loss"]) == 5
    model, loss, dm = Run(run_dir).model()
    x, y = eval_subset(dm, 2, 64)
    with torch.no_grad():
        assert rec["loss"][2] == pytest.approx(loss(model(x), y).item(), rel=1e-5)
    assert len(set(np.round(rec["loss"], 6))) > 1
    # toward another run's weights, 2-d: alpha = 1 is the other run
    main(["slice", str(run_dir), f"to={run_dir}", "dims=2", "points=3", "range=[0,1]", "examples=32",
          f"out={tmp_path}", "name=to"])
    rec = json.loads((tmp_path / "to.json").read_text())
    assert np.asarray(rec["loss"]).shape == (3, 3) and (tmp_path / "to.png").exists()
    loss_grid = np.asarray(rec["loss"])
    assert np.allclose(loss_grid, loss_grid[:1, :])  # direction to itself is zero: loss varies along β only


def test_commands_fail_with_one_line(tmp_path, run_dir, capsys):
    (tmp_path / "nock" / ".hydra").mkdir(parents=True)
    (tmp_path / "nock" / ".hydra" / "config.yaml").write_text(open(run_dir / ".hydra" / "config.yaml").read())
    for argv, msg in [(["curvature", str(tmp_path / "nock")], "no checkpoints"),
                      (["curvature", str(run_dir), "selection=[hessian_max]"], "unknown curvature metric"),
                      (["slice", str(tmp_path)], "not a lossland run directory")]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and msg in err and err.count("\n") == 1, err


def test_parse_selection_and_config():
    assert parse_selection("hessian_top:k=3:tol=1e-3,fisher_trace:kind=true") == {
        "hessian_top": {"k": 3, "tol": 1e-3}, "fisher_trace": {"kind": "true"}}
    options = {"hessian_top": {"k": 2}, "ggn_trace": {}}
    assert parse_selection(["hessian_top"], options) == {"hessian_top": {"k": 2}}
    with pytest.raises(ValueError, match="valid: hessian_top"):
        parse_selection("hessian")
    from lossland.config import compose

    assert curvature_extra(compose([]).metrics.curvature) is None  # off by default
    cfg = compose(["metrics.curvature.enabled=true", "metrics.curvature.selection=[hessian_trace,sharpness]",
                   "metrics.curvature.options.hessian_trace.probes=4"]).metrics.curvature
    extra = curvature_extra(cfg)
    assert extra.selection["hessian_trace"] == {"probes": 4} and extra.bn == "train"
    assert extra.selection["sharpness"]["eps"] == pytest.approx(1e-3)


def test_extra_every_k_and_leaves_model_state_alone():
    torch.manual_seed(0)
    model = MLP((6,), 3, hidden=[5])
    module = SimpleNamespace(model=model, loss=CrossEntropy())
    batches = [(torch.randn(8, 6), torch.randint(0, 3, (8,))) for _ in range(2)]
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    extra = CurvatureExtra(["hessian_top", "fisher_trace"], every=2, examples=12)
    state = torch.get_rng_state()
    got = [extra(module, batches) for _ in range(3)]
    assert [bool(g) for g in got] == [True, False, True] and got[0] == got[2]
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in model.parameters())
    x = torch.cat([b[0] for b in batches])[:12]
    y = torch.cat([b[1] for b in batches])[:12]
    ref = compute_curvature(model, module.loss, x, y, {"hessian_top": {}, "fisher_trace": {}}, bn="train",
                            batch_size=8)
    assert got[0] == pytest.approx(ref) and math.isfinite(got[0]["fisher_trace"])
