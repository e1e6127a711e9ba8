"""The phase-boundary sweeper (hydra/sweeper=phase_boundary, docs/phase_boundary.md): the bracket / K-section logic
on synthetic labels, boundaries.json, bad input in one line, the early-stop rule, and tiny sweeps from the CLI."""

from __future__ import annotations

import json

import pytest

from lossland.errors import LosslandError
from lossland.studies.sphere.phases import certain_phase
from lossland.sweep.boundary import (
    Lattice,
    bracket,
    coarse_indices,
    k_section,
    majority,
    next_round,
    parse_boundary,
    side,
)
from lossland.sweep.phase_sweeper import PhaseBoundary, SearchState
from tests.conftest import run_cli


def test_boundary_names_sides_and_majority():
    b12, b23, sub = parse_boundary("1|2"), parse_boundary("2|3"), parse_boundary("1-converged|1-not-converged")
    assert (b12.threshold, b23.threshold, sub.threshold) == (2, 3, 1)
    assert [side(lab, b12) for lab in ("1-converged", "1-not-converged", "2", "3", "diverged", "failed", None)] \
        == ["below", "below", "above", "above", "above", None, None]
    assert side("1-not-converged", sub) == "above" and side("1-converged", sub) == "below"
    assert majority(["2", "3", "3"], b23) == "above" and majority(["2", "3"], b23) is None
    assert majority(["2", None, "failed"], b23) == "below" and majority([None], b23) is None
    for bad in ("1|3", "2|1", "4|5", "12", "1-converged|2"):
        with pytest.raises(LosslandError, match=r"unknown boundary .*valid boundaries: 1-converged\|1-not-converged"):
            parse_boundary(bad)


def test_lattice_is_the_dense_grid_of_the_resolution():
    lat = Lattice(1e-5, 1.0, 1.2)
    assert lat.n == 64 and lat.factor <= 1.2 and lat.factor ** 64 == pytest.approx(1e5)
    assert lat.rate(0) == 1e-5 and lat.rate(64) == 1.0 and len(lat.rates()) == 65
    assert coarse_indices(64, 9) == list(range(0, 65, 8))
    assert k_section(0, 8, 3) == [2, 4, 6] and k_section(2, 4, 3) == [3] and k_section(3, 4, 3) == []


def test_bracket_ignores_undecided_rates_and_flags_non_monotone():
    assert (bracket({0: "below", 4: None, 8: "above"}).lo, bracket({0: "below", 8: "above"}).hi) == (0, 8)
    b = bracket({0: "below", 2: "above", 4: "below", 6: "above"})
    assert (b.lo, b.hi, b.non_monotone) == (4, 6, [2])
    assert bracket({0: "above", 8: "above"}).lo is None and bracket({0: "below"}).hi is None
    assert next_round([bracket({0: "below", 8: "above"}), bracket({0: "below", 8: "above"})], 3, {0, 8}) == [2, 4, 6]
    assert next_round([bracket({0: "below", 2: None, 4: "above"})], 1, {0, 2, 4}) == [3]  # around the undecided one


def search(truth, lattice, names, k=3, coarse=9, seeds=1, flip=None):
    """The sweeper's loop without Hydra: labels from ``truth(rate, seed)``."""
    state = SearchState(lattice, [parse_boundary(n) for n in names], ("1-converged", "1-not-converged", "2", "3"),
                        seeds)
    reps = [(f"seed={s}",) for s in range(seeds)]
    todo, confirm, n = [(j, rep) for j in coarse_indices(lattice.n, coarse) for rep in reps], False, 0
    while todo:
        jobs = []
        for j, rep in todo:
            lab = truth(lattice.rate(j), int(rep[0][5:]), confirm)
            jobs.append((j, rep, f"run{n}", lab, not confirm and lab == "3"))  # phase 3 stops early
            n += 1
        state.add_round(jobs, [10] * len(jobs), confirm)
        todo, confirm = state.next_round(k, reps)
    return state


def sphere_like(rate, seed, full=True):
    return "1-converged" if rate < 3e-4 else "1-not-converged" if rate < 2.2e-3 else "2" if rate < 4e-2 else "3"


