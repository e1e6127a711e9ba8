"""``lossland exp-neuron <sweep dir> --protocol P``: study E's tables (docs/exp_neuron.md) from a sweep's runs,
printed beside the seed's values (:mod:`lossland.studies.exp_neuron.seed`), written as CSV, markdown and a figure
into ``<sweep dir>/exp_neuron/``.

Protocols (one row per data set and training-set size; "none" / "exp" = without / with the neuron):

- ``quality`` (Table 1): final training loss summed over the split \\ misclassified training examples. Several
  runs of one row (a grid, seeds): the best finished run (fewest misclassified, then lowest loss sum).
- ``speed`` (Table 2): for every setting (lr, λ) the epoch (and step) at which the training split is first
  classified with zero errors (``converged_epoch``, ``metrics.convergence``); the best setting per model.
- ``generalization`` (Table 3): among settings that reached zero training errors within their run (the budget:
  ``trainer.max_epochs``; ``--budget`` lowers it), the one with the fewest misclassified test examples (then the
  lowest test loss sum); its validation loss sum \\ misclassified validation examples.
- ``stability``: runs started from finished runs (``init_from``) with noise on one neuron (``augment.perturb``):
  the fraction that diverged, and when (median step after the perturbation), per protocol, perturbed neuron and
  noise scale (``augment.perturb.scale``; the seed's value beside the seed's σ = mean|w| / 10 only). A divergence
  at step 1 is the noised weights' own loss overflowing before any update (``overflow``); one after ≥ 1 update is
  a blow-up in training (``blowups``, ``blowup_fraction``: what the verdicts count). ``protocol``: ``seed`` for
  runs that continue their base run's optimizer state and schedule (``init_state=continue``, the protocol at the
  seed's conditions), else ``controlled``.

Every row counts its diverged runs (``div``: diverged / runs); a diverged run never counts as converged.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from lossland.cells import MISSING, cell, loss_count
from lossland.errors import LosslandError
from lossland.figures import figure, save_figure
from lossland.records import atomic_write
from lossland.records import write_table as write_records_table
from lossland.runs import Run, load_runs
from lossland.studies.exp_neuron import seed

PROTOCOLS = ("quality", "speed", "generalization", "stability")
AUGMENTS = ("none", "exp_neuron")
SEED_SCALE = 0.1  # the seed's noise: σ = mean|weights of the neuron| / 10


@dataclass
class RunInfo:
    dataset: str
    size: int | None
    augment: str
    lr: float | None
    lam: float | None
    target: str | None
    status: str
    summary: dict = field(repr=False)
    scale: float | None = None  # a perturbed run's σ / mean|weights of the neuron| (the seed's: 0.1)
    protocol: str = "controlled"  # "seed": continued with the base run's optimizer state (init_state=continue)

    @property
    def final(self) -> dict:
        return self.summary.get("final") or {}

    @property
    def setting(self) -> str:
        s = f"lr={self.lr:g}" if self.lr is not None else ""
        return s + (f" λ={self.lam:g}" if self.lam is not None else "")


def dataset_label(data) -> str:
    """``spheres R2=1.01``, ``gaussians m2=0.5``, ``mnist5k 1v7``, ... from a run's data config."""
    name = str(data._target_).rsplit(".", 1)[-1].lower()
    if name == "spheres":
        return f"spheres R2={float(list(data.radii)[-1]):g}"
    if name == "gaussians":
        return f"gaussians m2={float(list(data.means)[-1]):g}"
    classes = data.get("classes")
    return f"{name} {'v'.join(str(c) for c in classes)}" if classes else name


NET6_CHANNELS = [64, 128, 256]  # the seed's Table 6; the embedded recipes' mnist5k CNN has 16-32-64


def row_label(cfg) -> str:
    """:func:`dataset_label`, plus ``(net 6 at 64-128-256)`` for the seed's CNN at its own channels (the embedded
    rows' CNN is narrower, so the two are separate rows)."""
    label = dataset_label(cfg.data)
    model = cfg.get("model") or {}
    if str(model.get("_target_", "")).endswith("CNNPReLU") and list(model.get("channels") or []) == NET6_CHANNELS:
        label += " (net 6 at 64-128-256)"
    return label


def run_info(run: Run) -> RunInfo:
    cfg = run.config
    aug = cfg.get("augment") or {}
    has = aug.get("model") is not None
    perturb = aug.get("perturb") or {}
    lr = cfg.get("lr")
    size = cfg.data.get("train_size")
    return RunInfo(dataset=row_label(cfg), size=None if size is None else int(size),
                   augment="exp_neuron" if has else "none", lr=None if lr is None else float(lr),
                   lam=float(aug.lam) if has and aug.get("lam") is not None else None,
                   target=perturb.get("target"), status=run.status, summary=run.summary,
                   scale=float(perturb.get("scale", SEED_SCALE)) if perturb.get("target") else None,
                   protocol="seed" if cfg.get("init_from") and str(cfg.get("init_state", "weights")) == "continue"
                   else "controlled")


