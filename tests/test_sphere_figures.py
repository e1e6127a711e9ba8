"""Study S's extra figures (lossland.studies.sphere.figures) from tiny real runs: files written, and the plotted
arrays equal to the records they were drawn from."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lossland.cli import main
from lossland.errors import LosslandError
from lossland.runs import Run
from lossland.studies.sphere.figures import (
    direction_of,
    plot_baselines,
    plot_curvature_phase,
    plot_retraction_error,
    write_sphere_figures,
)
from lossland.train import run

TINY = ["data=digits", "data.batch_size=32", "data.pad_to=32", "data.train_size=256", "data.test_size=64",
        "model=convnet_si", "model.width=0.125", "optimizer=sphere_sgd", "trainer.max_steps=12",
        "metrics.every_n_steps=4", "metrics.eval_batches=2", "metrics.test_examples=64",
        "metrics.curvature.enabled=true", "metrics.curvature.every=2", "metrics.curvature.examples=32"]
ELRS = (1e-3, 3e-2)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two elrs with gradient steps plus one random-walk run: a tiny elr sweep and baseline pair."""
    from lossland.config import compose

    root = tmp_path_factory.mktemp("sweep")
    jobs = [(f"elr={e}", "optimizer.direction=gradient") for e in ELRS] + [(f"elr={ELRS[1]}",
                                                                           "optimizer.direction=random")]
    for i, job in enumerate(jobs):
        run(compose([*TINY, *job, f"out_dir={root / str(i)}", "logger=csv", "trainer.enable_progress_bar=false"]))
    return root


def _runs(root):
    return sorted((Run(d) for d in root.glob("[0-9]")), key=lambda r: r.path.name)


def test_write_sphere_figures_writes_every_figure_the_records_allow(sweep):
    result = write_sphere_figures(sweep)
    names = {p.name for p in result["files"]}
    assert names == {"sphere_overview.png", "sphere_curvature_phase.png", "sphere_retraction_error.png",
                     "sphere_baselines.png", "sphere_figures.json"}
    assert all(p.stat().st_size > 1000 for p in result["files"])
    saved = json.loads((sweep / "sphere_figures" / "sphere_figures.json").read_text())
    assert set(saved) == set(result["data"])
    # the overview's final metrics are the runs' summaries (gradient runs only: the random walk is a baseline)
    final = result["data"]["sphere_overview"]["final"]["test_error"]
    grad = [r for r in _runs(sweep) if direction_of(r) == "gradient"]
    assert final["elr"].tolist() == list(ELRS)
    assert final["mean"].tolist() == [r.final["test_error"] for r in sorted(grad, key=lambda r: r.elr)]
    assert final["std"].tolist() == [0.0, 0.0] and final["n"].tolist() == [1, 1]
    for r in grad:  # the cosine distributions are every logged cos_prev of the run
        _, cos = r.series("cos_prev")
        assert np.array_equal(result["data"]["sphere_overview"]["cosines"][r.elr], cos[np.isfinite(cos)])


def test_curvature_phase_diagram_plots_the_logged_curvature(sweep):
    runs = [r for r in _runs(sweep) if direction_of(r) == "gradient"]
    _, data = plot_curvature_phase(runs)
    for metric in ("gm", "fisher_trace", "hessian_top_eig"):
        assert len(data[metric]) == len(runs)
        for entry in data[metric]:
            r = Run(entry["run"])
            steps, vals = r.series(metric)
            ls, loss = r.series("train_loss")
            assert entry["step"].size >= 2
            assert np.array_equal(entry["value"], vals[np.isin(steps, entry["step"])])
            assert np.array_equal(entry["train_loss"], loss[np.isin(ls, entry["step"])])
    # curvature every 2nd evaluation point (0, 8 of 0, 4, 8, 12): fewer points than GM
    assert data["fisher_trace"][0]["step"].tolist() == [0, 8]
    assert (data["hessian_top_eig"][0]["value"] > 0).all()


def test_retraction_error_is_the_optimizers_record_and_matches_its_formula(sweep):
    runs = [r for r in _runs(sweep) if direction_of(r) == "gradient"]
    _, data = plot_retraction_error(runs)
    assert [c["elr"] for c in data["curves"]] == list(ELRS)
    for c in data["curves"]:
        r = Run(c["run"])
        steps, vals = r.series("retraction_error")
        assert np.array_equal(c["step"], steps) and np.array_equal(c["value"], vals)
        # 1 - r = 1 - arctan(x)/x with x = lr·‖∇L‖/ρ0, from the same row's lr, grad_norm, rho0
        _, lr = r.series("lr")
        _, g = r.series("grad_norm")
        _, rho = r.series("rho0")
        x = lr * g / rho
        assert np.allclose(vals, 1 - np.arctan(x) / x, rtol=1e-5)
    per = data["per_elr"]
    assert per["mean"][0] < per["mean"][1]  # a larger elr makes larger steps on the sphere
    assert per["max"][1] == pytest.approx(float(np.max(data["curves"][1]["value"])))


def test_baselines_overlay_groups_runs_by_direction(sweep):
    runs = _runs(sweep)
    _, data = plot_baselines([r for r in runs if r.elr == ELRS[1]])
    assert sorted(e["direction"] for e in data["train_loss"]) == ["gradient", "random"]
    for e in data["gm"]:
        steps, vals = Run(e["run"]).series("gm")
        assert np.array_equal(e["step"], steps) and np.array_equal(e["value"], vals)
    # the random walk moves as far as the gradient step: its retraction errors are of the same size
    rw = {e["direction"]: e["value"] for e in data["retraction_error"]}
    assert all(math.isfinite(v) for v in rw["random"])


def test_cli_on_one_run_writes_only_the_per_run_figures_and_refuses_in_one_line(sweep, tmp_path, capsys):
    import shutil

    shutil.copytree(sweep / "0", tmp_path / "one" / "0")
    # one elr, one direction: no overview or baselines; the per-run figures (curvature, 1 - r) remain
    main(["sphere-figures", str(tmp_path / "one"), "--out", str(tmp_path / "figs")])
    printed = {line.rsplit("/", 1)[-1] for line in capsys.readouterr().out.split()}
    assert printed == {"sphere_curvature_phase.png", "sphere_retraction_error.png", "sphere_figures.json"}
    assert all((tmp_path / "figs" / name).exists() for name in printed)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["sphere-figures", str(tmp_path / "empty")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no finished run under" in err[0]
    with pytest.raises(LosslandError, match="no such directory"):
        write_sphere_figures(tmp_path / "missing")
