"""sweeps/connect_width.sh end to end at SCALE=tiny (slow: about a minute of CPU; ``-m slow``)."""

import json
import os
import subprocess
import sys

import pytest

from lossland.studies.connect.seed import EXTRA_LABELS, METHOD_LABELS
from tests.conftest import ROOT


@pytest.mark.slow
def test_connect_width_recipe_tiny(tmp_path):
    out = tmp_path / "cw"
    env = dict(os.environ, OUT=str(out), SCALE="tiny", TINY_WIDTHS="8", PYTHON=sys.executable,
               OMP_NUM_THREADS="1")
    res = subprocess.run(["bash", "sweeps/connect_width.sh"], cwd=ROOT, capture_output=True, text=True, env=env,
                         timeout=1800)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    recs = [json.loads(p.read_text()) for p in (out / "connect").rglob("connect.json")]
    labels = {(r["prior"], r["method"]["label"]) for r in recs}
    want = {*METHOD_LABELS.values(), *EXTRA_LABELS.values()}  # the seed's six methods + weight matching
    assert labels == {(p, m) for p in ("none", "dropout") for m in want}
    for name in ("width_table.md", "seed_table.md", "priors.png", "width_plot.png"):
        assert (out / "connect" / name).stat().st_size > 0
    assert "| Arc + OT |" in (out / "connect" / "seed_table.md").read_text()


@pytest.mark.slow
def test_connect_prior_recipe_tiny(tmp_path):
    """sweeps/connect_prior.sh: one prior folder per strength, the strength in the nets' configs, no connect-table."""
    out = tmp_path / "cp"
    env = dict(os.environ, OUT=str(out), SCALE="tiny", WD_COEFS="1e-2", DROPOUT_RATES="0.3", PYTHON=sys.executable,
               OMP_NUM_THREADS="1")
    res = subprocess.run(["bash", "sweeps/connect_prior.sh"], cwd=ROOT, capture_output=True, text=True, env=env,
                         timeout=1800)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert {p.name for p in (out / "connect").iterdir()} == {"none", "weight_decay_1e-2", "dropout_0.3"}
    recs = [json.loads(p.read_text()) for p in (out / "connect").rglob("connect.json")]
    from lossland.studies.connect.strength import strengths_of

    got = {s for r in recs for s in strengths_of(r)}
    assert got == {("weight decay", 0.0), ("dropout", 0.0), ("weight decay", 1e-2), ("dropout", 0.3)}
    assert {r["method"]["label"] for r in recs} == set(METHOD_LABELS.values())  # the seed's six paths
    assert not (out / "connect" / "width_table.md").exists()
