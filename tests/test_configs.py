"""Configs tested as data: every option of every config group, every ``experiment=`` recipe and every app's
primary config composes, passes validation and instantiates (at tiny size)."""

import pytest
import torch
from omegaconf import OmegaConf

from lossland.build import (
    build_callbacks,
    build_data,
    build_loggers,
    build_loss,
    build_model,
    build_optimizer,
    build_regularizer,
    build_schedule,
    instantiate_node,
)
from lossland.config import CONFIG_DIR, compose, config_yaml, groups
from lossland.schema import validate

TRAIN_GROUPS = groups("train")
TINY_DATA = ["data.train_size=64", "data.test_size=32", "data.batch_size=16"]
# Data options read from a directory (data.root) are built from fake files in tests/test_data.py; here they
# compose and instantiate without reading.
NEEDS_ROOT = {"mnist", "cifar10"}
# Which embedded data each model option trains on at tiny size.
MODEL_DATA = {"mlp": "digits", "convnet_si": "digits", "vgg16_bn": "digits", "cnn_prelu": "mnist5k",
              "nas_genotype": "digits", "shallow_conv": "digits"}
TINY_MODEL = {"convnet_si": ["model.width=0.125"], "vgg16_bn": ["model.width=0.125"],
              "cnn_prelu": ["model.channels=[4,4,4]"], "mlp": ["model.hidden=[8]"],
              "nas_genotype": ["model.channels=4"], "shallow_conv": ["model.channels=[4,4]", "model.hidden=[8]"]}


def options(group):
    return [(group, o) for o in TRAIN_GROUPS[group]]


def test_the_train_app_has_the_groups_the_readme_lists():
    assert {"data", "model", "loss", "optimizer", "regularizer", "schedule", "metrics", "logger", "trainer",
            "experiment"} <= TRAIN_GROUPS.keys()


@pytest.mark.parametrize("group, option", [p for g in TRAIN_GROUPS if g != "experiment" for p in options(g)],
                         ids=lambda v: str(v))
def test_every_option_composes_validates_and_instantiates(group, option, tmp_path):
    overrides = [f"{group}={option}", f"out_dir={tmp_path}"]
    if group == "trainer" and option == "gpu" and not torch.cuda.is_available():
        cfg = compose(overrides)
        assert cfg.trainer.accelerator == "gpu" and callable(instantiate_node(cfg.trainer, "trainer"))
        return
    if group == "data" and option in NEEDS_ROOT:
        cfg = compose([*overrides, f"data.root={tmp_path}"])
        validate(cfg)
        assert instantiate_node(cfg.data, "data", seed=0) is not None
        return
    if group != "data":
        overrides.append("data=digits")
    if group == "model":
        overrides = [f"model={option}", f"data={MODEL_DATA[option]}", *TINY_MODEL[option], f"out_dir={tmp_path}"]
        if option in ("mlp", "cnn_prelu", "vgg16_bn", "nas_genotype", "shallow_conv"):
            overrides.append("optimizer=sgd")
    elif group != "optimizer" or option != "sphere_sgd":
        overrides += ["model=mlp", "model.hidden=[8]"]
        if not (group == "optimizer"):
            overrides.append("optimizer=sgd")
    if group == "optimizer" and option == "sphere_sgd":
        overrides += ["model.width=0.125"]
    if group == "loss" and option == "hinge3":
        overrides.append("data.classes=[1,7]")
    if group == "augment" and option == "exp_neuron":  # the neuron needs a binary model
        overrides += ["loss=hinge3", "data.classes=[1,7]"]
    cfg = compose([*overrides, *TINY_DATA])
    validate(cfg)
    dm = build_data(cfg)
    loss = build_loss(cfg)
    model = build_model(cfg, dm, loss)
    x, y = dm.splits["train"][0][:4], dm.splits["train"][1][:4]
    assert torch.isfinite(loss(model(x), y))
    optimizer = build_optimizer(cfg, model, dm)([p for p in model.parameters() if p.requires_grad])
    assert optimizer.param_groups
    build_regularizer(cfg)(model)
    assert build_schedule(cfg)(0) > 0
    build_callbacks(cfg, 8, tmp_path)
    loggers = build_loggers(cfg, tmp_path)
    trainer = instantiate_node(cfg.trainer, "trainer")(loggers=loggers)
    assert trainer.max_steps == cfg.trainer.max_steps


