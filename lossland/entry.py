"""The check-then-launch code of every Hydra app (``lossland train``, ``connect``, ``nas``, ``lab``, ``curvature``,
``slice``, ``keskar``; :class:`lossland.commands.base.App`): one helper, :func:`launch`.

Before Hydra starts: the overrides are checked (unknown group option or key: one line naming the valid
ones, exit 2) and a single ``lossland train`` job is validated (:mod:`lossland.schema`). The jobs of a sweep are
checked by lossland's sweeper before the first one trains (:mod:`lossland.sweep.sweeper`: every job validated, a
sweep directory that holds another sweep refused unless ``overwrite=true``, DDP jobs the launcher cannot run
refused). During a sweep a user error in one job becomes that job's
``failed`` record and the others run; at the end the failed jobs are listed and the process exits 1.
A single run that fails exits 2 (a user error) or 1; one interrupted by SIGTERM / SIGINT exits 128 + signal.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import hydra
from omegaconf import DictConfig

from lossland.config import CONFIG_DIR, check_overrides, compose, config_sweep, expand_jobs, output_dir
from lossland.errors import LosslandError
from lossland.sweep.launchers import LAUNCHED, set_job_threads

log = logging.getLogger("lossland")
# conf/hydra/launcher/<name>.yaml share their names with the launcher plugins' schemas on purpose (the
# values are then type-checked); Hydra 1.3 still supports that and warns about it.
warnings.filterwarnings("ignore", message=".*is validated against ConfigStore schema with the same name")


def fail(err: Exception | str, code: int = 2):
    print(f"lossland: error: {err}", file=sys.stderr)
    sys.exit(code)


def failed_in(sweep: Path, lost: dict[str, str] | None = None) -> tuple[list[tuple[str, str]], int]:
    """The failed or interrupted jobs of a sweep whose jobs ran in other processes (joblib, submitit, Ray),
    read from their ``summary.json`` (plain JSON: the launching process need not import the run reader, which
    pulls in torch and Lightning); and the number of jobs found. ``lost``: job directory -> why, for jobs the
    scheduler ended without a result (:mod:`lossland.sweep.submitit`), listed with or without a summary."""
    failed, count, lost = [], 0, dict(lost or {})
    for d in sorted((d for d in sweep.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name)):
        if not (d / "summary.json").exists():
            if str(d) in lost:
                count += 1
                failed.append((str(d), lost.pop(str(d))))
            continue
        count += 1
        try:
            summary = json.loads((d / "summary.json").read_text())
        except (OSError, ValueError) as e:
            failed.append((str(d), f"unreadable summary.json ({e})"))
            continue
        why = lost.pop(str(d), None)
        if summary.get("status") in ("failed", "interrupted", "running"):  # running: its process is gone
            error = str(summary.get("error") or summary["status"].replace("running", "interrupted"))
            failed.append((str(d), f"{error} ({why})" if why else error))
    count += len(lost)  # lost before Hydra made their directory
    failed += sorted(lost.items())
    return failed, count


class _Jobs:
    """Outcomes of the jobs run in this process (the basic launcher runs them all here)."""

    def __init__(self, multirun: bool):
        self.multirun = multirun
        self.failed: list[tuple[str, str]] = []
        self.count = 0

    def run(self, job: Callable, cfg: DictConfig, after_single: Callable | None) -> None:
        """One job: a user error ends a single run (exit 2) and becomes a failed job of a sweep; an interrupted
        run exits 128 + signal."""
        from omegaconf.errors import MissingMandatoryValue

        from lossland.loop import Interrupted  # here: analysis apps start without importing Lightning

        self.count += 1
        set_job_threads(cfg)
        try:
            try:
                result = job(cfg)
            except MissingMandatoryValue as e:  # a ??? key of the app's config that the command line left unset
                raise LosslandError(f"{e.full_key} must be set ({e.full_key}=...)") from None
        except Interrupted as e:
            fail(f"{output_dir(cfg)}: {e} (last.ckpt saved; run the same command again to resume)", 128 + e.signum)
        except LosslandError as e:
            if not self.multirun:
                fail(e)
            log.error("job failed: %s", e)
            self.failed.append((str(output_dir(cfg)), str(e)))
            return
        if isinstance(result, dict) and result.get("status") == "failed":
            self.failed.append((str(output_dir(cfg)), str(result.get("error", "failed"))))
        elif after_single is not None and not self.multirun:
            after_single(result, cfg)


def launch(config_name: str, job: Callable[[DictConfig], object], validate: Callable | None = None,
           argv: list[str] | None = None, after_single: Callable | None = None,
           program: list[str] | None = None) -> None:
    """Check the command line, then run ``job`` as the Hydra app ``conf/<config_name>.yaml``.
    ``validate(cfg, recipe)`` checks every job's config up front; ``after_single(result, cfg)`` runs after a
    single (not multirun) job, e.g. to print what to do next. ``program``: the words that start this app
    (``["…/lossland", "train"]``; default ``sys.argv[0]``, a root script): a job sees ``sys.argv`` = program +
    overrides, so that the processes Lightning starts for the other ranks of a DDP run run the same app."""
    argv = sys.argv[1:] if argv is None else argv
    program = [sys.argv[0]] if program is None else list(program)
    multirun = "-m" in argv or "--multirun" in argv
    try:
        argv = grid_alias(argv)
        _check(config_name, argv, validate, multirun)
    except LosslandError as e:
        fail(e)
    outcome = _Jobs(multirun)

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)
    def main(cfg: DictConfig) -> None:
        sys.argv = [*program, *argv]  # Hydra has read its overrides; a DDP rank re-runs this command line
        outcome.run(job, cfg, after_single)

    sys.argv = [program[0], *argv]  # what Hydra parses: the overrides alone
    main()
    if multirun and outcome.count == 0 and LAUNCHED.get("dir"):  # the jobs ran in other processes
        outcome.failed, outcome.count = failed_in(Path(LAUNCHED["dir"]), LAUNCHED.get("lost"))
    _report_failed(outcome.failed, outcome.count)


def _check(config_name: str, argv: list[str], validate: Callable | None, multirun: bool) -> None:
    """Everything checked before Hydra starts (module docstring). The jobs of a sweep are checked by the
    sweeper (:mod:`lossland.sweep.sweeper`), each composed once per defaults list."""
    if any(a in ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info") for a in argv):
        return
    check_overrides(argv, config_name)
    if validate is None or (multirun and config_name == "train"):  # a train sweep: lossland's sweeper checks
        return
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    jobs = expand_jobs(argv, config_sweep(argv, config_name)[0]) if multirun else [overrides]
    for job in jobs:  # another app's sweep (Hydra's basic sweeper): every job checked before the first runs
        recipe = next((o.split("=", 1)[1] for o in job if o.startswith("experiment=")), None)
        validate(compose(job, config_name), recipe)


def grid_alias(argv: list[str]) -> list[str]:
    """``grid=vectorized`` / ``grid=vmap`` (kept for one release) as what replaced them: ``hydra/launcher=
    vectorized`` (``hydra.launcher.vmap=true``), said on stderr."""
    out = []
    for a in argv:
        value = a.split("=", 1)[1] if a.startswith("grid=") else None
        if value not in ("vectorized", "vmap"):
            out.append(a)
            continue
        if other := next((x for x in argv if x.startswith("hydra/launcher=")), None):
            raise LosslandError(f"{a} is now hydra/launcher=vectorized, a launcher of its own: drop {a} or {other}")
        new = ["hydra/launcher=vectorized", *(["hydra.launcher.vmap=true"] if value == "vmap" else [])]
        print(f"lossland: {a} is replaced by {' '.join(new)} (grid= goes in the next release)", file=sys.stderr)
        out += new
    return out


def _report_failed(failed: list[tuple[str, str]], count: int) -> None:
    if failed:
        print(f"lossland: {len(failed)} of {count} job(s) failed:", file=sys.stderr)
        for where, why in failed:
            print(f"  {where}: {why}", file=sys.stderr)
        sys.exit(1)
