"""``lossland paper <study>``: the seed data files are well-formed and match their adapters; every trend function
passes on the seed's own values and fails when a value is changed against it; the side-by-side tables and the
verdicts from controlled records (connect.json files, sphere run directories with designed metric curves); and the
recipe-running path once at tiny size."""

import copy
import csv
import json
import math

import pytest
import yaml

from lossland.cli import main
from lossland.commands.paper import ADAPTERS, adapter
from lossland.errors import LosslandError
from lossland.paper import compare, data
from lossland.paper.adapters import Recipe
from tests.conftest import ROOT


def cli(capsys, *args):
    """``lossland <args>`` in this process (faster than a subprocess); returns stdout."""
    main(list(args))
    return capsys.readouterr().out

STUDIES = tuple(ADAPTERS)


def load(study):
    """The study's seed data, read by the one reader from the package the study names."""
    return data.load(adapter(study).__package__)


def test_the_cli_offers_every_study_with_an_adapter():
    from lossland.commands.paper_cli import STUDIES as offered

    assert offered == STUDIES and all(adapter(s).__package__ == f"lossland.studies.{s}" for s in STUDIES)


def verdicts(out):
    with open(out / "trends.csv") as f:
        return {r["trend"]: r["verdict"] for r in csv.DictReader(f)}


# ------------------------------------------------------------------------------------------------ the data files
@pytest.mark.parametrize("study", STUDIES)
def test_seed_file_is_well_formed_and_matches_its_adapter(study):
    seed = load(study)
    assert seed.study == study and seed.seed.endswith(".txt") and seed.tables and seed.trends
    for t in seed.tables.values():
        assert t.unit and t.setting and t.source and t.title and t.rows
        assert all(set(v) == set(t.columns) for v in t.rows.values())
    mod = adapter(study)
    assert set(mod.TABLES) == set(seed.tables)
    assert set(mod.TRENDS) == {t.id for t in seed.trends}
    assert mod.RECIPES


def test_values_read_as_printed_in_the_seeds():
    c = load("connect")
    assert c.tables["no_prior"].value(("Linear",), 10) == 45.74
    assert c.tables["dropout"].value(("Arc+OT",), 2000) == 2.25
    assert "maximum test error along the path, %" in c.tables["no_prior"].unit
    k = load("optim").tables["keskar"]
    assert k.cell == "mean_std" and k.value(("F2",), "train LB") == [98.35, 2.08] and "percent" in k.unit
    s = load("sphere").tables["ce_phases"]
    assert s.value(("largest phase-1 elr",), "value") == 7e-4 and s.value(("smallest phase-3 elr",), "value") == 2e-2
    q = load("exp_neuron").tables["quality"]
    assert q.value(("spheres R2=1.01", 15000), "exp") == [3693.2, 1096]
    assert q.row_info[("mnist 1v7", 13000)]["arch"] == 6


def test_exp_neuron_seed_module_reads_the_data_file():
    from lossland.studies.exp_neuron import seed as s

    assert s.QUALITY[1] == ("spheres R2=1.01", 15000, (44.3, 7), (3693.2, 1096), 4)
    assert s.SPEED[-1] == ("cifar10 0v1", 2000, 20, 23, 5)
    assert s.STABILITY == [("exp_neuron", 1.0), ("hidden_neuron", 0.0)]
    assert s.STANDINS == {"mnist5k 1v7": "mnist 1v7", "digits 1v7": "cifar10 0v1",
                          "mnist5k 1v7 (net 6 at 64-128-256)": "mnist 1v7"}
    assert s.ARCHITECTURES[6].startswith("CNN")


def test_keskar_reads_its_f1_row_from_the_data_file():
    from lossland.studies.optim.keskar import KESKAR_F1

    assert KESKAR_F1["train_sb"] == (99.66, 0.05) and KESKAR_F1["test_lb"] == (97.81, 0.07)


def test_malformed_seed_data_is_refused():
    doc = yaml.safe_load(data.seed_text("lossland.studies.connect"))
    bad = copy.deepcopy(doc)
    del bad["tables"]["no_prior"]["unit"]
    bad["tables"]["dropout"]["rows"][0] = ["Linear", 1.0]
    bad["trends"].append({"id": "advanced_beat_naive", "claim": "x", "source": "y"})
    problems = data.problems(bad)
    assert "table no_prior: missing unit" in problems
    assert any("dropout: row 0 has 2 cells, not 7" in p for p in problems)
    assert "trend advanced_beat_naive: duplicate id" in problems
    with pytest.raises(LosslandError, match="missing unit"):
        data.parse(bad)
    with pytest.raises(LosslandError, match="no seed data: lossland.nope has no seed.yaml"):
        data.load("lossland.nope")
    with pytest.raises(LosslandError, match="no seed data: lossland.paper has no seed.yaml"):
        data.load("lossland.paper")


def test_sweep_dir_reads_the_paper_layout_or_the_primary_recipes_own_sweep(tmp_path):
    from lossland.paper.adapters import sweep_dir

    assert sweep_dir(tmp_path, "a", primary=True, siblings=("a", "b")) == tmp_path   # --from <a's own sweep>
    (tmp_path / "b").mkdir()
    assert sweep_dir(tmp_path, "a", primary=True, siblings=("a", "b")) is None       # a paper <out> without a
    assert sweep_dir(tmp_path, "b") == tmp_path / "b"
    assert sweep_dir(tmp_path, "c") is None


# ------------------------------------------------------------------------------------------------ trend functions
@pytest.mark.parametrize("study", ["connect", "optim", "exp_neuron"])
def test_every_table_trend_reproduces_on_the_seeds_own_values(study):
    seed, mod = load(study), adapter(study)
    tables = {tid: compare.seed_rows(t) for tid, t in seed.tables.items()}
    trends = [t for t in seed.trends if t.id not in getattr(mod, "RECORD_TRENDS", ())]  # read records, not tables
    got = {t.id: mod.TRENDS[t.id](None, tables) for t in trends}
    assert {k: v[0] for k, v in got.items()} == {t.id: compare.REPRODUCES for t in trends}, got


