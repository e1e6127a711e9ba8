"""The failures a long sweep meets lose nothing and mix nothing (issue 21, docs/reliability.md#what-was-tried):
thread counts in a run's identity, diverged and failed-at-start runs on a re-run, kills right after a
checkpoint and at an epoch's end, unreadable records, bounds on counts that size memory, a run still training,
an empty paper folder, a killed joblib worker, a grid stopped by SIGTERM, a full disk."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from lossland.config import compose
from lossland.errors import LosslandError
from lossland.job import config_digest
from lossland.runs import Run
from lossland.train import run
from tests.conftest import ROOT, run_cli

TINY = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[16]", "optimizer=sgd",
        "metrics.every_n_steps=4", "metrics.eval_batches=2"]


@pytest.fixture
def threads():
    """Put torch's thread count back after a test that changes it."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------------------------ a run's identity
def test_a_finished_run_is_not_reused_on_another_thread_count(make_cfg, threads):
    torch.set_num_threads(1)
    first = run(make_cfg(*TINY, "trainer.max_steps=8", "lr=0.1"))
    assert first["threads"] == 1
    torch.set_num_threads(2)
    with pytest.raises(LosslandError, match=r"computed with threads=1; this job runs with threads=2, which changes "
                                            r"the numbers: pass threads=1 to reuse it, or overwrite=true"):
        run(make_cfg(*TINY, "trainer.max_steps=8", "lr=0.1"))
    torch.set_num_threads(1)
    assert run(make_cfg(*TINY, "trainer.max_steps=8", "lr=0.1")) == first  # the same numbers: skipped


def test_settings_that_change_the_numbers_are_in_the_config_digest():
    base = config_digest(compose([*TINY, "out_dir=/x"]))
    for change in ("trainer.deterministic=true", "seed=1", "trainer.gradient_clip_val=1.0", "data.batch_size=64",
                   "trainer.precision=64-true", "trainer.log_every_n_steps=4"):
        assert config_digest(compose([*TINY, "out_dir=/x", change])) != base, change
    for same in ("out_dir=/y", "threads=2", "logger=none", "resume=false"):  # how, not what: not in the digest
        assert config_digest(compose([*TINY, "out_dir=/x", same])) == base, same


def test_an_interrupted_run_resumes_on_the_thread_count_it_was_checkpointed_with(make_cfg, tmp_path, threads):
    torch.set_num_threads(1)
    whole = run(make_cfg(*TINY, "trainer.max_steps=16", "checkpoint.every_n_steps=8", out="whole"))
    part = run(make_cfg(*TINY, "trainer.max_steps=16", "checkpoint.every_n_steps=8", out="part"))
    out = tmp_path / "part"
    for late in ("last.ckpt", "step=00000016.ckpt"):  # as if killed after step 8 (step=00000008.ckpt the newest)
        (out / "checkpoints" / late).unlink()
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, "status": "interrupted", "final": {}}))
    torch.set_num_threads(2)
    resumed = run(make_cfg(*TINY, "trainer.max_steps=16", "checkpoint.every_n_steps=8", out="part"))
    assert resumed["resumed_from_step"] == 8 and resumed["threads"] == 1
    assert resumed["final"] == whole["final"] == part["final"]
    assert torch.get_num_threads() == 2  # the job put the process's thread count back


# ------------------------------------------------------------------------------------------ re-running a sweep
def test_a_diverged_run_is_left_as_it_is_on_rerun(make_cfg, tmp_path):
    first = run(make_cfg(*TINY, "trainer.max_steps=8", "max_loss=1.0"))  # the first loss (~2.3) is too large
    assert first["status"] == "diverged"
    before = (tmp_path / "run" / "metrics.csv").stat().st_mtime_ns
    assert run(make_cfg(*TINY, "trainer.max_steps=8", "max_loss=1.0")) == first
    assert (tmp_path / "run" / "metrics.csv").stat().st_mtime_ns == before


def test_a_run_that_failed_at_start_does_not_block_the_corrected_command(make_cfg, tmp_path):
    with pytest.raises(LosslandError, match="data.root must be set"):
        run(make_cfg(*TINY, "trainer.max_steps=4", "data=mnist"))
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"
    assert run(make_cfg(*TINY, "trainer.max_steps=4"))["status"] == "ok"  # another digest, same directory


