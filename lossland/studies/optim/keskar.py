"""Small- vs large-batch training and sharp minima (Keskar et al., "On large-batch training for deep learning:
generalization gap and sharp minima", ICLR 2017), from the finished runs of ``sweeps/keskar_sb_lb.sh``:
``lossland keskar SWEEP`` (``conf/keskar.yaml``).

Input: a sweep directory whose ``lossland train`` jobs differ only in ``data.batch_size`` (exactly two values:
the smaller is SB, the larger LB) and ``seed``. Everything is read through ``lossland.runs`` / ``summary.json``:

- train / test accuracy = 1 − the run's final full-pass ``train_error`` / ``test_error`` (percent), mean ± std
  over seeds (sample std, ddof = 1);
- ε-sharpness of each final minimum (:func:`lossland.metrics.sharpness.keskar_sharpness`, Keskar et al.'s
  metric in percent, full space unless ``subspace``) on the training split, BN in eval mode, computed on a
  float64 copy of the net: a small-batch net trained to 100% accuracy has saturated logits whose float32
  cross-entropy is exactly 0 with exactly zero gradient, which would make every box look flat;
- the 1-d interpolation θ(α) = α·x_LB + (1 − α)·x_SB of the SB and LB minima of the same seed, α ∈ [−1, 2]
  (their Fig. 3): cross-entropy and accuracy on the train and test splits (BN in eval mode, i.e. the SB
  run's running statistics for a net with BN — lossland's MLP has none by default).

Output: ``keskar_runs.csv`` (one row per run), ``keskar_table.{csv,md}`` (Keskar et al.'s row of ``network``
— F1 by default, F2 or C1 for the sweeps that stand in for those — as quoted in the lecture of docs/optim_lab.md,
beside ours), ``keskar.json`` (everything, with the interpolation curves), and
the figures ``keskar_interp.png`` and ``keskar_sharpness.png``, into ``out`` (default ``<sweep>/keskar``).
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

import numpy as np

from lossland.cells import pm
from lossland.errors import LosslandError
from lossland.paper.data import load as load_seed
from lossland.records import write_json, write_table
from lossland.runs import Run, open_run
from lossland.runs import find_runs as find_run_dirs

log = logging.getLogger("lossland.studies.optim")

__all__ = ["KESKAR_F1", "NETWORKS", "find_runs", "keskar_command", "keskar_row"]

# Keskar et al.'s networks (their Table 1) and the data set each was trained on
NETWORKS = {"F1": "MNIST", "F2": "TIMIT", "C1": "CIFAR-10", "C2": "CIFAR-10", "C3": "CIFAR-100", "C4": "CIFAR-100"}


def keskar_row(network: str = "F1") -> dict:
    """Keskar et al. (2017), Table 2, row ``network`` (F1, F2, C1-C4), as quoted in the course lecture that is the
    source of study O (docs/optim_lab.md): accuracy in percent, mean ± std over their runs — from this study's
    seed data (shared with ``lossland paper optim``)."""
    rows = load_seed(__package__).tables["keskar"].rows
    if (network,) not in rows:
        raise LosslandError(f"network={network} is not a row of Keskar et al.'s table; valid: "
                            f"{', '.join(k[0] for k in rows)}")
    cells = {c: tuple(v) for c, v in rows[(network,)].items()}
    return {"name": f"{network} (Keskar et al. 2017, {NETWORKS.get(network, '?')})", "network": network,
            "train_sb": cells["train SB"], "train_lb": cells["train LB"],
            "test_sb": cells["test SB"], "test_lb": cells["test LB"]}


KESKAR_F1 = keskar_row("F1")


def find_runs(sweep_dir: str | Path) -> list[dict]:
    """The sweep's finished runs: ``{dir, batch_size, seed, train_acc, test_acc, summary}`` (status ok only)."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise LosslandError(f"sweep={sweep_dir} is not a directory")
    runs = []
    for d in find_run_dirs(root):
        run = Run(d)
        if run.status != "ok":
            log.warning("skipping %s: status %s", d, run.status)
            continue
        summary, cfg = run.summary, run.config
        final = summary.get("final") or {}
        if "train_error" not in final or "test_error" not in final:
            raise LosslandError(f"{d}/summary.json has no final train_error/test_error")
        runs.append({"dir": d, "batch_size": int(cfg.data.batch_size), "seed": int(cfg.seed),
                     "train_acc": 100 * (1 - final["train_error"]), "test_acc": 100 * (1 - final["test_error"])})
    sizes = sorted({r["batch_size"] for r in runs})
    if len(sizes) != 2:
        raise LosslandError(f"sweep={sweep_dir}: need finished runs with exactly two batch sizes (SB and LB), "
                            f"found {sizes or 'no finished runs'}")
    for r in runs:
        r["regime"] = "SB" if r["batch_size"] == sizes[0] else "LB"
    return runs


