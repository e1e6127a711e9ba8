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
from lossland.config import CONFIG_DIR, compose, groups
from lossland.schema import validate

TRAIN_GROUPS = groups("train")
TINY_DATA = ["data.train_size=64", "data.test_size=32", "data.batch_size=16"]
# Data options read from a directory (data.root) are built from fake files in tests/test_data.py; here they
# compose and instantiate without reading.
NEEDS_ROOT = {"mnist", "cifar10"}
# Which embedded data each model option trains on at tiny size.
MODEL_DATA = {"mlp": "digits", "convnet_si": "digits", "vgg16_bn": "digits", "cnn_prelu": "mnist5k",
              "nas_genotype": "digits"}
TINY_MODEL = {"convnet_si": ["model.width=0.125"], "vgg16_bn": ["model.width=0.125"],
              "cnn_prelu": ["model.channels=[4,4,4]"], "mlp": ["model.hidden=[8]"],
              "nas_genotype": ["model.channels=4"]}


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
        if option in ("mlp", "cnn_prelu", "vgg16_bn", "nas_genotype"):
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


@pytest.mark.parametrize("recipe", TRAIN_GROUPS["experiment"])
def test_every_recipe_composes_validates_and_builds(recipe, tmp_path):
    cfg = compose([f"experiment={recipe}", f"out_dir={tmp_path}", "data.train_size=64", "data.test_size=32"])
    validate(cfg, recipe)
    dm = build_data(cfg)
    model = build_model(cfg, dm, build_loss(cfg))
    build_optimizer(cfg, model, dm)
    build_schedule(cfg)


@pytest.mark.parametrize("app", ["train", "connect", "curvature", "slice", "nas"])
def test_every_app_config_composes(app):
    cfg = compose(["a=x", "b=y"] if app == "connect" else ["run=x"] if app in ("curvature", "slice") else [], app)
    assert OmegaConf.to_yaml(cfg)
    assert (CONFIG_DIR / f"{app}.yaml").exists()


@pytest.mark.parametrize("group, option", [(g, o) for g, opts in groups("connect").items() for o in opts],
                         ids=lambda v: str(v))
def test_every_connect_option_instantiates(group, option):
    from lossland.studies.connect.run import instantiate_method

    cfg = compose(["a=x", "b=y", f"{group}={option}"], "connect")
    assert callable(instantiate_method(cfg[group]))