def _seed_tables(study):
    return {tid: compare.seed_rows(t) for tid, t in load(study).tables.items()}


def _set(tables, tid, key, col, value):
    for o in tables[tid]:
        if o.key == key:
            o.values[col] = value


def test_trend_functions_fail_when_a_seed_value_is_turned_against_them():
    mod = adapter("connect")
    t = _seed_tables("connect")
    _set(t, "dropout", ("Linear+OT",), 10, 50.0)   # OT worse than Linear (41.21) at width 10
    assert mod.ot_beats_linear_small_width(None, t)[0] == compare.FAILS
    v, detail = mod.advanced_beat_naive(None, t)
    assert v == compare.FAILS and "dropout Linear+OT@10: 50.00 ≥ 41.21" in detail
    _set(t, "no_prior", ("Arc",), 2000, 40.0)       # Arc at the widest worse than at the narrowest
    assert mod.wider_more_connected(None, t)[0] == compare.FAILS
    assert mod.prior_more_connected(None, {"no_prior": t["no_prior"]})[0] == compare.NOT_MEASURED

    e = adapter("exp_neuron")
    t = _seed_tables("exp_neuron")
    _set(t, "speed", ("mnist 1v7", 13000), "exp", 10)  # the neuron faster on one row
    assert e.not_faster(None, t)[0] == compare.FAILS
    _set(t, "generalization", ("mnist 1v7", 13000), "exp", [0.1, 4])
    assert e.worse_generalization(None, t)[0] == compare.FAILS
    t["quality"] = [o for o in t["quality"] if o.values["none"][1] <= o.values["exp"][1]]  # never better
    assert e.quality_mixed(None, t)[0] == compare.FAILS
    _set(t, "stability", ("hidden_neuron",), "fraction", 0.5)
    assert e.exp_neuron_unstable(None, t)[0] == compare.FAILS

    o = adapter("optim")
    t = _seed_tables("optim")
    _set(t, "keskar", ("C3",), "test LB", [60.0, 0.1])
    assert o.lb_generalizes_worse(None, t)[0] == compare.FAILS
    assert o.lb_generalizes_worse({"problem": "x"}, {"keskar": []})[0] == compare.NOT_MEASURED


def _fact(elr, phase, train_error, test_error, gm, retraction=0.001, **kw):
    return {"elr": elr, "phase": phase, "train_error": train_error, "test_error": test_error, "gm": gm,
            "classes": 10, "retraction_max": retraction, "status": "ok", "steps": 100, "lr": None,
            "direction": "gradient", "wd": 0.0, "init_from": None, "fraction": None, **kw}


def _ft(pre_elr, pre_phase, factor, connected, pre_test, ft_test):
    return {"pretrain_elr": pre_elr, "pretrain_phase": pre_phase, "factor": factor, "finetune_elr": pre_elr * factor,
            "connected": connected, "pre_test_err": pre_test, "ft_test_err": ft_test}


def _interp(group, elr_a, elr_b, connected):
    return {"group": group, "elr_a": elr_a, "elr_b": elr_b, "connected": connected,
            "train_wrong_a": 0 if group == "converged" else 40, "train_wrong_b": 0 if group == "converged" else 30}


