"""Study S (seed 003): the numbers the seed states in its text (phase boundaries and levels, MSE, fine-tuning,
retraction error) beside ours, and its claimed trends, from the sweeps of the sphere recipes.

Everything is read through :mod:`lossland.runs`; a run's phase is :func:`lossland.sweep.collect.phase_of`
(the rule of :mod:`lossland.studies.sphere.phases`). ``context`` reduces the records to plain facts (one dict per
run), which is what the tables and trends read — so they can be checked on controlled inputs.

Where each part is read from (``<root>`` = the ``--from`` folder or the output of ``lossland paper sphere``):
``<root>/sphere_elr_ce`` (or ``<root>`` itself), ``<root>/sphere_elr_mse/fraction_1.0`` and ``fraction_0.1``,
``<root>/sphere_baselines`` (runs differing in ``optimizer.direction``), ``<root>/sphere_finetune`` (runs with
``init_from`` and the original-to-fine-tuned paths: :func:`lossland.studies.sphere.finetune.finetune_rows`),
``<root>/sphere_interpolate`` (paths between phase-1 models: :mod:`lossland.studies.sphere.interpolation`),
``<root>/vgg_offsphere`` (runs differing in ``lr`` and ``regularizer.coef``).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from lossland.paper.adapters import Recipe, recipe_names, sweep_dir
from lossland.paper.compare import Ours, judge

RECIPES = [Recipe.script(n) for n in ("sphere_elr_ce", "sphere_elr_mse", "sphere_baselines", "sphere_finetune",
                                      "sphere_interpolate", "sphere_schedule", "vgg_offsphere")]
CHANCE_FRACTION = 0.9      # phase-3 train error counts as chance when ≥ 0.9·(1 − 1/K)
RETRACTION_BOUND = 0.02    # the seed's "not more than 2%"


def run_facts(run) -> dict:
    """One run as plain facts: elr, lr, phase, steps, status, final metrics, classes, max retraction error,
    direction, weight decay, init_from, data fraction."""
    from lossland.studies.sphere.phases import phase_of

    cfg, s, f = run.config, run.summary, run.final
    retr = run.metrics.get("retraction_error")
    retr = [x for x in (retr if retr is not None else []) if math.isfinite(x)]
    classes = cfg.data.get("classes")
    reg = cfg.get("regularizer") or {}
    return {"elr": run.elr, "lr": s.get("lr"), "phase": phase_of(run), "status": run.status, "steps": s.get("steps"),
            "train_error": f.get("train_error"), "test_error": f.get("test_error"), "gm": f.get("gm"),
            "classes": len(classes) if classes else int(s.get("num_classes") or 10),
            "retraction_max": max(retr) if retr else None,
            "retraction_median": statistics.median(retr) if retr else None,
            "direction": (cfg.get("optimizer") or {}).get("direction"),
            "wd": float(reg.get("coef") or 0.0) if reg.get("coef") is not None else 0.0,
            "init_from": cfg.get("init_from"), "fraction": cfg.data.get("fraction")}


def _facts(d: Path | None) -> list[dict]:
    from lossland.runs import load_runs

    if d is None or not Path(d).is_dir():
        return []
    runs, _ = load_runs(d)
    return [run_facts(r) for r in runs]


def _finetune_rows(d: Path | None) -> list[dict]:
    """The fine-tune table (one row per fine-tune, with its path's connectivity), plus the pretrain's phase."""
    from lossland.studies.sphere.along_path import load_paths
    from lossland.studies.sphere.finetune import finetune_rows, group_runs
    from lossland.studies.sphere.phases import phase_of

    if d is None or not Path(d).is_dir():
        return []
    groups, _ = group_runs(d)
    phases = {pre.elr: phase_of(pre) for pre, _ in groups}
    return [{**r, "pretrain_phase": phases.get(r["pretrain_elr"])} for r in finetune_rows(groups, load_paths(d))]


def _interpolation_rows(d: Path | None) -> list[dict]:
    from lossland.studies.sphere.along_path import load_paths
    from lossland.studies.sphere.interpolation import interpolation_rows

    return interpolation_rows(load_paths(d)) if d is not None and Path(d).is_dir() else []


def context(root: Path) -> dict:
    mse = sweep_dir(root, "sphere_elr_mse")
    ce_dir = sweep_dir(root, "sphere_elr_ce", primary=True, siblings=recipe_names(RECIPES))
    ce = [r for r in _facts(ce_dir) if r["init_from"] is None]
    return {"ce": ce,
            "mse_full": _facts(mse / "fraction_1.0") if mse else [],
            "mse_subset": _facts(mse / "fraction_0.1") if mse else [],
            "baselines": _facts(sweep_dir(root, "sphere_baselines")),
            "finetune": [r for r in _facts(sweep_dir(root, "sphere_finetune")) if r["init_from"]],
            "finetune_rows": _finetune_rows(sweep_dir(root, "sphere_finetune")),
            "interpolation": _interpolation_rows(sweep_dir(root, "sphere_interpolate")),
            "vgg": _facts(sweep_dir(root, "vgg_offsphere"))}


def major(phase) -> str | None:
    """'1-converged' -> '1'; '2' -> '2'; '3' -> '3'; anything else (diverged, unknown) -> None."""
    p = str(phase or "")
    return p[0] if p[:1] in ("1", "2", "3") else None


def _elrs(runs, ph, full=False):
    return sorted(r["elr"] for r in runs if r["elr"] is not None
                  and ((r["phase"] == ph) if full else major(r["phase"]) == ph))


def _grid_note(runs) -> str:
    return "grid " + ",".join(f"{e:g}" for e in sorted({r["elr"] for r in runs if r["elr"] is not None}))


# ------------------------------------------------------------------------------------------------ tables
def ce_phases(ctx) -> list[Ours]:
    runs = ctx["ce"]
    if not runs:
        return []
    p1, p2, p3 = (_elrs(runs, p) for p in "123")
    e3 = [r["train_error"] for r in runs if major(r["phase"]) == "3" and r["train_error"] is not None]
    note = _grid_note(runs)
    return [Ours(("largest phase-1 elr",), {"value": max(p1) if p1 else None}, note=note),
            Ours(("smallest phase-2 elr",), {"value": min(p2) if p2 else None}, note=note),
            Ours(("smallest phase-3 elr",), {"value": min(p3) if p3 else None}, note=note),
            Ours(("phase-3 train error",), {"value": statistics.mean(e3) if e3 else None},
                 note=f"mean final train error of {len(e3)} phase-3 runs, K = {runs[0]['classes']}")]


def ce_subphases(ctx) -> list[Ours]:
    """From the interpolation recipe's paths: the misclassified-example counts that split its endpoints into the
    two groups (the seed's boundary is 10–15), and the largest elr of a linearly connected not-converged pair."""
    rows = ctx.get("interpolation", [])
    if not rows:
        hook = "no paths: sweeps/sphere_interpolate.sh (Fig 3)"
        return [Ours(("sub-phase boundary (train errors)",), {"value": None}, note=hook),
                Ours(("largest elr converging to one region",), {"value": None}, note=hook)]
    counts = sorted({int(c) for r in rows for c in (r["train_wrong_a"], r["train_wrong_b"]) if c == c})
    joined = [max(r["elr_a"], r["elr_b"]) for r in rows if r["group"] == "not converged" and r["connected"] == "yes"]
    return [Ours(("sub-phase boundary (train errors)",), {"value": None},
                 note="not located: endpoints' misclassified counts " + ", ".join(map(str, counts))
                 + " (converged = 0, the seed's definition)"),
            Ours(("largest elr converging to one region",), {"value": max(joined) if joined else None},
                 note=f"{len(joined)} connected not-converged pairs of "
                 f"{sum(r['group'] == 'not converged' for r in rows)}")]


def finetune(ctx) -> list[Ours]:
    runs, rows = ctx["finetune"], ctx.get("finetune_rows", [])
    steps = [r["steps"] for r in runs if r["steps"] is not None]
    p2 = [r for r in rows if major(r["pretrain_phase"]) == "2"]
    better = [r["finetune_elr"] for r in p2 if r["ft_test_err"] < r["pre_test_err"]]
    return [Ours(("fine-tuning length",), {"value": max(steps) if steps else None},
                 note=f"{len(runs)} fine-tuned runs" if runs else "no runs with init_from"),
            Ours(("largest final elr improving a phase-2 (elr 1e-2) model",),
                 {"value": max(better) if better else None},
                 note=(f"{len(better)} of {len(p2)} fine-tunes of phase-2 models lower the test error" if p2 else
                       "no fine-tune of a phase-2 model"))]


def mse_phases(ctx) -> list[Ours]:
    runs = ctx["mse_full"]
    if not runs:
        return []
    steps = [r["steps"] for r in runs if r["steps"] is not None]
    p3, p2, p1n = _elrs(runs, "3"), _elrs(runs, "2"), _elrs(runs, "1-not-converged", full=True)
    errs = [r["train_error"] for r in runs if r["train_error"] is not None]
    note = _grid_note(runs)
    return [Ours(("training length",), {"value": max(steps) if steps else None}),
            Ours(("phase-3 elr",), {"value": min(p3) if p3 else None}, note=note),
            Ours(("largest not-converged phase-1 elr",), {"value": max(p1n) if p1n else None}, note=note),
            Ours(("smallest phase-2 elr",), {"value": min(p2) if p2 else None}, note=note),
            Ours(("lowest final train error",), {"value": min(errs) if errs else None})]


def _retraction(runs, phases) -> list[float]:
    return [r["retraction_max"] for r in runs if major(r["phase"]) in phases and r["retraction_max"] is not None]


def retraction(ctx) -> list[Ours]:
    vals = _retraction(ctx["ce"], ("1", "2"))
    return [Ours(("largest 1 − r in phases 1 and 2",), {"value": max(vals) if vals else None},
                 note=f"{len(vals)} runs")] if ctx["ce"] else []


TABLES = {f.__name__: f for f in (ce_phases, ce_subphases, finetune, mse_phases, retraction)}


# ------------------------------------------------------------------------------------------------ trends
def _spearman(x, y) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def three_phases(ctx, tables):
    runs = sorted((r for r in ctx["ce"] if major(r["phase"]) and r["elr"] is not None), key=lambda r: r["elr"])
    if not runs:
        return judge(None, "no classified CE runs")
    seq = [major(r["phase"]) for r in runs]
    ordered = seq == sorted(seq)
    present = set(seq) == {"1", "2", "3"}
    return judge(ordered and present, "by elr: " + " ".join(f"{r['elr']:g}:{r['phase']}" for r in runs)
                 + ("" if present else f"; phases present: {','.join(sorted(set(seq)))}")
                 + ("" if ordered else "; not in order 1 → 2 → 3"))


def phase3_chance(ctx, tables):
    runs = [r for r in ctx["ce"] if major(r["phase"]) == "3" and r["train_error"] is not None]
    if not runs:
        return judge(None, "no phase-3 run")
    chance = 1 - 1 / runs[0]["classes"]
    e = statistics.mean(r["train_error"] for r in runs)
    return judge(e >= CHANCE_FRACTION * chance, f"mean final train error {e:.3f} vs chance {chance:.3f} "
                 f"(needs ≥ {CHANCE_FRACTION:g}·chance), {len(runs)} runs")


def phase1_test_improves(ctx, tables):
    runs = sorted((r for r in ctx["ce"] if major(r["phase"]) == "1" and r["test_error"] is not None),
                  key=lambda r: r["elr"])
    if len(runs) < 2:
        return judge(None, f"{len(runs)} phase-1 run(s); needs 2")
    rho = _spearman([r["elr"] for r in runs], [r["test_error"] for r in runs])
    return judge(rho < 0, f"Spearman(elr, test error) = {rho:.2f} over {len(runs)} phase-1 runs: "
                 + ", ".join(f"{r['elr']:g}→{r['test_error']:.3f}" for r in runs))


def best_at_largest_phase1(ctx, tables):
    runs = [r for r in ctx["ce"] if r["test_error"] is not None and major(r["phase"])]
    p1 = [r for r in runs if major(r["phase"]) == "1"]
    if not p1:
        return judge(None, "no phase-1 run")
    best = min(runs, key=lambda r: r["test_error"])
    top = max(r["elr"] for r in p1)
    return judge(best["elr"] == top, f"best test error {best['test_error']:.3f} at elr {best['elr']:g} "
                 f"(phase {best['phase']}); largest phase-1 elr {top:g}")


def phase2_curvature_falls(ctx, tables):
    runs = sorted((r for r in ctx["ce"] if major(r["phase"]) == "2" and r["gm"] is not None), key=lambda r: r["elr"])
    if len(runs) < 2:
        return judge(None, f"{len(runs)} phase-2 run(s) with GM; needs 2")
    rho = _spearman([r["elr"] for r in runs], [r["gm"] for r in runs])
    return judge(rho < 0, f"Spearman(elr, GM) = {rho:.2f}: " + ", ".join(f"{r['elr']:g}→{r['gm']:.3g}" for r in runs))


def retraction_small(ctx, tables):
    low, high = _retraction(ctx["ce"], ("1", "2")), _retraction(ctx["ce"], ("3",))
    if not low or not high:
        return judge(None, "needs retraction_error logged in phase-1/2 and phase-3 runs")
    med = [r.get("retraction_median") for r in ctx["ce"] if major(r["phase"]) in ("1", "2")]
    med = [m for m in med if m is not None]
    return judge(max(low) <= RETRACTION_BOUND < max(high),
                 f"max 1 − r: phases 1–2 {max(low):.3g}, phase 3 {max(high):.3g} (bound {RETRACTION_BOUND:g})"
                 + (f"; per-run medians in phases 1–2 up to {max(med):.3g}" if med else ""))


def mse_no_zero_error(ctx, tables):
    errs = [r["train_error"] for r in ctx["mse_full"] if r["train_error"] is not None]
    if not errs:
        return judge(None, "no MSE runs on the whole training set (sphere_elr_mse/fraction_1.0)")
    return judge(min(errs) > 0, f"lowest final train error {min(errs):.4f} over {len(errs)} runs")


def random_walk_bounds(ctx, tables):
    gm = {r["direction"]: r["gm"] for r in ctx["baselines"] if r["gm"] is not None and r["direction"]}
    if not {"gradient", "random", "ascent"} <= set(gm):
        return judge(None, "needs sphere_baselines runs with direction gradient, random and ascent")
    return judge(gm["random"] <= gm["gradient"] <= gm["ascent"],
                 f"final GM: random walk {gm['random']:.3g}, SGD {gm['gradient']:.3g}, ascent {gm['ascent']:.3g}")


def finetune_lower_stays(ctx, tables):
    rows = [r for r in ctx.get("finetune_rows", []) if major(r["pretrain_phase"]) == "1" and r["factor"] < 1
            and r["connected"] in ("yes", "no")]
    if not rows:
        return judge(None, "needs fine-tunes of a phase-1 model with a lower elr and their original-to-fine-tuned "
                     "paths (sweeps/sphere_finetune.sh)")
    ok = [r for r in rows if r["connected"] == "yes"]
    return judge(len(ok) == len(rows), f"{len(ok)}/{len(rows)} lowered fine-tunes linearly connected to their "
                 "original: " + ", ".join(f"×{r['factor']:.2g}: {r['connected']}" for r in rows))


def vgg_wd_widens(ctx, tables):
    runs = [r for r in ctx["vgg"] if r["lr"] is not None]
    stable = {wd: sorted(r["lr"] for r in runs if r["wd"] == wd and r["status"] == "ok") for wd in (0.0, 1e-4)}
    tried = {wd: [r for r in runs if r["wd"] == wd] for wd in (0.0, 1e-4)}
    if not tried[0.0] or not tried[1e-4]:
        return judge(None, "needs vgg_offsphere runs with wd 0 and 1e-4")
    top = {wd: (v[-1] if v else 0.0) for wd, v in stable.items()}
    return judge(top[1e-4] > top[0.0], f"largest lr that trained: wd=0 {top[0.0]:g}, wd=1e-4 {top[1e-4]:g} "
                 f"(lrs tried: {sorted({r['lr'] for r in runs})})")


TRENDS = {f.__name__: f for f in (three_phases, phase3_chance, phase1_test_improves, best_at_largest_phase1,
                                  phase2_curvature_falls, retraction_small, mse_no_zero_error, random_walk_bounds,
                                  finetune_lower_stays, vgg_wd_widens)}


def figures(ctx, out: Path) -> list[Path]:
    """Final train / test error and GM against elr, coloured by phase, with the seed's CE boundaries (CIFAR-10)
    as dashed lines."""
    from lossland.figures import figure, save_figure

    runs = [r for r in ctx["ce"] if r["elr"] is not None]
    if not runs:
        return []
    fig = figure(11, 3.4, layout=None)
    axes = fig.subplots(1, 3)
    colors = {"1": "C0", "2": "C1", "3": "C3"}
    for ax, key in zip(axes, ("train_error", "test_error", "gm")):
        for r in runs:
            if r[key] is not None:
                ax.scatter(r["elr"], r[key], color=colors.get(major(r["phase"]), "grey"), s=18)
        for x, lab in ((7e-4, "seed: 1|2"), (2e-2, "seed: 2|3")):
            ax.axvline(x, ls="--", color="k", lw=0.8)
            ax.text(x, 0.98, lab, transform=ax.get_xaxis_transform(), fontsize=6, rotation=90, va="top")
        ax.set(xscale="log", yscale="log" if key == "gm" else "linear", xlabel="elr", title=key)
    axes[0].legend(handles=[axes[0].scatter([], [], color=c, label=f"phase {p}") for p, c in colors.items()],
                   fontsize=7)
    return [save_figure(fig, out / "phases_vs_elr.png")]
