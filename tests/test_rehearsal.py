"""The full-size rehearsal (``-m rehearsal``; ``make rehearsal``, called by ``.ci/run``; docs/scale.md).

Synthetic CIFAR-10 python batches (50,000 + 10,000) and MNIST IDX files (60,000 + 10,000), in their exact formats
and real sizes (:mod:`lossland.data.synthetic_files`), drive every study's full-scale recipes through the real
code path — ``lossland paper <study> --scale full --rehearse``: every paper config, the readers at full size, the
models at full width, one optimizer step per experiment on the CPU, then collect, report, figures, paths, tables
and the ``paper`` comparison. Two workers share the two cores: the sphere study (ConvNet-SI and VGG16-BN at width
1) then nas on one, exp_neuron, connect and optim one after another on the other (balanced by CI's times). It
prints how long each took.
"""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import yaml

from lossland.data.synthetic_files import write_all
from lossland.paper import data as seeds
from tests.conftest import ROOT

WORKERS = [["sphere", "nas"], ["exp_neuron", "connect", "optim"]]  # CI: 257 + 80 s and 207 + 80 + 40 s


def rehearse(study, data, out, results):
    t0 = time.time()
    res = subprocess.run([sys.executable, "-m", "lossland.cli", "paper", study, "--scale", "full", "--rehearse",
                          "--data-root", str(data), "--out", str(out / study)], cwd=ROOT, capture_output=True,
                         text=True, timeout=3600,
                         env=dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="offline",
                                  HYDRA_FULL_ERROR="0", PYTHONPATH=str(ROOT)))
    results[study] = (res.returncode, time.time() - t0, res.stdout[-3000:] + res.stderr[-3000:])


@pytest.mark.rehearsal
def test_every_study_rehearses_its_full_scale_recipes_at_full_size(tmp_path):
    t0 = time.time()
    data = write_all(tmp_path / "data")
    wrote = time.time() - t0
    out, results = tmp_path / "out", {}

    def worker(studies):
        for s in studies:
            rehearse(s, data, out, results)

    threads = [threading.Thread(target=worker, args=(w,)) for w in WORKERS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    print(f"\nrehearsal: synthetic data written in {wrote:.0f} s; "
          + ", ".join(f"{s} {results[s][1]:.0f} s" for w in WORKERS for s in w if s in results)
          + f"; {wall:.0f} s in all (two workers, load average {os.getloadavg()[0]:.1f})")
    for study, (rc, _, tail) in results.items():
        assert rc == 0, f"{study}:\n{tail}"
    for study in (s for w in WORKERS for s in w):
        doc = json.loads((out / study / "paper" / study / "paper.json").read_text())
        assert [v["trend"] for v in doc["verdicts"]] == [t.id for t in seeds.load(f"lossland.studies.{study}").trends]
    # the runs were the paper's experiments at full size, one step each, on the real file formats
    run = out / "sphere" / "sphere_elr_ce" / "0"
    cfg = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    assert cfg["data"]["train_size"] == 50000 and cfg["data"]["test_size"] == 10000
    assert cfg["model"]["width"] == 1.0 and cfg["data"]["eval_limit"] == 128 and cfg["trainer"]["max_steps"] == 1
    assert "experiment=paper/sphere_ce" in yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["steps"] == 1
    mnist = out / "optim" / "keskar_sb_lb"
    assert {p.name for p in mnist.glob("bs*")} == {"bs256-s0", "bs6000-s0"}
    assert yaml.safe_load((mnist / "bs256-s0" / ".hydra" / "config.yaml").read_text())["data"]["train_size"] == 60000
    assert list((out / "connect" / "connect_width" / "connect").rglob("connect.json"))
    assert list((out / "exp_neuron").rglob("exp_neuron/*.csv"))