def test_sphere_trends_on_controlled_facts():
    m = adapter("sphere")
    peak = {"train_loss": 0.05, "bottleneck_ratio": 2.0, "bottleneck_loss": 0.5}  # a GM peak ×2 at L = 0.5
    ce = [_fact(1e-4, "1-not-converged", 0.2, 0.30, 5.0, **peak), _fact(3e-4, "1-converged", 0.0, 0.25, 4.0, **peak),
          _fact(1e-3, "1-converged", 0.0, 0.20, 3.0, train_loss=0.01, bottleneck_ratio=1.0, bottleneck_loss=None),
          _fact(3e-3, "2", 0.1, 0.28, 6.0, retraction=0.01),
          _fact(1e-2, "2", 0.2, 0.33, 4.5), _fact(2e-2, "2", 0.3, 0.35, 4.0),
          _fact(3e-2, "3", 0.89, 0.9, 30.0, retraction=0.4)]
    vgg = [_fact(None, None, 0.1, 0.2, 1.0, lr=lr, wd=wd, status=st, seed=seed, steps=3000) for lr, wd, st in
           ((0.01, 0.0, "ok"), (0.1, 0.0, "diverged"), (0.01, 1e-4, "ok"), (0.1, 1e-4, "ok")) for seed in (0, 1, 2)]
    ctx = {"ce": ce, "mse_full": [_fact(1e-2, "2", 0.05, 0.3, 1.0)], "mse_subset": [],
           "baselines": [_fact(0.1, "3", 0.9, 0.9, g, direction=d) for d, g in
                         (("gradient", 20.0), ("random", 10.0), ("ascent", 50.0))],
           "finetune": [],
           "finetune_rows": [_ft(1e-3, "1-converged", f, c, 8.0, t) for f, c, t in
                             ((0.5, "yes", 7.5), (0.1, "yes", 7.9), (10, "no", 20.0))]
           + [_ft(1e-2, "2", f, "no", 18.0, t) for f, t in ((0.1, 9.0), (0.01, 8.0), (2, 30.0))],
           "interpolation": [_interp("not converged", 1e-4, 3e-4, "yes"), _interp("converged", 2e-3, 3e-3, "no")],
           "vgg": vgg,
           # MSE fine-tunes (Fig 21): loss down, GM held or up; the test error dips and rises 3 points in one
           "finetune_mse_rows": [dict(_ft(e, "1-not-converged", 0.1, "yes", 20.0, t), pre_gm=0.1, ft_gm=g,
                                      pre_train_loss=0.06, ft_train_loss=0.05, ft_test_err_start=20.0,
                                      ft_test_err_min=m, ft_test_err_end=t)
                                 for e, g, t, m in ((3e-2, 0.1, 19.0, 19.0), (0.1, 0.12, 21.0, 18.0))],
           "schedule": {"pretrain": [_fact(1e-2, "2", 0.1, 0.2, 2.0, steps=400)],
                        "tuned": [_fact(1e-2, "2", e, t, 1.0, transition_length=n, elr_final=1e-4, init_from="p")
                                  for n, e, t in ((1, 0.03, 0.07), (20, 0.01, 0.05), (100, 0.0, 0.04))],
                        "scratch": [_fact(1e-4, "1-not-converged", 0.2, 0.25, 5.0, steps=400)]}}
    got = {k: f(ctx, {})[0] for k, f in m.TRENDS.items()}
    assert got == {"three_phases": compare.REPRODUCES, "phase3_chance": compare.REPRODUCES,
                   "phase1_test_improves": compare.REPRODUCES, "best_at_largest_phase1": compare.REPRODUCES,
                   "phase2_curvature_falls": compare.REPRODUCES, "phase1_bottleneck": compare.REPRODUCES,
                   "retraction_small": compare.REPRODUCES,
                   "mse_no_zero_error": compare.REPRODUCES, "random_walk_bounds": compare.REPRODUCES,
                   "finetune_lower_stays": compare.REPRODUCES, "schedule_slower_better": compare.REPRODUCES,
                   "mse_finetune_gm_holds": compare.REPRODUCES, "mse_finetune_overfits": compare.REPRODUCES,
                   "vgg_wd_widens": compare.REPRODUCES}
    tables = {k: f(ctx) for k, f in m.TABLES.items()}
    # Fig 12: 1e-2 lowered to 1e-3 beats from-scratch 1e-3 (9 % vs 20 %); 1e-4 has a from-scratch run too
    assert tables["finetune"][1].values["value"] == pytest.approx(1e-3)
    assert tables["ce_subphases"][1].values["value"] == 3e-4
    vals = {o.key[0]: o.values["value"] for o in tables["ce_phases"]}
    assert vals == {"largest phase-1 elr": 1e-3, "smallest phase-2 elr": 3e-3, "smallest phase-3 elr": 3e-2,
                    "phase-3 train error": 0.89}
    assert tables["retraction"][0].values["value"] == 0.01
    # turned against the claims
    bad = copy.deepcopy(ctx)
    bad["ce"][3]["phase"], bad["ce"][0]["phase"] = "1-converged", "2"      # a phase-2 run below a phase-1 one
    bad["ce"][6]["train_error"] = 0.5                                      # phase 3 far below chance
    bad["ce"][2]["test_error"] = 0.5                                       # the largest phase-1 elr is not the best
    bad["ce"][3]["retraction_max"] = 0.05
    bad["mse_full"][0]["train_error"] = 0.0
    bad["baselines"][1]["gm"] = 25.0
    for r in bad["vgg"][3:6]:
        r["status"] = "ok"                                                 # wd = 0 trains at lr 0.1 too
    bad["finetune_rows"][1]["connected"] = "no"                            # a lowered fine-tune leaves its region
    bad["ce"][1]["bottleneck_loss"] = 5.0                                  # the peak above the seed's loss range
    bad["schedule"]["tuned"][2]["test_error"] = 0.09                       # the slowest decrease is the worst
    bad["finetune_mse_rows"][0]["ft_gm"] = 0.05                            # GM falls, as with CE
    bad["finetune_mse_rows"][1]["ft_test_err_end"] = 19.0                  # no rise after the dip
    got = {k: f(bad, {})[0] for k, f in m.TRENDS.items()}
    assert got["three_phases"] == got["phase3_chance"] == got["best_at_largest_phase1"] == compare.FAILS
    assert got["retraction_small"] == got["mse_no_zero_error"] == got["random_walk_bounds"] == compare.FAILS
    assert got["vgg_wd_widens"] == got["finetune_lower_stays"] == got["phase1_bottleneck"] == compare.FAILS
    assert got["schedule_slower_better"] == got["mse_finetune_gm_holds"] == got["mse_finetune_overfits"] \
        == compare.FAILS
    # the schedule table: pretrain, the fine-tunes by transition length, the from-scratch run; errors in %
    rows = m.EXTRA["schedule"](ctx)
    assert [(r["run"][:9], r["transition length"], r["final elr"], r["test error %"]) for r in rows] == [
        ("pretrain ", "", 1e-2, 20.0), ("scheduled", 1, 1e-4, 7.0), ("scheduled", 20, 1e-4, 5.0),
        ("scheduled", 100, 1e-4, 4.0), ("from scra", "", 1e-4, 25.0)]
    # a pretrain that is not phase 2, or two fine-tunes, decide nothing
    sch = copy.deepcopy(ctx)
    sch["schedule"]["pretrain"][0]["phase"] = "1-not-converged"
    assert m.TRENDS["schedule_slower_better"](sch, {})[0] == compare.NOT_MEASURED
    sch = copy.deepcopy(ctx)
    sch["schedule"]["tuned"] = sch["schedule"]["tuned"][:2]
    assert m.TRENDS["schedule_slower_better"](sch, {})[0] == compare.NOT_MEASURED
    empty = {k: [] for k in ctx}
    assert {f(empty, {})[0] for f in m.TRENDS.values()} == {compare.NOT_MEASURED}
    # too few runs to decide: two phase-1 runs (a rank correlation of 2 is ±1), VGG on one seed or short runs
    few = copy.deepcopy(ctx)
    few["ce"] = [r for r in few["ce"] if r["elr"] != 1e-4]
    few["vgg"] = [r for r in few["vgg"] if r["seed"] == 0]
    few["finetune_mse_rows"] = few["finetune_mse_rows"][:1]                # one MSE fine-tune decides nothing
    assert m.TRENDS["mse_finetune_gm_holds"](few, {})[0] == m.TRENDS["mse_finetune_overfits"](few, {})[0] \
        == compare.NOT_MEASURED
    assert m.TRENDS["phase1_test_improves"](few, {})[0] == compare.NOT_MEASURED
    assert m.TRENDS["vgg_wd_widens"](few, {})[0] == compare.NOT_MEASURED
    # the phase-2 level is the tail mean of GM where the runs have one (one final point of a chaos is noise)
    tail = copy.deepcopy(ctx)
    for r, g in zip(tail["ce"][3:6], (1.0, 2.0, 3.0)):
        r["gm_tail"] = g
    assert m.TRENDS["phase2_curvature_falls"](tail, {})[0] == compare.FAILS
    # the bottleneck needs two phase-1 runs that entered the loss range, with enough GM points
    one = copy.deepcopy(ctx)
    one["ce"][0]["train_loss"], one["ce"][1]["bottleneck_ratio"] = 3.0, None
    assert m.TRENDS["phase1_bottleneck"](one, {})[0] == compare.NOT_MEASURED
    short = copy.deepcopy(ctx)
    for r in short["vgg"]:
        r["steps"] = 300
    assert m.TRENDS["vgg_wd_widens"](short, {})[0] == compare.NOT_MEASURED


