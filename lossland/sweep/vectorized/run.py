"""Running a vectorized grid: its members are ordinary jobs (:class:`lossland.job.Job`: directory, summary,
config, metrics, checkpoints) with ordinary trainers (:func:`lossland.train.prepare`), trained together by the
one training loop over the stacked step (:class:`~lossland.sweep.vectorized.step.StackStep`), so each member's
records are the ones its sequential run writes.

Members whose directory holds a finished run are skipped; members with an unfinished run resume one by one
through :func:`lossland.train.run` (their own resume path). A SIGTERM / SIGINT saves every member's
``last.ckpt`` and records it ``interrupted``; the same command resumes them (sequentially).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lossland.build import build_data, build_loss, build_model
from lossland.config import compose
from lossland.errors import LosslandError
from lossland.job import Job
from lossland.loop import Loop, start_fabric
from lossland.records import atomic_write
from lossland.schema import validate
from lossland.sweep.launchers import launcher_kind
from lossland.sweep.vectorized.fast import stacked_mlp
from lossland.sweep.vectorized.groups import stack_groups
from lossland.sweep.vectorized.stack import check_model
from lossland.sweep.vectorized.step import StackStep
from lossland.train import prepare
from lossland.train import run as run_one


def launch_grid(jobs: list[list[str]], config_name: str, task_overrides: list[str]) -> list[tuple[str, str]]:
    """Run the jobs of a multirun as one vectorized grid in Hydra's sweep layout
    (``<hydra.sweep.dir>/<job number>/``, each with ``.hydra/config.yaml`` and ``overrides.yaml``).
    Returns the failed jobs as (directory, reason)."""
    hydra_cfg = compose(jobs[0], config_name, return_hydra_config=True).hydra
    if (kind := launcher_kind(hydra_cfg.launcher)) != "basic":
        raise LosslandError(f"grid=vectorized trains the whole grid in this process; it does not run on "
                            f"hydra/launcher={kind} (drop one of the two)")
    sweep = Path(hydra_cfg.sweep.dir)
    sweep.mkdir(parents=True, exist_ok=True)
    atomic_write(sweep / "multirun.yaml", OmegaConf.to_yaml(
        {"hydra": {"mode": "MULTIRUN", "sweep": {"dir": str(sweep)}, "overrides": {"task": task_overrides}},
         "grid": "vectorized"}))
    cfgs = []
    jobs = [[o for o in job if not o.startswith(("hydra.", "hydra/"))] for job in jobs]  # Hydra's task overrides
    for num, overrides in enumerate(jobs):
        cfg = compose(overrides, config_name)
        cfg.out_dir = str(sweep / str(num))
        tracker_group(cfg, sweep)
        atomic_write(sweep / str(num) / ".hydra" / "overrides.yaml", OmegaConf.to_yaml(list(overrides)))
        cfgs.append(cfg)
    print(f"lossland: grid=vectorized: {len(cfgs)} jobs in {sweep}/", flush=True)
    summaries = run_grid(cfgs, jobs)
    return [(str(c.out_dir), str(s.get("error", s["status"]))) for c, s in zip(cfgs, summaries)
            if s["status"] in ("failed", "interrupted")]


def tracker_group(cfg: DictConfig, sweep: Path) -> None:
    """The members of a grid are composed outside Hydra's multirun, where ``${lossland.group:}`` would name each
    member's own directory: a tracker group left at that default names the sweep, as for a sequential sweep."""
    for node in (cfg.get("logger") or {}).values():
        if isinstance(node, DictConfig) and "group" in node and \
                str(OmegaConf.to_container(node)["group"]).replace(" ", "") == "${lossland.group:}":
            node.group = sweep.as_posix()


