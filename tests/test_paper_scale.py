"""The papers' scale as tested configs: every full-scale experiment (``conf/experiment/paper/*.yaml``) composes,
job by job, to the setting its study's data states (``lossland/studies/<study>/settings.yaml``: sizes, model and
width, loss, optimizer, grid, batch, length in steps, evaluation cadence, seeds), each with the seed's words as
its source. A config that does not say what it claims fails here (docs/scale.md, "The papers' scale")."""

import copy

import pytest
import yaml

from lossland.commands import paper as paper_cmd
from lossland.config import CONFIG_DIR
from lossland.errors import LosslandError
from lossland.paper import settings as S
from tests.conftest import ROOT

PAPER = CONFIG_DIR / "experiment" / "paper"


@pytest.mark.parametrize("study", tuple(paper_cmd.ADAPTERS))
def test_every_full_scale_experiment_composes_to_its_settings(study):
    problems = [p for e in paper_cmd.settings(study).experiments.values() for p in S.check(e)]
    assert not problems, "\n".join(problems)


def test_every_paper_config_is_described_and_every_described_config_exists():
    described = {e.config for e in paper_cmd.all_experiments()}
    on_disk = {f"paper/{p.stem}" for p in PAPER.glob("*.yaml")}
    assert described == on_disk
    for e in paper_cmd.all_experiments():
        assert (ROOT / "sweeps" / f"{e.recipe}.sh").exists() or e.recipe == "nas", e.name


def test_settings_are_well_formed_and_refuse_what_is_missing():
    for study in tuple(paper_cmd.ADAPTERS):
        assert S.problems(yaml.safe_load(S.settings_text(paper_cmd.adapter(study).__package__))) == []
    doc = yaml.safe_load(S.settings_text(paper_cmd.adapter("sphere").__package__))
    bad = copy.deepcopy(doc)
    del bad["experiments"]["sphere_ce"]["source"]["grid"]
    bad["experiments"]["sphere_mse"]["app"] = "jupyter"
    bad["experiments"]["sphere_mse_subset"]["with"] = ["nope"]
    found = S.problems(bad)
    assert "sphere_ce: no source for grid" in found
    assert any("sphere_mse: app 'jupyter'" in p for p in found)
    assert "sphere_mse_subset: unknown block nope" in found
    with pytest.raises(LosslandError, match="settings of sphere"):
        S.parse(bad)


def test_a_config_that_differs_from_its_settings_fails():
    exp = paper_cmd.settings("sphere").experiments["sphere_ce"]
    found = "\n".join(S.check(exp, ["data.batch_size=64", "elr=1e-3,1e-2"]))  # the command line wins
    assert "data.batch_size = 64, settings: 128" in found
    assert "781000 steps, settings: 390000" in found            # 1000 epochs of 50,000 // 64 = 781 steps
    assert "phase metrics every 390 steps" in found             # once per epoch is now 781 steps
    assert "2 jobs, the settings' grid has 14" in found
    assert "grid elr = ['0.001', '0.01']" in found


def test_the_embedded_recipe_is_not_the_papers_experiment():
    """What docs/scale.md used to launch: experiment=sphere_ce (the embedded recipe) with CIFAR-10 — its own
    values won (2,000 images, width 0.125, batch 64, 800 steps). Checked as the paper's, it fails on each."""
    exp = copy.copy(paper_cmd.settings("sphere").experiments["sphere_ce"])
    exp.config = "sphere_ce"
    exp.overrides = ["data=cifar10", "trainer=gpu", "trainer.max_epochs=1000",
                     "elr=8e-7,1e-5,3e-5,8e-5,1e-4,3e-4,7e-4,8e-4,1e-3,3e-3,1e-2,2e-2,5e-2,1e-1"]
    found = "\n".join(S.check(exp))
    for leak in ("data.train_size = 2000", "model.width = 0.125", "data.batch_size = 64", "800 steps"):
        assert leak in found, leak


