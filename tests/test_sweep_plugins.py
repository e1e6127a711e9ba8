"""The sweep engine on Hydra's plugin interfaces (lossland/sweep/sweeper.py, hydra/launcher=vectorized), through the
real command line: the vectorized launcher stacks the batches of lossland's sweeper and of Hydra's basic sweeper;
lossland's sweeper checks every job (range() and glob() sweeps included) before the first starts; a sweep composes
once per distinct defaults list."""

import json
import sys

import pytest

from tests.conftest import run_cli

TINY = ["data=digits", "model=mlp", "model.hidden=[16]", "optimizer=sgd", "data.batch_size=32", "logger=none",
        "trainer.max_steps=6", "max_loss=20", "metrics.every_n_steps=3", "metrics.eval_batches=2",
        "trainer.enable_progress_bar=false"]


def _summaries(sweep, n):
    return [json.loads((sweep / str(i) / "summary.json").read_text()) for i in range(n)]


@pytest.mark.parametrize("sweeper", ["basic", pytest.param("lossland", marks=pytest.mark.slow)])
def test_the_vectorized_launcher_stacks_a_sweepers_batch(tmp_path, sweeper):
    sweep = tmp_path / "s"
    res = run_cli("-m", "lossland.cli", "train", "-m", *TINY, "lr=0.05,1e4", "seed=range(0,2)",
                  "hydra/launcher=vectorized", f"hydra/sweeper={sweeper}", f"hydra.sweep.dir={sweep}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "hydra/launcher=vectorized: 4 jobs" in res.stdout
    runs = _summaries(sweep, 4)
    assert [s["status"] for s in runs] == ["ok", "ok", "diverged", "diverged"]
    assert [s["grid"] for s in runs] == [{"vectorized": True, "members": 4, "index": i} for i in range(4)]
    assert runs[3]["overrides"][-2:] == ["lr=10000.0", "seed=1"]  # as Hydra's sweeper writes a sweep value
    for i in range(4):  # an ordinary run directory per job, as Hydra's launchers write it
        assert {p.name for p in (sweep / str(i) / ".hydra").iterdir()} == {"config.yaml", "hydra.yaml",
                                                                             "overrides.yaml"}
    if sweeper == "lossland":  # the same command again: finished members are skipped (diverged ones resume)
        again = run_cli("-m", "lossland.cli", "train", "-m", *TINY, "lr=0.05,1e4", "seed=range(0,2)",
                        "hydra/launcher=vectorized", f"hydra.sweep.dir={sweep}")
        assert again.returncode == 0 and _summaries(sweep, 4)[:2] == runs[:2]


def test_the_sweeper_refuses_a_bad_job_before_the_first_trains(tmp_path):
    sweep = tmp_path / "s"
    res = run_cli("train.py", "-m", *TINY, "trainer.max_steps=4,0", f"hydra.sweep.dir={sweep}")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("lossland: error: trainer.max_steps=0 is not valid")
    assert not (sweep / "0").exists() and not (sweep / "multirun.yaml").exists()


def test_grid_vectorized_is_an_alias_that_says_what_replaced_it(tmp_path):
    from lossland.entry import grid_alias
    from lossland.errors import LosslandError

    assert grid_alias(["-m", "grid=vectorized", "lr=1,2"]) == ["-m", "hydra/launcher=vectorized", "lr=1,2"]
    assert grid_alias(["grid=vmap"]) == ["hydra/launcher=vectorized", "hydra.launcher.vmap=true"]
    assert grid_alias(["grid=sequential"]) == ["grid=sequential"]
    with pytest.raises(LosslandError, match="drop grid=vectorized or hydra/launcher=joblib"):
        grid_alias(["grid=vectorized", "hydra/launcher=joblib"])


def test_a_sweep_composes_once_per_defaults_list(tmp_path, monkeypatch):
    """24 jobs over two optimizers (a glob() sweep) and a range() sweep: three compositions (the command line's
    check and one per optimizer; Hydra's own code composes each job twice more), and every job run."""
    from lossland.compose import STATS
    from lossland.entry import launch
    from lossland.schema import validate

    seen = []
    monkeypatch.setattr(sys, "argv", ["train.py"])
    before = dict(STATS)
    launch("train", lambda cfg: seen.append((cfg.optimizer._target_, cfg.seed)), validate=validate,
           argv=["-m", "data=digits", "model=mlp", "logger=none", "optimizer=glob(s*)", "seed=range(0,12)",
                 f"hydra.sweep.dir={tmp_path / 's'}"])
    assert len(seen) == 24 and seen[0] == ("torch.optim.SGD", 0) and seen[-1] == ("lossland.optim.SphereSGD", 11)
    assert STATS["composed"] - before["composed"] <= 3
    assert STATS["reused"] - before["reused"] >= 2 * 24 - 3  # the sweeper's check and the launcher's run of each