# The paper-scale experiments (experiment=paper/...: CIFAR-10 / MNIST from data.root, GPU) are composed and
# checked against their settings data in tests/test_paper_scale.py.
@pytest.mark.parametrize("recipe", [r for r in TRAIN_GROUPS["experiment"] if not r.startswith("paper/")])
def test_every_recipe_composes_validates_and_builds(recipe, tmp_path):
    cfg = compose([f"experiment={recipe}", f"out_dir={tmp_path}", "data.train_size=64", "data.test_size=32"])
    validate(cfg, recipe)
    dm = build_data(cfg)
    model = build_model(cfg, dm, build_loss(cfg))
    build_optimizer(cfg, model, dm)
    build_schedule(cfg)


APPS = {"train": [], "connect": ["a=x", "b=y"], "curvature": ["run=x"], "slice": ["run=x"], "nas": [], "lab": [],
        "keskar": ["sweep=x"]}
# where a single job / a sweep of each app writes (conf/hydra/app/*.yaml), after the date
RUN_DIRS = {"train": ("outputs/", "multirun/"), "connect": ("outputs/connect/", "multirun/connect/"),
            "lab": ("outputs/lab/", "multirun/lab/"), "nas": ("outputs/nas/", "multirun/nas/"),
            "curvature": (".", None), "slice": (".", None), "keskar": (".", None)}


@pytest.mark.parametrize("app", APPS)
def test_every_app_config_composes(app):
    cfg = compose(APPS[app], app)
    assert OmegaConf.to_yaml(cfg)
    assert (CONFIG_DIR / f"{app}.yaml").exists()


def test_every_app_is_a_command():
    from lossland.cli import COMMANDS
    from lossland.commands.base import App

    assert {c.config for c in COMMANDS.values() if isinstance(c, App)} == set(APPS)
    assert {p.stem for p in CONFIG_DIR.glob("*.yaml")} == set(APPS)  # one primary config per command


@pytest.mark.parametrize("app", APPS)
def test_every_app_takes_hydra_settings_from_the_shared_block(app):
    """One hydra/app option per kind of app (conf/hydra/app/): no primary config sets run/sweep directories."""
    primary = OmegaConf.load(CONFIG_DIR / f"{app}.yaml")
    assert set(primary.get("hydra", {})) <= {"job"} and set(primary.hydra.job) == {"name"}
    assert any("hydra/app" in str(entry) for entry in primary.defaults)
    hydra = compose(APPS[app], app, return_hydra_config=True).hydra
    assert hydra.job.name == app and hydra.job.chdir is False
    run, sweep = RUN_DIRS[app]
    assert hydra.run.dir.startswith(run) and (sweep is None or hydra.sweep.dir.startswith(sweep))
    assert hydra.run.dir == "." or hydra.run.dir.removeprefix(run)[:4].isdigit()  # outputs/<app>/<date>/...
    assert ("sweep_record" in hydra.callbacks) == (app == "train")
    assert hydra.help.app_name == f"lossland {app}"


@pytest.mark.parametrize("task", groups("lab")["task"])
def test_every_lab_task_names_its_function(task):
    from hydra.utils import get_method

    cfg = compose([f"task={task}"], "lab")
    assert callable(get_method(cfg.task._target_))


@pytest.mark.parametrize("group, option", [(g, o) for g, opts in groups("connect").items() for o in opts],
                         ids=lambda v: str(v))
def test_every_connect_option_instantiates(group, option):
    from lossland.studies.connect.run import instantiate_method

    cfg = compose(["a=x", "b=y", f"{group}={option}"], "connect")
    assert callable(instantiate_method(cfg[group]))


def test_config_yaml_is_omegaconfs_text():
    """``.hydra/config.yaml`` of a job lossland writes (grid members, jobs outside Hydra) is the text
    ``OmegaConf.to_yaml`` gives, through libyaml (characters beyond the BMP included: OmegaConf's path)."""
    odd = {"colon": "x: y", "accents": "é ü 中文", "lines": "a\nb", "quotes": "'q'", "number": "1e-3", "bool": "true",
           "empty": "", "lead": " x", "long": "a" * 200 + " " + "b" * 200, "interp": "${now:%Y-%m-%d}",
           "list": ["a=b", "c,d", "[x]"], "null": "null", "hash": "#c", "tab": "a\tb", "emoji": "run 😀",
           "float": 1e-3, "none": None, "mixed": [1, 2.5, True], "nested": {"u": {}}, "nothing": []}
    for cfg in (compose(["data=digits", "model=mlp"]), OmegaConf.create(odd), OmegaConf.create(["a=1", "b=x y"])):
        assert config_yaml(cfg) == OmegaConf.to_yaml(cfg)
