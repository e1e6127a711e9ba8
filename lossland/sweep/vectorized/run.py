"""Running a vectorized grid: its members are ordinary jobs (:class:`lossland.job.Job`: directory, summary,
config, metrics, checkpoints) with ordinary trainers (:func:`lossland.train.prepare`), trained together by the
one training loop over the stacked step (:class:`~lossland.sweep.vectorized.step.StackStep`), so each member's
records are the ones its sequential run writes.

Members whose directory holds a finished run are skipped; members with an unfinished run resume one by one
through :func:`lossland.train.run` (their own resume path). A SIGTERM / SIGINT saves every member's
``last.ckpt`` and records it ``interrupted``; the same command resumes them (sequentially).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from lossland.build import build_data, build_loss, build_model
from lossland.config import config_yaml
from lossland.errors import LosslandError
from lossland.job import Job
from lossland.loop import Interrupted, Loop, start_fabric
from lossland.records import atomic_write
from lossland.schema import resolve_checked
from lossland.sweep.vectorized.fast import stacked_mlp
from lossland.sweep.vectorized.groups import stack_groups
from lossland.sweep.vectorized.measure import final_evaluations
from lossland.sweep.vectorized.stack import check_model
from lossland.sweep.vectorized.step import StackStep
from lossland.train import prepare
from lossland.train import run as run_one


def launch_batch(launcher, job_overrides, initial_job_idx: int) -> list:
    """``hydra/launcher=vectorized`` (:class:`hydra_plugins.lossland_launchers.VectorizedLauncher`): run a
    sweeper's batch of jobs as one vectorized grid in Hydra's sweep layout (``<hydra.sweep.dir>/<job number>/``
    with ``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``, as Hydra's launchers write them). Returns
    Hydra's job returns (each job's summary); a grid that does not stack is refused in one line (exit 2)."""
    from hydra.core.utils import JobReturn, JobStatus

    config = launcher.config
    sweep = Path(str(config.hydra.sweep.dir))
    members = [member_config(launcher, list(job), initial_job_idx + i) for i, job in enumerate(job_overrides)]
    cfgs = [cfg for cfg, _ in members]
    overrides = [[o for o in job if not o.startswith(("hydra.", "hydra/"))] for job in job_overrides]  # task's
    try:
        checked = check_grid(cfgs)  # refused: nothing written, no directory that blocks the corrected command
        for (cfg, hydra_cfg), raw in zip(members, checked[2]):
            write_member_meta(config, cfg, hydra_cfg, raw)
        print(f"lossland: hydra/launcher=vectorized: {len(cfgs)} jobs in {sweep}/", flush=True)
        summaries = run_grid(cfgs, overrides, vmap=launcher.vmap, checked=checked)
    except LosslandError as e:
        if initial_job_idx == 0:
            _remove_if_only_hydras(sweep)
        print(f"lossland: error: {e}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as e:  # every member saved last.ckpt and is recorded interrupted
        print(f"lossland: grid {e}: every member's last.ckpt saved; run the same command again to resume",
              file=sys.stderr)
        sys.exit(128 + e.signum)
    returns = []
    for cfg, job, summary in zip(cfgs, overrides, summaries):
        ret = JobReturn(overrides=job, cfg=cfg, working_dir=os.getcwd(), task_name=str(config.hydra.job.name),
                        status=JobStatus.COMPLETED)
        ret.return_value = summary
        returns.append(ret)
    return returns


def _remove_if_only_hydras(sweep: Path) -> None:
    """A refused first batch leaves no sweep directory behind (Hydra's sweeper made it and wrote only
    ``multirun.yaml``), so the corrected command is not taken for another sweep."""
    if sweep.is_dir() and {p.name for p in sweep.iterdir()} <= {"multirun.yaml"}:
        (sweep / "multirun.yaml").unlink(missing_ok=True)
        sweep.rmdir()


def member_config(launcher, overrides: list[str], num: int) -> tuple[DictConfig, DictConfig]:
    """A member's config (composed through the sweeper's config loader: once per defaults list) with its own
    ``out_dir``, and the Hydra config its ``.hydra/hydra.yaml`` records (:func:`write_member_meta`)."""
    from hydra.core.hydra_config import HydraConfig

    config = launcher.config
    cfg = launcher.hydra_context.config_loader.load_sweep_config(config, overrides)
    outer = HydraConfig.instance().cfg
    try:
        with open_dict(cfg):
            cfg.hydra.job.id = f"{cfg.hydra.job.name}_{num}"
            cfg.hydra.job.num = num
        HydraConfig.instance().set_config(cfg)
        out = Path(str(cfg.hydra.sweep.dir)) / str(OmegaConf.select(cfg, "hydra.sweep.subdir"))
        with read_write(cfg.hydra.runtime), open_dict(cfg.hydra.runtime):
            cfg.hydra.runtime.output_dir = str(out.resolve())
        hydra_cfg = OmegaConf.create({"hydra": OmegaConf.to_container(cfg.hydra)})
    finally:
        HydraConfig.instance().cfg = outer
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.out_dir = str(out)
    tracker_group(cfg, out.parent)
    return cfg, hydra_cfg


def write_member_meta(config: DictConfig, cfg: DictConfig, hydra_cfg: DictConfig, raw: dict | None = None) -> None:
    """A member's ``.hydra/`` files (config, hydra, overrides), as Hydra's launchers write them (``raw``: ``cfg``
    as a container, unresolved, if the caller has it)."""
    if config.hydra.output_subdir is not None:
        meta = Path(cfg.out_dir) / str(config.hydra.output_subdir)
        atomic_write(meta / "config.yaml", config_yaml(cfg if raw is None else raw))
        atomic_write(meta / "hydra.yaml", config_yaml(hydra_cfg))
        atomic_write(meta / "overrides.yaml", config_yaml(hydra_cfg.hydra.overrides.task))


def check_grid(cfgs: list[DictConfig], models: bool = True) -> tuple[list[list[int]], list[dict], list[dict]]:
    """Refuse (one line) a grid whose jobs are invalid or do not stack (``models``: nor models that do not),
    before anything is written. Returns the stacks (:func:`~lossland.sweep.vectorized.groups.stack_groups`) and
    each config as a container, resolved and as written (what its ``config.yaml`` holds)."""
    resolved = [resolve_checked(cfg) for cfg in cfgs]
    raw = [OmegaConf.to_container(cfg, enum_to_str=True) for cfg in cfgs]
    groups = stack_groups(cfgs, resolved, raw)
    if models:
        for group in groups:
            worth_stacking(cfgs[group[0]])
    return groups, resolved, raw


def tracker_group(cfg: DictConfig, sweep: Path) -> None:
    """The members of a grid are composed outside Hydra's multirun, where ``${lossland.group:}`` would name each
    member's own directory: a tracker group left at that default names the sweep, as for a sequential sweep."""
    for node in (cfg.get("logger") or {}).values():
        if isinstance(node, DictConfig) and "group" in node and \
                str(OmegaConf.to_container(node)["group"]).replace(" ", "") == "${lossland.group:}":
            node.group = sweep.as_posix()