def test_k_section_finds_the_dense_grids_brackets_with_a_fraction_of_its_runs(tmp_path):
    lat = Lattice(1e-5, 1.0, 1.2)
    state = search(sphere_like, lat, ["1|2", "2|3"])
    rec = state.record("elr", {}, tmp_path)
    dense = {j: sphere_like(lat.rate(j), 0) for j in range(lat.n + 1)}
    for name, edge in (("1|2", 2.2e-3), ("2|3", 4e-2)):
        lo, hi = rec["boundaries"][name]["bracket"]
        assert lo < edge <= hi and hi / lo <= 1.2 + 1e-9 and rec["boundaries"][name]["status"] == "resolved"
        b = bracket({j: side(lab, parse_boundary(name)) for j, lab in dense.items()})
        assert [lat.rate(b.lo), lat.rate(b.hi)] == [lo, hi]
    assert rec["runs"] <= 0.4 * rec["dense_grid_runs"] and rec["dense_grid_runs"] == 65
    assert [r["rates"][0] for r in rec["rounds"]][0] == 1e-5 and rec["steps"] == 10 * rec["runs"]
    assert rec["rounds"][-1]["confirmation"] and rec["rounds"][-1]["rates"] == [rec["boundaries"]["2|3"]["bracket"][1]]


def test_a_deciding_run_stopped_early_is_run_again_at_full_length(tmp_path):
    """Early-stopped runs can say 3 where the full run escapes (the benchmark's elr 0.039 at 60 steps): the
    bracket's ends are confirmed at full length, and the search goes on from the corrected label."""
    lat = Lattice(1e-5, 1.0, 1.2)

    def escapes(rate, seed, full):
        return "2" if rate < 3e-2 or (full and rate < 4.5e-2) else "3"

    rec = search(escapes, lat, ["2|3"]).record("elr", {}, tmp_path)
    lo, hi = rec["boundaries"]["2|3"]["bracket"]
    assert lo < 4.5e-2 <= hi and hi / lo <= 1.2 + 1e-9
    assert rec["superseded"] and all(x["label"] == "3" for x in rec["superseded"])
    assert not any(d["stopped_early"] for d in rec["boundaries"]["2|3"]["deciding_runs"])


def test_seeds_vote_and_disagreements_are_recorded(tmp_path):
    lat = Lattice(1e-3, 1.0, 2.0)

    def noisy(rate, seed, full):  # seed 2 sees phase 3 one lattice step early
        return "3" if rate >= (4e-2 if seed == 2 else 8e-2) else "2"

    rec = search(noisy, lat, ["2|3"], k=1, coarse=3, seeds=3).record("elr", {}, tmp_path)
    b = rec["boundaries"]["2|3"]
    assert b["status"] == "resolved" and b["bracket"][0] < 8e-2 <= b["bracket"][1]
    assert b["disagreements"] and all(d["majority"] == "below" for d in b["disagreements"])
    assert len(b["deciding_runs"]) == 6 and {d["label"] for d in b["deciding_runs"]} == {"2", "3"}


def test_a_boundary_outside_the_range_is_said_so(tmp_path):
    rec = search(lambda r, s, f: "2", Lattice(1e-3, 1e-2, 1.5), ["1|2", "2|3"]).record("elr", {}, tmp_path)
    assert rec["boundaries"]["1|2"]["status"] == "below the range"
    assert rec["boundaries"]["2|3"]["status"] == "above the range" and rec["rounds"][1:] == []


def sweeper(**kw):
    from lossland.config import compose

    s = PhaseBoundary(**kw)
    s.config = compose(["experiment=smoke", *kw.pop("overrides", [])], return_hydra_config=True) \
        if "overrides" in kw else compose(["experiment=smoke"], return_hydra_config=True)
    return s


@pytest.mark.parametrize("kw, message", [
    ({"range": [1e-2, 1e-3]}, r"range=\[0.01, 0.001\] is not valid: it must be positive and not empty"),
    ({"range": [0, 1]}, "it must be positive"),
    ({"range": [1e-3]}, "two positive numbers"),
    ({"boundaries": ["1|3"]}, r"unknown boundary '1\|3'; valid boundaries:"),
    ({"resolution": 1.0}, "resolution=1.0 is not valid"),
    ({"resolution": 0.5}, "resolution=0.5 is not valid"),
    ({"rate": "lr"}, r"rate=lr is not a rate of the optimizer \(lossland.optim.SphereSGD\); its rates: elr"),
    ({"rate": "momentum"}, "rate=momentum is not a rate"),
])
def test_bad_settings_are_one_line_before_anything_runs(kw, message):
    with pytest.raises(LosslandError, match=message):
        sweeper(**kw).check(["experiment=smoke"])


