"""The connectivity entry points end to end (run_connect, ``connect.py`` multirun, ``lossland connect A B``) on two
tiny trained runs, and the width-study table on synthetic connect.json files."""

import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from lossland.config import compose
from lossland.errors import LosslandError
from lossland.records import write_json
from lossland.studies.connect.run import compose_connect, instantiate_method, method_record, run_connect
from lossland.studies.connect.study import check_width_trends, width_table, width_table_markdown, write_width_table
from tests.conftest import run_cli

TINY = ["data=digits", "data.batch_size=64", "model=mlp", "model.hidden=[16]", "optimizer=momentum",
        "lr=0.05",
        "trainer.max_steps=40", "metrics.enabled=false", "logger=csv", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two independently trained tiny MLP runs (seeds 0 and 1), with the .hydra/config.yaml Hydra would write,
    and a third run of another width."""
    from lossland.train import run

    root = tmp_path_factory.mktemp("runs")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for name, extra in (("a", ["seed=0"]), ("b", ["seed=1"]), ("wide", ["seed=2", "model.hidden=[24]"])):
            cfg = compose([*TINY, *extra, f"out_dir={root / name}"])
            summary = run(cfg)
            assert summary["status"] == "ok"
            (root / name / ".hydra").mkdir(exist_ok=True)  # run() writes it outside Hydra too
            OmegaConf.save(cfg, root / name / ".hydra" / "config.yaml")
            out[name] = root / name
    finally:
        torch.set_num_threads(n)
    return out


LABELS = {  # (align option, path option) -> connect.json "method", as before the configs became _target_ configs
    ("none", "linear"): ("none", "linear", "linear"),
    ("weight", "arc"): ("weight", "arc", "arc, weight"),
    ("activation", "weight_adjustment"): ("activation", "linear+WA", "linear+WA, activation"),
    ("ot_exact", "weight_adjustment_arc"): ("ot", "arc+WA", "arc+WA, ot_exact"),
    ("ot_sinkhorn", "bezier"): ("ot", "bezier", "bezier, ot_sinkhorn"),
    ("ot_soft", "polychain"): ("ot", "polychain", "polychain, ot_sinkhorn_soft"),
}


@pytest.mark.parametrize("align, path", list(LABELS))
def test_config_root_groups_and_method_labels(align, path):
    """conf/connect.yaml sits beside conf/train.yaml; align=... path=... pick conf/align, conf/path options."""
    from lossland.config import CONFIG_DIR, check_overrides

    overrides = ["a=x", "b=y", f"align={align}", f"path={path}"]
    check_overrides(overrides, "connect", CONFIG_DIR)
    cfg = compose_connect(overrides)
    assert cfg.align._partial_ and cfg.path._partial_
    assert callable(instantiate_method(cfg.align)) and callable(instantiate_method(cfg.path))
    assert tuple(method_record(cfg.align, cfg.path).values()) == LABELS[(align, path)]


def test_config_overrides_reach_the_method():
    cfg = compose_connect(["align=weight", "align.max_iter=3", "path=weight_adjustment",
                           "path.base._target_=lossland.studies.connect.paths.arc", "path.base.label=arc"])
    assert instantiate_method(cfg.align).keywords == {"max_iter": 3}
    assert method_record(cfg.align, cfg.path)["label"] == "arc+WA, weight"
    with pytest.raises(LosslandError, match="unknown config key 'align.bogus'"):
        from lossland.config import CONFIG_DIR, check_overrides

        check_overrides(["align=weight", "align.bogus=1"], "connect", CONFIG_DIR)


def _final(run_dir):
    return json.loads((run_dir / "summary.json").read_text())["final"]


def test_run_connect_endpoints_equal_the_runs_metrics(runs, tmp_path):
    rec = run_connect(compose_connect([f"a={runs['a']}", f"b={runs['b']}", "align=weight", "path=linear",
                                       "num_points=5", f"out_dir={tmp_path}"]))
    on_disk = json.loads((tmp_path / "connect.json").read_text())
    assert (tmp_path / "connect.png").stat().st_size > 1000
    r = on_disk["result"]
    assert len(r["t"]) == 5
    assert on_disk["method"] == {"align": "weight", "path": "linear", "label": "linear, weight"}
    assert on_disk["width"] == 16 and on_disk["prior"] == "none"
    assert (on_disk["a"]["seed"], on_disk["b"]["seed"]) == (0, 1)
    # weight matching permutes B: its function, hence its metrics, are unchanged at the end of the path
    for i, d in ((0, runs["a"]), (-1, runs["b"])):
        fin = _final(d)
        assert r["train_loss"][i] == pytest.approx(fin["train_loss"], rel=1e-4)
        assert r["test_loss"][i] == pytest.approx(fin["test_loss"], rel=1e-4)
        assert r["train_acc"][i] == pytest.approx(100 * (1 - fin["train_error"]), abs=1e-6)
        assert r["test_acc"][i] == pytest.approx(100 * (1 - fin["test_error"]), abs=1e-6)
    assert on_disk["a"]["final"] == _final(runs["a"])
    s = rec["summary"]["test"]
    assert math.isfinite(s["max_acc_loss"]) and s["max_acc_loss"] >= 0


def test_trained_curve_job_leaves_records(runs, tmp_path):
    run_connect(compose_connect([f"a={runs['a']}", f"b={runs['b']}", "path=polychain", "path.steps=6",
                                 "num_points=3", "test_examples=100", f"out_dir={tmp_path}"]))
    assert (tmp_path / "checkpoints" / "curve.ckpt").exists()
    assert "train/batch_loss" in (tmp_path / "metrics.csv").read_text().splitlines()[0]
    rec = json.loads((tmp_path / "connect.json").read_text())
    assert rec["curve"]["steps"] == 6 and rec["method"]["label"] == "polychain"


@pytest.mark.parametrize("which, expected", [("missing", "no such run directory"),
                                             ("wide", "different models"), ("notrun", "not a lossland run")])
def test_bad_run_dirs_are_one_line_errors(runs, tmp_path, which, expected):
    b = {"missing": tmp_path / "nope", "wide": runs["wide"], "notrun": tmp_path}[which]
    with pytest.raises(LosslandError, match=expected):
        run_connect(compose_connect([f"a={runs['a']}", f"b={b}", f"out_dir={tmp_path / 'out'}"]))


def test_connect_py_multirun_and_lossland_connect(runs, tmp_path):
    sweep = tmp_path / "sweep"
    res = run_cli("connect.py", "-m", f"a={runs['a']}", f"b={runs['b']}", "align=none,ot_exact", "path=arc",
                  "num_points=3", f"hydra.sweep.dir={sweep}")
    assert res.returncode == 0, res.stderr[-3000:]
    recs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/connect.json"))]
    assert [r["method"]["label"] for r in recs] == ["arc", "arc, ot_exact"]
    assert all((p.parent / "connect.png").exists() for p in sweep.glob("*/connect.json"))
    fin_a = _final(runs["a"])
    assert all(r["result"]["test_loss"][0] == pytest.approx(fin_a["test_loss"], rel=1e-4) for r in recs)


def test_lossland_connect_command(runs, tmp_path, capsys):
    """``lossland connect A B key=value ...`` is the Hydra app of connect.py, A and B given by position."""
    from lossland.cli import main

    job = tmp_path / "job dir"  # a path the override grammar must quote
    main(["connect", str(runs["a"]), str(runs["b"]), "num_points=5", "align=weight", "path=weight_adjustment",
          f"hydra.run.dir='{job}'"])
    rec = json.loads((job / "connect.json").read_text())
    assert rec["method"]["label"] == "linear+WA, weight" and rec["result"]["t_range"] == [0.0, 2.0]
    assert rec["config"]["a"] == str(runs["a"]) and (job / ".hydra" / "config.yaml").exists()
    assert rec["result"]["test_loss"][-1] == pytest.approx(_final(runs["b"])["test_loss"], rel=1e-4)
    out = capsys.readouterr().out
    assert str(job / "connect.json") in out and "linear+WA, weight: max accuracy loss" in out
    with pytest.raises(SystemExit) as exit_:
        main(["connect", str(runs["a"]), str(tmp_path / "nope"), f"out_dir={tmp_path}",
              f"hydra.run.dir={tmp_path / 'bad'}"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == f"lossland: error: b={tmp_path / 'nope'}: no such run directory"


def _fake(path, prior, width, label, value, seeds=(0, 10)):
    align = label.split(", ")[1] if ", " in label else "none"
    write_json(path / "connect.json", {
        "status": "ok", "prior": prior, "width": width, "a": {"seed": seeds[0]}, "b": {"seed": seeds[1]},
        "method": {"align": align, "path": label.split(", ")[0], "label": label},
        "summary": {"test": {"max_acc_loss": value}, "train": {"max_acc_loss": 0.0}}})


def test_width_table_on_synthetic_records(tmp_path, capsys):
    # directory names carry no information: everything is read from the files
    k = 0
    for prior in ("none", "dropout"):
        for width in (10, 100):
            for seed, jitter in ((0, -1.0), (1, 1.0)):
                for label, base in (("linear", 20.0), ("arc, weight", 2.0)):
                    d = tmp_path / f"job{k}"
                    k += 1
                    _fake(d, prior, width, label, base / (1 + width / 10) + jitter, (seed, 10 + seed))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "connect.json").write_text("{not json")
    rows = width_table(tmp_path)
    assert len(rows) == 2 * 2 * 2 and {r["n"] for r in rows} == {2}
    lin = {(r["prior"], r["width"]): r for r in rows if r["method"] == "linear"}
    assert lin[("none", 10)]["mean"] == pytest.approx(10.0)
    assert lin[("none", 10)]["std"] == pytest.approx(math.sqrt(2))
    assert [r["prior"] for r in rows][:4] == ["none"] * 4  # priors in study order: none before dropout
    md = width_table_markdown(rows)
    assert "| Linear | 10.00 ± 1.41 | 1.82 ± 1.41 |" in md and "### prior: dropout" in md  # the seed's names
    checks = check_width_trends(rows)
    assert any("naive linear falls" in c and c.endswith("ok") for c in checks)
    assert any("aligned < naive linear" in c and "FAILS" in c for c in checks) is False
    result = write_width_table(tmp_path, tmp_path / "out")
    assert {p.rsplit("/", 1)[1] for p in result["files"]} == {"width_table.csv", "width_table.md",
                                                               "width_plot.png", "seed_table.md",
                                                               "peak_normalized_error.csv"}
    header = (tmp_path / "out" / "width_table.csv").read_text().splitlines()[0]
    assert header == "prior,method,width,n,mean,std,values"
    from lossland.cli import main

    main(["connect-table", str(tmp_path), "--out", str(tmp_path / "cli")])
    assert "| Arc + WM |" in capsys.readouterr().out and (tmp_path / "cli" / "width_plot.png").exists()
    with pytest.raises(LosslandError, match="no connect.json"):
        write_width_table(tmp_path / "out")
