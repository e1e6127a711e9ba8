"""W&B (README.md, "W&B"): every job's run ends with its record as summary (final/*, status, phase,
diverged_at_step, the rates used), one W&B run per job across resumes with its history continued, the report run
(figures, results table) where the user says, and ``lossland sync`` honest without network.

The offline runs are read back with W&B's own reader of ``.wandb`` transaction logs (``wandb leet inspect
--json``), never by grepping the files."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from lossland.runs import Run
from lossland.studies.sphere.phases import phase_of
from tests.conftest import ROOT

TINY = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[16]", "metrics.every_n_steps=4",
        "metrics.eval_batches=2", "trainer.enable_progress_bar=false", "logger=wandb"]


@pytest.fixture(scope="module")
def wandb_env(tmp_path_factory):
    """W&B offline, its own files (settings, cache, artifacts) in a temporary directory, no credentials."""
    home = tmp_path_factory.mktemp("wandb_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", WANDB_DIR=str(home), WANDB_CONFIG_DIR=str(home / "config"),
               WANDB_CACHE_DIR=str(home / "cache"), WANDB_DATA_DIR=str(home / "data"), OMP_NUM_THREADS="1",
               PYTHONUNBUFFERED="1", HOME=str(home))
    return env


def cli(env, *args, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def records(run_dir) -> list[dict]:
    """Every record of an offline W&B run, by W&B's own reader."""
    res = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr[-2000:]
    return [json.loads(ln) for ln in res.stdout.splitlines() if ln.strip()]


def read_run(run_dir) -> dict:
    """An offline run read back: its run record (id, group, project, resume), its final summary (every summary
    update applied in order, nulls kept), its history rows and its exit code."""
    recs = records(run_dir)
    summary = {}
    for r in recs:
        if r["type"] == "summary":
            summary.update(r["summary"].get("update", {}))
            for key in r["summary"].get("remove", []):
                summary.pop(key.get("key") if isinstance(key, dict) else key, None)
    exits = [r["exit"] for r in recs if r["type"] == "exit"]
    return {"run": next(r["run"] for r in recs if r["type"] == "run"), "summary": summary,
            "history": [r["history"]["item"] for r in recs if r["type"] == "history"],
            "exit_code": exits[-1].get("exit_code", 0) if exits else None}


def offline_runs(job):
    return sorted((job / "wandb").glob("offline-run-*"))


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def check_summary(job, wb: dict) -> None:
    """The W&B run summary holds the job's record: final/*, status, diverged_at_step, the rates, the phase."""
    s = json.loads((job / "summary.json").read_text())
    got = wb["summary"]
    assert wb["run"]["run_id"] == s["run_id"] == s["wandb"]["id"]
    assert got["status"] == s["status"] and got["steps"] == s["steps"]
    assert "diverged_at_step" in got and got["diverged_at_step"] == s["diverged_at_step"]
    for key in ("elr", "lr", "elr_final", "lr_final", "stopped_early"):
        assert got.get(key) == s.get(key), key
    assert s["final"] and {k.removeprefix("final/") for k in got if k.startswith("final/")} == set(s["final"])
    finite = {k: v for k, v in s["final"].items() if isinstance(v, float | int) and math.isfinite(v)}
    assert all(same(got[f"final/{k}"], v) for k, v in finite.items()), (got, s["final"])
    assert all(got[f"final/{k}"] is None for k in s["final"].keys() - finite.keys())  # NaN / inf: null in W&B
    assert got.get("phase") == phase_of(Run(job)) and got["phase"] is not None
    assert wb["exit_code"] == 0  # ok and diverged runs are finished W&B runs; their status says which


def history_equals_metrics_csv(job, runs: list[dict]) -> None:
    """The W&B history over all of a job's offline runs holds the (step, metric, value) entries of metrics.csv,
    each as often as there (a metric logged twice at one step, e.g. weight_norm by two callbacks, is two rows)."""
    def key(value):
        return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)

    logged = Counter()
    for wb in runs:
        for row in wb["history"]:
            logged.update((row["trainer/global_step"], k, key(v)) for k, v in row.items()
                          if not k.startswith("_") and k not in ("trainer/global_step", "epoch"))
    local = Counter()
    with open(job / "metrics.csv", newline="") as f:
        for r in csv.DictReader(f):
            local.update((int(r["step"]), k, key(float(v))) for k, v in r.items() if k not in ("step", "epoch") and v)
    assert logged == local, (sorted((logged - local).items())[:5], sorted((local - logged).items())[:5])


