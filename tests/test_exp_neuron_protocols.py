"""Study E's four protocols end to end at tiny size: each recipe (sweeps/exp_neuron_*.sh) runs its sweep and its
table (``lossland exp-neuron``); the table has one row per data set and size, the seed's columns and its units."""

import csv
import os
import subprocess
import sys

import pytest

from lossland.runs import Run, find_runs
from lossland.studies.exp_neuron.seed import UNITS
from lossland.studies.exp_neuron.tables import COLUMNS
from tests.conftest import ROOT

TINY = ["data.dim=10", "data.val_size=32", "data.test_size=32", "model.hidden=[8]"]


def recipe(name, out, env=None, extra=(), tiny=True):
    env = dict(os.environ, OUT=str(out), PY=sys.executable, LOSSLAND=f"{sys.executable} -m lossland.cli",
               PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="0", **(env or {}))
    res = subprocess.run(["bash", f"sweeps/exp_neuron_{name}.sh", *(TINY if tiny else ()), *extra], cwd=ROOT,
                         capture_output=True,
                         text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return res.stdout


def table(out, protocol):
    with open(out / "exp_neuron" / f"{protocol}.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [h for _, h in COLUMNS[protocol]]
    md = (out / "exp_neuron" / f"{protocol}.md").read_text()
    assert md.startswith(f"Units: {UNITS[protocol]}") and (out / "exp_neuron" / f"{protocol}.png").stat().st_size
    return rows


def test_quality_recipe(tmp_path):
    stdout = recipe("quality", tmp_path, {"SETS": "spheres:1.01:64,96 spheres:5:64", "EPOCHS": "3"})
    rows = table(tmp_path, "quality")
    assert [(r["data set"], r["train"]) for r in rows] == [
        ("spheres R2=1.01", "64"), ("spheres R2=1.01", "96"), ("spheres R2=1.01", "10000"),
        ("spheres R2=1.01", "15000"), ("spheres R2=1.01", "20000"), ("spheres R2=5", "64")]
    seed_only = rows[2:5]  # the seed's rows of the same data set, ours empty
    assert [(r["ours: none"], r["seed: none"], r["seed: exp"]) for r in seed_only] == [
        ("—", "0\\0", "0\\0"), ("—", "44.3\\7", "3693.2\\1096"), ("—", "8311.8\\2338", "335.8\\35")]
    assert "Units: training split: loss summed" in stdout
    rows = rows[:2] + rows[5:]
    for r in rows:  # ours: "loss_sum\misclassified"; the seed's at its sizes only
        loss_sum, wrong = r["ours: none"].split("\\")
        assert float(loss_sum) >= 0 and 0 <= int(wrong) <= int(r["train"])
        assert r["div none"] == "0/1" and r["div exp"] in ("0/1", "1/1")
        assert r["seed: none"] == "—"
    runs = [Run(d) for d in find_runs(tmp_path)]
    assert len(runs) == 6 and all({"train_loss_sum", "train_misclassified"} <= r.final.keys() for r in runs)


def test_speed_recipe_reports_the_best_setting_and_counts_divergences(tmp_path):
    recipe("speed", tmp_path, {"SETS": "spheres:5:64", "EPOCHS": "30", "LRS": "1e-2,1e3", "LAMS": "1e-3"},
           extra=["data.batch_size=32"])
    (row,) = table(tmp_path, "speed")
    assert row["data set"] == "spheres R2=5" and row["train"] == "64"
    assert row["div none"].endswith("/2") and row["div exp"].endswith("/2")
    assert int(row["div exp"][0]) >= 1  # lr = 1000 diverges with the neuron: a status, the grid went on
    if row["ours: none"] != "—":
        assert row["best none"] == "lr=0.01" and "steps" in row["ours: none"]
    runs = [Run(d) for d in find_runs(tmp_path)]
    assert all("converged_step" in r.summary for r in runs)
    assert any(r.status == "diverged" and r.summary["diverged_cause"] for r in runs)
    # the recipe's default launcher trained each call's rates (× λ) as one stack; the diverged member left it
    assert all(r.summary["grid"]["vectorized"] and r.summary["grid"]["members"] == 2 for r in runs)


def test_generalization_recipe_picks_among_converged_settings(tmp_path):
    recipe("generalization", tmp_path, {"SETS": "spheres:5:64", "EPOCHS": "40", "LRS": "1e-2,3e-2", "LAMS": "1e-3"},
           extra=["data.batch_size=32"])
    rows = table(tmp_path, "generalization")
    (row,) = [r for r in rows if r["train"] == "64"]
    (seed_row,) = [r for r in rows if r["train"] == "5000"]  # the seed's row of the same data set
    assert seed_row["seed: none"] == "678.1\\140" and seed_row["ours: none"] == "—"
    assert row["elig. none"].endswith("/2") and row["elig. exp"].endswith("/2")
    if row["ours: none"] != "—":
        loss_sum, wrong = row["ours: none"].split("\\")
        assert 0 <= int(wrong) <= 32 and row["chosen none"].startswith("lr=")


def test_stability_recipe_perturbs_and_reports_divergence_fraction(tmp_path):
    recipe("stability", tmp_path, {"SET": "spheres:5:64", "EPOCHS": "5", "MORE": "3", "BASES": "0",
                                   "NOISE": "1,2", "SEED_SET": "none"})
    rows = table(tmp_path, "stability")
    assert {r["protocol"] for r in rows} == {"controlled"}
    got = {(r["model"], r["perturbed"], r["noise scale"]): r for r in rows}
    pairs = {("exp_neuron", "exp_neuron"), ("exp_neuron", "hidden_neuron"), ("none", "hidden_neuron")}
    assert set(got) == {(*p, s) for p in pairs for s in ("0.1", "10")}  # the default SCALES: the seed's and 100×
    for r in rows:
        assert r["runs"] == "2" and float(r["σ (median)"]) > 0
        assert int(r["diverged"]) == int(r["overflow at step 1"]) + int(r["blow-ups"]) <= 2
    for m, p, s in got:  # σ is the scale times the same neuron's mean |w|
        if s == "10":
            assert float(got[m, p, "10"]["σ (median)"]) == pytest.approx(100 * float(got[m, p, "0.1"]["σ (median)"]),
                                                                      rel=1e-2)
    # the seed's statement (every run with a perturbed exponential neuron diverges) stands beside its own σ only
    assert float(got["exp_neuron", "exp_neuron", "0.1"]["seed"]) == 1.0
    assert got["exp_neuron", "exp_neuron", "10"]["seed"] == got["none", "hidden_neuron", "0.1"]["seed"] == "—"
    cont = [Run(d) for d in find_runs(tmp_path / "perturbed_exp_neuron")]
    assert {r.summary["perturbation"]["target"] for r in cont} == {"exp_neuron", "hidden_neuron"}
    assert not any(r.summary.get("grid", {}).get("vectorized") for r in cont)  # they do not stack: one by one


def test_stability_at_the_seeds_conditions_continues_the_base_runs(tmp_path):
    recipe("stability", tmp_path, {"SET": "spheres:5:64", "EPOCHS": "2", "MORE": "1", "BASES": "0", "NOISE": "1",
                                   "SCALES": "0.1", "SEED_SET": "digits::64", "SEED_EPOCHS": "3", "SEED_MORE": "2"},
           tiny=False)
    rows = table(tmp_path, "stability")
    seed = [r for r in rows if r["protocol"] == "seed's conditions"]
    assert {(r["data set"], r["model"], r["perturbed"]) for r in seed} == {
        ("digits 1v7", "exp_neuron", "exp_neuron"), ("digits 1v7", "exp_neuron", "hidden_neuron"),
        ("digits 1v7", "none", "hidden_neuron")}
    assert {r["data set"] for r in rows if r["protocol"] == "controlled"} == {"spheres R2=5"}
    base = Run(find_runs(tmp_path / "seed_base_exp_neuron")[0])
    assert base.config.data.normalize == "none" and base.config.augment.model.w_init == "linear"
    cont = [Run(d) for d in find_runs(tmp_path / "seed_perturbed_exp_neuron")]
    for r in cont:  # the base run's optimizer state and schedule go on: the rate at its last step, not the start
        assert r.config.init_state == "continue" and r.summary["continued_from_step"] == base.summary["steps"] == 3
        assert r.summary["lr"] == pytest.approx(1e-2 * 1e-2 ** (3 / 5)) and "loss_after" in r.summary["perturbation"]


def test_bad_protocol_and_empty_dir_are_one_line(tmp_path):
    from tests.conftest import run_cli

    res = run_cli("-m", "lossland.cli", "exp-neuron", str(tmp_path), "--protocol", "stability")
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1, res.stderr


@pytest.mark.parametrize("protocol", ["quality"])
def test_protocol_columns_are_documented(protocol):
    assert "\\" in UNITS[protocol]
