"""``lossland interpolate <dir>``: study S's linear interpolation inside phase 1 (seed 003, Fig 3) from the
``connect.json`` files of ``sweeps/sphere_interpolate.sh``.

Each endpoint's sub-phase is measured, not taken from the recipe: *converged* when its final full-pass count of
misclassified training examples is ≤ ``converged_errors`` (default 0, the seed's "zero training errors"; the
seed puts the actual sub-phase boundary near 10–15 examples), else *not converged*. A pair is grouped as
converged, not converged, or mixed. Into ``<dir>/interpolation/`` (or ``--out``): ``interp_<group>.png``
(train loss, train error, test error, GM along α) and ``interpolation.{csv,md}``; the checks state the seed's
claim per group beside ours (:mod:`lossland.studies.sphere.along_path` for "connected").
"""

from __future__ import annotations

import math
from pathlib import Path

from lossland.errors import LosslandError
from lossland.figures import save_figure
from lossland.records import write_table
from lossland.runs import open_run
from lossland.studies.sphere.along_path import MAX_ERR_RISE, MAX_RATIO, load_paths, path_row, plot_along_path
from lossland.studies.sphere.plots import DPI

SEED_CLAIM = {"not converged": "connected", "converged": "not connected"}


def misclassified(run_dir: str) -> float:
    """Final full-pass count of misclassified training examples (``summary.final.train_misclassified``)."""
    v = open_run(run_dir).final.get("train_misclassified")
    return math.nan if v is None else float(v)


def sub_phase(count: float, converged_errors: int = 0) -> str:
    if math.isnan(count):
        return "unknown"
    return "converged" if count <= converged_errors else "not converged"


def interpolation_rows(paths: list[dict], converged_errors: int = 0, max_ratio: float = MAX_RATIO,
                       max_err_rise: float = MAX_ERR_RISE) -> list[dict]:
    rows = []
    for p in paths:
        na, nb = misclassified(p["a"]["dir"]), misclassified(p["b"]["dir"])
        pa, pb = sub_phase(na, converged_errors), sub_phase(nb, converged_errors)
        row = path_row(p, max_ratio, max_err_rise)
        rows.append({"group": pa if pa == pb else "mixed", "elr_a": row["elr_a"], "elr_b": row["elr_b"],
                     "train_wrong_a": na, "train_wrong_b": nb, "peak_ratio": row["peak_ratio"],
                     "gm_peak_ratio": row["gm_peak_ratio"],
                     "train_err_rise": row["train_err_rise"], "test_err_rise": row["test_err_rise"],
                     "gm_a": row["gm_a"], "gm_b": row["gm_b"], "gm_max": row["gm_max"],
                     "connected": row["connected"], "file": p["file"]})
    return sorted(rows, key=lambda r: (r["group"], r["elr_a"], r["elr_b"]))


def write_interpolation(root: str | Path, out: str | Path | None = None, converged_errors: int = 0,
                        max_ratio: float = MAX_RATIO, max_err_rise: float = MAX_ERR_RISE) -> dict:
    """The figures and table of the module doc; returns {markdown, files, checks}."""
    root = Path(root)
    out = Path(out) if out else root / "interpolation"
    paths = load_paths(root)
    if not paths:
        raise LosslandError(f"{root}: no connect.json below it (run sweeps/sphere_interpolate.sh)")
    rows = interpolation_rows(paths, converged_errors, max_ratio, max_err_rise)
    by_file = {p["file"]: p for p in paths}
    files, checks = [], []
    for group in sorted({r["group"] for r in rows}):
        mine = [r for r in rows if r["group"] == group]
        labels = [f"elr {r['elr_a']:.3g} → {r['elr_b']:.3g}" for r in mine]
        fig = plot_along_path([by_file[r["file"]] for r in mine], labels,
                              f"phase 1, {group} models: linear paths (BN recomputed at every point)")
        files.append(save_figure(fig, out / f"interp_{group.replace(' ', '_')}.png", dpi=DPI))
        n = sum(r["connected"] == "yes" for r in mine)
        claim = SEED_CLAIM.get(group)
        holds = n == len(mine) if claim == "connected" else n == 0
        verdict = " — reproduces" if holds else " — does not reproduce"
        checks.append(f"{group}: {n}/{len(mine)} pairs linearly connected (peak ratios ≤ {max_ratio:g}, "
                      f"error rises ≤ {max_err_rise:g} points)"
                      + (f"; seed: {claim}{verdict}" if claim else ""))
    table = [{k: v for k, v in r.items() if k != "file"} for r in rows]
    md = write_table(table, out, "interpolation")
    files += [out / "interpolation.csv", out / "interpolation.md"]
    return {"markdown": md, "files": [str(f) for f in files], "checks": checks}