# ------------------------------------------------------------------------------------------ a sweep
@pytest.fixture(scope="module")
def sweep(tmp_path_factory, wandb_env):
    """A sequential offline sweep of 4 CI smoke jobs (FSI ConvNet on the sphere) at elr 1e-3 and 1e-1: two
    train to their end (their phases), two diverge (a training loss above max_loss=1e-9 is a divergence)."""
    d = tmp_path_factory.mktemp("wandb_sweep") / "s"
    res = cli(wandb_env, "train.py", "-m", "experiment=smoke", "logger=wandb", "elr=1e-3,1e-1", "max_loss=null,1e-9",
              f"hydra.sweep.dir={d}")
    assert res.returncode == 0, res.stderr[-3000:]
    return d


def test_every_job_run_ends_with_its_record(sweep):
    statuses = []
    for job in sorted(sweep.glob("[0-9]*")):
        (run_dir,) = offline_runs(job)
        wb = read_run(run_dir)
        check_summary(job, wb)
        assert wb["run"]["run_group"] == str(sweep)
        history_equals_metrics_csv(job, [wb])
        statuses.append(wb["summary"]["status"])
    assert sorted(statuses) == ["diverged", "diverged", "ok", "ok"]
    diverged = [json.loads((j / "summary.json").read_text()) for j in sweep.glob("[0-9]*")]
    assert all(s["diverged_at_step"] is not None for s in diverged if s["status"] == "diverged")


