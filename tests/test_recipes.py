"""Every study recipe (``sweeps/*.sh``) end to end.

``-m recipes`` (run by ``.ci/run`` with the default tests, in its ``make test`` call): each recipe, discovered from
``sweeps/``, runs at ``SCALE=tiny`` (seconds of training: tiny data, a narrow net, a few steps) and its outputs are
checked — every run finished, its tables and report written. A new recipe is run here without being listed; one
that does not honour ``SCALE=tiny`` fails (it runs past the time limit or refuses the scale). Study E's four
protocol recipes run in the default test run already (tests/test_exp_neuron_protocols.py, with their own checks)
and are not run twice. Slow: the embedded CE recipe finds the three phases in elr order.
"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lossland.runs import Run, find_runs
from lossland.studies.sphere.phases import assign_phase
from tests.conftest import ROOT

RECIPES = sorted(p.name for p in (ROOT / "sweeps").glob("*.sh") if not p.name.startswith("_"))
ELSEWHERE = {f"exp_neuron_{p}.sh": ("tests.test_exp_neuron_protocols", t) for p, t in [
    ("quality", "test_quality_recipe"),
    ("speed", "test_speed_recipe_reports_the_best_setting_and_counts_divergences"),
    ("generalization", "test_generalization_recipe_picks_among_converged_settings"),
    ("stability", "test_stability_recipe_perturbs_and_reports_divergence_fraction")]}


def run_recipe(name: str, out, **env):
    env = dict(os.environ, OUT=str(out), SCALE="tiny", PY=sys.executable, PYTHON=sys.executable,
               LOSSLAND=f"{sys.executable} -m lossland.cli", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
               HYDRA_FULL_ERROR="0", WANDB_MODE="offline", **env)
    res = subprocess.run(["bash", f"sweeps/{name}"], cwd=ROOT, capture_output=True, text=True, env=env,
                         timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    return res


def report_of(out):
    return json.loads((out / "report" / "phases.json").read_text())


def check_sphere_elr_ce(out):
    table = report_of(out)
    assert table["x"] == "elr" and [s["elr"] for s in table["settings"]] == [3e-3, 1e-2, 3e-2, 1e-1]


def check_vgg_offsphere(out):
    table = report_of(out)
    assert table["x"] == "lr" and table["series"] == ["regularizer.coef"] and len(table["settings"]) == 4
    for d in find_runs(out):
        s = Run(d).summary
        assert s["elr"] is None and s["lr"] in (0.01, 0.1)  # the rate plain SGD used, no sphere default


def check_sphere_schedule(out):
    table = report_of(out / "from_0")
    assert table["x"] == "schedule.transition_length"
    for d in find_runs(out / "from_0"):  # the scheduled fine-tunes of the phase-2 pretrain
        r = Run(d)
        assert r.summary["elr"] == pytest.approx(1e-2) and r.summary["elr_final"] == pytest.approx(1e-4)
        assert Path(r.config.init_from) == out / "pretrain" / "0"
    assert Run(out / "pretrain" / "0").summary["elr"] == pytest.approx(1e-2)
    assert Run(out / "scratch" / "0").summary["elr"] == pytest.approx(1e-4)  # the from-scratch baseline


def check_sphere_finetune_mse(out):
    runs = [Run(d) for d in find_runs(out)]
    assert any(r.config.get("init_from") for r in runs)  # fine-tunes of the pretrains
    assert {r.config.loss._target_ for r in runs} == {"lossland.losses.MSE"} and list(out.rglob("connect.json"))


def check_optim_lab(out):
    assert (out / "vanishing" / "vanishing.csv").exists() and (out / "timing.txt").exists()
    assert len(list(out.glob("trajectories/*/trajectories.png"))) == 6
    assert len(list(out.glob("escape/*/escape.png"))) == 2


def check_keskar_sb_lb(out):
    assert (out / "keskar" / "keskar_table.md").exists()
    assert {p.name for p in out.glob("bs*")} == {"bs16-s0", "bs64-s0"}


def check_exp_neuron_spheres(out):
    for protocol in ("quality", "speed"):
        assert (out / protocol / "exp_neuron" / f"{protocol}.csv").exists()


def check_papers(out):
    """The all-studies runner, here with one study: its comparison and its wall-time line."""
    assert (out / "optim" / "paper" / "optim" / "paper.json").exists()
    lines = (out / "times.tsv").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optim\t") and "lossland paper optim logger=csv" in lines[0]


CHECKS = {"papers.sh": check_papers, "sphere_elr_ce.sh": check_sphere_elr_ce, "vgg_offsphere.sh": check_vgg_offsphere,
          "sphere_schedule.sh": check_sphere_schedule, "sphere_finetune_mse.sh": check_sphere_finetune_mse,
          "optim_lab.sh": check_optim_lab,
          "keskar_sb_lb.sh": check_keskar_sb_lb, "exp_neuron_spheres.sh": check_exp_neuron_spheres}
ENV = {"papers.sh": {"STUDIES": "optim"}}  # the runner of every study's paper command: one study is enough here


def check_runs(out):
    """Every training run under ``out`` finished (ok, or diverged: a status, not a failure), at least one ok;
    ``results.csv`` lists them; a report covers them."""
    runs = [Run(d) for d in find_runs(out)]
    statuses = [r.status for r in runs]
    assert all(s in ("ok", "diverged") for s in statuses), statuses
    assert not runs or "ok" in statuses
    for csv in out.rglob("results.csv"):
        rows = csv.read_text().splitlines()[1:]
        assert len(rows) == len(find_runs(csv.parent)), csv
    for table in out.rglob("report/phases.json"):
        rows = json.loads(table.read_text())["runs"]
        assert rows and len(rows) == len(find_runs(table.parent.parent)), table
    return runs


def test_every_recipe_is_run_somewhere():
    """Each recipe is run by the marker test below or by a named test of the default run."""
    assert len(RECIPES) >= 10
    for name, (module, test) in ELSEWHERE.items():
        assert name in RECIPES and callable(getattr(importlib.import_module(module), test)), name


@pytest.mark.recipes
@pytest.mark.parametrize("name", [r for r in RECIPES if r not in ELSEWHERE])
def test_recipe_tiny(name, tmp_path):
    out = tmp_path / "out"
    run_recipe(name, out, **ENV.get(name, {}))
    runs = check_runs(out)
    if name in CHECKS:
        CHECKS[name](out)
    else:  # a training recipe: it trained something
        assert runs, f"{name} wrote no run under {out}"


@pytest.mark.slow
def test_sphere_ce_recipe_finds_three_phases_in_elr_order(tmp_path):
    out = tmp_path / "ce"
    res = subprocess.run(["bash", "sweeps/sphere_elr_ce.sh", "logger=csv"], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, OUT=str(out)), timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]
    table = json.loads((out / "report" / "phases.json").read_text())
    runs = sorted((Run(d) for d in out.glob("[0-9]*")), key=lambda r: r.elr)
    labels = [assign_phase(r.summary, r.history()) for r in runs]
    assert sorted(row["phase"] for row in table["runs"]) == sorted(labels)
    order = [int(lbl[0]) for lbl in labels]
    assert order == sorted(order) and order[0] == 1 and set(order) == {1, 2, 3}, labels
    for run, lbl in zip(runs, labels):
        if lbl == "3":
            _, cos = run.series("cos_prev")
            assert run.final["train_error"] >= 0.8 and np.nanmean(cos[len(cos) // 2:]) < 0.2
    assert min(r.final["train_error"] for r, lbl in zip(runs, labels) if lbl.startswith("1")) < 0.02
