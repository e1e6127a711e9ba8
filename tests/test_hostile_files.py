"""Files from someone else never run code (docs/reliability.md#files-from-someone-else).

Every entry point that opens something received is fed a crafted file: a pickle whose ``__reduce__`` would
create a marker file, a run config whose ``_target_`` would write one, a summary with ``../`` in a name, records
with terminal escape codes and rich markup. Each command refuses in one line (or shows the value inert) and the
marker is never created. The commands are driven through their real command lines at tiny sizes."""

import json
import os
import pathlib
import pickle
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lossland.build import check_received_config, shipped_targets, target_allowed
from lossland.errors import LosslandError
from lossland.runs import Run, load_checkpoint
from tests.conftest import ROOT, run_cli

TINY = ["data=digits", "data.batch_size=32", "model=mlp", "model.hidden=[8]", "optimizer=sgd", "lr=0.1",
        "trainer.max_steps=8", "metrics.every_n_steps=4", "metrics.eval_batches=2", "metrics.test_examples=100",
        "checkpoint.every_n_steps=4", "logger=csv", "trainer.enable_progress_bar=false"]
NAS_SMOKE = ["logger=csv", "data.train_size=96", "data.val_size=64", "data.test_size=64", "search.epochs=2",
             "search.batch_size=32", "search.log_every=1", "nas.channels=4", "discrete.epochs=1",
             "robustness.draws=2", "robustness.weights_sigmas=[0,0.1]", "robustness.inputs_sigmas=[0,1]"]


class Payload:
    """Unpickled, it writes ``path``: the stand-in for any code a file could run."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.write_text, (pathlib.Path(self.path), "code ran")


def one_error(res) -> str:
    """The command failed with exactly one ``lossland: error:`` line and no traceback; that line."""
    assert res.returncode == 2, (res.returncode, res.stderr[-3000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("lossland: error:")]
    assert len(err) == 1, res.stderr[-3000:]
    return err[0]


def cli_error(argv, capsys) -> str:
    """``lossland <argv>`` in this process (the same code as the command line): exit 2, one error line."""
    from lossland.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("lossland: error:")]
    assert e.value.code == 2 and len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


def train_error(*overrides, out) -> str:
    """What ``train.py`` would print for these overrides: the job's one-line user error."""
    from lossland.config import compose
    from lossland.train import run

    with pytest.raises(LosslandError) as e:
        run(compose([*overrides, f"out_dir={out}"]))
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.fixture(scope="module")
def victim(tmp_path_factory):
    """A real finished run (checkpoints at steps 0, 4, 8 and last.ckpt)."""
    d = tmp_path_factory.mktemp("hostile") / "victim"
    res = run_cli("train.py", *TINY, f"hydra.run.dir={d}")
    assert res.returncode == 0, res.stderr[-3000:]
    return d


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "marker"
    yield m
    assert not m.exists(), "a received file ran code"


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def poison_checkpoint(path: Path, marker: Path) -> None:
    """The real checkpoint with one more entry that runs code when unpickled."""
    ckpt = torch.load(path, weights_only=True)
    ckpt["extra"] = Payload(marker)
    torch.save(ckpt, path)


def poison_config(run_dir: Path, marker: Path) -> None:
    """The run's config with a data node that, instantiated, writes ``marker`` (Hydra blocks os.system only)."""
    path = run_dir / ".hydra" / "config.yaml"
    cfg = OmegaConf.load(path)
    cfg.data = {"_target_": "pathlib.Path.write_text", "self": {"_target_": "pathlib.Path", "_args_": [str(marker)]},
                "data": "code ran"}
    OmegaConf.save(cfg, path)


# ------------------------------------------------------------------------------------ checkpoints
def test_lossland_curvature_refuses_a_checkpoint_that_would_run_code(victim, tmp_path, marker):
    d = copy_run(victim, tmp_path / "run")
    for ckpt in (d / "checkpoints").glob("*.ckpt"):
        poison_checkpoint(ckpt, marker)
    line = one_error(run_cli("-m", "lossland.cli", "curvature", str(d)))
    assert "could run code when loaded" in line and "python -m lossland.runs convert" in line


def test_lossland_slice_refuses_a_checkpoint_that_would_run_code(victim, tmp_path, marker, capsys):
    d = copy_run(victim, tmp_path / "run")
    poison_checkpoint(d / "checkpoints" / "last.ckpt", marker)
    line = cli_error(["slice", d, "points=3", "examples=32", f"out={tmp_path}"], capsys)
    assert "could run code when loaded" in line
    other = copy_run(victim, tmp_path / "other")  # the run `to=` names is read the same way
    poison_checkpoint(other / "checkpoints" / "last.ckpt", marker)
    assert "could run code" in cli_error(["slice", victim, f"to={other}", "points=3", "examples=32",
                                          f"out={tmp_path}"], capsys)