def test_a_run_that_computed_something_still_blocks_another_run(make_cfg):
    run(make_cfg(*TINY, "trainer.max_steps=4", "max_loss=1.0"))  # diverged: a result
    with pytest.raises(LosslandError, match="holds records of another run"):
        run(make_cfg(*TINY, "trainer.max_steps=4", "lr=0.1"))


# ------------------------------------------------------------------------------------------ kills at exact points
# 44 steps per epoch; phase metrics every 22 steps; checkpoints every 44: at every epoch's last step.
EXACT = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[32]", "optimizer=momentum", "lr=0.02",
         "trainer.max_steps=176", "metrics.every_n_steps=22", "checkpoint.every_n_steps=44",
         "trainer.deterministic=true", "logger=csv", "trainer.enable_progress_bar=false"]


def _train(out, *extra, kill_after=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    pre = ["tests/kill_after.py", str(kill_after)] if kill_after is not None else []
    return subprocess.run([sys.executable, *pre, "train.py", *EXACT, *extra, f"hydra.run.dir={out}"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def exact_whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("exact") / "run"
    res = _train(out)
    assert res.returncode == 0, res.stderr[-2000:]
    return Run(out)


@pytest.mark.parametrize("step", [88, 110], ids=["at_an_epoch_end", "mid_epoch"])
def test_a_kill_right_after_a_checkpoint_loses_no_evaluation_row(exact_whole, tmp_path, step):
    out = tmp_path / "run"
    res = _train(out, kill_after=step)  # SIGKILL right after the checkpoint of `step` is written
    assert res.returncode == -signal.SIGKILL
    killed = Run(out)
    assert killed.status == "interrupted" and killed.series("gm")[0].max() == step  # the row of that step is there
    assert killed.steps == step  # collect's steps: the records', not the summary's 0
    from lossland.sweep.collect import collect

    assert collect(out)[0][0]["steps"] == step
    (out / ".metrics.csv.x1y2.tmp").write_text("step,epoch\n")  # what a kill during a write leaves
    res = _train(out)
    assert res.returncode == 0, res.stderr[-2000:]
    resumed = Run(out)
    assert resumed.summary["final"] == exact_whole.summary["final"]
    assert resumed.rows() == exact_whole.rows()  # every evaluation row and every epoch mean, step for step
    assert not list(out.glob(".*.tmp")) and not list((out / "checkpoints").glob(".*.tmp"))


# ------------------------------------------------------------------------------------------ unreadable records
def _sweep_with_bad_runs(make_cfg, tmp_path):
    for i, lr in enumerate((0.1, 0.05)):
        run(make_cfg(*TINY, "trainer.max_steps=8", f"lr={lr}", "metrics.enabled=true", out=f"sweep/{i}"))
    sweep = tmp_path / "sweep"
    good = (sweep / "0" / "summary.json").read_text()
    bad = {"truncated": ("summary.json", good[: len(good) // 2]), "random": ("metrics.csv", os.urandom(300)),
           "wrong_types": ("summary.json", json.dumps({"status": ["ok"], "final": [1], "overrides": 5,
                                                       "steps": "many", "elr": {"x": 1}})),
           "header_only": ("metrics.csv", "step,epoch,train_error,gm,cos_prev\n")}
    for name, (file, content) in bad.items():
        d = sweep / name
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "config.yaml").write_text((sweep / "0" / ".hydra" / "config.yaml").read_text())
        (d / "summary.json").write_text(good)
        (d / file).write_bytes(content if isinstance(content, bytes) else content.encode())
    return sweep


def test_collect_lists_unreadable_runs_and_gives_a_header_only_run_no_phase(make_cfg, tmp_path):
    from lossland.studies.sphere.phases import phase_of
    from lossland.sweep.collect import collect

    sweep = _sweep_with_bad_runs(make_cfg, tmp_path)
    rows = {r["run"]: r for r in collect(sweep)[0]}
    assert rows["0"]["status"] == rows["1"]["status"] == "ok"
    for name in ("truncated", "random", "wrong_types"):
        assert rows[name]["status"] == "unreadable" and rows[name]["error"], name
    assert rows["header_only"]["phase"] is None and phase_of(Run(sweep / "header_only")) is None


def test_report_lists_unreadable_and_unfinished_runs_it_leaves_out(make_cfg, tmp_path):
    sweep = _sweep_with_bad_runs(make_cfg, tmp_path)
    good = json.loads((sweep / "0" / "summary.json").read_text())
    for name, extra in (("running", {"pid": os.getpid(), "host": socket.gethostname()}), ("killed", {"pid": -1})):
        d = sweep / name
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "config.yaml").write_text((sweep / "0" / ".hydra" / "config.yaml").read_text())
        (d / "summary.json").write_text(json.dumps({**good, "status": "running", **extra}))
    res = run_cli("-m", "lossland.cli", "report", str(sweep), "--no-wandb")
    assert res.returncode == 0, res.stderr[-2000:]
    left = res.stderr[res.stderr.index("left out of the report"):].splitlines()
    for name, why in (("running", "running"), ("killed", "interrupted"), ("truncated", "unreadable"),
                      ("random", "unreadable"), ("wrong_types", "")):
        line = next((x for x in left if f"{sweep / name}/" in x or x.rstrip().endswith(str(sweep / name))
                     or f"{sweep / name}:" in x), None)
        assert line is not None and why in line, (name, left)
    page = (sweep / "report" / "index.html").read_text()
    assert "running" in page and "killed" in page


# ------------------------------------------------------------------------------------------ bad values
@pytest.mark.parametrize("overrides, message", [
    (["trainer.max_steps=1e20"], "trainer.max_steps=1e+20 is not valid: max_steps must be -1 (bounded by max_epochs) "
                                 "or a positive number of steps, at most 1e9"),
    (["trainer.max_steps=100000000"], "metrics.every_n_steps=4 with trainer.max_steps=100000000 plans 2.5e+07 due "
                                      "steps, more than 1e+06"),
    (["trainer.max_steps=-1", "trainer.max_epochs=null"], "trainer.max_steps=-1 with trainer.max_epochs=null is not "
                                                          "valid: the run would have no end"),
    (["trainer.max_epochs=1e9"], "trainer.max_epochs=1000000000.0 is not valid"),
    (["data.train_size=1e10"], "data.train_size=10000000000.0 is not valid"),
    (["model.hidden=[1000000000]"], "model.hidden=[1000000000] is not valid"),
    (["metrics.num_points=1e9", "metrics.log_spaced=true"], "metrics.num_points=1000000000.0 is not valid"),
], ids=["max_steps_1e20", "due_step_plan", "no_end", "max_epochs", "train_size", "hidden", "num_points"])
def test_counts_that_size_memory_are_bounded_at_validation(overrides, message):
    from lossland.schema import validate

    with pytest.raises(LosslandError) as e:
        validate(compose([*TINY, *overrides]))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_an_epoch_bounded_plan_is_bounded_when_the_job_knows_its_epochs(make_cfg):
    with pytest.raises(LosslandError, match=r"every_n_steps=4 over 4400000 steps plans more than 1e\+06 due steps"):
        run(make_cfg(*TINY, "trainer.max_epochs=100000"))


def test_train_py_refuses_max_steps_1e20_in_one_line_before_any_directory(tmp_path):
    res = run_cli("train.py", *TINY, "trainer.max_steps=1e20", f"hydra.run.dir={tmp_path / 'r'}")
    assert res.returncode == 2 and res.stderr.strip().splitlines()[-1].startswith("lossland: error: trainer.max_steps")
    assert "Traceback" not in res.stderr and not (tmp_path / "r").exists()


def test_lab_escape_with_1e10_runs_is_one_line(tmp_path):
    res = run_cli("lab.py", "task=escape", "task.runs=1e10", f"hydra.run.dir={tmp_path / 'r'}")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == ("lossland: error: task.runs=10000000000.0 is not valid: runs must "
                                                   "be a positive integer, at most 1e+09")
    from lossland.studies.optim.app import build_function
    from lossland.studies.optim.escape import escape_stats

    with pytest.raises(LosslandError, match="more than 1e\\+07; lower task.runs"):
        escape_stats(build_function(compose(["task=escape"], "lab")), [0.1, 1.0], [0.1], runs=10**7)


def test_a_full_disk_at_start_is_one_line(make_cfg, monkeypatch, tmp_path):
    import errno

    import lossland.records as records

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records.tempfile, "mkstemp", full)
    with pytest.raises(LosslandError) as e:
        run(make_cfg(*TINY, "trainer.max_steps=4"))
    assert str(e.value) == f"cannot write the run's records in {tmp_path / 'run'}: No space left on device"
    monkeypatch.undo()
    assert run(make_cfg(*TINY, "trainer.max_steps=4"))["status"] == "ok"  # space again: the same command runs


def test_a_disk_that_fills_up_mid_run_loses_nothing_the_same_command_resumes(make_cfg, monkeypatch, tmp_path):
    import errno
    import tempfile

    import lossland.records as records

    whole = run(make_cfg(*TINY, "trainer.max_steps=16", "checkpoint.every_n_steps=8", out="whole"))
    real, full = tempfile.mkstemp, {"now": False}

    def filling(*a, **k):
        if str(k.get("prefix", "")).startswith(".step=00000016"):
            full["now"] = True  # the disk fills up when the last checkpoint is due
        if full["now"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(records.tempfile, "mkstemp", filling)
    failed = run(make_cfg(*TINY, "trainer.max_steps=16", "checkpoint.every_n_steps=8"))
    assert failed["status"] == "failed" and "No space left on device" in failed["error"]
    monkeypatch.undo()
    assert not list((tmp_path / "run").rglob(".*.tmp"))
    resumed = run(make_cfg(*TINY, "trainer.max_steps=16", "checkpoint.every_n_steps=8"))
    assert resumed["status"] == "ok" and resumed["resumed_from_step"] == 12 and resumed["final"] == whole["final"]
    assert Run(tmp_path / "run").rows() == Run(tmp_path / "whole").rows()


# ------------------------------------------------------------------------------------------ concurrent use
def test_curvature_refuses_a_run_still_training(make_cfg, tmp_path):
    from lossland.measure.curvature import curvature_of_run

    run(make_cfg(*TINY, "trainer.max_steps=8", "checkpoint.every_n_steps=4"))
    out = tmp_path / "run"
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, "status": "running", "pid": os.getpid(),
                                                  "host": socket.gethostname()}))
    before = (out / "metrics.csv").read_text()
    with pytest.raises(LosslandError, match="is still training .* would erase the curvature columns"):
        curvature_of_run({"run": str(out), "selection": ["hessian_top"]})
    assert (out / "metrics.csv").read_text() == before and not (out / "curvature.json").exists()


