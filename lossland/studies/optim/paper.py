"""Study O (seed 004): Keskar et al.'s SB/LB accuracy table as quoted in the lecture, our F1 stand-in beside its
F1 row (an MLP on mnist5k, or on MNIST at the paper's scale; ``sweeps/keskar_sb_lb.sh``), read with
:func:`lossland.studies.optim.keskar.find_runs` (final full-pass train / test error of every finished run; the
smaller batch size is SB)."""

from __future__ import annotations

import statistics
from pathlib import Path

from lossland.errors import LosslandError
from lossland.paper.adapters import Recipe, recipe_names, sweep_dir
from lossland.paper.compare import Ours, judge

# embedded knobs of the committed results (docs/results/optim/): 3 seeds, sharpness on 1,000 training digits
RECIPES = [Recipe.script("keskar_sb_lb", SEEDS="0,1,2", EXTRA_KESKAR="sharpness_examples=1000 progress=false")]
FIT_AT_LEAST = 98.0   # percent: "both fit the training set"


def context(root: Path) -> dict:
    from lossland.studies.optim.keskar import find_runs

    d = sweep_dir(root, "keskar_sb_lb", primary=True, siblings=recipe_names(RECIPES))
    try:
        runs = find_runs(d)
    except LosslandError as e:
        return {"runs": [], "problem": str(e), "dir": d}
    return {"runs": runs, "problem": "", "dir": d}


def _analysis(ctx) -> dict:
    """``lossland keskar``'s keskar.json in the sweep (the recipe's last step), or {}."""
    import json

    f = Path(ctx["dir"]) / "keskar" / "keskar.json" if ctx.get("dir") else None
    return json.loads(f.read_text()) if f is not None and f.is_file() else {}


def facts(ctx) -> dict:
    """Per run: regime, batch size, train / test accuracy and ε-sharpness (from keskar.json)."""
    return {"keskar_runs": _analysis(ctx).get("runs", [])}


def figures(ctx, out: Path) -> list[Path]:
    """The analysis' figures (1-d interpolation, ε-sharpness), copied into the comparison folder."""
    import shutil

    d = Path(ctx["dir"]) / "keskar" if ctx.get("dir") else None
    names = ("keskar_interp.png", "keskar_sharpness.png")
    if d is None or not all((d / n).is_file() for n in names):
        return []
    Path(out).mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(d / n, Path(out) / n)) for n in names]


def _ms(xs):
    return None if not xs else [statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0]


def _data_name(run_dir) -> str:
    """The data set the runs trained on (mnist5k embedded, mnist at the paper's scale), from the run's config."""
    from lossland.runs import Run

    return str(Run(run_dir).config.data.get("_target_", "?")).rsplit(".", 1)[-1].lower()


def keskar(ctx) -> list[Ours]:
    runs = ctx["runs"]
    if not runs:
        return []
    v = {f"{split} {reg}": _ms([r[f"{split}_acc"] for r in runs if r["regime"] == reg])
         for split in ("train", "test") for reg in ("SB", "LB")}
    bs = sorted({r["batch_size"] for r in runs})
    n = {reg: sum(r["regime"] == reg for r in runs) for reg in ("SB", "LB")}
    return [Ours(key=(f"ours: MLP, {_data_name(runs[0]['dir'])}",), seed_key=("F1",), values=v,
                 note=f"SB {bs[0]}, LB {bs[-1]}; {n['SB']}+{n['LB']} runs (sample std)")]


TABLES = {"keskar": keskar}


def lb_generalizes_worse(ctx, tables):
    rows = [o for o in tables.get("keskar", []) if o.values.get("test SB") and o.values.get("test LB")]
    if not rows:
        return judge(None, ctx.get("problem") if ctx else "no SB/LB runs")
    bad = [o for o in rows if not o.values["test LB"][0] < o.values["test SB"][0]]
    return judge(not bad, "; ".join(f"{o.key[0]}: test SB {o.values['test SB'][0]:.2f} vs LB "
                                    f"{o.values['test LB'][0]:.2f}" for o in rows))


def both_fit_training_set(ctx, tables):
    rows = [o for o in tables.get("keskar", []) if o.values.get("train SB") and o.values.get("train LB")]
    if not rows:
        return judge(None, ctx.get("problem") if ctx else "no SB/LB runs")
    low = [f"{o.key[0]} {c} {o.values[c][0]:.2f}" for o in rows for c in ("train SB", "train LB")
           if o.values[c][0] < FIT_AT_LEAST]
    return judge(not low, f"train accuracy ≥ {FIT_AT_LEAST:g} % in every cell" if not low
                 else "below: " + ", ".join(low))


TRENDS = {f.__name__: f for f in (lb_generalizes_worse, both_fit_training_set)}