def test_sphere_gm_bump_finds_a_local_peak_after_the_initial_point():
    m = adapter("sphere")
    loss = [10.0, 1.2, 0.6, 0.58, 0.24, 0.17, 0.15]
    # the initial point (fixed last layer: large GM) is skipped; 2.7 -> 4.9 at L = 0.58, then GM falls again
    ratio, at, n = m.gm_bump([37.0, 2.7, 3.2, 4.9, 2.1, 1.7, 1.8], loss)
    assert (round(ratio, 2), at, n) == (1.81, 0.58, 6)
    assert m.gm_bump([37.0, 5.2, 3.5, 3.2, 3.1, 2.8, 2.2], loss)[:2] == (1.0, None)   # falls all along
    assert m.gm_bump([37.0, 2.0, 1.9, 1.8, 1.7, 1.6, 4.0], loss)[:2] == (1.0, None)   # a rise at the end: no peak
    assert m.gm_bump([37.0, 2.0, 3.0], loss[:3]) == (None, None, 2)                   # too few points


def test_sphere_mse_table_both_normalizations_and_no_subphase_from_the_count_rule():
    m = adapter("sphere")
    ce = [_fact(1e-3, "1-converged", 0.0, 0.1, 1.0), _fact(2e-2, "3", 0.9, 0.9, 30.0)]
    mean = [_fact(e, p, 0.2, 0.3, 1.0, per_class_mean=True) for e, p in
            ((1e-2, "1-not-converged"), (0.1, "1-not-converged"), (0.3, "2"), (0.5, "3"))]
    summed = [_fact(e, p, 0.2, 0.3, 1.0, per_class_mean=False) for e, p in
              ((1e-3, "1-not-converged"), (3e-2, "2"), (5e-2, "3"))]
    rows = {o.key[0]: o for o in m.mse_phases({"ce": ce, "mse_full": mean, "mse_sum": summed})}
    assert rows["phase-3 elr (mean over classes)"].values["value"] == 0.5
    assert rows["phase-3 elr (sum over classes)"].values["value"] == 5e-2
    assert rows["MSE / CE smallest phase-3 elr (mean over classes)"].values["value"] == pytest.approx(25)
    assert rows["smallest phase-2 elr (sum over classes)"].seed_key == ("smallest phase-2 elr",)
    # no MSE run reaches zero errors: every phase-1 run is "not converged" by the count rule, so no value
    sub = rows["largest not-converged phase-1 elr (mean over classes)"]
    assert sub.values["value"] is None and "not measured" in sub.note


# ------------------------------------------------------------------------------------------------ --from DIR
def _connect_record(path, prior, width, label, value, pair):
    path.mkdir(parents=True)
    (path / "connect.json").write_text(json.dumps({
        "status": "ok", "prior": prior, "width": width, "method": {"label": label},
        "a": {"seed": pair}, "b": {"seed": 10 + pair}, "summary": {"test": {"min_acc": 100.0 - value}}}))


def test_paper_connect_from_controlled_records(tmp_path, capsys):
    # no prior: everything as the seed claims; dropout: OT worse than linear at width 10, and dropout worse than
    # no prior everywhere for the naive paths
    values = {"none": {"linear": (40.0, 10.0), "arc": (30.0, 8.0), "linear+WA": (20.0, 5.0),
                       "linear, ot_exact": (15.0, 3.0), "linear, weight": (18.0, 4.0)},
              "dropout": {"linear": (45.0, 12.0), "arc": (35.0, 9.0), "linear, ot_exact": (50.0, 3.0)}}
    for prior, methods in values.items():
        for label, per_width in methods.items():
            for width, v in zip((10, 100), per_width):
                for pair in (0, 1):  # two pairs: mean v, std 1
                    _connect_record(tmp_path / "c" / prior / label.replace(", ", "_") / f"{width}-{pair}", prior,
                                    width, label, v + (1 if pair else -1), pair)
    stdout = cli(capsys, "paper", "connect", "--from", str(tmp_path / "c"), "--out", str(tmp_path / "p"))
    assert "Max accuracy loss without prior" in stdout and "45.74" in stdout and "does not reproduce" in stdout
    with open(tmp_path / "p" / "no_prior.csv") as f:
        rows = list(csv.DictReader(f))
    by = {(r["method"], r["ours row"]): r for r in rows}
    assert by[("Linear", "")]["10 (seed)"] == "45.74" and by[("Linear", "")]["10 (ours)"] == "40"
    assert by[("Linear+OT", "Linear+OT (ot_exact)")]["100 (ours)"] == "3"
    assert by[("Linear+WM", "")]["10 (seed)"] == "—" and by[("Linear+WM", "")]["10 (ours)"] == "18"  # our extra
    assert by[("Arc+OT", "")]["10 (ours)"] == "—"
    assert verdicts(tmp_path / "p") == {
        "advanced_beat_naive": compare.FAILS, "ot_beats_linear_small_width": compare.FAILS,
        "wider_more_connected": compare.REPRODUCES, "prior_more_connected": compare.FAILS,
        # no per-point accuracies in these records, no connect_prior folder
        "advanced_lower_mean_error": compare.NOT_MEASURED, "stronger_prior_smoother": compare.NOT_MEASURED}
    assert (tmp_path / "p" / "no_prior.png").stat().st_size and (tmp_path / "p" / "width_plot.png").stat().st_size
    assert "## Claimed trends" in (tmp_path / "p" / "index.md").read_text()
    # the study's own tables in paper.json: `ours mean ± std [seed]` per prior, and connect-table's checks
    extra = json.loads((tmp_path / "p" / "paper.json").read_text())["extra"]
    lin = {r["method"]: r for r in extra["max_err_none"]}["Linear"]
    assert lin["10"] == "40.00 ± 1.41 [45.74]" and lin["100"] == "10.00 ± 1.41 [10.83]"
    assert {r["method"]: r for r in extra["max_err_dropout"]}["Linear + OT"]["10"] == "50.00 ± 1.41 [15.03]"
    assert "max_err_weight_decay" not in extra  # no records of that prior: no table
    assert {"none: WA/OT below Linear and Arc in 8/8 comparisons [seed: 8/8] (reproduces)",
            "dropout below no prior (max error) in 0/6 method x width cells [seed: 4/6] (does not reproduce)"} <= {
        c["check"] for c in extra["checks"]}