def _mean_std(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0) if len(v) else (math.nan, math.nan)


def keskar_command(cfg) -> list[Path]:
    """``lossland keskar``: analyse ``cfg.sweep`` (module docstring); returns the files written."""
    sweep = Path(cfg.sweep)
    out = Path(cfg.out) if cfg.get("out") else sweep / "keskar"
    eps, grid = _checked(cfg)
    seed_row = keskar_row(str(cfg.get("network") or "F1"))
    runs = find_runs(sweep)
    models = _Models(str(cfg.device))
    _sharpness(runs, models, eps, cfg)
    curves = _interpolation(runs, models, grid, bool(cfg.progress))
    if not curves:
        raise LosslandError(f"sweep={sweep}: no seed has both an SB and an LB run to interpolate")
    run_rows = [{"run": str(r["dir"].relative_to(sweep)), "regime": r["regime"], "batch_size": r["batch_size"],
                 "seed": r["seed"], "train_acc": r["train_acc"], "test_acc": r["test_acc"],
                 **{f"sharpness_eps={e:g}": r[f"sharpness_{e:g}"] for e in eps}}
                for r in sorted(runs, key=lambda r: (r["regime"] != "SB", r["seed"]))]
    table, batch_sizes = _table(runs, eps, seed_row)
    files = _write(out, run_rows, table, curves, batch_sizes, eps, cfg, seed_row)
    for f in files:
        print(f)
    return files


def _checked(cfg) -> tuple[list[float], np.ndarray]:
    """The ε values and the interpolation grid, refused in one line where not valid."""
    eps = [float(e) for e in cfg.eps]
    if not eps or not all(math.isfinite(e) and e > 0 for e in eps):
        raise LosslandError(f"eps={eps} is not valid: every ε must be a positive number")
    alphas = list(cfg.alphas)
    if len(alphas) != 3 or int(alphas[2]) < 2:
        raise LosslandError(f"alphas={alphas} must be [start, stop, number of points ≥ 2]")
    return eps, np.linspace(float(alphas[0]), float(alphas[1]), int(alphas[2]))


class _Models:
    """Each run's (model, loss, data module) on ``device``, loaded once."""

    def __init__(self, device: str):
        self.device, self.loaded = device, {}

    def __call__(self, run: dict):
        key = str(run["dir"])
        if key not in self.loaded:
            model, loss, dm = open_run(run["dir"]).model()
            self.loaded[key] = (copy.deepcopy(model).to(self.device), loss, dm.to(self.device))
        return self.loaded[key]


def _sharpness(runs: list[dict], models: _Models, eps: list[float], cfg) -> None:
    """``run["sharpness_<ε>"]`` for every run and ε, on a float64 copy of the net (module docstring)."""
    from tqdm.auto import tqdm

    from lossland.metrics.sharpness import keskar_sharpness

    n = cfg.sharpness_examples
    for r in tqdm(runs, desc="sharpness", disable=not cfg.progress):
        model, loss, dm = models(r)
        x, y = dm.splits["train"]
        if n:
            x, y = x[:int(n)], y[:int(n)]
        model64 = copy.deepcopy(model).double()  # a well-fit SB net's float32 loss underflows to 0 (flat by fiat)
        for e in eps:
            r[f"sharpness_{e:g}"] = keskar_sharpness(model64, loss, (x.double(), y), eps=e, subspace=cfg.subspace,
                                                     maxiter=int(cfg.maxiter), batch_size=dm.eval_batch_size, seed=0)