# ------------------------------------------------------------------------------------------ paper
def test_paper_from_an_empty_directory_is_refused_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "other" / "x").mkdir(parents=True)
    (tmp_path / "other" / "x" / "notes.txt").write_text("not a record")
    for where, why in (("empty", "no records there (an empty directory)"),
                       ("other", "none of the sphere study's records there")):
        res = run_cli("-m", "lossland.cli", "paper", "sphere", "--from", str(tmp_path / where))
        assert res.returncode == 2 and why in res.stderr, res.stderr[-2000:]
        assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / where / "paper").exists()


def test_each_study_writes_its_own_paper_folder(tmp_path, capsys):
    from lossland.cli import main
    from tests.test_paper import _keskar_run, _nas_job

    _nas_job(tmp_path / "nas" / "0", "weak", 1.0, None, 2.0, False, 0)
    _nas_job(tmp_path / "nas" / "2", "strong", 1e-30, None, 0.01, True, 0)
    for i, (bs, seed) in enumerate([(32, 0), (32, 1), (512, 0), (512, 1)]):
        _keskar_run(tmp_path / "keskar_sb_lb" / str(i), bs, seed, 0.0, 0.05)
    main(["paper", "nas", "--from", str(tmp_path)])
    main(["paper", "optim", "--from", str(tmp_path)])
    assert json.loads((tmp_path / "paper" / "nas" / "paper.json").read_text())["study"] == "nas"
    assert json.loads((tmp_path / "paper" / "optim" / "paper.json").read_text())["study"] == "optim"