def _sphere_run(d, elr, kind, test_error, gm, retraction):
    """A run directory whose metrics follow a designed curve: 'converged' (loss falls, error reaches 0), 'eq'
    (stationary loss and error 0.2, cosine 0.95), 'chaos' (error 0.9, cosine 0)."""
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump({
        "seed": 0, "elr": elr, "init_from": None, "data": {"classes": None}, "optimizer": {"direction": "gradient"},
        "regularizer": {}}))
    rows = []
    for i, step in enumerate(range(0, 101, 10)):
        if kind == "converged":
            loss, err, cos = 2.0 / (1 + step), max(0.0, 0.5 - 0.1 * i), 0.99
        elif kind == "eq":
            loss, err, cos = 0.8 + 0.01 * (i % 2), 0.2, 0.95
        else:
            loss, err, cos = 2.3 + 0.01 * (i % 2), 0.9, 0.01
        rows.append(f"{step},0,{elr},{loss},{err},{cos},{retraction}")
    (d / "metrics.csv").write_text("step,epoch,elr,train_loss,train_error,cos_prev,retraction_error\n"
                                   + "\n".join(rows) + "\n")
    final_err = {"converged": 0.0, "eq": 0.2, "chaos": 0.9}[kind]
    (d / "summary.json").write_text(json.dumps({
        "status": "ok", "elr": elr, "steps": 100, "final": {"train_loss": 0.1, "train_error": final_err,
                                                            "test_error": test_error, "gm": gm}}))


def test_paper_sphere_from_controlled_runs(tmp_path, capsys):
    sweep = tmp_path / "sphere_elr_ce"
    designed = [(1e-3, "converged", 0.3, 2.0, 0.001), (3e-3, "converged", 0.2, 1.0, 0.002),
                (1e-2, "eq", 0.35, 5.0, 0.01), (3e-2, "eq", 0.4, 4.0, 0.015), (1e-1, "chaos", 0.9, 40.0, 0.5)]
    for i, (elr, kind, te, gm, r) in enumerate(designed):
        _sphere_run(sweep / str(i), elr, kind, te, gm, r)
    stdout = cli(capsys, "paper", "sphere", "--from", str(sweep))  # a recipe's own sweep directory
    out = sweep / "paper" / "sphere"
    v = verdicts(out)
    assert v["three_phases"] == v["phase3_chance"] == compare.REPRODUCES
    assert v["best_at_largest_phase1"] == v["retraction_small"] == compare.REPRODUCES
    assert v["mse_no_zero_error"] == v["random_walk_bounds"] == v["vgg_wd_widens"] == compare.NOT_MEASURED
    # two phase-1 and two phase-2 runs: a rank correlation over 2 runs decides nothing
    assert v["phase1_test_improves"] == v["phase2_curvature_falls"] == compare.NOT_MEASURED
    with open(out / "ce_phases.csv") as f:
        rows = {r["quantity"]: r for r in csv.DictReader(f)}
    assert rows["largest phase-1 elr"]["value (seed)"] == "0.0007"
    assert rows["largest phase-1 elr"]["value (ours)"] == "0.003"
    assert rows["smallest phase-2 elr"]["value (ours)"] == "0.01"
    assert rows["smallest phase-3 elr"]["value (ours)"] == "0.1"
    assert math.isclose(float(rows["phase-3 train error"]["value (ours)"]), 0.9)
    assert "smallest phase-3 elr" in stdout and "reproduces" in stdout
    assert (out / "phases_vs_elr.png").stat().st_size


def test_paper_refuses_bad_input_in_one_line(tmp_path, capsys):
    for args, msg in ((["connect", "--from", str(tmp_path / "missing")], "no such directory"),
                      (["optim", "--recipes", "nope", "--out", str(tmp_path / "o")], "not a recipe of optim")):
        with pytest.raises(SystemExit) as e:
            main(["paper", *args])
        err = capsys.readouterr().err
        assert e.value.code != 0 and msg in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------ recipes
def test_recipes_run_from_the_repository_with_out_set_and_a_failure_is_one_line(tmp_path, monkeypatch):
    from lossland.commands import paper as command
    from lossland.studies.connect import paper as connect

    monkeypatch.setattr(connect, "RECIPES", [
        Recipe("first", ("bash", "-c", 'test -f train.py && mkdir -p "$OUT" && echo "$SCALE" > "$OUT/scale"')),
        Recipe("second", ("bash", "-c", "echo broken; exit 3"))])
    monkeypatch.setenv("SCALE", "tiny")
    assert command.run_recipes("connect", tmp_path, only=["first"], echo=lambda s: None) == ["first"]
    assert (tmp_path / "first" / "scale").read_text() == "tiny\n"   # ran from the repository, OUT and SCALE set
    with pytest.raises(LosslandError, match=r"recipe second failed \(exit 3\); see .*logs/second.log"):
        command.run_recipes("connect", tmp_path, echo=lambda s: None)
    assert (tmp_path / "logs" / "second.log").read_text() == "broken\n"