def run_grid(cfgs: list[DictConfig], overrides: list[list[str]] | None = None, vmap: bool | None = None,
             checked: tuple[list[list[int]], list[dict], list[dict]] | None = None) -> list[dict]:
    """Train the jobs ``cfgs`` (each with its own ``out_dir``) as stacked models, one per group of jobs that
    stack (:func:`~lossland.sweep.vectorized.groups.stack_groups`); returns each job's summary. Raises
    :class:`LosslandError` (one line) for options that do not stack, before any job starts. ``vmap``: stack any
    stackable model (default: the config's ``grid=vmap``, kept for one release). ``checked``: what
    :func:`check_grid` returned for these configs (their groups and containers; not checked again)."""
    overrides = overrides or [[] for _ in cfgs]
    groups, resolved, raw = checked or check_grid(cfgs, models=False)
    if len(groups) > 1:
        print(f"lossland: hydra/launcher=vectorized: {len(groups)} stacks of {', '.join(str(len(g)) for g in groups)} "
              "jobs (jobs that differ in more than seeds, rates and optimizer values train in separate stacks)",
              flush=True)
    results: list[dict | None] = [None] * len(cfgs)
    for group in groups:
        for i, summary in zip(group, _run_stack([cfgs[i] for i in group], [overrides[i] for i in group], vmap,
                                                [resolved[i] for i in group], [raw[i] for i in group])):
            results[i] = summary
    return results