def run_grid(cfgs: list[DictConfig], overrides: list[list[str]] | None = None) -> list[dict]:
    """Train the jobs ``cfgs`` (each with its own ``out_dir``) as stacked models, one per group of jobs that
    stack (:func:`~lossland.sweep.vectorized.groups.stack_groups`); returns each job's summary. Raises
    :class:`LosslandError` (one line) for options that do not stack, before any job starts."""
    overrides = overrides or [[] for _ in cfgs]
    for cfg in cfgs:
        validate(cfg)
    groups = stack_groups(cfgs)  # and each checked
    if len(groups) > 1:
        print(f"lossland: grid=vectorized: {len(groups)} stacks of {', '.join(str(len(g)) for g in groups)} "
              "jobs (jobs that differ in more than seeds, rates and optimizer values train in separate stacks)",
              flush=True)
    results: list[dict | None] = [None] * len(cfgs)
    for group in groups:
        for i, summary in zip(group, _run_stack([cfgs[i] for i in group], [overrides[i] for i in group])):
            results[i] = summary
    return results


def _run_stack(cfgs: list[DictConfig], overrides: list[list[str]]) -> list[dict]:
    results: list[dict | None] = [None] * len(cfgs)
    jobs = [Job(cfg, Path(cfg.out_dir), overrides=o) for cfg, o in zip(cfgs, overrides)]
    fresh = []
    for i, job in enumerate(jobs):
        action = job.open()
        if action == "skip":
            results[i] = job.summary
        elif action == "resume":  # its own resume path, one member at a time
            results[i] = _sequential(cfgs[i])
        else:
            fresh.append(i)
    if fresh and not worth_stacking(cfgs[fresh[0]]):
        print("lossland: grid=vectorized: this model has no stacked fast path (the vmap path measured no faster "
              "than sequential runs, docs/scale.md): running the jobs one after another; grid=vmap forces it",
              flush=True)
        for i in fresh:
            results[i] = _sequential(cfgs[i])
    elif len(fresh) == 1:
        results[fresh[0]] = _sequential(cfgs[fresh[0]])
    elif fresh:
        for i, summary in zip(fresh, train_together([jobs[i] for i in fresh])):
            results[i] = summary
    return results


def worth_stacking(cfg: DictConfig) -> bool:
    """``grid=vmap``: always; ``grid=vectorized``: when the model has the stacked fast path (MLPs).
    Refuses models that do not stack (dropout) before any member starts."""
    model = build_model(cfg, build_data(cfg), build_loss(cfg))
    check_model(model)
    return str(cfg.get("grid")) == "vmap" or stacked_mlp(model) is not None


def _sequential(cfg: DictConfig) -> dict:
    try:
        return run_one(cfg)
    except LosslandError as e:
        return {"status": "failed", "error": str(e)}


def train_together(jobs: list[Job]) -> list[dict]:
    """Start every member's job, prepare its trainer (:func:`lossland.train.prepare`), train them all in one
    loop (:class:`lossland.loop.Loop` over a :class:`StackStep`), and end each job as its sequential run ends.
    A failure of the grid (or a signal) is recorded in every member still training."""
    trainers = []
    try:
        for job in jobs:
            job.start()
        fabric = start_fabric(**OmegaConf.to_container(jobs[0].cfg.trainer, resolve=True))  # one for all members
        for job in jobs:
            trainer, module, dm = prepare(job.cfg, job.out, job.run_id, None, fabric)
            trainer.setup(module, dm)
            job.attach(trainer)
            trainers.append(trainer)
        Loop(StackStep(trainers)).run()
    except Exception as e:  # noqa: BLE001 - recorded; the sweep lists these members as failed
        for job in jobs:
            if job.trainer is None or (job.trainer.diverged is None and not job.trainer.should_stop):
                job.fail(e)
    return [_end(job, i, len(jobs)) for i, job in enumerate(jobs)]


def _end(job: Job, index: int, size: int) -> dict:
    """End a member's job as its sequential run ends (a failure here is this member's alone)."""
    if job.summary["status"] == "running":
        try:
            job.complete(job.trainer)
        except Exception as e:  # noqa: BLE001 - recorded in this member; the others go on
            job.fail(e)
    job.summary["grid"] = {"vectorized": True, "members": size, "index": index}
    return job.finish()