def test_jobs_run_recipes_at_once_with_one_thread_each_and_a_failure_starts_no_more(tmp_path, monkeypatch):
    from lossland.commands import paper as command
    from lossland.studies.connect import paper as connect

    # each of a and b waits (up to 20 s) for the other's mark: they finish only when both ran at the same time
    meet = f'mkdir -p "$OUT" && echo "$OMP_NUM_THREADS" > "$OUT/threads" && touch "{tmp_path}/$1" && ' \
           f'for i in $(seq 200); do [ -e "{tmp_path}/$2" ] && exit 0; sleep 0.1; done; exit 9'
    monkeypatch.setattr(connect, "RECIPES", [Recipe("a", ("bash", "-c", meet, "-", "a", "b")),
                                             Recipe("b", ("bash", "-c", meet, "-", "b", "a"))])
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert command.run_recipes("connect", tmp_path, echo=lambda s: None, jobs=2) == ["a", "b"]
    assert (tmp_path / "a" / "threads").read_text() == (tmp_path / "b" / "threads").read_text() == "1\n"
    ran = 'mkdir -p "$OUT"; sleep $0; exit $1'  # bad fails at once; next holds the other worker for a second
    monkeypatch.setattr(connect, "RECIPES", [Recipe(n, ("bash", "-c", ran, *a)) for n, a in
                                             (("bad", ("0", "4")), ("next", ("1", "0")), ("later", ("0", "0")))])
    with pytest.raises(LosslandError, match=r"recipe bad failed \(exit 4\)"):
        command.run_recipes("connect", tmp_path, echo=lambda s: None, jobs=2)
    assert not (tmp_path / "later").exists()  # started after the failure was known: not at all
    with pytest.raises(LosslandError, match="--jobs 0: at least 1"):
        command.run_recipes("connect", tmp_path, echo=lambda s: None, jobs=0)


@pytest.mark.slow  # about a minute on a loaded 2-core machine
def test_paper_runs_a_recipe_at_tiny_size(tmp_path):
    """The recipe-running path for real: exp_neuron's quality recipe on 64 sphere points, then its table beside
    the seed's Table 1."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, SETS="spheres:1.01:64", EPOCHS="2", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "lossland.cli", "paper", "exp_neuron", "--recipes",
                          "exp_neuron_quality", "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                         cwd=str(tmp_path), timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert (tmp_path / "logs" / "exp_neuron_quality.log").is_file()
    with open(tmp_path / "paper" / "exp_neuron" / "quality.csv") as f:
        rows = list(csv.DictReader(f))
    ours = [r for r in rows if r["none (ours)"] != "—"]
    assert [(r["dataset"], r["train_size"], r["none (seed)"]) for r in ours] == [("spheres R2=1.01", "64", "—")]
    loss, wrong = ours[0]["none (ours)"].split("\\")
    assert float(loss) >= 0 and 0 <= int(wrong) <= 64
    assert [r["none (seed)"] for r in rows if r["dataset"] == "spheres R2=1.01"][:3] == ["0\\0", "44.3\\7",
                                                                                         "8311.8\\2338"]
    v = verdicts(tmp_path / "paper" / "exp_neuron")
    assert v["quality_mixed"] == compare.NOT_MEASURED   # one row: "mixed" needs two
    assert v["exp_neuron_unstable"] == compare.NOT_MEASURED


def _nas_job(d, prior, alpha, alpha_end, entropy_mean, degenerate, stationary, seed=0, saturated=0):
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
        {"prior": {"name": prior, "alpha": alpha, "alpha_end": alpha_end, "strength": 0.1, "anneal": "linear"},
         "search": {"epochs": 4}}))
    (d / "summary.json").write_text(json.dumps({"app": "nas", "status": "ok", "prior": prior, "seed": seed,
                                                "findings": {
        "final_entropy_mean": entropy_mean, "final_entropy_max": entropy_mean, "log_k": math.log(8),
        "degenerate": degenerate, "stationary_edges": stationary, "saturated_edges": saturated,
        "prior_grad_per_edge_last_quarter": 0.1 * (1 - alpha) * math.sqrt(56), "edges": {"e0": {}, "e1": {}},
        "vertex_prior_grad": 0.1 * (1 - alpha) * math.sqrt(56)}}))
    (d / "metrics.csv").write_text("step,mix/normal/e0/skip\n0,0.5\n")
    (d / "robustness.json").write_text("{}")


def _nas_sweep(d, seeds, strong_entropy=0.01, stationary=(0, 2, 0)):
    for s in seeds:
        for i, (prior, a, a_end, ent, deg, st) in enumerate([("weak", 1.0, None, 2.0, False, stationary[0]),
                                                              ("annealed", 1.0, 1e-30, 0.3, False, stationary[1]),
                                                              ("strong", 1e-30, None, strong_entropy, True,
                                                               stationary[2])]):
            _nas_job(d / f"{3 * s + i}", prior, a, a_end, ent, deg, st, seed=s, saturated=2 if prior == "strong" else 0)


def test_paper_nas_from_controlled_jobs(tmp_path, capsys):
    """The rules of lossland/studies/nas/paper.py: 3 seeds or "not measured"; the strong prior discrete in every
    seed; a stationary (not saturated) edge in a majority of some prior's seeds."""
    _nas_sweep(tmp_path, [0, 1, 2])
    cli(capsys, "paper", "nas", "--from", str(tmp_path), "--out", str(tmp_path / "p"))
    assert verdicts(tmp_path / "p") == {"prior_makes_discrete": compare.REPRODUCES,
                                        "stuck_in_stationary_points": compare.REPRODUCES}
    with open(tmp_path / "p" / "priors.csv") as f:
        rows = {r["prior"]: r for r in csv.DictReader(f)}
    assert rows["strong"]["alpha (seed)"] == rows["strong"]["alpha (ours)"] == "1e-30"
    assert rows["annealed"]["alpha (ours)"] == "(1e-30; 1), changed every epoch (linear in alpha)"
    doc = json.loads((tmp_path / "p" / "paper.json").read_text())
    assert [r["seeds"] for r in doc["extra"]["seeds"]] == [3, 3, 3]
    assert [r["weight λ(1−α)"] for r in doc["extra"]["anneal"]] == [0.0, 0.0333, 0.0667, 0.1]
    _nas_sweep(tmp_path / "x", [0, 1, 2], strong_entropy=2.5, stationary=(0, 0, 0))  # saturated only: not stuck
    _nas_job(tmp_path / "x" / "9", "annealed", 1.0, 1e-30, 0.3, False, 1, seed=3)  # 1 of 4 seeds: no majority
    cli(capsys, "paper", "nas", "--from", str(tmp_path / "x"))
    v = json.loads((tmp_path / "x" / "paper" / "nas" / "paper.json").read_text())["verdicts"]
    assert {r["trend"]: r["verdict"] for r in v} == {"prior_makes_discrete": compare.FAILS,
                                                     "stuck_in_stationary_points": compare.FAILS}
    assert "saturated at a vertex 2 ± 0 of 2 edges" in v[1]["detail"]
    _nas_sweep(tmp_path / "y", [0, 1])
    cli(capsys, "paper", "nas", "--from", str(tmp_path / "y"))
    assert set(verdicts(tmp_path / "y" / "paper" / "nas").values()) == {compare.NOT_MEASURED}  # 2 seeds