def test_the_swept_rate_on_the_command_line_is_refused():
    with pytest.raises(LosslandError, match="elr is the sweeper's"):
        sweeper().check(["experiment=smoke", "elr=1e-3,1e-2"])
    lattice, bounds, replicates = sweeper().check(["experiment=smoke", "seed=0,1,2"])
    assert [r[-1] for r in replicates] == ["seed=0", "seed=1", "seed=2"] and lattice.n == 64


def rows(err, cos, steps=None):
    steps = steps or list(range(0, 10 * len(err), 10))
    return [{"step": s, "train_error": e, "train_loss": 2.3, **({} if c is None else {"cos_prev": c})}
            for s, e, c in zip(steps, err, cos)]


def test_certain_phase_three_needs_consecutive_points_at_chance_and_orthogonal_weights():
    assert certain_phase(rows([0.9, 0.9, 0.9, 0.9], [None, 0.05, 0.1, 0.0]), 10)[0] == "3"
    assert certain_phase(rows([0.9, 0.9, 0.9, 0.9], [None, 0.05, 0.5, 0.0]), 10) is None  # cosine not ≈ 0
    assert certain_phase(rows([0.9, 0.3, 0.9, 0.9], [None, 0.05, 0.1, 0.0]), 10) is None  # error not at chance
    assert certain_phase(rows([0.9, 0.9], [None, 0.0]), 10) is None  # too few points


def test_certain_phase_converged_counts_the_whole_training_split():
    h = rows([0.5, 0.0, 0.0, 0.0], [None, 0.99, 0.99, 0.99])
    assert certain_phase(h, 10, misclassified=lambda: 0)[0] == "1-converged"
    assert certain_phase(h, 10, misclassified=lambda: 3) is None
    assert certain_phase(h, 10) is None  # not asked
    calls = []
    certain_phase(rows([0.5, 0.1, 0.0, 0.0], [None, 0.99, 0.99, 0.99]), 10, misclassified=lambda: calls.append(1))
    assert calls == []  # the full pass only when the subset says zero


def test_early_stop_ends_a_phase3_run_with_status_ok_and_its_reason(make_cfg):
    from lossland.runs import Run
    from lossland.studies.sphere.phases import phase_of
    from lossland.train import run

    cfg = make_cfg("experiment=smoke", "elr=3", "trainer.max_steps=48", "metrics.every_n_steps=4",
                   "metrics.early_stop.phase=true", "metrics.early_stop.min_fraction=0")
    s = run(cfg)
    assert s["status"] == "ok" and s["stopped_early"] and s["steps"] < 48
    assert s["stop_reason"].startswith("phase 3 certain at step") and phase_of(Run(cfg.out_dir)) == "3"


def test_bad_input_from_the_command_line_is_one_line(tmp_path):
    r = run_cli("train.py", "-m", "experiment=smoke", "hydra/sweeper=phase_boundary", "hydra.sweeper.resolution=1",
                f"hydra.sweep.dir={tmp_path}", "logger=csv")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == ["lossland: error: resolution=1 is not valid: a factor in the rate "
                                             "greater than 1 (e.g. 1.2)"]
    assert not any(p.is_dir() for p in tmp_path.iterdir())


@pytest.mark.slow
def test_a_tiny_sweep_from_the_cli_locates_the_boundaries_and_resumes(tmp_path):
    args = ["train.py", "-m", "experiment=smoke", "hydra/sweeper=phase_boundary", "hydra.sweeper.range=[1e-3,1]",
            "hydra.sweeper.resolution=3", "hydra.sweeper.coarse=3", "hydra.sweeper.k=1", "trainer.max_steps=16",
            "metrics.every_n_steps=4", "logger=csv", f"hydra.sweep.dir={tmp_path}"]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads((tmp_path / "boundaries.json").read_text())
    assert rec["runs"] < rec["dense_grid_runs"] and len(rec["rounds"]) >= 2
    for b in rec["boundaries"].values():
        assert b["status"] in ("resolved", "below the range", "above the range")
        if b["status"] == "resolved":
            assert b["ratio"] <= 3 + 1e-9 and b["deciding_runs"]
    stamp = {p.name: (p / "summary.json").stat().st_mtime for p in tmp_path.iterdir() if p.is_dir()}
    r = run_cli(*args)  # the same command again: every round read back, nothing re-run
    assert r.returncode == 0 and "read back" in r.stderr + r.stdout
    assert {p.name: (p / "summary.json").stat().st_mtime for p in tmp_path.iterdir() if p.is_dir()} == stamp
    assert json.loads((tmp_path / "boundaries.json").read_text())["boundaries"] == rec["boundaries"]