def test_connect_py_refuses_a_checkpoint_that_would_run_code(victim, tmp_path, marker):
    a = copy_run(victim, tmp_path / "a")
    poison_checkpoint(a / "checkpoints" / "last.ckpt", marker)
    line = one_error(run_cli("connect.py", f"a={a}", f"b={victim}", "num_points=3", f"out_dir={tmp_path / 'c'}"))
    assert line.startswith(f"lossland: error: a={a}") and "could run code" in line


def test_lossland_connect_refuses_a_checkpoint_that_would_run_code(victim, tmp_path, marker, capsys):
    b = copy_run(victim, tmp_path / "b")
    poison_checkpoint(b / "checkpoints" / "last.ckpt", marker)
    line = cli_error(["connect", victim, b, "num_points=3", f"out_dir={tmp_path / 'c'}"], capsys)
    assert line.startswith(f"lossland: error: b={b}") and "could run code" in line


def test_init_from_refuses_a_checkpoint_that_would_run_code(victim, tmp_path, marker):
    src = copy_run(victim, tmp_path / "src")
    poison_checkpoint(src / "checkpoints" / "last.ckpt", marker)
    assert "could run code when loaded" in train_error(*TINY, f"init_from={src}", out=tmp_path / "new")


def test_rerunning_in_a_received_run_directory_never_unpickles_code(victim, tmp_path, marker, caplog):
    """The resume path reads every checkpoint to find the newest: each one that needs more than the safe loader
    is skipped with a warning naming it, and the run starts again."""
    from lossland.config import compose
    from lossland.train import run

    d = copy_run(victim, tmp_path / "run")
    summary = json.loads((d / "summary.json").read_text())
    (d / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    for ckpt in (d / "checkpoints").glob("*.ckpt"):
        poison_checkpoint(ckpt, marker)
    cfg = compose([*TINY, f"out_dir={d}"])
    assert OmegaConf.to_container(cfg, resolve=True)["model"] == OmegaConf.to_container(
        Run(victim).config, resolve=True)["model"]
    with caplog.at_level("WARNING", logger="lossland"):
        assert run(cfg)["status"] == "ok"
    refused = [r.getMessage() for r in caplog.records if "could run code when loaded" in r.getMessage()]
    assert len(refused) == 4, caplog.text  # step=0, 4, 8 and last.ckpt, one line each


def test_lossland_own_checkpoints_load_with_the_safe_loader(victim, tmp_path, make_cfg):
    """Sequential checkpoints (SGD here; sphere SGD with its random-walk generator, curvature, gradient norms and
    the zero-error-step callback in the run below), init.pt: all in types torch's safe loader reads."""
    from lossland.train import run

    cfg = make_cfg("data=mnist5k", "model=convnet_si", "model.width=0.0625", "optimizer=sphere_sgd",
                   "data.batch_size=32", "trainer.max_steps=4", "metrics.every_n_steps=2", "metrics.eval_batches=1",
                   "metrics.test_examples=32", "metrics.curvature.enabled=true", "metrics.curvature.examples=32",
                   "metrics.curvature.selection=[hessian_trace]", "metrics.curvature.options.hessian_trace.probes=2",
                   "metrics.grad_norms.enabled=true", "metrics.convergence.enabled=true",
                   "checkpoint.every_n_steps=2", out="sphere")
    assert run(cfg)["status"] == "ok"
    for d in (victim, Path(cfg.out_dir)):
        paths = [*Run(d).checkpoints(), d / "checkpoints" / "init.pt"]
        assert len(paths) >= 4
        for p in paths:
            assert isinstance(load_checkpoint(p), dict)
            torch.load(p, weights_only=True)
    meta = torch.load(Path(cfg.out_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert "generator_state" in meta["optimizer_states"][0] and meta["lossland"]["callbacks"]


def test_a_trusted_old_checkpoint_is_refused_with_how_to_convert_it(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"model.w": torch.ones(2)}, "global_step": 3,
                "lossland": {"rng": np.arange(3), "threads": np.int64(2), "loss": np.float64(0.5)}}, path)
    with pytest.raises(LosslandError, match=r"numpy.*python -m lossland.runs convert"):
        load_checkpoint(path)
    from lossland.runs import main

    assert main(["convert", str(path)]) == 0
    ckpt = load_checkpoint(path)
    assert ckpt["lossland"]["threads"] == 2 and type(ckpt["lossland"]["threads"]) is int
    assert torch.equal(ckpt["lossland"]["rng"], torch.arange(3)) and (tmp_path / "last.ckpt.orig").exists()


@pytest.mark.parametrize("content", [b"", b"\x00" * 100, os.urandom(300), None])
def test_a_corrupt_or_foreign_checkpoint_is_one_line(tmp_path, content):
    path = tmp_path / "c.ckpt"
    if content is None:
        torch.save([torch.ones(1)], path)  # loads, but is not a checkpoint
    else:
        path.write_bytes(content)
    with pytest.raises(LosslandError, match="corrupt or unreadable|not a lossland checkpoint"):
        load_checkpoint(path)


# --------------------------------------------------------------------------------------- run configs
@pytest.mark.parametrize("command", ["curvature", "slice", "connect"])
def test_rebuilding_a_run_never_instantiates_a_foreign_target(victim, tmp_path, marker, command, capsys):
    d = copy_run(victim, tmp_path / "run")
    poison_config(d, marker)
    argv = {"curvature": ["curvature", d], "slice": ["slice", d, "points=3", "examples=32"],
            "connect": ["connect", d, victim, "num_points=3", f"out_dir={tmp_path / 'c'}"]}[command]
    line = cli_error(argv, capsys)
    assert "refused data._target_='pathlib.Path.write_text': not a target lossland builds" in line


@pytest.mark.parametrize("node, key", [
    ({"model": {"_target_": "lossland.records.shutil.rmtree", "path": "/"}}, "model._target_"),
    ({"model": {"_target_": "lossland.records.atomic_write"}}, "model._target_"),  # lossland, but not a run piece
    ({"model": {"_target_": "lossland.build.instantiate"}}, "model._target_"),
    ({"model": {"_target_": "lossland.models.MLP", "act": {"_target_": "os.system", "_args_": ["id"]}}},
     "model.act._target_"),
    ({"x": [{"y": {"_target_": "builtins.eval"}}]}, "x[0].y._target_"),
    ({"model": {"_target_": "lossland.models.MLP.__init__.__globals__"}}, "model._target_"),
    ({"model": {"_target_": ["not", "a", "name"]}}, "model._target_"),
    ({"data": {"root": "${oc.env:HOME}"}}, "data.root"),
    ({"data": {"root": "${oc.decode:${oc.env:HOME}}"}}, "data.root"),
])
def test_a_received_config_is_checked_before_anything_in_it_runs(node, key):
    with pytest.raises(LosslandError, match=re.escape(f"refused {key}=")):
        check_received_config(OmegaConf.create(node), "run")


def test_lossland_own_targets_and_plain_interpolations_pass(monkeypatch):
    cfg = OmegaConf.create({"lr": 0.1, "model": {"_target_": "lossland.models.mlp.MLP"},
                            "optimizer": {"_target_": "torch.optim.SGD", "lr": "${lr}"},
                            "logger": {"wandb": {"group": "${lossland.group:}", "name": "${lossland.job_name:}"}},
                            "schedule": {"_target_": "lossland.optim.Constant"}, "when": "${now:%H}",
                            "value": "${oc.select:optimizer.elr,${oc.select:optimizer.lr,null}}"})
    check_received_config(cfg, "run")
    mine = OmegaConf.create({"model": {"_target_": "mypkg.nets.Net"}})
    with pytest.raises(LosslandError, match="LOSSLAND_TRUSTED_TARGETS"):
        check_received_config(mine, "run")
    monkeypatch.setenv("LOSSLAND_TRUSTED_TARGETS", "mypkg")
    check_received_config(mine, "run")


def _conf_targets() -> set[str]:
    found = set()

    def walk(node):
        if isinstance(node, dict):
            found.update({v for k, v in node.items() if k == "_target_" and isinstance(v, str)})
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for path in (ROOT / "conf").rglob("*.yaml"):
        walk(OmegaConf.to_container(OmegaConf.load(path), resolve=False))
    return found


def test_the_allowlist_admits_every_target_of_conf():
    targets = _conf_targets()
    assert len(targets) >= 40 and "torch.optim.SGD" in targets and "lossland.loop.Trainer" in targets
    assert targets <= shipped_targets()
    assert [t for t in sorted(targets) if not target_allowed(t)] == []


def test_the_saved_configs_of_lossland_runs_pass(victim):
    assert Run(victim).config.model._target_ == "lossland.models.MLP"


# -------------------------------------------------------------------------------------------- data
def _crafted_cifar(root: Path, marker: Path) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 255, (6, 3072), dtype=np.uint8), b"labels": list(range(6))}
        if name == "data_batch_1":
            batch[b"batch_label"] = Payload(marker)
        (root / name).write_bytes(pickle.dumps(batch))
    return root