def test_the_reading_of_iterations_is_one_and_stated_in_the_docs():
    sphere = paper_cmd.settings("sphere")
    assert "epochs" in sphere.readings["iterations"]
    exps = sphere.experiments
    per_epoch = 50_000 // 128
    assert exps["sphere_ce"].steps == 1000 * per_epoch        # "1000 итераций"
    assert exps["sphere_mse"].steps == 6000 * per_epoch       # "6000 итераций"
    assert exps["sphere_finetune_phase1"].steps == 5000 * per_epoch  # "5000 итераций"
    assert exps["sphere_mse_subset"].steps == 6000 * (5_000 // 128)
    docs = (ROOT / "docs" / "sphere.md").read_text()
    assert "## The paper's scale" in docs and "390,000" in docs and "2,340,000" in docs and "1,950,000" in docs


def test_every_sphere_experiment_evaluates_once_per_epoch():
    for e in paper_cmd.settings("sphere").experiments.values():
        if e.app == "train":
            assert e.eval_every_epochs == 1, e.name


# ------------------------------------------------------------------------------ the recipes at SCALE=full
FAKE_PY = r"""#!/usr/bin/env bash
# stands for python: records the call; a sweep gets job folders so the recipe's later steps find them
echo "$*" >> "$CALLS"
for a in "$@"; do
  case "$a" in
    hydra.sweep.dir=*) d=${a#hydra.sweep.dir=}; mkdir -p "$d/0" "$d/1" "$d/2" "$d/w100-s0" "$d/w100-s10";;
  esac
done
"""
PLACEMENT = ("data.root=", "hydra.sweep.dir=", "hydra.run.dir=", "trainer.enable_progress_bar=", "init_from=",
             "task.runs=", "out_dir=", "a=", "b=", "+root=", "+w=", "+pair=")


@pytest.mark.parametrize("recipe", sorted({e.recipe for e in paper_cmd.all_experiments()}))
def test_a_full_scale_recipe_runs_the_paper_configs_and_adds_nothing_hidden(recipe, tmp_path):
    """Each call a recipe makes at SCALE=full: a paper config, where it runs and what it reads, and exactly the
    overrides the settings list for that experiment (e.g. the fine-tunes' pre-trains at elr=1e-4,1e-3,1e-2)."""
    import os
    import subprocess

    fake = tmp_path / "python"
    fake.write_text(FAKE_PY)
    fake.chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = dict(os.environ, SCALE="full", DATA_ROOT=str(tmp_path), OUT=str(tmp_path / "out"), PY=str(fake),
               PYTHON=str(fake), LOSSLAND="true", CALLS=str(calls))
    launcher = "hydra/launcher=submitit_slurm"  # an argument of the recipe: it reaches every sweep
    res = subprocess.run(["bash", f"sweeps/{recipe}.sh", launcher], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    exps = [e for e in paper_cmd.all_experiments() if e.recipe == recipe]
    used = set()
    for line in calls.read_text().splitlines():
        args = line.split()
        if args[:3] == ["-m", "lossland.cli", "keskar"]:  # lossland keskar SWEEP ...: the sweep is where it reads
            args = ["keskar", *args[4:]]
        if args[0] not in ("train.py", "connect.py", "nas.py", "lab.py", "keskar"):
            continue  # the recipe's own helpers (python -c, python -m lossland...)
        config = next((a.split("=", 1)[1] for a in args if a.startswith(("experiment=", "+experiment="))), None)
        assert config and config.startswith("paper/"), line
        if args[0] in ("train.py", "nas.py"):
            assert launcher in args, f"{recipe}: the recipe's arguments do not reach {line}"
        args = [a for a in args if a != launcher]
        rest = sorted(a for a in args[1:] if a != "-m" and not a.startswith(("experiment=", "+experiment="))
                      and not a.startswith(PLACEMENT))
        match = [e for e in exps if e.config == config and sorted(e.overrides) == rest]
        assert match, f"{recipe}: {line}: no {config} experiment of the settings with the overrides {rest}"
        used.update(e.name for e in match)
    assert used == {e.name for e in exps}, f"{recipe} never runs {sorted({e.name for e in exps} - used)}"


def test_a_full_scale_recipe_refuses_an_embedded_knob(tmp_path):
    import os
    import subprocess

    env = dict(os.environ, SCALE="full", DATA_ROOT=str(tmp_path), OUT=str(tmp_path / "o"), ELRS="1e-3")
    res = subprocess.run(["bash", "sweeps/sphere_elr_ce.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 2 and "SCALE=full takes its values from conf/experiment/paper/ (ELRS=1e-3" in res.stderr
    env.pop("ELRS")
    env["MNIST_ROOT"], env["WIDTHS"] = str(tmp_path), "10"
    res = subprocess.run(["bash", "sweeps/connect_width.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 2 and "WIDTHS=10 is an embedded knob" in res.stderr


# --------------------------------------------------------------------------------------------- the plan
def test_plan_lists_every_job_with_its_cost_and_runs_nothing(tmp_path, capsys):
    import json

    from lossland.cli import main

    main(["paper", "optim", "--scale", "full", "--plan", "--data-root", "/data/mnist", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert not list(tmp_path.glob("*/")), "a plan runs nothing"
    runs, analysis = plan["experiments"]
    assert runs["count"] == 10 and len(runs["jobs"]) == 10 and analysis["app"] == "keskar"
    sb = next(j for j in runs["jobs"] if j["overrides"] == ["data.batch_size=256", "seed=0"])
    assert sb["steps"] == 100 * (60_000 // 256) and sb["examples"] == sb["steps"] * 256
    assert sb["params"] == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10 and sb["checkpoints"] == 1
    assert sb["device"] == "gpu" and sb["seconds"] > 0 and sb["basis"].startswith("estimated: ")
    assert plan["total"]["jobs"] == 11 and plan["total"]["gpu_hours"] > 0
    assert "lossland train -m experiment=paper/keskar_sb_lb data.root=/data/mnist" in printed
    assert "total: 11 jobs" in printed


def test_plan_times_a_job_from_a_measured_row_where_there_is_one():
    from lossland.paper import plan as P

    exp = paper_cmd.settings("exp_neuron").experiments["exp_neuron_stability_base_none"]
    job, cfg = S.compose_jobs(exp)[0]
    j = P.train_job(job, cfg, P.time_table())
    assert j.device == "cpu" and j.basis.startswith("measured: ") and j.steps == 750
    ce = paper_cmd.settings("sphere").experiments["sphere_ce"]
    job, cfg = S.compose_jobs(ce, ["data.root=/x"])[0]
    j = P.train_job(job, cfg, P.time_table())
    assert j.params == 387_936 and j.evals == 1001 and j.checkpoints == 21   # 1000 epochs + step 0; 20 + last
    assert "43.9 GFLOP per step" in j.basis                                   # ConvNet-SI width 1, batch 128


@pytest.mark.parametrize("args, says", [
    (["paper", "sphere", "--plan"], "--plan is about the paper's scale: add --scale full"),
    (["paper", "sphere", "--scale", "full", "--rehearse", "--plan"], "--plan runs nothing"),
    (["paper", "sphere", "--scale", "full"], "--scale full needs --data-root"),
    (["paper", "sphere", "--scale", "full", "--data-root", "/nonexistent/x"], "no such directory"),
    (["paper", "sphere", "--from", ".", "--rehearse", "--scale", "full"], "--from reads a sweep that exists"),
])
def test_paper_scale_options_refuse_bad_input_in_one_line(args, says, capsys, monkeypatch):
    from lossland.cli import main

    monkeypatch.delenv("DATA_ROOT", raising=False)
    monkeypatch.delenv("SCALE", raising=False)
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and says in err and err.count("\n") == 1, err


# ------------------------------------------------------------------------- launching a config's own sweep
def test_a_configs_own_sweep_is_expanded_like_hydras_and_the_command_line_wins():
    from lossland.config import config_sweep, expand_jobs

    argv = ["-m", "experiment=paper/vgg_offsphere", "data.root=/x"]
    params, launcher = config_sweep(argv)
    assert params == ["lr=1e-3,3e-3,1e-2,3e-2,1e-1,3e-1,1,3", "regularizer.coef=0,1e-4"]
    jobs = expand_jobs(argv, params)
    assert len(jobs) == 16 and jobs[0][:2] == ["lr=0.001", "regularizer.coef=0"]  # Hydra's basic sweeper's order
    jobs = expand_jobs([*argv, "lr=0.5"], params)                               # the command line replaces lr
    assert len(jobs) == 2 and all(j[0] == "lr=0.5" for j in jobs)
    single = [*argv, "hydra.sweeper.params=null"]                              # one job, the single-run values
    assert expand_jobs(single, config_sweep(single)[0]) == [single[1:]]
    assert expand_jobs(argv[1:], params) == [argv[1:]]                          # no -m: one job, no sweep


def test_a_gpu_job_launched_to_a_cluster_is_validated_without_a_local_gpu():
    from lossland.config import compose
    from lossland.sweep.sweeper import on_launching_machine as _on_launching_machine

    cfg = compose(["experiment=paper/sphere_ce", "data.root=/x"])
    assert cfg.trainer.accelerator == "gpu"
    for kind in ("submitit_slurm", "ray"):
        assert _on_launching_machine(cfg, kind).trainer.accelerator == "cpu"
    assert _on_launching_machine(cfg, "basic") is cfg and cfg.trainer.accelerator == "gpu"   # local: checked as is
