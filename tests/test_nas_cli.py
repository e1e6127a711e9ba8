"""``nas.py`` end to end: a seconds-long two-prior search as a multirun (records, genotype, figures), the found
genotype trained from scratch by ``train.py model=nas_genotype``, and a bad input refused in one line."""

import json

import pytest

from tests.conftest import run_cli

SMOKE = ["logger=csv", "data.train_size=96", "data.val_size=64", "data.test_size=64", "search.epochs=2",
         "search.batch_size=32", "search.log_every=1", "nas.channels=4", "discrete.epochs=1", "robustness.draws=2",
         "robustness.weights_sigmas=[0,0.1]", "robustness.inputs_sigmas=[0,1]"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("nas") / "sweep"
    res = run_cli("nas.py", "-m", "prior=weak,annealed", *SMOKE, f"hydra.sweep.dir={d}")
    assert res.returncode == 0, res.stderr[-3000:]
    return d


def test_a_smoke_search_writes_a_record_per_prior(sweep):
    for job, prior in ((0, "weak"), (1, "annealed")):
        out = sweep / str(job)
        s = json.loads((out / "summary.json").read_text())
        assert s["status"] == "ok" and s["prior"] == prior and s["app"] == "nas"
        assert s["steps"] == 6 and 0 <= s["discrete_test_acc"] <= 1
        for f in ("metrics.csv", "genotype.yaml", "robustness.json", "dynamics.png", "entropy.png",
                  "robustness_weights.png", "robustness_inputs.png", "checkpoints/supernet.pt",
                  "checkpoints/discrete.pt", ".hydra/config.yaml"):
            assert (out / f).exists(), f
        header = (out / "metrics.csv").read_text().splitlines()[0]
        assert "mix/normal/e0/conv3x3" in header and "entropy/reduce/e4" in header and "gamma_grad_norm" in header
        rob = json.loads((out / "robustness.json").read_text())
        assert [r["sigma"] for r in rob["discrete"]["inputs"]] == [0.0, 1.0]
        assert set(s["findings"]) >= {"degenerate", "stalled", "final_entropy_max"}
    alphas = [float(r.split(",")[2]) for r in (sweep / "1" / "metrics.csv").read_text().splitlines()[1:]]
    assert alphas[0] == 1.0 and alphas[-1] == pytest.approx(1e-30)  # annealed across the two epochs


def test_the_found_genotype_trains_from_scratch_with_train_py(sweep, tmp_path):
    genotype = sweep / "0" / "genotype.yaml"
    res = run_cli("train.py", "model=nas_genotype", f"model.genotype={genotype}", "model.channels=4", "data=digits",
                  "optimizer=sgd", "logger=csv", "data.train_size=128", "data.test_size=64", "data.batch_size=32",
                  "trainer.max_steps=8", "metrics.every_n_steps=4", "metrics.test_examples=64",
                  f"hydra.run.dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "ok"


def test_a_bad_prior_is_refused_in_one_line(tmp_path):
    res = run_cli("nas.py", "-m", "prior=weak,strong", "prior.alpha=0", "logger=csv", f"hydra.sweep.dir={tmp_path}")
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("lossland: error:")]
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert err == ["lossland: error: prior.alpha must be a finite number > 0 (the Dirichlet concentration), got 0"]


def test_the_report_draws_the_study_figures(sweep, tmp_path):
    from lossland.studies.nas.report import report

    files = report(sweep, tmp_path, prefix="nas_")
    names = {f.name for f in files}
    assert {"nas_dynamics_weak.png", "nas_dynamics_annealed.png", "nas_entropy.png", "nas_robustness_weights.png",
            "nas_robustness_inputs.png", "nas_findings.md"} <= names
    assert all(f.stat().st_size > 0 for f in files)