def test_train_py_never_runs_code_from_a_crafted_cifar10_batch(tmp_path, marker):
    root = _crafted_cifar(tmp_path / "cifar", marker)
    line = one_error(run_cli("train.py", *TINY, "data=cifar10", f"data.root={root}", f"hydra.run.dir={tmp_path / 'r'}"))
    assert "cannot read CIFAR-10 batch" in line and "refused pathlib.Path.write_text" in line


def test_nas_py_never_runs_code_from_a_crafted_cifar10_batch(tmp_path, marker):
    from lossland.config import compose
    from lossland.studies.nas.app import run_search

    root = _crafted_cifar(tmp_path / "cifar", marker)
    with pytest.raises(LosslandError, match="cannot read CIFAR-10 batch .*refused pathlib.Path.write_text"):
        run_search(compose([*NAS_SMOKE, "data=cifar10", f"data.root={root}", f"out_dir={tmp_path / 'r'}"], "nas"))


class _Py2Pickler(pickle._Pickler):
    """Pickles bytes as Python 2 ``str`` (SHORT_BINSTRING/BINSTRING), as the CIFAR-10 files were written."""

    def save_bytes(self, obj):
        n = len(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256 else
                   pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes


@pytest.mark.parametrize("protocol", ["py2", 2, 4, 5])
def test_the_cifar10_format_still_reads(tmp_path, protocol):
    from lossland.data.files import CIFAR10

    batch = {b"batch_label": b"training batch 1 of 5", b"labels": [3, 1],
             b"data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072), b"filenames": [b"a.png", b"b.png"]}
    path = tmp_path / "data_batch_1"
    if protocol == "py2":
        import io

        buf = io.BytesIO()
        _Py2Pickler(buf, protocol=2).dump(batch)
        raw = buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
        assert b"numpy.core.multiarray\n_reconstruct" in raw
        path.write_bytes(raw)
    else:
        path.write_bytes(pickle.dumps(batch, protocol=protocol))
    x, y = CIFAR10._read_batch(path)
    assert x.shape == (2, 3, 32, 32) and x.dtype == np.uint8 and x.reshape(2, -1)[1, 5] == (3072 + 5) % 256
    assert y.tolist() == [3, 1]


def test_a_crafted_genotype_file_never_runs_code(tmp_path, marker):
    g = tmp_path / "genotype.yaml"
    g.write_text(f"nodes: 2\nnormal: !!python/object/apply:pathlib.Path.write_text [{marker}]\n")
    tiny = [o for o in TINY if not o.startswith("model")]
    assert "not a genotype YAML" in train_error(*tiny, "model=nas_genotype", f"model.genotype={g}",
                                                out=tmp_path / "r")


def test_no_unsafe_loader_in_lossland():
    """The loaders that run code are used nowhere but in the explicit conversion of a trusted checkpoint."""
    bad = re.compile(r"weights_only\s*=\s*False|pickle\.loads?\(|yaml\.load\(|unsafe_load|yaml\.Loader|"
                     r"allow_pickle\s*=\s*True|yaml\.FullLoader")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "lossland").rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if bad.search(line)]
    assert hits == ["lossland/runs.py:" + str(next(
        i for i, ln in enumerate((ROOT / "lossland/runs.py").read_text().splitlines(), 1)
        if "weights_only=False" in ln))]