def load_infos(root: str | Path) -> list[RunInfo]:
    runs, problems = load_runs(root)
    infos = []
    for r in runs:
        try:
            infos.append(run_info(r))
        except LosslandError as e:
            problems.append(str(e))
    if not infos:
        raise LosslandError(f"no runs under {root}" + (f" ({problems[0]})" if problems else ""))
    return infos


def _div(group: list[RunInfo]) -> str:
    return f"{sum(r.status == 'diverged' for r in group)}/{len(group)}"


def _groups(infos, key):
    out: dict = {}
    for r in infos:
        out.setdefault(key(r), []).append(r)
    return out


def _seed_row(table, dataset: str, size):
    """The seed's row for (dataset, size); an embedded stand-in matches its real data set at any size."""
    real = seed.STANDINS.get(dataset)
    for row in table:
        if row[0] == dataset and row[1] == size:
            return row
        if real is not None and row[0] == real:
            return row
    return None


def _seed_only_rows(rows: list[dict], table, fmt) -> list[dict]:
    """The seed's rows of our data sets at sizes we did not run (ours shown as —), so the whole seed table of
    those data sets stands beside ours."""
    have = {(r["dataset"], r["train_size"]) for r in rows}
    ours = {r["dataset"] for r in rows}
    extra = []
    for ds, size, none, exp, _arch in table:
        if ds in ours and (ds, size) not in have:
            extra.append({"dataset": ds, "train_size": size, "none": MISSING, "exp": MISSING, "seed_size": size,
                          "seed_none": fmt(none), "seed_exp": fmt(exp)})
    return sorted(rows + extra, key=lambda r: (r["dataset"], r["train_size"] or 0))


# ------------------------------------------------------------------------------------------------ protocols
def _protocol_rows(infos: list[RunInfo], table, fmt, cells) -> list[dict]:
    """One row per (data set, train size): ``cells(runs, tag)`` of the runs without (``none``) and with
    (``exp``) the neuron, their diverged counts, and the seed's row of that table beside them."""
    rows = []
    by = _groups(infos, lambda r: (r.dataset, r.size))
    for (ds, size), group in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        row = {"dataset": ds, "train_size": size}
        for aug, tag in zip(AUGMENTS, ("none", "exp")):
            g = [r for r in group if r.augment == aug]
            row.update(cells(g, tag))
            row[f"{tag}_div"] = _div(g) if g else "0/0"
        s = _seed_row(table, ds, size)
        row["seed_size"], row["seed_none"], row["seed_exp"] = ((s[1], fmt(s[2]), fmt(s[3])) if s
                                                               else (None, MISSING, MISSING))
        rows.append(row)
    return _seed_only_rows(rows, table, fmt)


def quality_rows(infos: list[RunInfo]) -> list[dict]:
    def cells(g, tag):
        ok = [r for r in g if r.status == "ok" and "train_misclassified" in r.final]
        best = min(ok, key=lambda r: (r.final["train_misclassified"], r.final["train_loss_sum"]), default=None)
        loss_sum = None if best is None else best.final["train_loss_sum"]
        wrong = None if best is None else best.final["train_misclassified"]
        return {f"{tag}_loss_sum": loss_sum, f"{tag}_misclassified": wrong, tag: loss_count(loss_sum, wrong),
                f"{tag}_setting": "" if best is None else best.setting}

    return _protocol_rows(infos, seed.QUALITY, lambda v: loss_count(*v), cells)


def speed_rows(infos: list[RunInfo]) -> list[dict]:
    def cells(g, tag):
        conv = [r for r in g if r.status == "ok" and r.summary.get("converged_step") is not None]
        best = min(conv, key=lambda r: (r.summary["converged_epoch"], r.summary["converged_step"]), default=None)
        s = {} if best is None else best.summary
        return {f"{tag}_epochs": s.get("converged_epoch"), f"{tag}_steps": s.get("converged_step"),
                tag: MISSING if best is None else f"{float(s['converged_epoch']):g} ({s['converged_step']} steps)",
                f"{tag}_setting": "" if best is None else best.setting, f"{tag}_converged": f"{len(conv)}/{len(g)}"}

    return _protocol_rows(infos, seed.SPEED, lambda v: v, cells)