@pytest.mark.slow
def test_early_stopped_labels_equal_the_full_runs_over_three_phases(make_cfg):
    """The embedded CE recipe cut to 60 steps (the benchmark's setting, docs/phase_boundary.md) at a phase-1, a
    phase-2 and a phase-3 elr, each run with the early stop and without. (The phase-3 one is the 2|3 bracket's upper
    end; at 0.0392, below it, the early stop says 3 and the full run escapes to 1-not-converged at step 55: why the
    sweeper runs deciding runs that stopped early again at full length.)"""
    from lossland.runs import Run
    from lossland.studies.sphere.phases import phase_of
    from lossland.train import run

    labels, stopped = {}, []
    for elr in (0.000749894, 0.0191095, 0.0469759):
        base = ("experiment=sphere_ce", f"elr={elr}", "trainer.max_steps=60", "metrics.every_n_steps=5",
                "metrics.test=false")
        full, early = make_cfg(*base, out=f"full{elr}"), make_cfg(*base, "metrics.early_stop.phase=true",
                                                                     out=f"early{elr}")
        run(full)
        s = run(early)
        stopped.append(s["steps"] if s["stopped_early"] else None)
        labels[elr] = (phase_of(Run(early.out_dir)), phase_of(Run(full.out_dir)))
    assert all(e == f for e, f in labels.values()), labels
    assert [f for _, f in labels.values()] == ["1-not-converged", "2", "3"], labels
    assert stopped[:2] == [None, None] and stopped[2] < 60  # phase 3 ends early, the others run to the end


def test_report_draws_the_located_boundaries(tmp_path):
    from lossland.sweep.report import write_report
    from tests.test_report import write_run

    for i, (elr, phase) in enumerate([(1e-4, "1"), (3e-4, "1"), (1e-3, "2"), (3e-3, "2"), (1e-2, "3")]):
        write_run(tmp_path / str(i), elr, phase, seed=i)
    rec = {"settings": {"rate": "elr"}, "boundaries": {"1|2": {"bracket": [3e-4, 1e-3]},
                                                      "2|3": {"bracket": [3e-3, None]}}}
    (tmp_path / "boundaries.json").write_text(json.dumps(rec))
    write_report(tmp_path)
    table = json.loads((tmp_path / "report" / "phases.json").read_text())
    assert table["located_boundaries"] == {"1|2": [3e-4, 1e-3]}  # a bracket without both ends is not drawn
    assert "Located boundaries" in (tmp_path / "report" / "index.html").read_text()
    (tmp_path / "boundaries.json").write_text("{not json")
    with pytest.raises(LosslandError, match="unreadable .*boundaries.json"):
        write_report(tmp_path)


def test_runs_recorded_before_the_early_stop_keep_their_digest(make_cfg):
    """``metrics.early_stop`` was added: off, it is not hashed (earlier runs still skip or resume); on, the run
    is another run."""
    from omegaconf import OmegaConf

    from lossland.job import config_digest

    cfg = make_cfg("experiment=smoke")
    old = OmegaConf.to_container(cfg, resolve=True)
    del old["metrics"]["early_stop"]
    assert config_digest(OmegaConf.create(old)) == config_digest(cfg)
    assert config_digest(make_cfg("experiment=smoke", "metrics.early_stop.points=5")) == config_digest(cfg)
    assert config_digest(make_cfg("experiment=smoke", "metrics.early_stop.phase=true")) != config_digest(cfg)


def test_a_sweep_dir_of_another_search_is_refused(tmp_path):
    s = sweeper()
    (tmp_path / "boundaries.json").write_text(json.dumps({"settings": {**s._settings(), "resolution": 1.5}}))
    with pytest.raises(LosslandError, match="holds another phase-boundary search .*resolution differ"):
        s._check_previous(tmp_path / "boundaries.json")
    (tmp_path / "boundaries.json").write_text(json.dumps({"settings": s._settings()}))
    s._check_previous(tmp_path / "boundaries.json")  # the same search: resumed