def _keskar_run(d, batch_size, seed, train_error, test_error):
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "data": {"batch_size": batch_size}}))
    (d / "summary.json").write_text(json.dumps({"status": "ok", "final": {"train_error": train_error,
                                                                          "test_error": test_error}}))


def test_paper_optim_from_controlled_runs(tmp_path, capsys):
    for i, (bs, seed, tr, te) in enumerate([(32, 0, 0.0, 0.02), (32, 1, 0.002, 0.04), (512, 0, 0.01, 0.06),
                                            (512, 1, 0.01, 0.08)]):
        _keskar_run(tmp_path / str(i), bs, seed, tr, te)
    cli(capsys, "paper", "optim", "--from", str(tmp_path))
    with open(tmp_path / "paper" / "optim" / "keskar.csv") as f:
        (ours,) = [r for r in csv.DictReader(f) if r["ours row"]]
    assert ours["network"] == "F1" and ours["test SB (seed)"] == "98.03 ± 0.07"
    assert ours["test SB (ours)"] == "97.00 ± 1.41" and ours["test LB (ours)"] == "93.00 ± 1.41"
    assert ours["train SB (ours)"] == "99.90 ± 0.14"
    assert verdicts(tmp_path / "paper" / "optim") == {"lb_generalizes_worse": compare.REPRODUCES,
                                            "both_fit_training_set": compare.REPRODUCES}


def _keskar_sweep(d, runs, model=None, keskar=None):
    """A network's sweep of controlled runs (batch size, seed, train error, test error) and its keskar.json."""
    for i, (bs, seed, tr, te) in enumerate(runs):
        _keskar_run(d / f"bs{bs}-s{seed}-{i}", bs, seed, tr, te)
        if model is not None:
            cfg = d / f"bs{bs}-s{seed}-{i}" / ".hydra" / "config.yaml"
            cfg.write_text(yaml.safe_dump({**yaml.safe_load(cfg.read_text()), **model}))
    if keskar is not None:
        (d / "keskar").mkdir()
        (d / "keskar" / "keskar.json").write_text(json.dumps(keskar))