def _interpolation(runs: list[dict], models: _Models, grid: np.ndarray, progress: bool) -> list[dict]:
    """Per seed with both regimes: loss and accuracy (%) on train and test along α·x_LB + (1 − α)·x_SB."""
    import torch
    from tqdm.auto import tqdm

    from lossland.metrics.landscape import direction_to, slice_1d

    by_seed = {}
    for r in runs:
        by_seed.setdefault(r["seed"], {})[r["regime"]] = r
    curves = []
    for seed, pair in tqdm(sorted(by_seed.items()), desc="interpolation", disable=not progress):
        if set(pair) != {"SB", "LB"}:
            continue
        sb, loss, dm = models(pair["SB"])
        d = direction_to(sb, models(pair["LB"])[0])  # θ_SB + α·(θ_LB − θ_SB) = α·x_LB + (1 − α)·x_SB
        curve = {"seed": seed, "alphas": grid.tolist()}
        for split in ("train", "test"):
            with torch.no_grad():
                s = slice_1d(sb, loss, dm.splits[split], d, grid, bn="eval", batch_size=dm.eval_batch_size,
                             progress=False)
            curve[f"{split}_loss"] = s["loss"].tolist()
            curve[f"{split}_acc"] = (100 * s["accuracy"]).tolist()
        curves.append(curve)
    return curves


def _table(runs: list[dict], eps: list[float], seed_row: dict = KESKAR_F1) -> tuple[list[dict], tuple[int, int]]:
    """Keskar et al.'s row ``seed_row`` (:func:`keskar_row`) beside ours (mean ± std over seeds), and the two batch
    sizes."""
    sb_runs = [r for r in runs if r["regime"] == "SB"]
    lb_runs = [r for r in runs if r["regime"] == "LB"]
    ours = {"train_sb": _mean_std([r["train_acc"] for r in sb_runs]),
            "train_lb": _mean_std([r["train_acc"] for r in lb_runs]),
            "test_sb": _mean_std([r["test_acc"] for r in sb_runs]),
            "test_lb": _mean_std([r["test_acc"] for r in lb_runs])}
    for e in eps:
        ours[f"sharp_sb_{e:g}"] = _mean_std([r[f"sharpness_{e:g}"] for r in sb_runs])
        ours[f"sharp_lb_{e:g}"] = _mean_std([r[f"sharpness_{e:g}"] for r in lb_runs])
    bs = (sb_runs[0]["batch_size"], lb_runs[0]["batch_size"])
    name = f"ours (SB {bs[0]}, LB {bs[1]}; {len(sb_runs)}+{len(lb_runs)} runs)"
    table = []
    for label, row in ((seed_row["name"], seed_row), (name, ours)):
        t = {"name": label, "train SB": pm(*row["train_sb"]), "train LB": pm(*row["train_lb"]),
             "test SB": pm(*row["test_sb"]), "test LB": pm(*row["test_lb"])}
        for e in eps:
            t[f"sharpness ε={e:g} SB"] = pm(*row.get(f"sharp_sb_{e:g}", (math.nan, math.nan)), spec=".3g")
            t[f"sharpness ε={e:g} LB"] = pm(*row.get(f"sharp_lb_{e:g}", (math.nan, math.nan)), spec=".3g")
        table.append(t)
    return table, bs


def _write(out: Path, run_rows, table, curves, batch_sizes, eps, cfg, seed_row: dict = KESKAR_F1) -> list[Path]:
    """The tables (printed too), ``keskar.json`` and the two figures."""
    from lossland.figures import save_figure
    from lossland.studies.optim.plots import keskar_interp_figure, keskar_sharpness_figure

    write_table(run_rows, out, "keskar_runs")
    md = write_table(table, out, "keskar_table")
    print("accuracy in %, mean ± std over seeds; ε-sharpness in % (Keskar et al.'s metric); "
          f"{seed_row['network']} row: Keskar et al. Table 2 as quoted in the course lecture (docs/optim_lab.md; "
          "no sharpness there)")
    print(md)
    record = {"sweep": str(cfg.sweep), "eps": eps, "subspace": cfg.subspace, "maxiter": int(cfg.maxiter),
              "runs": run_rows, "table": table, "network": seed_row["network"], "keskar_row": seed_row,
              "interpolation": curves}
    return [out / "keskar_runs.csv", out / "keskar_runs.md", out / "keskar_table.csv", out / "keskar_table.md",
            write_json(out / "keskar.json", record),
            save_figure(keskar_interp_figure(curves, int(cfg.pairs), batch_sizes), out / "keskar_interp.png"),
            save_figure(keskar_sharpness_figure(run_rows, eps), out / "keskar_sharpness.png")]