# ------------------------------------------------------------------------------------------ grids and launchers
GRID = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[16]", "optimizer=sgd", "logger=csv",
        "metrics.every_n_steps=50", "metrics.eval_batches=2", "trainer.enable_progress_bar=false"]


def test_a_refused_grid_leaves_no_directory_that_blocks_the_corrected_command(tmp_path):
    sweep = tmp_path / "sweep"
    bad = run_cli("train.py", "-m", *GRID, "trainer.max_steps=4", "lr=0.05,0.1", "optimizer=rmsprop",
                  "hydra/launcher=vectorized", f"hydra.sweep.dir={sweep}")
    assert bad.returncode == 2 and "does not stack" in bad.stderr and not sweep.exists(), bad.stderr
    good = run_cli("train.py", "-m", *GRID, "trainer.max_steps=4", "lr=0.05,0.1", "hydra/launcher=vectorized",
                   f"hydra.sweep.dir={sweep}")
    assert good.returncode == 0, good.stderr[-2000:]


@pytest.mark.slow
def test_a_vectorized_grid_stopped_by_sigterm_exits_143_with_members_interrupted(tmp_path):
    sweep = tmp_path / "sweep"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    args = [sys.executable, "train.py", "-m", *GRID, "trainer.max_steps=20000", "lr=0.05,0.1", "grid=vectorized",
            f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (sweep / "1" / "checkpoints" / "last.ckpt").exists(), proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 128 + signal.SIGTERM
    err = proc.stderr.read()
    assert "interrupted by SIGTERM" in err and "failed" not in err and "Traceback" not in err
    assert [json.loads((sweep / j / "summary.json").read_text())["status"] for j in "01"] == ["interrupted"] * 2


def _wait_for(ready, proc, timeout=400):
    t0 = time.time()
    while not ready():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() - t0 < timeout
        time.sleep(0.05)


@pytest.mark.slow
def test_a_killed_joblib_worker_costs_only_its_own_job(tmp_path):
    sweep = tmp_path / "sweep"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    args = [sys.executable, "train.py", "-m", *GRID, "trainer.max_steps=1500", "lr=0.1,0.05,0.02",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (sweep / "0" / "summary.json").exists(), proc)
    os.kill(json.loads((sweep / "0" / "summary.json").read_text())["pid"], signal.SIGKILL)
    assert proc.wait(timeout=600) == 1
    err = proc.stderr.read()
    assert "lossland: 1 of 3 job(s) failed:" in err and "its worker process died" in err and "Traceback" not in err
    assert [Run(sweep / j).status for j in "012"] == ["interrupted", "ok", "ok"]  # the queued job 2 ran too


# ------------------------------------------------------------------------------------------ the NAS search
NAS = ["logger=csv", "data.train_size=96", "data.val_size=64", "data.test_size=64", "search.epochs=3",
       "search.batch_size=32", "search.log_every=1", "nas.channels=4", "discrete.epochs=1", "robustness.draws=1"]


@pytest.mark.slow
def test_a_killed_nas_search_resumes_bit_identically_and_another_search_is_refused(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))

    def nas(out, *extra, kill_after=None):
        pre = ["tests/kill_after.py", str(kill_after)] if kill_after is not None else []
        return subprocess.run([sys.executable, *pre, "nas.py", *NAS, *extra, f"out_dir={out}"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)

    assert nas(tmp_path / "whole").returncode == 0
    killed = nas(tmp_path / "part", kill_after=4)  # mid-epoch 2 (3 steps per epoch)
    assert killed.returncode == -signal.SIGKILL
    assert Run(tmp_path / "part").series("entropy_mean")[0].max() == 4  # its records kept up to the kill
    res = nas(tmp_path / "part")
    assert res.returncode == 0 and "resuming from step 4" in res.stdout + res.stderr, res.stderr[-2000:]
    whole, part = Run(tmp_path / "whole"), Run(tmp_path / "part")
    assert part.summary["final"] == whole.summary["final"] and part.summary["genotype"] == whole.summary["genotype"]
    assert (tmp_path / "part" / "metrics.csv").read_text() == (tmp_path / "whole" / "metrics.csv").read_text()
    other = nas(tmp_path / "part", "prior=strong")
    assert other.returncode == 2 and "holds records of another run" in other.stderr
    assert Run(tmp_path / "part").summary == part.summary  # nothing overwritten


# ------------------------------------------------------------------------------------------ the table
def test_every_test_the_reliability_table_names_exists():
    import re

    text = (ROOT / "docs" / "reliability.md").read_text()
    table = text[text.index("## What was tried"):]
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", table)
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| kind")]
    assert len(rows) >= 35 and all("tests/" in r for r in rows)  # every row names its test
    for path, name in named:
        source = (ROOT / path).read_text()
        assert re.search(rf"^def {name}\(", source, re.M), f"{path}::{name} (docs/reliability.md) does not exist"
