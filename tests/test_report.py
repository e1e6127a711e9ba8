"""Sweep report (lossland.analysis.report) and run readers (lossland.analysis.runs) on synthetic run dirs."""

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
        return loss, 0.9 * (s + 1) ** -1.0, 5 * (s + 1) ** -0.5, 1 - 1 / (s + 20)
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
    runs, problems = load_runs(sweep)
    assert len(runs) == 7 and len(problems) == 1 and "8" in problems[0]


def test_write_report(sweep):
    from lossland.analysis.report import write_report

    files, bounds = write_report(sweep)
    names = {p.name for p in files}
    assert names == {"phase_diagram.png", "final_metrics.png", "cosines.png", "phases.json", "index.html"}
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
    assert page.count("<tr>") == 1 + len(bounds) + 1 + 7  # header + boundaries, header + runs
    # the report dir is not mistaken for runs when run again
    files2, bounds2 = write_report(sweep)
    assert bounds2 == bounds and len(files2) == len(files)


def test_report_errors(tmp_path):
    from lossland.analysis.report import write_report

    with pytest.raises(LosslandError, match="no runs under"):
        write_report(tmp_path)
    with pytest.raises(LosslandError, match="no such directory"):
        write_report(tmp_path / "missing")
