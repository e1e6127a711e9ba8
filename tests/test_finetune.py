"""Study S fine-tuning and interpolation: GM along a path, joined trajectories, the connectivity table, the
sub-phase grouping of interpolation pairs (tiny runs on digits, seconds)."""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lossland.cli import main
from lossland.config import compose
from lossland.runs import Run
from lossland.studies.connect.run import compose_connect, run_connect
from lossland.studies.sphere.along_path import load_paths, path_row
from lossland.studies.sphere.finetune import group_runs, joined, length
from lossland.studies.sphere.interpolation import sub_phase
from lossland.train import run

SPHERE = ["data=digits", "data.batch_size=32", "data.pad_to=32", "data.train_size=256", "data.test_size=128",
          "model=convnet_si", "model.width=0.125", "optimizer=sphere_sgd", "metrics.every_n_steps=3",
          "metrics.eval_batches=2", "metrics.test_examples=128", "logger=csv", "trainer.enable_progress_bar=false",
          "trainer.max_steps=6"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """pretrain/0 (elr 0.01), pretrain/1 (elr 0.05, from scratch), from_0/{0,1}: pretrain 0 fine-tuned at
    0.005 (x0.5) and 0.05 (x5); connect/<j>: linear paths pretrain 0 -> each fine-tune, with GM."""
    root = tmp_path_factory.mktemp("finetune")
    for i, elr in enumerate((0.01, 0.05)):
        assert run(compose([*SPHERE, f"elr={elr}", f"out_dir={root / 'pretrain' / str(i)}"]))["status"] == "ok"
    for j, elr in enumerate((0.005, 0.05)):
        cfg = compose([*SPHERE, f"elr={elr}", f"init_from={root / 'pretrain' / '0'}",
                       f"out_dir={root / 'from_0' / str(j)}"])
        assert run(cfg)["status"] == "ok"
        run_connect(compose_connect([f"a={root / 'pretrain' / '0'}", f"b={root / 'from_0' / str(j)}", "gm=true",
                                     "num_points=3", "plot=false", f"out_dir={root / 'connect' / str(j)}"]))
    return root


def _naive_gm(model, loss, batches):
    """mean_b ||grad L_b|| written out: BN on batch statistics, a fresh backward per batch."""
    norms = []
    for x, y in batches:
        model.zero_grad()
        model.train()
        loss(model(x), y).backward()
        norms.append(torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters() if p.requires_grad)))
    model.eval()
    return float(torch.stack(norms).mean())


def test_gm_along_path_equals_the_logged_gm_at_the_ends_and_a_naive_loop_inside(sweep):
    rec = json.loads((sweep / "connect" / "0" / "connect.json").read_text())
    gm = rec["result"]["gm"]
    a, b = Run(sweep / "pretrain" / "0"), Run(sweep / "from_0" / "0")
    assert gm[0] == pytest.approx(a.series("gm")[1][-1], rel=1e-5)
    assert gm[-1] == pytest.approx(b.series("gm")[1][-1], rel=1e-5)
    assert rec["summary"]["gm"]["max"] == pytest.approx(max(gm))
    # the midpoint: the average of the two weight vectors, GM on A's fixed evaluation batches
    model_a, loss, dm = a.model()
    model_b, _, _ = b.model()
    mid = {k: (0.5 * (v + model_b.state_dict()[k]) if v.is_floating_point() else v)
           for k, v in model_a.state_dict().items()}
    m = copy.deepcopy(model_a)
    m.load_state_dict(mid)
    batches = dm.eval_batches(int(a.config.metrics.eval_batches))
    assert rec["result"]["t"][1] == pytest.approx(0.5)
    assert gm[1] == pytest.approx(_naive_gm(m, loss, batches), rel=1e-4)


def test_fine_tunes_join_their_pretrain_on_one_step_axis(sweep):
    groups, scratch = group_runs(sweep)
    assert len(groups) == 1 and len(scratch) == 2
    pre, tuned = groups[0]
    assert pre.path == sweep / "pretrain" / "0" and [t.elr for t in tuned] == [0.005, 0.05]
    s, v = joined(pre, tuned[0], "train_loss")
    assert length(pre) == 6 and s[0] == 6 and s[-1] == 12
    assert v[0] == pytest.approx(pre.series("train_loss")[1][-1], rel=1e-6)  # same weights, same batches


