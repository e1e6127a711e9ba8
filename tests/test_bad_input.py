"""Every refused value, with its one-line message (lossland.schema, checked before any job starts)."""

import pytest
from omegaconf import OmegaConf

from lossland.config import compose
from lossland.errors import LosslandError
from lossland.schema import resolve_checked, validate
from tests.conftest import run_cli

REFUSED = [
    (["model.width=0"], "model.width=0 is not valid: width must be a positive number"),
    (["data=spheres", "data.dim=0"], "data.dim=0 is not valid: dim must be a positive integer"),
    (["trainer.max_steps=0"], "trainer.max_steps=0 is not valid"),
    (["trainer.max_steps=-5"], "trainer.max_steps=-5 is not valid"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0 is not valid"),
    (["metrics.every_n_steps=0"], "metrics.every_n_steps=0 is not valid: every_n_steps must be a positive integer"),
    (["metrics.every_n_steps=null"], "metrics.every_n_steps=null is not valid without metrics.log_spaced=true"),
    (["metrics.eval_batches=0"], "metrics.eval_batches=0 is not valid"),
    (["checkpoint.every_n_steps=-5"], "checkpoint.every_n_steps=-5 is not valid"),
    (["max_loss=abc"], "max_loss=abc is not valid: max_loss must be a positive number or null"),
    (["max_loss=-1"], "max_loss=-1 is not valid"),
    (["elr=0"], "elr=0 is not valid: elr must be a positive number"),
    (["lr=-1"], "lr=-1 is not valid"),
    (["seed=-1"], "seed=-1 is not valid: seed must be an integer ≥ 0"),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps=0 is not valid"),
    (["data.batch_size=0"], "data.batch_size=0 is not valid"),
    (["data.fraction=1.5"], "data.fraction=1.5 is not valid: fraction must be a number in (0, 1]"),
    (["data.train_size=0"], "data.train_size=0 is not valid"),
    (["data.val_size=-1"], "data.val_size=-1 is not valid"),
    (["model=mlp", "model.hidden=[10,0]"], "model.hidden=[10, 0] is not valid"),
    (["model=mlp", "model.dropout=1.0"], "model.dropout=1.0 is not valid: dropout must be a number in [0, 1)"),
    (["regularizer=weight_decay", "regularizer.coef=-1"], "regularizer.coef=-1 is not valid"),
    (["resume=maybe"], "resume=maybe is not valid: resume must be one of auto, true, false"),
    (["trainer.accelerator=tpu"], "trainer.accelerator=tpu is not valid"),
    (["trainer.devices=0"], "trainer.devices=0 is not valid"),
    (["experiment=smoke", "model=mlp"],
     "model.width (set by experiment=smoke) is not an option of lossland.models.MLP"),
]


@pytest.mark.parametrize("overrides, message", REFUSED, ids=[" ".join(o) for o, _ in REFUSED])
def test_value_is_refused_with_one_line(overrides, message):
    recipe = next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), None)
    with pytest.raises(LosslandError) as e:
        validate(compose(overrides), recipe)
    assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(LosslandError) as again:  # read from the resolved container (train.run, grids): the same
        resolve_checked(compose(overrides), recipe)
    assert str(again.value) == str(e.value)


def test_gpu_without_gpu_is_refused():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(LosslandError, match="no CUDA GPU is available"):
        validate(compose(["trainer=gpu"]))


def test_the_default_config_and_recipes_pass():
    for overrides in ([], ["experiment=smoke"], ["experiment=sphere_ce"], ["model=mlp", "data=spheres"]):
        validate(compose(overrides))
        assert resolve_checked(compose(overrides)) == OmegaConf.to_container(compose(overrides), resolve=True)


@pytest.mark.parametrize("args, message", [
    (["trainer.max_steps=0"], "trainer.max_steps=0 is not valid"),
    (["-m", "experiment=smoke", "elr=1e-3", "metrics.every_n_steps=8,0"], "metrics.every_n_steps=0 is not valid"),
])
def test_command_line_refuses_before_any_job_starts(args, message, tmp_path):
    res = run_cli("train.py", *args, "logger=csv", f"hydra.run.dir={tmp_path / 'r'}",
                  f"hydra.sweep.dir={tmp_path / 's'}")
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("lossland: error:")]
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(err) == 1 and message in err[0], res.stderr[-2000:]
    assert not (tmp_path / "s").exists() and not (tmp_path / "r").exists()  # no job started


def test_a_training_split_smaller_than_one_batch_is_refused():
    """Every step takes a full batch: 6 examples at batch 16 would make an epoch without a step (the run never
    ended before this check)."""
    from lossland.build import build_data
    from lossland.errors import DataError

    dm = build_data(compose(["data=digits", "data.train_size=64", "data.fraction=0.1", "data.batch_size=16"]))
    with pytest.raises(DataError) as e:
        _ = dm.steps_per_epoch  # what the loop reads before its first step
    assert "holds 6 examples" in str(e.value) and "fewer than one batch" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("override, key", [("lr=${nonexistent}", "lr"), ("data.batch_size=???", "data.batch_size")])
def test_an_unresolvable_value_is_refused_in_one_line_naming_its_key(override, key):
    with pytest.raises(LosslandError) as e:
        resolve_checked(compose([override]))
    assert str(e.value).startswith(f"{key}: ") and "\n" not in str(e.value)