def generalization_rows(infos: list[RunInfo], budget: float | None = None) -> list[dict]:
    def cells(g, tag):
        ok = [r for r in g if r.status == "ok" and r.summary.get("converged_epoch") is not None
              and (budget is None or r.summary["converged_epoch"] <= budget) and "val_loss_sum" in r.final]
        best = min(ok, key=lambda r: (r.final["test_misclassified"], r.final["test_loss_sum"]), default=None)
        f = {} if best is None else best.final
        return {f"{tag}_val_loss_sum": f.get("val_loss_sum"), f"{tag}_val_misclassified": f.get("val_misclassified"),
                f"{tag}_test_misclassified": f.get("test_misclassified"),
                tag: loss_count(f.get("val_loss_sum"), f.get("val_misclassified")),
                f"{tag}_setting": "" if best is None else best.setting, f"{tag}_eligible": f"{len(ok)}/{len(g)}"}

    return _protocol_rows(infos, seed.GENERALIZATION, lambda v: loss_count(*v), cells)


PROTOCOL_NAMES = {"controlled": "controlled", "seed": "seed's conditions"}


def divergence_kind(summary: dict) -> str | None:
    """How a perturbed run diverged: ``overflow`` (at step 1: the noised weights' loss is already non-finite or
    above max_loss, before any update: no training took part), ``blowup`` (after ≥ 1 update: training itself blew
    up), None (it did not diverge)."""
    step = summary.get("diverged_at_step")
    if summary.get("status") != "diverged" or step is None:
        return None
    return "overflow" if int(step) <= 1 else "blowup"


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def stability_rows(infos: list[RunInfo]) -> list[dict]:
    rows = []
    perturbed = [r for r in infos if r.target is not None]
    by = _groups(perturbed, lambda r: (r.protocol, r.dataset, r.size, r.augment, r.target, r.scale))
    seed_frac = dict(seed.STABILITY)
    for (protocol, ds, size, aug, target, scale), g in sorted(by.items(),
                                                              key=lambda kv: tuple(str(x) for x in kv[0])):
        div = [r for r in g if r.status == "diverged"]
        kinds = [divergence_kind({**r.summary, "status": r.status}) for r in div]
        blow = [r for r, k in zip(div, kinds) if k == "blowup"]
        steps = [r.summary.get("diverged_at_step") for r in div if r.summary.get("diverged_at_step") is not None]
        blow_steps = sorted(int(r.summary["diverged_at_step"]) for r in blow)
        causes = sorted({str(r.summary.get("diverged_cause", "")) for r in div} - {""})
        pert = [r.summary.get("perturbation") or {} for r in g]
        how = ([f"{kinds.count('overflow')} overflow at step 1"] if "overflow" in kinds else []) + \
            ([f"{len(blow)} blow-up in training (steps {', '.join(map(str, blow_steps))})"] if blow else [])
        rows.append({"protocol": protocol, "dataset": ds, "train_size": size, "augment": aug, "perturbed": target,
                     "scale": scale, "runs": len(g),
                     "diverged": len(div), "fraction": len(div) / len(g),
                     "overflow": kinds.count("overflow"), "blowups": len(blow), "blowup_fraction": len(blow) / len(g),
                     "how": "; ".join(how),
                     "median_step": statistics.median(steps) if steps else None,
                     "first_step": min(steps) if steps else None, "causes": "; ".join(causes),
                     "sigma": _median([p.get("sigma") for p in pert]),
                     "loss_before": _median([p.get("loss_before") for p in pert]),
                     "loss_after": _median([p.get("loss_after") if p.get("loss_after") is not None
                                            and "loss_before" in p else (math.inf if "loss_before" in p else None)
                                            for p in pert]),
                     "seed_fraction": seed_frac.get(target) if aug == "exp_neuron" and scale == SEED_SCALE
                     else None})
    return rows


def protocol_rows(protocol: str, infos: list[RunInfo], budget: float | None = None) -> list[dict]:
    """The rows of ``protocol``'s table from its runs (``budget``: generalization's, see the module docstring)."""
    if protocol == "generalization":
        return generalization_rows(infos, budget)
    return {"quality": quality_rows, "speed": speed_rows, "stability": stability_rows}[protocol](infos)


# ------------------------------------------------------------------------------------------------ output
COLUMNS = {
    "quality": [("dataset", "data set"), ("train_size", "train"), ("none", "ours: none"), ("exp", "ours: exp"),
                ("seed_none", "seed: none"), ("seed_exp", "seed: exp"), ("seed_size", "seed train"),
                ("none_div", "div none"), ("exp_div", "div exp"), ("exp_setting", "exp setting")],
    "speed": [("dataset", "data set"), ("train_size", "train"), ("none", "ours: none"), ("exp", "ours: exp"),
              ("seed_none", "seed: none"), ("seed_exp", "seed: exp"), ("seed_size", "seed train"),
              ("none_setting", "best none"), ("exp_setting", "best exp"), ("none_converged", "conv none"),
              ("exp_converged", "conv exp"), ("none_div", "div none"), ("exp_div", "div exp")],
    "generalization": [("dataset", "data set"), ("train_size", "train"), ("none", "ours: none"), ("exp", "ours: exp"),
                       ("seed_none", "seed: none"), ("seed_exp", "seed: exp"), ("seed_size", "seed train"),
                       ("none_setting", "chosen none"), ("exp_setting", "chosen exp"), ("none_eligible", "elig. none"),
                       ("exp_eligible", "elig. exp"), ("none_div", "div none"), ("exp_div", "div exp")],
    "stability": [("protocol_name", "protocol"), ("dataset", "data set"), ("train_size", "train"),
                  ("augment", "model"), ("perturbed", "perturbed"), ("scale", "noise scale"), ("runs", "runs"),
                  ("diverged", "diverged"), ("overflow", "overflow at step 1"), ("blowups", "blow-ups"),
                  ("blowup_fraction", "blow-up fraction"), ("seed_fraction", "seed"), ("how", "how"),
                  ("sigma", "σ (median)"), ("loss_before", "loss before noise"), ("loss_after", "loss after noise"),
                  ("causes", "causes")],
}