def test_paper_optim_one_row_per_network_and_verdicts_over_all_networks(tmp_path, capsys):
    """F1, F2 and C1 sweeps side by side (the paper layout): one of our rows per network beside Keskar's, the
    keskar_networks table per network, the verdicts over every network; then C1's LB turned better."""
    two = [(32, 0, 0.0, 0.02), (32, 1, 0.0, 0.04), (400, 0, 0.0, 0.06), (400, 1, 0.0, 0.08)]
    mlp = {"model": {"_target_": "lossland.models.MLP", "hidden": [512, 512, 512], "batch_norm": True},
           "data": {"_target_": "lossland.data.Digits", "batch_size": 0}}
    conv = {"model": {"_target_": "lossland.models.ShallowConv", "channels": [32, 32], "hidden": [192, 96]},
            "data": {"_target_": "lossland.data.Digits", "batch_size": 0}}
    sharp = {"eps": [0.001], "runs": [{"run": "x", "regime": g, "batch_size": b, "seed": s, "train_acc": 100.0,
                                       "test_acc": 90.0, "sharpness_eps=0.001": v}
                                      for g, b, s, v in (("SB", 32, 0, 1.0), ("SB", 32, 1, 3.0),
                                                         ("LB", 400, 0, 100.0), ("LB", 400, 1, 300.0))]}
    _keskar_sweep(tmp_path / "keskar_sb_lb", two)
    _keskar_sweep(tmp_path / "keskar_f2", [(12, s, tr, te + 0.1) for _, s, tr, te in two[:2]]
                  + [(144, s, tr, te + 0.1) for _, s, tr, te in two[2:]], mlp, sharp)
    _keskar_sweep(tmp_path / "keskar_c1", [(12, s, tr, te) for _, s, tr, te in two[:2]]
                  + [(144, s, 0.03, te) for _, s, tr, te in two[2:]], conv)
    for d in ("keskar_f2", "keskar_c1"):  # find_runs reads data.batch_size: set it per run
        for run in (tmp_path / d).glob("bs*"):
            cfg = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
            cfg["data"]["batch_size"] = int(run.name[2:].split("-")[0])
            (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    cli(capsys, "paper", "optim", "--from", str(tmp_path))
    out = tmp_path / "paper" / "optim"
    with open(out / "keskar.csv") as f:
        rows = {r["network"]: r for r in csv.DictReader(f)}
    assert rows["F1"]["test SB (ours)"] == "97.00 ± 1.41" and rows["F1"]["test LB (ours)"] == "93.00 ± 1.41"
    assert rows["F2"]["test SB (ours)"] == "87.00 ± 1.41"
    assert rows["F2"]["ours row"] == "ours: MLP 512-512-512 BN, digits"
    assert rows["F2"]["note"] == "SB 12, LB 144; 2+2 runs (sample std)"
    assert rows["C1"]["train LB (ours)"] == "97.00 ± 0.00"
    assert rows["C1"]["ours row"] == "ours: ShallowConv 32-32 / 192-96, digits"
    assert rows["C2"]["test SB (ours)"] == "—"
    paper = json.loads((out / "paper.json").read_text())
    nets = {r["network"]: r for r in paper["extra"]["keskar_networks"]}
    assert set(nets) == {"F1", "F2", "C1"} and nets["F2"]["test gap SB − LB (ours)"] == "4.00"
    assert nets["F2"]["test gap SB − LB (seed)"] == "4.57" and nets["F2"]["LB worse (ours)"] == "yes"
    assert nets["F2"]["sharpness ε=0.001 SB"] == "2 ± 1.41" and nets["F2"]["sharpness ε=0.001 LB"] == "200 ± 141"
    assert nets["C1"]["SB"] == 12 and nets["C1"]["runs SB+LB"] == "2+2"
    assert {r["network"] for r in paper["facts"]["keskar_runs"]} == {"F2"}  # only F2 has a keskar.json here
    v = {r["trend"]: r for r in paper["verdicts"]}
    assert v["lb_generalizes_worse"]["verdict"] == compare.REPRODUCES
    c1 = "C1 (ours: ShallowConv 32-32 / 192-96, digits)"
    assert f"{c1}: test SB 97.00 vs LB 93.00" in v["lb_generalizes_worse"]["detail"]
    assert v["both_fit_training_set"]["verdict"] == compare.FAILS  # C1's LB: 97 % < 98 %
    assert "C1 (ours: ShallowConv 32-32 / 192-96, digits) train LB 97.00" in v["both_fit_training_set"]["detail"]
    assert {p.name for p in out.glob("keskar*_interp.png")} == set()  # no analysis figures in controlled sweeps

    mod = adapter("optim")  # the same rules on C1's LB turned better than its SB: the gap fails over all networks
    ctx = mod.context(tmp_path)
    tables = {"keskar": mod.keskar(ctx)}
    for o in tables["keskar"]:
        if o.seed_key == ("C1",):
            o.values["test LB"] = [98.0, 0.5]
    verdict, detail = mod.lb_generalizes_worse(ctx, tables)
    c1 = "C1 (ours: ShallowConv 32-32 / 192-96, digits)"
    assert verdict == compare.FAILS and f"{c1}: test SB 97.00 vs LB 98.00" in detail


def test_paper_optim_leaves_out_networks_with_one_seed_or_no_full_scale_config(tmp_path, capsys):
    """A network with one run per batch size, or a sweep with NOT_MEASURED.txt (NETWORK=F2 / C1 at SCALE=full),
    does not count in the verdicts and says why; with none left the verdicts are not measured."""
    _keskar_sweep(tmp_path / "keskar_sb_lb", [(32, 0, 0.0, 0.02), (400, 0, 0.0, 0.06)])
    (tmp_path / "keskar_f2").mkdir()
    (tmp_path / "keskar_f2" / "NOT_MEASURED.txt").write_text("keskar_sb_lb: NETWORK=F2 has no full-scale config\n")
    cli(capsys, "paper", "optim", "--from", str(tmp_path))
    v = {r["trend"]: r for r in json.loads((tmp_path / "paper" / "optim" / "paper.json").read_text())["verdicts"]}
    for trend in ("lb_generalizes_worse", "both_fit_training_set"):
        assert v[trend]["verdict"] == compare.NOT_MEASURED
        d = v[trend]["detail"]
        assert "F1: fewer than 2 runs per batch size" in d and "NETWORK=F2 has no full-scale config" in d
        assert "C1: no keskar_c1 sweep" in d


def test_embedded_knobs_reach_the_recipes_and_optional_recipes_run_only_when_named(tmp_path, monkeypatch):
    from lossland.commands import paper as command
    from lossland.studies.connect import paper as connect

    echo = 'mkdir -p "$OUT" && echo "${STEPS:-none}" > "$OUT/steps"'
    monkeypatch.setattr(connect, "RECIPES", [
        Recipe("knobs", ("bash", "-c", echo), (("STEPS", "400"),)),
        Recipe("extra", ("bash", "-c", echo), optional=True)])
    monkeypatch.delenv("SCALE", raising=False)
    monkeypatch.delenv("STEPS", raising=False)
    assert command.run_recipes("connect", tmp_path, echo=lambda s: None) == ["knobs"]   # optional one skipped
    assert (tmp_path / "knobs" / "steps").read_text() == "400\n"
    monkeypatch.setenv("STEPS", "8")                                                    # the environment wins
    assert command.run_recipes("connect", tmp_path, only=["knobs", "extra"], echo=lambda s: None) == ["knobs", "extra"]
    assert (tmp_path / "knobs" / "steps").read_text() == "8\n"
    monkeypatch.delenv("STEPS")
    monkeypatch.setenv("SCALE", "tiny")                                                 # knobs are embedded only
    command.run_recipes("connect", tmp_path, only=["knobs"], echo=lambda s: None)
    assert (tmp_path / "knobs" / "steps").read_text() == "none\n"
