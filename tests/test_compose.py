"""Composition once per defaults list (lossland/compose.py) equals Hydra's own, for every option of every config
group of every app, with value overrides on top; and every such config resolves with the memoized interpolation
parser (lossland/interpolations.py) to what OmegaConf's own gives."""

from __future__ import annotations

import omegaconf.base
import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from omegaconf.errors import GrammarParseError

from lossland import interpolations
from lossland.compose import STATS
from lossland.config import CONFIG_DIR, compose, groups

APPS = ("train", "connect", "lab", "nas", "curvature", "slice", "keskar")
VALUES = {"train": ["seed=3", "lr=0.5", "+extra.note=x", "checkpoint.num_points=7"],
          "connect": [], "lab": [], "nas": [], "curvature": [], "slice": [], "keskar": []}
CASES = [(app, f"{group}={option}") for app in APPS for group, options in groups(app).items() for option in options]


def _hydra(overrides: list[str], app: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name=app, overrides=overrides, return_hydra_config=True)


def _plain(cfg) -> dict:
    out = OmegaConf.to_container(cfg, resolve=False)
    out["hydra"]["runtime"].pop("output_dir", None)
    return out


@pytest.mark.parametrize(("app", "choice"), CASES, ids=[f"{a}:{c}" for a, c in CASES])
def test_equals_hydra(app, choice):
    overrides = [choice, *VALUES[app]]
    try:
        theirs = _hydra(overrides, app)
    except Exception as e:  # noqa: BLE001 - an option that is composed with another app's config only
        with pytest.raises(type(e)):
            compose(overrides, app, return_hydra_config=True)
        return
    ours = compose(overrides, app, return_hydra_config=True)
    assert _plain(ours) == _plain(theirs)
    assert OmegaConf.is_struct(ours) == OmegaConf.is_struct(theirs)
    job = OmegaConf.create({k: v for k, v in _plain(ours).items() if k != "hydra"})  # ${hydra:} needs a running app
    memoized = _resolved(job)
    interpolations.uninstall()
    try:
        assert memoized == _resolved(job)
    finally:
        interpolations.install()


def _resolved(cfg):
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception as e:  # noqa: BLE001 - the same failure either way
        return type(e).__name__, str(e)


def test_memoized_parse_reads_the_values_at_resolution_and_refuses_bad_strings_every_time():
    assert omegaconf.base.parse is interpolations.memo_parse  # installed by lossland.config
    cfg = OmegaConf.create({"lr": 0.1, "opt": {"lr": "${lr}", "v": "${oc.select:opt.elr,${oc.select:opt.lr,null}}"}})
    assert (cfg.opt.lr, cfg.opt.v) == (0.1, 0.1)
    cfg.lr = 0.2
    assert (cfg.opt.lr, cfg.opt.v) == (0.2, 0.2)
    assert interpolations.memo_parse.cache_info().hits > 0
    for _ in range(2):
        with pytest.raises(GrammarParseError):
            OmegaConf.to_container(OmegaConf.create({"a": "${oc.select:"}), resolve=True)


def test_value_overrides_reuse_the_template():
    before = dict(STATS)
    for lr in (0.1, 0.2, 0.3):
        cfg = compose(["optimizer=sgd", f"lr={lr}", "seed=1"])
        assert cfg.lr == lr and cfg.seed == 1
    assert STATS["composed"] - before["composed"] <= 1 and STATS["reused"] - before["reused"] >= 2
    assert compose(["optimizer=sgd"]).lr == compose([]).lr  # a value override never leaks into the template


def test_bad_override_fails_as_hydra_does():
    with pytest.raises(Exception, match="Could not override 'nonexistent_key'"):
        compose(["nonexistent_key=1"])
