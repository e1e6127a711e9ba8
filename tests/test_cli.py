"""The real command line, as a user (and CI) runs it."""

import csv
import json
import math
import re

import pytest

from tests.conftest import run_cli

SMOKE_ELRS = ("0.0001", "0.001", "0.01")


@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory):
    """The CI smoke sweep: 3 jobs on the basic launcher, W&B offline (the default logger)."""
    d = tmp_path_factory.mktemp("sweep") / "smoke"
    res = run_cli("train.py", "-m", "experiment=smoke", "elr=1e-4,1e-3,1e-2", f"hydra.sweep.dir={d}")
    assert res.returncode == 0, res.stderr[-3000:]
    return d


def test_smoke_sweep_records(smoke_sweep):
    summaries = [json.loads(p.read_text()) for p in sorted(smoke_sweep.glob("*/summary.json"))]
    assert len(summaries) == 3
    assert sorted(str(s["elr"]) for s in summaries) == sorted(str(float(e)) for e in SMOKE_ELRS)
    for s in summaries:
        assert s["status"] == "ok" and s["steps"] == 24
        assert s["final"] and all(v is not None and math.isfinite(v) for v in s["final"].values())


def test_smoke_sweep_collects_to_three_rows(smoke_sweep):
    res = run_cli("-m", "lossland.cli", "collect", str(smoke_sweep))
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(smoke_sweep / "results.csv")))
    assert len(rows) == 3 and {r["status"] for r in rows} == {"ok"}
    assert all("elr=" in r["overrides"] for r in rows)
    assert "final_test_error" in rows[0]


def test_each_job_gets_its_own_wandb_run(smoke_sweep):
    runs = {}
    for job in sorted(smoke_sweep.glob("[0-9]*")):
        summary = json.loads((job / "summary.json").read_text())
        offline = list((job / "wandb").glob("offline-run-*"))
        assert len(offline) == 1, f"{job}: {offline}"
        assert summary["wandb"]["id"] in offline[0].name
        assert summary["wandb"]["group"] == str(smoke_sweep)
        init_config = [ln for ln in (job / "wandb" / "debug.log").read_text().splitlines() if ln.startswith("config: ")]
        assert re.search(rf"'elr': {summary['elr']}\b", init_config[0])
        runs[summary["wandb"]["id"]] = summary["elr"]
    assert len(runs) == 3 and len(set(runs.values())) == 3


@pytest.mark.parametrize("args, expected", [
    (["model=resnet"], "valid model options: cnn_prelu, convnet_si, mlp, nas_genotype, shallow_conv, vgg16_bn"),
    (["elr=0"], "elr=0 is not valid"),
    (["-m", "elr=1e-3,-1e-3"], "must be a positive number"),
    (["model.depth=3"], "unknown config key 'model.depth'"),
    (["data=mnist", "data.root=/nonexistent/mnist"], "is not a directory"),
    (["data=cifar10"], "data.root must be set"),
])
def test_bad_input_gets_one_clear_line(args, expected, tmp_path):
    res = run_cli("train.py", *args, "logger=csv", f"hydra.run.dir={tmp_path}", f"hydra.sweep.dir={tmp_path}")
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("lossland: error:")]
    assert len(err) == 1 and expected in err[0], res.stderr[-2000:]


def test_unreadable_data_file(tmp_path):
    root = tmp_path / "mnist"
    root.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (root / stem).write_bytes(b"\x00\x00\x0d\x03 not idx")
    res = run_cli("train.py", "data=mnist", f"data.root={root}", "logger=csv", f"hydra.run.dir={tmp_path / 'r'}")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "cannot read IDX file" in res.stderr


def test_collect_on_empty_dir(tmp_path):
    res = run_cli("-m", "lossland.cli", "collect", str(tmp_path))
    assert res.returncode != 0 and "no runs under" in res.stderr and "Traceback" not in res.stderr


def test_report_on_the_smoke_sweep(smoke_sweep):
    res = run_cli("-m", "lossland.cli", "report", str(smoke_sweep))
    assert res.returncode == 0, res.stderr[-2000:]
    report = smoke_sweep / "report"
    for name in ("phase_diagram.png", "final_metrics.png", "cosines.png", "index.html"):
        assert (report / name).stat().st_size > 0
    assert "phase_diagram.png" in (report / "index.html").read_text()
    assert list((report / "wandb").glob("offline-run-*")), "figures were not logged to the sweep's W&B group"


def test_every_command_is_listed_and_has_help(capsys):
    """One way in: `lossland --help` lists every command, and `lossland <command> --help` works for each."""
    from hydra.core.hydra_config import HydraConfig

    from lossland.cli import COMMANDS, main
    from lossland.commands.base import App

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    listing = capsys.readouterr().out
    assert exit_.value.code == 0
    expected = {"train", "connect", "nas", "lab", "curvature", "slice", "keskar", "collect", "report", "paper",
                "finetune", "interpolate", "sphere-figures", "exp-neuron", "connect-table", "nas-report", "sync",
                "paper-docs"}
    assert set(COMMANDS) == expected and all(re.search(rf"^    {re.escape(n)}\b", listing, re.M) for n in expected)
    for name, command in COMMANDS.items():
        with pytest.raises(SystemExit) as exit_:
            try:
                main([name, "--help"])
            finally:  # Hydra's help leaves its runtime config set in this process: later runs are not Hydra jobs
                HydraConfig.instance().cfg = None
        out = capsys.readouterr().out
        assert exit_.value.code in (0, None), name
        assert f"lossland {name}" in out and command.help.split()[0] in out, name
        if isinstance(command, App):  # the composed config is shown (conf/nas.yaml: still Hydra's own template)
            assert ("== Options" in out or name == "nas") and "usage: " + command.usage in out, name


def test_root_scripts_are_aliases_of_the_commands():
    """train.py, connect.py, nas.py, lab.py run the same App objects as `lossland <command>`."""
    from lossland.cli import COMMANDS
    from tests.conftest import ROOT

    for script in ("train", "connect", "nas", "lab"):
        text = (ROOT / f"{script}.py").read_text()
        assert f"from lossland.commands.{script} import {script.upper()}" in text
        assert f"{script.upper()}.main()" in text
        module = __import__(f"lossland.commands.{script}", fromlist=[script.upper()])
        assert getattr(module, script.upper()) is COMMANDS[script]