# -------------------------------------------------------------------------------------- records
HTML_BAD = "<script>alert(1)</script>"
TERM_BAD = "\x1b[31mred\x1b]0;title\x07 [/] [bold]x"


def _record_sweep(victim: Path, root: Path) -> Path:
    """Two copies of the victim run whose records carry HTML, markup, escape codes and broken mathtext, one with a
    hostile name;
    a third whose summary is random bytes; a fourth whose metrics.csv is."""
    for name, note in (("<img src=x onerror=alert(1)>", HTML_BAD + " $x^$"), ("b", TERM_BAD)):
        d = copy_run(victim, root / name)
        s = json.loads((d / "summary.json").read_text())
        s["overrides"] = [*s["overrides"], f"model.note={note}"]
        s["error"] = TERM_BAD
        s["wandb"] = {"group": "g"}
        (d / "summary.json").write_text(json.dumps(s))
        cfg = OmegaConf.load(d / ".hydra" / "config.yaml")
        cfg.logger = {"wandb": {"project": "stranger", "entity": "evil", "offline": False, "mode": "online",
                                "dir": "${oc.env:HOME}"}}
        OmegaConf.save(cfg, d / ".hydra" / "config.yaml")
    copy_run(victim, root / "corrupt_summary")
    (root / "corrupt_summary" / "summary.json").write_bytes(os.urandom(200))
    copy_run(victim, root / "corrupt_metrics")
    (root / "corrupt_metrics" / "metrics.csv").write_bytes(b"\xff\xfe" + os.urandom(200))
    return root