def test_report_logs_figures_and_results_table_where_the_user_says_quietly(sweep, wandb_env):
    res = cli(wandb_env, "-m", "lossland.cli", "report", str(sweep), "logger.wandb.project=mine")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "wandb:" not in res.stdout + res.stderr and "reinit" not in res.stderr  # W&B's console stays quiet
    (run_dir,) = sorted((sweep / "report" / "wandb").glob("offline-run-*"))
    wb = read_run(run_dir)
    assert (wb["run"]["project"], wb["run"]["run_group"], wb["run"]["job_type"]) == ("mine", str(sweep), "report")
    (row,) = wb["history"]
    for name in ("phase_diagram", "final_metrics", "curves", "cosines"):
        assert row[f"{name}._type"] == "image-file" and row[f"{name}.path"].endswith(".png")
    assert row["results._type"] == "table-file" and row["results.nrows"] == 4
    table = json.loads((run_dir / "files" / row["results.path"]).read_text())
    with open(sweep / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert table["columns"] == list(rows[0]) and len(table["data"]) == len(rows)
    col = table["columns"].index
    assert [r[col("status")] for r in table["data"]] == [r["status"] for r in rows]
    assert [r[col("final_test_error")] for r in table["data"]] == \
        [float(r["final_test_error"]) if r["final_test_error"] else None for r in rows]
    bad = cli(wandb_env, "-m", "lossland.cli", "report", str(sweep), "logger.wandb.mode=online")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("lossland: error: report: unexpected argument")


def test_sync_without_network_says_so_fast_and_loses_nothing(sweep, wandb_env):
    before = {p: p.read_bytes() for p in sweep.rglob("*.wandb")}
    assert len(before) >= 4  # the four jobs' (and the report's, when its test ran first)
    env = dict(wandb_env, WANDB_API_KEY="x" * 40)
    t0 = time.time()
    res = cli(env, "-m", "lossland.cli", "sync", str(sweep), timeout=120)
    assert res.returncode == 2 and time.time() - t0 < 60, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("lossland: error: sync: W&B at ") and "not reachable" in line and "nothing synced" in line
    assert {p: p.read_bytes() for p in sweep.rglob("*.wandb")} == before
    assert not list(sweep.rglob("*.wandb.synced"))
    dry = cli(env, "-m", "lossland.cli", "sync", str(sweep), "--dry-run")
    assert dry.returncode == 0 and f"would sync {len(before)} offline W&B runs" in dry.stdout


@pytest.fixture
def w_and_b_server():
    """A local stand-in for the W&B server that answers the reachability probe and never answers an upload."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            self.end_headers()

        def do_POST(self):
            release.wait(120)

        do_GET = do_POST

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    release.set()
    server.shutdown()


def test_sync_without_credentials_or_past_its_time_loses_nothing(sweep, wandb_env, w_and_b_server):
    before = {p: p.read_bytes() for p in sweep.rglob("*.wandb")}
    env = dict(wandb_env, WANDB_BASE_URL=w_and_b_server)
    res = cli(env, "-m", "lossland.cli", "sync", str(sweep), timeout=120)  # no API key
    (line,) = res.stderr.strip().splitlines()
    assert res.returncode == 2 and "offline runs not synced (No API key configured" in line, res.stderr
    t0 = time.time()
    res = cli(dict(env, WANDB_API_KEY="x" * 40), "-m", "lossland.cli", "sync", str(sweep), "--timeout", "8",
              timeout=120)  # the server takes the connection and never answers
    (line,) = res.stderr.strip().splitlines()
    assert res.returncode == 2 and "W&B did not finish in 8 s (0 of" in line and time.time() - t0 < 60, res.stderr
    assert {p: p.read_bytes() for p in sweep.rglob("*.wandb")} == before
    assert not list(sweep.rglob("*.wandb.synced"))


# ------------------------------------------------------------------------------------------ grid, NAS
@pytest.mark.slow
def test_grid_members_are_one_wandb_run_each_in_the_sweep_group(tmp_path, wandb_env):
    d = tmp_path / "grid"
    res = cli(wandb_env, "train.py", "-m", *TINY, "optimizer=sgd", "trainer.max_steps=24", "lr=0.05,0.1,1e12",
              "hydra/launcher=vectorized", f"hydra.sweep.dir={d}")
    assert res.returncode == 0, res.stderr[-3000:]
    ids = set()
    for job in sorted(d.glob("[0-9]*")):
        (run_dir,) = offline_runs(job)
        wb = read_run(run_dir)
        check_summary(job, wb)
        assert wb["run"]["run_group"] == str(d) and wb["summary"]["grid/members"] == 3
        history_equals_metrics_csv(job, [wb])
        ids.add(wb["run"]["run_id"])
    assert len(ids) == 3
    assert json.loads((d / "2" / "summary.json").read_text())["status"] == "diverged"


@pytest.mark.slow
def test_nas_job_run_ends_with_its_record(tmp_path, wandb_env):
    d = tmp_path / "nas"
    res = cli(wandb_env, "nas.py", "logger=wandb", "data.train_size=64", "data.val_size=32", "data.test_size=32",
              "search.epochs=1", "search.batch_size=32", "nas.channels=2", "discrete.epochs=1", "robustness.draws=1",
              "robustness.weights_sigmas=[0]", "robustness.inputs_sigmas=[0]", f"hydra.run.dir={d}")
    assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads((d / "summary.json").read_text())
    (run_dir,) = offline_runs(d)
    got = read_run(run_dir)["summary"]
    assert set(s["final"]) == {"test_acc", "inherited_discrete_test_acc", "discrete_test_acc"}
    assert all(got[f"final/{k}"] == v for k, v in s["final"].items())
    assert got["status"] == s["status"] == "ok" and "phase" not in got  # not a sphere run: no phase
    assert got["prior"] == s["prior"] and got["diverged_at_step"] is None


# ------------------------------------------------------------------------------------------ resume
def interrupt_and_resume(out, env, sig, checkpoint="step=00000250.ckpt") -> dict:
    """A 3000-step job stopped by ``sig`` once ``checkpoint`` exists, then the same command again; returns the
    summary of the stopped attempt."""
    args = [sys.executable, "train.py", *TINY, "optimizer=sgd", "lr=0.05", "trainer.max_steps=3000",
            "metrics.every_n_steps=100", "checkpoint.every_n_steps=250", f"hydra.run.dir={out}"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (out / "checkpoints" / checkpoint).exists():
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.time() - t0 < 300
        time.sleep(0.02)
    proc.send_signal(sig)
    assert proc.wait() == (128 + sig if sig == signal.SIGTERM else -sig)
    stopped = json.loads((out / "summary.json").read_text())
    res = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return stopped


def test_a_resumed_job_is_one_wandb_run_whose_history_continues(tmp_path, wandb_env):
    """SIGTERM mid-run, then the same command: one W&B run id, the second attempt resuming it, the history of the
    two offline files together exactly metrics.csv (nothing twice, nothing missing), the summary the final one."""
    out = tmp_path / "run"
    interrupted = interrupt_and_resume(out, wandb_env, signal.SIGTERM)
    assert interrupted["status"] == "interrupted" and 250 <= interrupted["steps"] < 3000
    first, second = (read_run(p) for p in offline_runs(out))
    s = json.loads((out / "summary.json").read_text())
    assert first["run"]["run_id"] == second["run"]["run_id"] == s["run_id"] == s["wandb"]["id"]
    assert second["run"].get("resume") is True  # W&B sync uploads it as the continuation of the first
    assert first["summary"]["status"] == "interrupted" and first["exit_code"] == 1
    assert s["resumed_from_step"] == interrupted["steps"]
    check_summary(out, second)
    assert second["summary"]["resumed_from_step"] == interrupted["steps"]
    history_equals_metrics_csv(out, [first, second])


@pytest.mark.slow
def test_a_job_killed_with_sigkill_is_one_wandb_run_with_nothing_lost_or_repeated(tmp_path, wandb_env):
    """SIGKILL: W&B loses what it had not written, the job resumes from its last checkpoint (before or after where
    the W&B run ends): the resumed part logs what the W&B run lacks from metrics.csv and nothing it holds."""
    out = tmp_path / "run"
    killed = interrupt_and_resume(out, wandb_env, signal.SIGKILL, checkpoint="step=00000750.ckpt")
    assert killed["status"] == "running"  # the killed process wrote nothing more
    parts = [read_run(p) for p in offline_runs(out)]
    s = json.loads((out / "summary.json").read_text())
    assert len(parts) == 2 and {p["run"]["run_id"] for p in parts} == {s["run_id"]} and s["resumed_from_step"] >= 750
    check_summary(out, parts[-1])
    history_equals_metrics_csv(out, parts)


# ------------------------------------------------------------------------------------------ the pieces
def test_tracker_summary_flattens_the_record():
    from lossland.loggers import tracker_summary

    s = {"status": "diverged", "steps": 7, "elr": None, "lr": 0.1, "lr_final": 0.01, "diverged_at_step": 7,
         "final": {"train_loss": float("nan"), "test_error": 0.9}, "grid": {"index": 2, "members": 3},
         "overrides": ["lr=0.1"], "pid": 1, "wandb": {"id": "x"}, "genotype": {"normal": []}, "stopped_early": False}
    got = tracker_summary(s)
    assert got.pop("final/train_loss") != got.pop("final/train_loss", 0)  # NaN kept as NaN
    assert got == {"status": "diverged", "steps": 7, "elr": None, "lr": 0.1, "lr_final": 0.01, "diverged_at_step": 7,
                   "final/test_error": 0.9, "grid/index": 2, "grid/members": 3, "stopped_early": False}


def test_report_settings_are_the_logger_keys():
    from lossland.errors import LosslandError
    from lossland.sweep.wandb_report import parse_settings

    assert parse_settings(["logger.wandb.project=mine", "logger.wandb.offline=false", "logger.wandb.entity=null",
                           "logger.wandb.quiet=False"]) == {"project": "mine", "offline": False, "entity": None,
                                                            "quiet": False}
    for bad in ("project=mine", "logger.wandb.dir=/tmp", "logger.wandb.offline=maybe", "logger.wandb.project"):
        with pytest.raises(LosslandError):
            parse_settings([bad])
