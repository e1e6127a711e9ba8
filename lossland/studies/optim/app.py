"""The ``lossland lab`` Hydra app: one task (``task=trajectories | escape | vanishing``) per job, writing its
tables, JSON and figures into the job directory (docs/optim_lab.md). A task's config names its function
(``_target_``, called with the job config and the job directory)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lossland.config import output_dir
from lossland.errors import LosslandError
from lossland.records import write_json, write_table

log = logging.getLogger("lossland.studies.optim")


def build_function(cfg: DictConfig):
    from lossland.build import instantiate_node as build

    return build(cfg.function, "function")


def count(value, key: str, limit: int = 10**9) -> int:
    """A whole number of runs or steps, at most ``limit`` (they size memory), or one line naming the key."""
    try:
        n = float(value)
        ok = n == int(n) and 1 <= n <= limit
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise LosslandError(f"{key}={value} is not valid: {key.rpartition('.')[2]} must be a positive integer, "
                            f"at most {limit:.0e}")
    return int(n)


def run_trajectories(cfg: DictConfig, out: Path) -> list[Path]:
    from lossland.figures import save_figure
    from lossland.studies.optim.plots import animate, trajectories_figure
    from lossland.studies.optim.trajectories import run_trajectory

    fn = build_function(cfg)
    t = cfg.task
    names = list(t.optimizers)
    if not names:
        raise LosslandError("task.optimizers is empty; name at least one optimizer (e.g. task.optimizers=[gd,adam])")
    args = OmegaConf.to_container(t.get("args") or {}, resolve=True)
    trajs = []
    for name in names:
        over = dict(args.get(name) or {})
        trajs.append(run_trajectory(fn, name, t.start, count(t.steps, "task.steps", 10**7),
                                    float(over.pop("lr", cfg.lr)), over, seed=int(cfg.seed), bound=float(t.bound)))
    files = [save_figure(trajectories_figure(fn, trajs), out / "trajectories.png")]
    record = {"function": repr(fn), "start": list(t.start), "steps": int(t.steps),
              "optimizers": [{"name": tr.name, "config": tr.config, "stopped": tr.stopped,
                              "final_point": tr.points[-1].tolist(), "final_loss": float(tr.losses[-1]),
                              "points": tr.points.tolist(), "losses": tr.losses.tolist()} for tr in trajs]}
    files.append(write_json(out / "trajectories.json", record))
    for tr in trajs:
        where = (f"stopped at step {tr.stopped} (left |x_i| <= bound or non-finite)" if tr.stopped is not None
                 else f"step {len(tr.losses) - 1}")
        print(f"{tr.label:>10}: f = {tr.losses[-1]:.6g} at ({tr.points[-1][0]:.4g}, {tr.points[-1][1]:.4g}), {where}")
    if t.get("animate"):
        fmt = str(t.get("animation_format", "gif"))
        if fmt not in ("gif", "mp4"):
            raise LosslandError(f"task.animation_format={fmt} is not valid; valid: gif, mp4")
        path = animate(fn, trajs, out / f"trajectories.{fmt}")
        if path is None:
            log.warning("matplotlib has no %s writer here (gif needs Pillow, mp4 ffmpeg): no animation", fmt)
        else:
            files.append(path)
    return files


def run_escape(cfg: DictConfig, out: Path) -> list[Path]:
    from lossland.figures import save_figure
    from lossland.studies.optim.escape import escape_stats
    from lossland.studies.optim.plots import escape_figure

    fn = build_function(cfg)
    t = cfg.task
    stats = escape_stats(fn, list(t.sigmas), list(t.lrs), runs=count(t.runs, "task.runs"),
                         max_steps=count(t.max_steps, "task.max_steps"),
                         radius=float(t.radius), seed=int(cfg.seed), offset=list(t.offset))
    rows = stats.rows(fn)
    md = write_table(rows, out, "escape")
    print(md)
    print(f"{len(stats.sigmas) * len(stats.lrs) * stats.runs} runs of noisy GD in {stats.wall_s:.2f} s")
    files = [out / "escape.csv", out / "escape.md", save_figure(escape_figure(fn, stats), out / "escape.png")]
    files.append(write_json(out / "escape.json", {"function": repr(fn), "rows": rows, "wall_s": stats.wall_s,
                                                  "max_steps": stats.max_steps, "radius": stats.radius}))
    return files


def run_lab(cfg: DictConfig) -> list[Path]:
    """Run ``cfg.task`` (its ``_target_``) and return the files written."""
    from hydra.utils import get_method

    try:
        task = get_method(cfg.task._target_)
    except Exception as e:  # Hydra's ImportError / ValueError about the dotted path
        raise LosslandError(f"task._target_={cfg.task._target_} is not a lab task function ({e})") from None
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    files = task(cfg, out)
    for f in files:
        print(f)
    return files