def test_finetune_writes_figures_and_the_connectivity_table(sweep, capsys):
    main(["finetune", str(sweep), "--out", str(sweep / "ft")])
    out = capsys.readouterr().out
    for name in ("elr_0.01_metrics.png", "elr_0.01_phase.png", "elr_0.01_paths.png", "finetune.csv", "finetune.md"):
        assert (sweep / "ft" / name).stat().st_size > 0
    assert "max relative difference in train loss / GM 0" in out
    lines = (sweep / "ft" / "finetune.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:]]
    assert [float(r["factor"]) for r in rows] == pytest.approx([0.5, 5])
    assert all(r["connected"] in ("yes", "no") and float(r["peak_ratio"]) > 0 for r in rows)


def test_finetune_refuses_a_folder_without_fine_tunes(sweep, capsys):
    with pytest.raises(SystemExit) as e:
        main(["finetune", str(sweep / "pretrain")])
    assert e.value.code != 0 and "no fine-tune runs" in capsys.readouterr().err


def _record(loss, train_acc=None, gm=None):
    n = len(loss)
    r = {"t": list(np.linspace(0, 1, n)), "t_range": [0, 1], "train_loss": loss,
         "train_acc": train_acc or [100.0] * n, "test_acc": [90.0] * n}
    if gm:
        r["gm"] = gm
    return {"a": {"dir": "/nonexistent/a"}, "b": {"dir": "/nonexistent/b"}, "result": r}


def test_connected_means_no_interior_loss_peak_above_max_ratio():
    bump = path_row(_record([0.01, 0.05, 0.02], gm=[1, 4, 2]))
    assert bump["peak_ratio"] == pytest.approx(2.5) and bump["connected"] == "no" and bump["gm_max"] == 4
    flat = path_row(_record([0.01, 0.015, 0.02], train_acc=[100, 98, 99]))
    assert flat["connected"] == "yes" and flat["train_err_rise"] == pytest.approx(1.0)
    assert math.isnan(flat["gm_max"]) and math.isnan(flat["elr_a"])
    assert path_row(_record([0.01, 0.05, 0.02]), max_ratio=3)["connected"] == "yes"
    gm_peak = path_row(_record([0.01, 0.015, 0.02], gm=[1, 3, 1]))  # flat loss, GM peak: not connected
    assert gm_peak["gm_peak_ratio"] == pytest.approx(3) and gm_peak["connected"] == "no"
    err_peak = path_row(_record([0.01, 0.015, 0.02], train_acc=[100, 95, 99]))
    assert err_peak["connected"] == "no" and path_row(_record([0.01, 0.015, 0.02], train_acc=[100, 95, 99]),
                                                       max_err_rise=5)["connected"] == "yes"


def test_interpolation_groups_pairs_by_measured_sub_phase(sweep, capsys):
    assert sub_phase(0) == "converged" and sub_phase(12) == "not converged" and sub_phase(12, 15) == "converged"
    run_connect(compose_connect([f"a={sweep / 'pretrain' / '0'}", f"b={sweep / 'pretrain' / '1'}", "gm=true",
                                 "num_points=3", "plot=false", f"out_dir={sweep / 'interp' / 'p'}"]))
    main(["interpolate", str(sweep / "interp"), "--converged-errors", "10000"])
    out = capsys.readouterr().out
    assert "converged: 1/1" in out or "converged: 0/1" in out
    assert (sweep / "interp" / "interpolation" / "interp_converged.png").exists()
    wrong = Run(sweep / "pretrain" / "0").final["train_misclassified"]
    assert f"{wrong:.4g}" in (sweep / "interp" / "interpolation" / "interpolation.md").read_text()


def test_a_copied_sweep_is_read_from_its_copy(sweep, tmp_path, capsys):
    """init_from and the paths' ends name the original directories (absolute here): the copy's own runs are
    used, and the table is the same."""
    import shutil

    from lossland.runs import locate

    copy = tmp_path / "moved"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("ft", "finetune"))
    assert locate(sweep / "pretrain" / "0", copy) == copy / "pretrain" / "0"
    assert locate("multirun/elsewhere/from_0/1", copy) == copy / "from_0" / "1"  # relative to where it ran
    assert locate(tmp_path / "nowhere", copy) == tmp_path / "nowhere"
    groups, _ = group_runs(copy)
    assert [pre.path.parent.parent for pre, _ in groups] == [copy]
    assert {Path(p[end]["dir"]).parent.parent for p in load_paths(copy) for end in "ab"} == {copy}
    main(["finetune", str(sweep), "--out", str(tmp_path / "a")])
    main(["finetune", str(copy), "--out", str(tmp_path / "b")])
    capsys.readouterr()
    assert (tmp_path / "a" / "finetune.csv").read_text() == (tmp_path / "b" / "finetune.csv").read_text()
