"""The study recipes end to end (slow: minutes each; run with ``make test ARGS="-m slow"``)."""

import json
import os
import subprocess

import numpy as np
import pytest

from lossland.analysis.phases import assign_phase
from lossland.runs import Run
from tests.conftest import ROOT


@pytest.mark.slow
def test_sphere_ce_recipe_finds_three_phases_in_elr_order(tmp_path):
    out = tmp_path / "ce"
    res = subprocess.run(["bash", "sweeps/sphere_elr_ce.sh", "logger=csv"], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, OUT=str(out)), timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]
    table = json.loads((out / "report" / "phases.json").read_text())
    runs = sorted((Run(d) for d in out.glob("[0-9]*")), key=lambda r: r.elr)
    labels = [assign_phase(r.summary, r.history()) for r in runs]
    assert sorted(row["phase"] for row in table["runs"]) == sorted(labels)
    order = [int(lbl[0]) for lbl in labels]
    assert order == sorted(order) and order[0] == 1 and set(order) == {1, 2, 3}, labels
    for run, lbl in zip(runs, labels):
        if lbl == "3":
            _, cos = run.series("cos_prev")
            assert run.final["train_error"] >= 0.8 and np.nanmean(cos[len(cos) // 2:]) < 0.2
    assert min(r.final["train_error"] for r, lbl in zip(runs, labels) if lbl.startswith("1")) < 0.02
