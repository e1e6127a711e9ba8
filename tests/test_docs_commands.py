"""Every command written in the docs is correct by test.

The code blocks of ``docs/*.md`` and ``README.md`` are read; each line that runs a Hydra app (``lossland train | nas
| connect | lab | curvature | slice | keskar``, and the aliases ``python train.py`` ...) is run in Hydra's ``--cfg
job`` mode (in this process, through the same ``lossland.entry.launch`` the scripts call; a multirun's first job,
since Hydra prints no multirun config) and must print a config; its overrides pass lossland's up-front check, and
every job of a ``train.py`` multirun (the config's own sweep included) passes validation. A command that runs a
paper experiment (``experiment=paper/...``) is also checked against its settings
(:func:`lossland.paper.settings.check`) with its placement overrides (data.root, launcher, output folders, paths it
reads), so a documented launch line that trains something else than the paper's setting fails here; its other
overrides are visible changes. Every other ``lossland <command>`` line must parse with the CLI's own parser.
Placeholders (``<...>``, ``RUN_A``, ``/shared/...``) stand for paths; ``...`` and optional ``[key=...]`` tokens
(usage lines) are dropped. """

import re
import shlex

import pytest
from omegaconf import OmegaConf

from lossland.cli import COMMANDS as CLI
from lossland.commands import paper as paper_cmd
from lossland.commands.base import App
from lossland.config import check_overrides, compose, config_sweep, expand_jobs
from lossland.paper import settings as S
from tests.conftest import ROOT

HYDRA_LOSSLAND = tuple(n for n, c in CLI.items() if isinstance(c, App))  # lossland commands that are Hydra apps
# where a paper command runs and what it reads: the rest of its overrides change the experiment
PLACEMENT = ("data.root=", "hydra.", "hydra/", "a=", "b=", "init_from=", "sweep=", "run=", "+root=", "+w=", "+pair=")
LINE = re.compile(r"^(?:[A-Z_]+=\S+\s+)*(?:python (train|nas|connect|lab)\.py|lossland (\S+))(?=\s|$)(.*)$")


def doc_commands():
    out = []
    for f in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        for block in re.findall(r"```[a-z]*\n(.*?)```", f.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #")[0].split(" # ")[0].strip()
                m = LINE.match(line)
                if m:  # (where, Hydra app or lossland command, is it a Hydra app, the arguments)
                    name = m.group(1) or m.group(2)
                    hydra = bool(m.group(1)) or name in HYDRA_LOSSLAND
                    out.append((f"{f.name}: {line[:90]}", name, hydra, m.group(3)))
    return out


COMMANDS = doc_commands()


def tokens(rest: str) -> list[str]:
    out = []
    rest = re.sub(r"<[^<>=]*>", "/placeholder", rest)  # <cifar-10-batches-py>, <nas job>/genotype.yaml
    optional = False
    for t in shlex.split(rest):
        if optional or t.startswith("[--"):  # usage syntax: an optional option with its value, [--out DIR]
            optional = not t.endswith("]")
            continue
        if t == "..." or (t.startswith("[") and t.endswith("]") and ("=" in t or "..." in t)):
            continue  # usage syntax: "more arguments", an optional override
        out.append(t)
    return out


def test_the_docs_hold_commands_of_every_app():
    found = {app for _, app, _, _ in COMMANDS}
    assert {"train", "nas", "connect", "lab", "curvature", "slice", "paper"} <= found, found
    assert sum(1 for _, _, _, rest in COMMANDS if "experiment=paper/" in rest) >= 3


@pytest.mark.parametrize("where, name, rest", [(w, n, r) for w, n, hydra, r in COMMANDS if hydra],
                         ids=lambda v: v if isinstance(v, str) and ":" in v else "")
def test_every_hydra_command_in_the_docs_composes(where, name, rest, capsys, monkeypatch):
    from lossland.entry import launch

    argv = CLI[name].overrides(tokens(rest))  # positionals (lossland connect A B) as their keys
    name = CLI[name].config
    multirun = "-m" in argv
    check_overrides(argv, name)
    params = config_sweep(argv, name)[0] if multirun else []
    jobs = expand_jobs(argv, params)
    paper = next((a.split("=", 1)[1] for a in argv if a.startswith(("experiment=paper/", "+experiment=paper/"))),
                 None)
    if name == "train" and not paper:  # every job validates (here, without a GPU: as a CPU job); a paper
        from lossland.schema import validate  # experiment's jobs are validated by its settings check below

        for job in jobs:
            validate(OmegaConf.merge(compose(job), {"trainer": {"accelerator": "cpu"}}))
    first = [a for a in jobs[0] if not a.startswith("hydra.sweeper.params")]
    monkeypatch.setattr("sys.argv", [f"{name}.py"])
    launch(CLI[name].config, lambda cfg: None, argv=[*first, "--cfg", "job"])
    printed = capsys.readouterr().out
    assert OmegaConf.create(printed), f"{where}: printed no config"
    if paper:  # with where it runs (data, launcher, output), the command trains the paper's setting; its other
        # overrides (elr=..., trainer.max_epochs=1 to try one epoch) are deliberate, visible changes
        exp = next(e for e in paper_cmd.all_experiments() if e.config == paper)
        placement = [a for a in argv if a.startswith(PLACEMENT)]
        problems = S.check(exp, placement)
        assert problems == [], f"{where}: " + "\n".join(problems)


@pytest.mark.parametrize("where, command, rest", [(w, n, r) for w, n, hydra, r in COMMANDS if not hydra],
                         ids=lambda v: v if ":" in str(v) else "")
def test_every_lossland_command_in_the_docs_parses(where, command, rest):
    from lossland.cli import parse_args

    args = parse_args([command, *tokens(rest)])
    assert args.command is CLI[command], where
    if command == "paper" and "=" in rest:  # recipe overrides after the options reach the recipes
        assert args.overrides, where


def test_a_wrong_documented_command_would_fail():
    """The check itself: the old docs/scale.md launch line (the embedded recipe with CIFAR-10) is not the paper's."""
    exp = paper_cmd.settings("sphere").experiments["sphere_ce"]
    old = tokens("-m experiment=sphere_ce data=cifar10 data.root=/shared/cifar-10-batches-py trainer=gpu "
                 "trainer.max_epochs=1000 elr=1e-4,2e-4,5e-4,1e-3,2e-3,5e-3,1e-2,2e-2,5e-2,1e-1,2e-1,5e-1")
    exp = S.Experiment(**{**exp.__dict__, "config": "sphere_ce", "overrides": old[2:]})
    assert any("data.train_size = 2000" in p for p in S.check(exp))