def test_collect_prints_records_inert_and_lists_unreadable_runs(victim, tmp_path, capsys):
    from lossland.cli import main

    root = _record_sweep(victim, tmp_path / "sweep")
    capsys.readouterr()
    main(["collect", str(root)])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "[/]" in out and "\\x1b[31mred" in out and "[bold]x" in out
    rows = {r["run"]: r for r in _csv(root / "results.csv")}
    assert rows["corrupt_summary"]["status"] == "unreadable" and rows["b"]["status"] == "ok"
    assert "unreadable" in rows["corrupt_summary"]["error"]


def _csv(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_report_escapes_every_value_and_takes_wandb_settings_from_the_user(victim, tmp_path, monkeypatch):
    from lossland.cli import main

    root = _record_sweep(victim, tmp_path / "sweep")
    main(["report", str(root), "--no-wandb"])
    page = (root / "report" / "index.html").read_text()
    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;" in page and "corrupt_metrics" in page and "corrupt_summary" in page

    import wandb

    from lossland.sweep.wandb_report import log_report

    seen = {}

    class Fake:
        id = "r1"

        def log(self, data):
            seen["logged"] = sorted(data)

        def finish(self):
            pass

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    monkeypatch.setattr(wandb, "init", lambda **kw: seen.update(kw) or Fake())
    monkeypatch.setattr(wandb, "Image", lambda path: path)
    assert log_report(root, [root / "report" / "curves.png"]) == "r1"
    assert (seen["project"], seen["entity"], seen["mode"], seen["group"]) == ("lossland", None, "offline", "g")
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    log_report(root, [])
    assert (seen["project"], seen["mode"]) == ("mine", "online")


@pytest.fixture(scope="module")
def nas_job(tmp_path_factory):
    from lossland.config import compose
    from lossland.studies.nas.app import run_search

    d = tmp_path_factory.mktemp("nas") / "job"
    assert run_search(compose([*NAS_SMOKE, f"out_dir={d}"], "nas"))["status"] == "ok"
    return d


def test_nas_checkpoints_load_with_the_safe_loader(nas_job):
    for name in ("supernet.pt", "discrete.pt"):
        assert "state_dict" in load_checkpoint(nas_job / "checkpoints" / name)


def test_nas_report_keeps_file_names_from_records_inside_out(nas_job, tmp_path, capsys):
    from lossland.cli import main

    sweep, out = tmp_path / "sweep", tmp_path / "deep" / "out"
    for name, prior in (("0", "x/../../../outside"), ("1", "$\\frac{"), ("2", "weak")):
        d = copy_run(nas_job, sweep / name)
        s = json.loads((d / "summary.json").read_text())
        (d / "summary.json").write_text(json.dumps({**s, "prior": prior}))
    metrics = sweep / "2" / "metrics.csv"  # an operation name that is broken mathtext, in the figure legends
    header, rest = metrics.read_text().split("\n", 1)
    metrics.write_text(header.replace("/skip", "/$x^$") + "\n" + rest)
    copy_run(nas_job, sweep / "3")
    (sweep / "3" / "summary.json").write_text('{"app": "nas", "status": "ok", "prior": "strong"}')  # no findings
    (out / "dynamics_x").mkdir(parents=True)  # the folder a traversal would go through
    before = set(tmp_path.rglob("*.png"))  # the jobs' own figures
    main(["nas-report", str(sweep), "--out", str(out)])
    err = capsys.readouterr().err
    assert "skipped" in err and f"{sweep / '3'}" in err
    written = {p.name for p in out.glob("*.png")}
    assert {"dynamics_x_.._.._.._outside.png", "dynamics_weak.png"} <= written, written
    assert [p for p in set(tmp_path.rglob("*.png")) - before if out not in p.parents] == []
