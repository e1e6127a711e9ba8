"""``lossland lab`` (alias ``lab.py``) and ``lossland keskar`` end to end through the real command line, at tiny
sizes."""

import csv
import json

import pytest

from tests.conftest import run_cli


def test_trajectories_all_optimizers_with_animation(tmp_path):
    res = run_cli("lab.py", "function=monkey_saddle", "task.steps=20", "task.animate=true", "progress=false",
                  f"out_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:]
    rec = json.loads((tmp_path / "trajectories.json").read_text())
    names = [o["name"] for o in rec["optimizers"]]
    assert names == ["gd", "noisy_gd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
    assert all(len(o["points"]) <= 21 for o in rec["optimizers"])
    assert (tmp_path / "trajectories.png").stat().st_size > 10_000
    from matplotlib import animation

    if animation.writers.is_available("pillow"):
        assert (tmp_path / "trajectories.gif").read_bytes()[:3] == b"GIF"


def test_expression_function_and_one_optimizer(tmp_path):
    res = run_cli("lab.py", "function=expression", "function.expr='(x1-1)^2 + 10*(x2+0.5)^2'",
                  "task.optimizers=[adam]", "task.steps=300", "task.args.adam.lr=0.05", f"out_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:]
    adam = json.loads((tmp_path / "trajectories.json").read_text())["optimizers"][0]
    assert adam["final_point"] == pytest.approx([1.0, -0.5], abs=0.05)


def test_escape_table_and_figure(tmp_path):
    res = run_cli("lab.py", "task=escape", "function=saddle", "task.sigmas=[0.001,0.1]", "task.lrs=[0.1]",
                  "task.runs=500", "task.max_steps=300", f"out_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "escape.csv")))
    assert len(rows) == 2 and all(float(r["escaped"]) == 1.0 for r in rows)
    assert float(rows[0]["median"]) > float(rows[1]["median"])
    assert (tmp_path / "escape.png").exists() and "| function |" in res.stdout


def test_vanishing(tmp_path):
    res = run_cli("lab.py", "task=vanishing", "task.data=digits", "task.depths=[2,6]", "task.width=16",
                  "task.steps=3", "task.data_args.train_size=256", "task.data_args.test_size=64",
                  "task.data_args.batch_size=32", "progress=false", f"out_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:]
    rec = json.loads((tmp_path / "vanishing.json").read_text())
    assert abs(rec["seed_example"]["dy_da"]) < 1e-5 and (tmp_path / "vanishing.png").exists()
    assert "seed example" in res.stdout


def test_keskar_recipe_tiny(tmp_path):
    sweep = tmp_path / "sweep"
    res = run_cli("train.py", "-m", "model=mlp", "model.hidden=[16]", "data=digits", "data.train_size=320",
                  "data.test_size=100", "data.batch_size=16,160", "seed=0,1", "optimizer=adam", "lr=0.01",
                  "trainer.max_epochs=3", "metrics.enabled=false", "logger=csv", "trainer.enable_progress_bar=false",
                  f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=bs${data.batch_size}-s${seed}")
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "keskar"
    res = run_cli("-m", "lossland.cli", "keskar", str(sweep), "maxiter=2", "alphas=[-1,2,7]", "progress=false",
                  f"out={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    table = list(csv.DictReader(open(out / "keskar_table.csv")))
    assert table[0]["name"].startswith("F1") and table[0]["test SB"] == "98.03 ± 0.07"
    assert table[1]["name"].startswith("ours (SB 16, LB 160; 2+2 runs)")
    c1 = tmp_path / "keskar_c1"  # the same runs beside another of Keskar's rows (NETWORK=C1 of the recipe)
    res = run_cli("-m", "lossland.cli", "keskar", str(sweep), "maxiter=1", "alphas=[-1,2,4]", "progress=false",
                  "network=C1", f"out={c1}")
    assert res.returncode == 0, res.stderr[-3000:]
    table = list(csv.DictReader(open(c1 / "keskar_table.csv")))
    assert table[0]["name"] == "C1 (Keskar et al. 2017, CIFAR-10)" and table[0]["test LB"] == "77.26 ± 0.42"
    assert json.loads((c1 / "keskar.json").read_text())["network"] == "C1"
    rec = json.loads((out / "keskar.json").read_text())
    assert len(rec["interpolation"]) == 2 and len(rec["interpolation"][0]["alphas"]) == 7
    runs = {(r["regime"], r["seed"]): r for r in rec["runs"]}
    for r in runs.values():  # accuracy = 1 − the run's final error
        summary = json.loads((sweep / r["run"] / "summary.json").read_text())
        assert r["test_acc"] == pytest.approx(100 * (1 - summary["final"]["test_error"]))
        assert r["sharpness_eps=0.001"] >= 0
    c = rec["interpolation"][0]  # α = 0 is the SB minimum, α = 1 the LB minimum (grid −1, −0.5, 0, …, 2)
    assert c["train_acc"][2] == pytest.approx(runs[("SB", c["seed"])]["train_acc"], abs=0.5)
    assert c["train_acc"][4] == pytest.approx(runs[("LB", c["seed"])]["train_acc"], abs=0.5)
    for f in ("keskar_interp.png", "keskar_sharpness.png", "keskar_table.md", "keskar_runs.csv"):
        assert (out / f).exists()


@pytest.mark.parametrize("args, expected", [
    (["function=himmelblau"], "unknown option function=himmelblau; valid function options: cubic, expression"),
    (["task.optimizers=[gd,lbfgs]"], "unknown optimizer 'lbfgs'; valid lab optimizers"),
    (["task.start=[nan,0]"], "start=[nan, 0.0] is not a finite point"),
    (["task.args.noisy_gd.sigma=-1"], "sigma must be a finite number ≥ 0"),
    (["task=escape", "task.sigmas=[-0.5]"], "σ must be a finite number ≥ 0"),
    (["function=expression", "function.expr='exec(1)'"], "is not allowed"),
    (["task=warp"], "valid task options: escape, trajectories, vanishing"),
    (["task._target_=lossland.nowhere.run"], "task._target_=lossland.nowhere.run is not a lab task function"),
])
def test_bad_input_gets_one_clear_line(args, expected, tmp_path):
    res = run_cli("lab.py", *args, f"out_dir={tmp_path}", f"hydra.run.dir={tmp_path}")
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("lossland: error:")]
    assert len(err) == 1 and expected in err[0], res.stderr[-2000:]


@pytest.mark.parametrize("args, expected", [
    ([], "sweep must be set (sweep=...)"),
    (["{tmp}/nope"], "is not a directory"),
    (["{tmp}", "eps=[0]"], "eps=[0.0] is not valid"),
    (["{tmp}", "extra"], "unexpected argument 'extra'"),
    (["{tmp}", "network=C9"], "network=C9 is not a row of Keskar et al.'s table; valid: F1, F2, C1, C2, C3, C4"),
])
def test_keskar_bad_input_gets_one_clear_line(args, expected, tmp_path):
    res = run_cli("-m", "lossland.cli", "keskar", *(a.format(tmp=tmp_path) for a in args))
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("lossland: error:")]
    assert len(err) == 1 and expected in err[0], res.stderr[-2000:]


@pytest.mark.slow
def test_keskar_recipe_script(tmp_path):
    """sweeps/keskar_sb_lb.sh itself, one seed, one epoch, a 16-unit MLP (≈ 20 s on an idle 2-core machine)."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = dict(os.environ, OUT=str(tmp_path), SEEDS="0", EPOCHS="1", HIDDEN="[16]", PYTHON=sys.executable,
               EXTRA_KESKAR="maxiter=1 alphas=[-1,2,4] progress=false")
    res = subprocess.run(["bash", "sweeps/keskar_sb_lb.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "keskar" / "keskar_table.md").exists() and (tmp_path / "timing.txt").exists()
    assert {p.name for p in tmp_path.glob("bs*")} == {"bs32-s0", "bs400-s0"}


@pytest.mark.parametrize("env, rc, expected", [
    ({"NETWORK": "C1", "SCALE": "full"}, 0, "NETWORK=C1 has no full-scale config"),
    ({"NETWORK": "F2", "SCALE": "full"}, 0, "NETWORK=F2 has no full-scale config"),
    ({"NETWORK": "C9"}, 2, "NETWORK must be F1, F2 or C1, not C9"),
])
def test_keskar_recipe_network_without_a_full_scale_config(env, rc, expected, tmp_path):
    """F2 and C1 have no paper-scale config (TIMIT, CIFAR-10): at SCALE=full the recipe writes why and trains
    nothing (lossland paper optim then reads them as not measured); an unknown NETWORK is refused."""
    import os
    import subprocess

    from tests.conftest import ROOT

    res = subprocess.run(["bash", "sweeps/keskar_sb_lb.sh"], cwd=ROOT, env=dict(os.environ, OUT=str(tmp_path), **env),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == rc and expected in res.stdout + res.stderr
    assert [p.name for p in tmp_path.iterdir()] == (["NOT_MEASURED.txt"] if rc == 0 else [])


@pytest.mark.slow
def test_keskar_recipe_script_c1_and_f2_tiny(tmp_path):
    """NETWORK=C1 and F2 of sweeps/keskar_sb_lb.sh at SCALE=tiny: the shallow conv net and the deeper BN MLP on
    digits, trained and analysed beside their rows of Keskar's table (≈ 30 s on an idle 2-core machine)."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    for net, model in (("C1", "lossland.models.ShallowConv"), ("F2", "lossland.models.MLP")):
        out = tmp_path / net
        env = dict(os.environ, OUT=str(out), NETWORK=net, SCALE="tiny", PYTHON=sys.executable)
        res = subprocess.run(["bash", "sweeps/keskar_sb_lb.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        rec = json.loads((out / "keskar" / "keskar.json").read_text())
        assert rec["network"] == net and len(rec["runs"]) == 2
        cfg = (out / "bs16-s0" / ".hydra" / "config.yaml").read_text()
        assert model in cfg and "lossland.data.Digits" in cfg
