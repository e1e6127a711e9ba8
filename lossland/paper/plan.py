"""A plan before spending: every job of a study's full-scale experiments (lossland/studies/<study>/settings.yaml,
each composed from its config as its entry point would), with its steps, examples seen, parameter count,
checkpoints and evaluations, and its estimated time from the step-time table (``step_times.yaml``: measured rows
where a machine timed the job's model, else FLOPs over an assumed throughput — each job says which). Nothing runs.

``lossland paper <study> --scale full --plan`` prints it and writes ``plan.json`` (docs/scale.md).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from importlib import resources

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from lossland.errors import LosslandError
from lossland.paper import settings as S

# the input of each data set read from data.root, and of the generated ones (per sample)
SHAPES = {"cifar10": ((3, 32, 32), 10), "mnist": ((1, 28, 28), 10), "mnist5k": ((1, 28, 28), 10),
          "digits": ((1, 8, 8), 10)}


def time_table() -> dict:
    return yaml.safe_load((resources.files("lossland.paper") / "step_times.yaml").read_text(encoding="utf-8"))


@dataclass
class Job:
    overrides: list[str]
    steps: int = 0
    examples: int = 0          # training examples seen (steps × batch)
    params: int = 0            # trainable parameters
    checkpoints: int = 0       # files under checkpoints/ (scheduled + last.ckpt)
    evals: int = 0             # phase-metric evaluations (0: only the final evaluation)
    device: str = "gpu"
    seconds: float = 0.0
    basis: str = ""            # "measured: <where>" or "estimated: <how>"


@dataclass
class Planned:
    name: str
    title: str
    app: str
    config: str
    recipe: str
    command: str
    jobs: list[Job] = field(default_factory=list)
    repeat: int = 1            # the jobs run this many times (e.g. once per run of the experiment they continue)
    note: str = ""

    @property
    def count(self) -> int:
        return len(self.jobs) * self.repeat

    def hours(self, device: str) -> float:
        return self.repeat * sum(j.seconds for j in self.jobs if j.device == device) / 3600


# ---------------------------------------------------------------------------------------------------- models
class _Shape:
    """What :func:`lossland.build.build_model` reads of a data module, without loading any data."""

    def __init__(self, name: str, shape, classes: int):
        self.name, self.input_shape, self.num_classes = name, tuple(shape), classes


def data_shape(cfg: DictConfig) -> tuple[str, tuple[int, ...], int]:
    name = str(OmegaConf.select(cfg, "hydra.runtime.choices.data", default=""))
    classes = cfg.data.get("classes")
    if name in SHAPES:
        shape, k = SHAPES[name]
        pad = cfg.data.get("pad_to") or (32 if _is_conv(cfg) and shape[-1] < 32 and name != "digits" else None)
        if pad and len(shape) == 3:
            shape = (shape[0], pad, pad)
    else:  # generated vectors (spheres, gaussians): data.dim features, two classes
        shape, k = (int(cfg.data.dim),), 2
    return name, shape, len(classes) if classes else k


def _is_conv(cfg) -> bool:
    target = str((cfg.get("model") or {}).get("_target_", ""))
    return "ConvNetSI" in target or "VGG" in target


def _model_key(cfg: DictConfig) -> str:
    model = OmegaConf.to_container(cfg.model, resolve=True)
    aug = OmegaConf.to_container(cfg.augment, resolve=True).get("model") if cfg.get("augment") else None
    return yaml.safe_dump({"model": model, "aug": aug, "loss": str(cfg.loss._target_),
                           "data": list(data_shape(cfg)[1:])}, sort_keys=True)


@functools.lru_cache(maxsize=64)
def _model_cost(key: str, cfg_yaml: str) -> tuple[int, float, float]:
    """(trainable parameters, FLOPs of forward + backward per example, FLOPs of a forward pass per example) of
    the job's model, built as training builds it (its loss's outputs, the augment wrapper)."""
    from torch.utils.flop_counter import FlopCounterMode

    from lossland.build import build_loss, build_model

    cfg = OmegaConf.create(cfg_yaml)
    name, shape, classes = data_shape(cfg)
    with torch.random.fork_rng(devices=[]):
        model = build_model(cfg, _Shape(name, shape, classes), build_loss(cfg))
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    x = torch.randn(2, *shape)
    with FlopCounterMode(display=False) as fc:
        model(x).float().sum().backward()
    train = fc.get_total_flops() / 2
    model.eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    return params, train, fc.get_total_flops() / 2


def model_cost(cfg: DictConfig) -> tuple[int, float, float]:
    plain = OmegaConf.create({k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k])
                              else cfg[k] for k in ("data", "model", "loss", "augment", "seed") if k in cfg})
    plain.hydra = {"runtime": {"choices": {"data": OmegaConf.select(cfg, "hydra.runtime.choices.data")}}}
    return _model_cost(_model_key(cfg), OmegaConf.to_yaml(plain))


# ----------------------------------------------------------------------------------------------- step times
def _size(cfg) -> object:
    m = cfg.model
    return m.get("width") if m.get("width") is not None else list(m.get("hidden") or m.get("channels") or [])


def step_ms(cfg: DictConfig, device: str, flops_step: float, table: dict) -> tuple[float, str]:
    """ms per training step of this job and its basis (a measured row of the table, or the FLOP estimate)."""
    model = str(OmegaConf.select(cfg, "hydra.runtime.choices.model", default=""))
    precision = str(OmegaConf.select(cfg, "trainer.precision", default="32-true"))
    for row in table.get("measured") or []:
        if (row["model"] == model and S.same(row["size"], _size(cfg)) and int(row["batch"]) == int(cfg.data.batch_size)
                and row["precision"] == precision and row["device"] == device):
            return float(row["ms"]), f"measured: {row['where']}"
    a = table["assumptions"][device]
    tflops = a["tflops"].get(precision) or a["tflops"]["32-true"]
    ms = flops_step / (tflops * 1e12) * 1e3 + a["overhead_ms"]
    return ms, (f"estimated: {flops_step / 1e9:.3g} GFLOP per step / {tflops:g} TFLOP/s + "
                f"{a['overhead_ms']:g} ms ({device}, assumed)")


def _evals(steps: int, every: int | None) -> int:
    if not every:
        return 0
    return steps // every + 1 + (1 if steps % every else 0)  # step 0, every N, and the last step


def _shown(job: list[str]) -> list[str]:
    """A job's own overrides: what the experiment's command line (printed above its jobs) does not already say."""
    return [o for o in job if not o.startswith(("experiment=", "+experiment=", "data.root="))
            and S.PLACEHOLDER not in o]


def train_job(job: list[str], cfg: DictConfig, table: dict) -> Job:
    device = "gpu" if str(cfg.trainer.accelerator) in ("gpu", "cuda", "auto") else "cpu"
    steps, batch = S.total_steps(cfg), int(cfg.data.batch_size)
    params, flops_ex, fwd_ex = model_cost(cfg)
    ms, basis = step_ms(cfg, device, flops_ex * batch, table)
    a = table["assumptions"]
    fwd_ms = fwd_ex / flops_ex * (ms - a[device]["overhead_ms"]) / batch  # per example, forward only
    m = cfg.get("metrics") or {}
    evals = _evals(steps, m.get("every_n_steps")) if m.get("enabled") else 0
    seconds = steps * ms
    if evals:  # GM and train loss on eval_batches batches (forward + backward), test loss on test_examples
        seconds += evals * (int(m.get("eval_batches") or 0) * ms + int(m.get("test_examples") or 0) * fwd_ms)
        curv = m.get("curvature") or {}
        if curv.get("enabled"):
            n_curv = math.ceil(evals / int(curv.get("every") or 1))
            seconds += n_curv * a["curvature_passes"] * int(curv.get("examples") or batch) * 3 * fwd_ms
    conv = (m.get("convergence") or {})
    train_n = S.train_split(cfg)
    if conv.get("enabled"):  # the whole training split, forward, every epoch
        seconds += (steps // max(1, S.steps_per_epoch(cfg)) + 1) * train_n * fwd_ms
    test_n = int(cfg.data.get("test_size") or S.DATA_SIZES.get(data_shape(cfg)[0], (0, 0))[1])
    val_n = int(cfg.data.get("val_size") or 0)
    seconds += (train_n + test_n + val_n) * fwd_ms  # the final full-pass evaluation
    ck = OmegaConf.select(cfg, "checkpoint.every_n_steps", default=None)
    checkpoints = (steps // int(ck) if ck else 0) + 1
    return Job(overrides=_shown(job),
               steps=steps, examples=steps * batch, params=params, checkpoints=checkpoints, evals=evals,
               device=device, seconds=seconds / 1000, basis=basis)


def connect_job(cfg: DictConfig, source: DictConfig, table: dict) -> Job:
    """One path evaluated at ``num_points`` points: BN statistics, the train and test splits forward, GM."""
    device = "gpu" if str(cfg.get("device")) == "cuda" else "cpu"
    params, flops_ex, fwd_ex = model_cost(source)
    batch = int(source.data.batch_size)
    ms, basis = step_ms(source, device, flops_ex * batch, table)
    fwd_ms = fwd_ex / flops_ex * (ms - table["assumptions"][device]["overhead_ms"]) / batch
    train_n = int(cfg.get("train_examples") or S.train_split(source))
    test_n = int(cfg.get("test_examples") or source.data.get("test_size") or
                 S.DATA_SIZES.get(data_shape(source)[0], (0, 0))[1])
    per_point = (train_n + test_n) * fwd_ms
    if _is_conv(source):  # BN statistics recomputed at every point
        per_point += int(cfg.get("bn_batches") or 0) * int(cfg.get("batch_size") or 1000) * fwd_ms
    if cfg.get("gm"):
        per_point += int(OmegaConf.select(source, "metrics.eval_batches", default=8)) * ms
    fit = OmegaConf.select(cfg, "path.fit_examples", default=None)
    extra = int(fit) * fwd_ms if fit else 0.0  # the WA refit's hidden activations
    return Job(overrides=[], steps=0, examples=0, params=params, checkpoints=0, evals=int(cfg.num_points),
               device=device, seconds=(int(cfg.num_points) * per_point + extra) / 1000,
               basis=basis.replace("per step", "per training step") + "; a forward pass = 1/3 of a step")


# ---------------------------------------------------------------------------------------------------- plan
def _reads_root(exp: S.Experiment) -> bool:
    """Does the experiment read a data set from ``data.root`` (its config leaves the root to the user)?"""
    if exp.app not in ("train", "nas"):
        return False
    cfg = S.compose_jobs(exp)[0][1]
    return "root" in (cfg.get("data") or {})


def _needed(exp: S.Experiment, settings: S.Settings) -> S.Experiment:
    """The training experiment whose runs a connect / lab experiment reads (the first one it ``needs``; a name
    with ``*`` stands for each of a family, e.g. connect_endpoints_* — their first)."""
    for want in exp.needs.values():
        name = str(want).split()[0]
        for other in settings.experiments.values():
            if other.app == "train" and (other.name == name or
                                         ("*" in name and other.name.startswith(name.split("*")[0]))):
                return other
    raise LosslandError(f"{exp.name}: needs no training experiment of {settings.study}")


def _source_config(exp: S.Experiment, settings: S.Settings, data_root: str) -> DictConfig:
    src = _needed(exp, settings)
    return S.compose_jobs(src, [f"data.root={data_root}"] if _reads_root(src) else [])[0][1]


def _repeat(exp: S.Experiment, settings: S.Settings, counts: dict[str, int]) -> int:
    """``needs: {init_from: <experiment> (each run)}``: the jobs run once per run of that experiment."""
    for want in exp.needs.values():
        if "(each run)" in str(want):
            return counts.get(str(want).split()[0], 1)
    return 1


def plan_study(settings: S.Settings, data_root: str = "$DATA_ROOT", supernet=None) -> dict:
    """The study's full-scale plan as plain data (what ``plan.json`` holds). ``supernet(cfg, input_shape,
    classes)``: the architecture-search model of a ``nas.py`` experiment (a study's own code, above this layer)."""
    table = time_table()
    planned: list[Planned] = []
    counts: dict[str, int] = {}
    for exp in settings.experiments.values():
        root = [f"data.root={data_root}"] if _reads_root(exp) else []
        cmd = f"{S.APPS[exp.app]} {' '.join([*exp.command, *root])}"
        p = Planned(exp.name, exp.title, exp.app, exp.config, exp.recipe, cmd)
        if exp.app == "train":
            p.jobs = [train_job(job, cfg, table) for job, cfg in S.compose_jobs(exp, root)]
            p.repeat = _repeat(exp, settings, counts)
            counts[exp.name] = p.count
        elif exp.app == "connect":
            cfg = S.compose_jobs(exp)[0][1]
            p.jobs = [connect_job(cfg, _source_config(exp, settings, data_root), table)]
            p.repeat = int(exp.jobs or 1)
            p.note = str(exp.source.get("jobs", ""))
        elif exp.app == "nas":
            if supernet is None:
                raise LosslandError(f"{exp.name}: planning a nas.py experiment needs its supernet builder")
            p.jobs = [nas_job(job, cfg, table, supernet) for job, cfg in S.compose_jobs(exp, root)]
        else:  # lossland keskar over the runs of the experiment it needs
            p.jobs = [keskar_job(S.compose_jobs(exp)[0][1], _needed(exp, settings), data_root, table)]
        planned.append(p)
    gpu = sum(p.hours("gpu") for p in planned)
    cpu = sum(p.hours("cpu") for p in planned)
    return {"study": settings.study, "seed": settings.seed, "data_root": data_root,
            "assumptions": table["assumptions"], "measured": table.get("measured") or [],
            "experiments": [{**{k: v for k, v in asdict(p).items() if k != "jobs"}, "count": p.count,
                             "gpu_hours": p.hours("gpu"), "cpu_hours": p.hours("cpu"),
                             "jobs": [asdict(j) for j in p.jobs]} for p in planned],
            "total": {"jobs": sum(p.count for p in planned), "gpu_hours": gpu, "cpu_hours": cpu}}


def nas_job(job: list[str], cfg: DictConfig, table: dict, supernet) -> Job:
    from torch.utils.flop_counter import FlopCounterMode

    name, shape, classes = data_shape(cfg)
    n = cfg.nas
    net = supernet(cfg, shape, classes)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    with FlopCounterMode(display=False) as fc:
        net(torch.randn(2, *shape)).sum().backward()
    flops_ex = fc.get_total_flops() / 2
    a, device = table["assumptions"], "gpu" if str(cfg.device) == "cuda" else "cpu"
    batch = int(cfg.search.batch_size)
    train_n = int(cfg.data.train_size)
    steps = int(cfg.search.epochs) * (train_n // batch)
    tflops = a[device]["tflops"]["32-true"] * 1e12
    # a supernet is thousands of small modules: each forward + backward pass launches kernels for every one
    leaves = sum(1 for m in net.modules() if not any(True for _ in m.children()))
    launch_s = leaves * 2 * a["nas_step_passes"] * a["launch_us_per_module"] / 1e6 if device == "gpu" else 0.0
    search_s = steps * (a["nas_step_passes"] * flops_ex * batch / tflops + a[device]["overhead_ms"] / 1e3 + launch_s)
    disc_n = train_n + (int(cfg.data.val_size) if cfg.discrete.train_on_val else 0)
    disc_s = int(cfg.discrete.epochs) * disc_n * flops_ex / len(n.ops) / tflops
    r = cfg.robustness
    robust_s = r.draws * (len(r.weights_sigmas) + len(r.inputs_sigmas)) * 2 * int(cfg.data.test_size) * flops_ex / 3 \
        / tflops
    return Job(overrides=_shown(job), steps=steps,
               examples=steps * batch, params=params, checkpoints=2, evals=int(cfg.search.epochs), device=device,
               seconds=search_s + disc_s + robust_s,
               basis=(f"estimated: supernet {flops_ex * batch / 1e9:.3g} GFLOP per forward + backward of a batch × "
                      f"{a['nas_step_passes']} per search step / {a[device]['tflops']['32-true']:g} TFLOP/s + "
                      f"{a[device]['overhead_ms']:g} ms + {leaves} modules × {a['launch_us_per_module']:g} µs per "
                      f"pass; discrete net and robustness from the same FLOPs ({device}, assumed)"))


def keskar_job(cfg: DictConfig, runs: S.Experiment, data_root: str, table: dict) -> Job:
    jobs = S.compose_jobs(runs, [f"data.root={data_root}"] if _reads_root(runs) else [])
    source = jobs[0][1]
    device = "gpu" if str(cfg.get("device")) == "cuda" else "cpu"
    params, flops_ex, fwd_ex = model_cost(source)
    a = table["assumptions"]
    tflops = a[device]["tflops"]["32-true"] * 1e12
    n_train = int(cfg.sharpness_examples or S.train_split(source))
    sharp = len(jobs) * len(cfg.eps) * int(cfg.maxiter) * a["keskar_lbfgs_passes_per_iteration"] \
        * n_train * flops_ex / tflops
    pairs = len(jobs) // 2
    test_n = int(source.data.get("test_size") or 10000)
    interp = pairs * int(cfg.alphas[2]) * (S.train_split(source) + test_n) * fwd_ex / tflops
    return Job(overrides=[], params=params, evals=int(cfg.alphas[2]), device=device, seconds=sharp + interp,
               basis=f"estimated: L-BFGS-B and interpolation passes from the model's FLOPs / "
                     f"{a[device]['tflops']['32-true']:g} TFLOP/s ({device}, assumed)")


# -------------------------------------------------------------------------------------------------- output
def hms(seconds: float) -> str:
    h = seconds / 3600
    return f"{h:.1f} h" if h >= 1 else f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def print_plan(plan: dict, echo=print) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=200)
    con.print(f"[bold]lossland paper {plan['study']} --scale full --plan[/bold] — seed {plan['seed']}; nothing "
              f"runs; data.root={plan['data_root']}")
    for e in plan["experiments"]:
        t = Table(title=f"{e['name']}: {e['title']} — {e['count']} job(s), {e['gpu_hours']:.1f} GPU-h"
                        + (f", {e['cpu_hours']:.2f} CPU-h" if e["cpu_hours"] else ""), title_justify="left")
        for c in ("job", "overrides", "steps", "examples", "params", "ckpts", "evals", "time", "basis"):
            t.add_column(c, overflow="fold")
        for i, j in enumerate(e["jobs"]):
            same = i and j["basis"] == e["jobs"][i - 1]["basis"]
            t.add_row(str(i) if e["repeat"] == 1 else f"{i} (×{e['repeat']})", " ".join(j["overrides"]),
                      f"{j['steps']:,}", f"{j['examples']:,}", f"{j['params']:,}", str(j["checkpoints"]),
                      str(j["evals"]), hms(j["seconds"]), "〃" if same else j["basis"])
        con.print(f"  {e['command']}" + (f"   ({e['note']})" if e["note"] else ""))
        con.print(t)
    tot = plan["total"]
    con.print(f"[bold]total: {tot['jobs']} jobs, {tot['gpu_hours']:.1f} GPU-hours"
              + (f" + {tot['cpu_hours']:.2f} CPU-hours" if tot["cpu_hours"] else "")
              + "[/bold] (estimated rows: FLOPs over the assumed throughput in lossland/paper/step_times.yaml; "
              "measured rows say where)")
