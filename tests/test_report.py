"""Sweep report (lossland.sweep.report) and run readers (lossland.analysis.runs) on synthetic run dirs."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from lossland.errors import LosslandError
from lossland.runs import Run, find_runs, load_runs

STEPS = [0, 10, 30, 100, 300, 1000, 2000, 3000]


def curves(phase: str, rng):
    s = np.asarray(STEPS, dtype=float)
    if phase == "1":
        loss = 2.3 * (s + 1) ** -0.9
        return loss, 0.9 * (s + 1) ** -1.0 * (s < 3000), 5 * (s + 1) ** -0.5, 1 - 1 / (s + 20)
    if phase == "2":
        loss = 0.5 + 1.8 * np.exp(-s / 20) + 0.02 * rng.standard_normal(s.size)
        return loss, 0.15 + 0.75 * np.exp(-s / 20), 2 + 0 * s, 0.5 + 0 * s
    err, cos = 0.9 + 0.01 * rng.standard_normal(s.size), 0.02 * rng.standard_normal(s.size)
    return 2.3 + 0 * s, err, 8 + 0 * s, cos


def write_run(d, elr, phase, seed=0, status="ok"):
    """A run dir as the framework writes it: sparse metrics.csv rows and summary.json."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    (d / ".hydra").mkdir()
    (d / ".hydra" / "config.yaml").write_text(f"elr: {elr}\n")
    loss, err, gm, cos = curves(phase, rng)
    cols = ["step", "epoch", "train_loss", "gm", "train_error", "test_error", "cos_prev", "cos_init", "elr",
            "weight_norm"]
    with open(d / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for i, s in enumerate(STEPS):
            w.writerow({"step": s, "epoch": s // 100, "elr": elr, "weight_norm": 4.0})
            w.writerow({"step": s, "epoch": s // 100, "train_loss": repr(float(loss[i])), "gm": float(gm[i])})
            w.writerow({"step": s, "epoch": s // 100, "train_error": float(err[i]),
                        "test_error": float(err[i]) + 0.05, "cos_prev": float(cos[i]), "cos_init": 0.5})
    final = {"train_loss": float(loss[-1]), "train_error": float(err[-1]),
             "train_misclassified": round(2000 * float(err[-1])),
             "test_error": float(err[-1]) + 0.05, "gm": float(gm[-1])}
    (d / "summary.json").write_text(json.dumps({"status": status, "seed": seed, "elr": elr,
                                                "overrides": [f"elr={elr}"], "steps": STEPS[-1],
                                                "final": final}))
    return d


SWEEP = [(1e-4, "1"), (3e-4, "1"), (1e-3, "2"), (3e-3, "2"), (1e-2, "3"), (3e-2, "3")]


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "multirun" / "2026-11-23" / "10-00-00"
    for i, (elr, phase) in enumerate(SWEEP):
        write_run(root / str(i), elr, phase, seed=i)
    write_run(root / "6", 1e-1, "3", status="diverged")
    (root / "7").mkdir()  # a job still running: no summary.json yet
    (root / "7" / "metrics.csv").write_text("step,epoch,train_loss\n0,0,2.3\n")
    (root / "8").mkdir()
    (root / "8" / "summary.json").write_text("{not json")
    return root


def test_find_and_load_runs(sweep):
    dirs = find_runs(sweep)
    assert [d.name for d in dirs] == ["0", "1", "2", "3", "4", "5", "6", "8"]
    run = Run(sweep / "0")
    assert run.elr == 1e-4 and run.status == "ok"
    steps, loss = run.series("train_loss")
    assert steps.tolist() == STEPS and loss.size == len(STEPS)
    assert run.metrics["train_loss"].size == 3 * len(STEPS) and np.isnan(run.metrics["train_loss"][0])
    assert run.final_value("gm") == pytest.approx(5 * 3001 ** -0.5)
    assert math.isnan(run.final_value("hessian_top"))
    summary = json.loads((sweep / "6" / "summary.json").read_text())
    summary["final"].pop("gm")  # as train.py writes a diverged run: no phase metric at the last finite weights
    (sweep / "6" / "summary.json").write_text(json.dumps(summary))
    diverged = Run(sweep / "6")  # it logged gm before it diverged: that is not its final value
    assert diverged.series("gm")[1].size and math.isnan(diverged.final_value("gm"))
    runs, problems = load_runs(sweep)
    assert len(runs) == 7 and len(problems) == 1 and "8" in problems[0]


def test_write_report(sweep):
    from lossland.sweep.report import write_report

    files, bounds, *_ = write_report(sweep)
    names = {p.name for p in files}
    assert names == {"phase_diagram.png", "final_metrics.png", "curves.png", "cosines.png", "phases.json",
                     "index.html"}
    for p in files:
        assert p.parent == sweep / "report" and p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (sweep / "report").iterdir() if p.name.endswith(".tmp")]
    # phases in elr order: 1 at the smallest elr, then 2, then 3
    assert bounds["1"] == (1e-4, 3e-4) and bounds["2"] == (1e-3, 3e-3) and bounds["3"] == (1e-2, 3e-2)
    assert bounds["diverged"] == (1e-1, 1e-1)
    table = json.loads((sweep / "report" / "phases.json").read_text())
    expected = ["1-converged", "1-converged", "2", "2", "3", "3", "diverged"]
    assert [r["phase"] for r in table["runs"]] == expected
    assert len(table["problems"]) == 1
    page = (sweep / "report" / "index.html").read_text()
    for name in ("phase_diagram.png", "final_metrics.png", "cosines.png", "1-converged", "diverged"):
        assert name in page
    # header + boundaries, header + settings (one run each), header + runs
    assert page.count("<tr>") == 1 + len(bounds) + 1 + 7 + 1 + 7
    # the report dir is not mistaken for runs when run again
    files2, bounds2, *_ = write_report(sweep)
    assert bounds2 == bounds and len(files2) == len(files)


def test_report_errors(tmp_path):
    from lossland.sweep.report import write_report

    with pytest.raises(LosslandError, match="no runs under"):
        write_report(tmp_path)
    with pytest.raises(LosslandError, match="no such directory"):
        write_report(tmp_path / "missing")


def _write_sgd_run(d, lr, coef, seed, phase):
    """A plain-SGD run of an lr x wd sweep: its summary records the lr it used and no elr."""
    write_run(d, lr, phase, seed=seed)
    s = json.loads((d / "summary.json").read_text())
    s.update(elr=None, lr=lr, overrides=["optimizer=sgd", f"lr={lr}", f"regularizer.coef={coef}", f"seed={seed}"])
    (d / "summary.json").write_text(json.dumps(s))


def test_report_aggregates_seeds_per_setting(tmp_path):
    """2 seeds x 2 elrs: one row per elr with its phase counts, mean ± std, majority-phase boundaries."""
    from lossland.sweep.report import write_report

    root = tmp_path / "sweep"
    for i, (elr, phase, seed) in enumerate([(1e-3, "1", 0), (1e-3, "1", 1), (1e-2, "3", 0), (1e-2, "2", 1),
                                            (1e-2, "3", 2)]):
        write_run(root / str(i), elr, phase, seed=seed)
        s = json.loads((root / str(i) / "summary.json").read_text())
        s["overrides"] = [f"elr={elr}", f"seed={seed}"]
        (root / str(i) / "summary.json").write_text(json.dumps(s))
    _, bounds, *_ = write_report(root)
    table = json.loads((root / "report" / "phases.json").read_text())
    assert table["varied"] == ["elr", "seed"] and table["x"] == "elr" and table["series"] == []
    rows = table["settings"]
    assert [(r["elr"], r["runs"], r["phase"]) for r in rows] == [(1e-3, 2, "1-converged"), (1e-2, 3, "3")]
    assert rows[1]["phases"] == "3 (2/3), 2 (1/3)" and rows[0]["phases"] == "1-converged (2/2)"
    errs = [r["train_error"] for r in table["runs"][2:]]
    assert rows[1]["train_error"] == pytest.approx(np.mean(errs))
    assert rows[1]["train_error_std"] == pytest.approx(np.std(errs, ddof=1))
    assert bounds == {"1-converged": (1e-3, 1e-3), "1": (1e-3, 1e-3), "3": (1e-2, 1e-2)}  # no overlap
    page = (root / "report" / "index.html").read_text()
    assert "3 (2/3), 2 (1/3)" in page and " ± " in page


def test_report_plots_against_the_varied_rate_and_series(tmp_path):
    """An lr x wd sweep of plain SGD (the VGG16-BN recipe): x is lr, one series per wd, no elr anywhere."""
    from lossland.sweep.collect import collect
    from lossland.sweep.report import write_report

    root = tmp_path / "vgg"
    i = 0
    for coef in (0, 1e-4):
        for lr in (0.01, 0.1):
            for seed in (0, 1):
                _write_sgd_run(root / str(i), lr, coef, seed, "1" if lr == 0.01 else "2")
                i += 1
    _, bounds, *_ = write_report(root)
    table = json.loads((root / "report" / "phases.json").read_text())
    assert table["x"] == "lr" and table["series"] == ["regularizer.coef"]
    assert [(r["regularizer.coef"], r["lr"], r["runs"]) for r in table["settings"]] == [
        (0, 0.01, 2), (0, 0.1, 2), (0.0001, 0.01, 2), (0.0001, 0.1, 2)]
    assert "elr" not in table["runs"][0] and set(bounds) == {
        f"{p} [regularizer.coef={c}]" for p in ("1", "1-converged", "2") for c in ("0", "0.0001")}
    rows, _ = collect(root)
    assert {r["lr"] for r in rows} == {0.01, 0.1} and all(r["elr"] is None for r in rows)
    assert {r["regularizer.coef"] for r in rows} == {0, 1e-4}


def test_tiny_sweep_two_seeds_two_elrs_through_the_cli(tmp_path):
    """Real runs: 2 seeds x 2 elrs of the smoke experiment, then `lossland report`: one row per elr, 2 runs each,
    the seeds' phase counts and mean ± std, the rate each run used."""
    from tests.conftest import run_cli

    out = tmp_path / "sweep"
    res = run_cli("train.py", "-m", "experiment=smoke", "elr=1e-3,1e-2", "seed=0,1", "trainer.max_steps=8",
                  "metrics.every_n_steps=4", "data.train_size=64", "data.test_size=64", "logger=csv",
                  f"hydra.sweep.dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli("-m", "lossland.cli", "report", str(out), "--no-wandb")
    assert res.returncode == 0, res.stderr[-3000:]
    table = json.loads((out / "report" / "phases.json").read_text())
    assert table["varied"] == ["elr", "seed"]
    assert [(s["elr"], s["runs"], s["seeds"]) for s in table["settings"]] == [(1e-3, 2, [0, 1]), (1e-2, 2, [0, 1])]
    for s in table["settings"]:
        assert s["phases"].endswith("/2)") and s["test_error_std"] is not None
    for d in find_runs(out):  # sphere runs record elr and the lr = elr·ρ0² their optimizer used
        run = Run(d)
        _, rho0 = run.series("rho0")
        assert run.summary["lr"] == pytest.approx(run.summary["elr"] * rho0[0] ** 2)
    assert "elr=0.001: " in res.stdout and (out / "report" / "curves.png").stat().st_size > 0