def _run_stack(cfgs: list[DictConfig], overrides: list[list[str]], vmap: bool | None, resolved: list[dict],
               raw: list[dict]) -> list[dict]:
    results: list[dict | None] = [None] * len(cfgs)
    jobs = [Job(cfg, Path(cfg.out_dir), overrides=o, resolved=r, raw=w)
            for cfg, o, r, w in zip(cfgs, overrides, resolved, raw)]
    fresh = []
    for i, job in enumerate(jobs):
        action = job.open()
        if action == "skip":
            results[i] = job.summary
        elif action == "resume":  # its own resume path, one member at a time
            results[i] = _sequential(cfgs[i])
        else:
            fresh.append(i)
    if vmap is None:
        vmap = str(cfgs[0].get("grid")) == "vmap"
    if fresh and not worth_stacking(cfgs[fresh[0]], vmap):
        print("lossland: hydra/launcher=vectorized: this model has no stacked fast path (the vmap path measured no "
              "faster than sequential runs, docs/scale.md): running the jobs one after another; "
              "hydra.launcher.vmap=true forces it", flush=True)
        for i in fresh:
            results[i] = _sequential(cfgs[i])
    elif len(fresh) == 1:
        results[fresh[0]] = _sequential(cfgs[fresh[0]])
    elif fresh:
        for i, summary in zip(fresh, train_together([jobs[i] for i in fresh])):
            results[i] = summary
    return results


def worth_stacking(cfg: DictConfig, vmap: bool = False) -> bool:
    """``vmap``: always; else when the model has the stacked fast path (MLPs). Refuses models that do not stack
    (dropout) before any member starts."""
    model = build_model(cfg, build_data(cfg), build_loss(cfg))
    check_model(model)
    return vmap or stacked_mlp(model) is not None


def _sequential(cfg: DictConfig) -> dict:
    try:
        return run_one(cfg)
    except LosslandError as e:
        return {"status": "failed", "error": str(e)}


def train_together(jobs: list[Job]) -> list[dict]:
    """Start every member's job, prepare its trainer (:func:`lossland.train.prepare`), train them all in one
    loop (:class:`lossland.loop.Loop` over a :class:`StackStep`), and end each job as its sequential run ends.
    A failure of the grid (or a signal) is recorded in every member still training."""
    trainers, signal = [], None
    try:
        for job in jobs:
            job.start()
        fabric = start_fabric(**jobs[0].resolved["trainer"])  # one for all members
        shared: dict = {}  # the members' common objects, built once (lossland.train.prepare)
        for job in jobs:
            trainer, module, dm = prepare(job.cfg, job.out, job.run_id, None, fabric, shared, job.resolved)
            trainer.setup(module, dm)
            job.attach(trainer)
            trainers.append(trainer)
        step = StackStep(trainers)
        Loop(step).run()
        final_evaluations(step.stack, [j.trainer for j in jobs if j.summary["status"] == "running"])
    except Exception as e:  # noqa: BLE001 - recorded; the sweep lists these members as failed
        for job in jobs:
            if job.trainer is None or (job.trainer.diverged is None and not job.trainer.should_stop):
                job.fail(e)  # a signal: interrupted, last.ckpt saved
        signal = e if isinstance(e, Interrupted) else None
    summaries = [_end(job, i, len(jobs)) for i, job in enumerate(jobs)]
    if signal is not None:  # the command exits 128 + signal (lossland.entry), as a sequential run does
        raise signal
    return summaries


def _end(job: Job, index: int, size: int) -> dict:
    """End a member's job as its sequential run ends (a failure here is this member's alone)."""
    if job.summary["status"] == "running":
        try:
            job.complete(job.trainer)
        except Exception as e:  # noqa: BLE001 - recorded in this member; the others go on
            job.fail(e)
        if job.trainer is not None:
            job.trainer.given_passes.clear()
    job.summary["grid"] = {"vectorized": True, "members": size, "index": index}
    return job.finish()