def display_rows(protocol: str, rows: list[dict]) -> list[dict]:
    """The table as printed: the protocol's columns under their headers, values as text."""
    return [{h: cell(r.get(k) if k != "protocol_name" else PROTOCOL_NAMES.get(r.get("protocol"), r.get("protocol")),
                     ".3g") for k, h in COLUMNS[protocol]} for r in rows]


def _num(v):
    try:
        x = float(str(v).split("\\")[-1].split(" ")[0]) if isinstance(v, str) else float(v)
    except (TypeError, ValueError):
        return math.nan
    return x


def protocol_figure(protocol: str, rows: list[dict]):
    """Grouped bars per row: ours without / with the neuron beside the seed's."""
    fig = figure(max(5.0, 1.3 * len(rows) + 2), 3.6, layout=None)
    ax = fig.add_subplot(1, 1, 1)
    if protocol == "stability":
        labels = [f"{PROTOCOL_NAMES.get(r['protocol'], r['protocol'])}\n{r['dataset']}\n{r['augment']}: "
                  f"{r['perturbed']}\nσ = {r['scale']:g}·mean|w|" for r in rows]
        series = [("ours: blow-ups in training", [r["blowup_fraction"] for r in rows]),
                  ("ours: overflow at step 1", [r["overflow"] / r["runs"] for r in rows]),
                  ("seed", [_num(r["seed_fraction"]) for r in rows])]
        ax.set_ylabel("fraction of perturbed runs")
    else:
        labels = [f"{r['dataset']}\n{r['train_size']}" for r in rows]
        key = {"quality": ("none_misclassified", "exp_misclassified"), "speed": ("none_epochs", "exp_epochs"),
               "generalization": ("none_val_misclassified", "exp_val_misclassified")}[protocol]
        series = [("ours: none", [_num(r.get(key[0])) for r in rows]),
                  ("ours: exp", [_num(r.get(key[1])) for r in rows]),
                  ("seed: none", [_num(r["seed_none"]) for r in rows]),
                  ("seed: exp", [_num(r["seed_exp"]) for r in rows])]
        ax.set_ylabel({"quality": "misclassified (train)", "speed": "epochs to zero training errors",
                       "generalization": "misclassified (validation)"}[protocol])
    width = 0.8 / len(series)
    for i, (name, vals) in enumerate(series):
        ax.bar([j + i * width for j in range(len(rows))], vals, width, label=name,
               hatch="//" if name.startswith("seed") else None, alpha=0.85)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))], labels, fontsize=7)
    ax.set_title(f"study E, {protocol}: ours beside the seed's")
    ax.legend(fontsize=7)
    return fig


def write_table(root: str | Path, protocol: str, out: str | Path | None = None, budget: float | None = None) -> dict:
    """The protocol's table from the runs under ``root``: ``{"rows", "markdown", "files"}``; files are
    ``<out>/<protocol>.csv``, ``.md`` and ``.png`` (default ``out``: ``<root>/exp_neuron``)."""
    if protocol not in PROTOCOLS:
        raise LosslandError(f"--protocol {protocol} is not valid; valid: {', '.join(PROTOCOLS)}")
    rows = protocol_rows(protocol, load_infos(root), budget)
    if not rows:
        raise LosslandError(f"no {protocol} runs under {root}"
                            + (" (no run has augment.perturb.target set)" if protocol == "stability" else ""))
    out = Path(out) if out is not None else Path(root) / "exp_neuron"
    md = f"Units: {seed.UNITS[protocol]}.\n\n" + write_records_table(display_rows(protocol, rows), out, protocol)
    atomic_write(out / f"{protocol}.md", md)  # the units above the table
    png = save_figure(protocol_figure(protocol, rows), out / f"{protocol}.png")
    files = [out / f"{protocol}.csv", out / f"{protocol}.md", png]
    return {"rows": rows, "markdown": md, "files": files}
