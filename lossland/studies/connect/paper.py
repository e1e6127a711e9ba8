"""Study C (seed 001): the seed's "Max accuracy loss" tables (methods × widths) for no prior and dropout 0.5 —
the maximum test error along the path in % (``test.max_err``, see :mod:`lossland.studies.connect.seed`) — from the
``connect.json`` files of ``sweeps/connect_width.sh`` (:func:`lossland.studies.connect.study.width_table`).

Our method labels map onto the seed's names: ``linear`` → Linear, ``arc`` → Arc, ``linear+WA`` → Linear+WA,
``arc+WA`` → Arc+WA, ``<path>, ot_<variant>`` → <Path>+OT (the variant in the note); weight matching
(``<path>, weight``) is lossland's extra (rows <Path>+WM, beside no seed row). Our cell: the mean over pairs
(the note: std and number of pairs).

Beyond the seed's tables (:mod:`lossland.studies.connect.strength`): the seed's panels a/b (mean test error along
the path against width, no prior and weight decay; tables ``mean_err_none`` / ``mean_err_weight_decay``, trend
``advanced_lower_mean_error``) from the same records, and the prior-strength sweep of ``sweeps/connect_prior.sh``
(table ``prior_strength``, trend ``stronger_prior_smoother``). Both trends read the records (``RECORD_TRENDS``).
"""

from __future__ import annotations

from pathlib import Path

from lossland.errors import LosslandError
from lossland.paper.adapters import Recipe, by_key, recipe_names, sweep_dir
from lossland.paper.compare import Ours, judge

RECIPES = [Recipe.script("connect_width"), Recipe.script("connect_prior")]  # connect_prior: the prior's strength
METRIC = "test.max_err"  # the seed's "Max accuracy loss": the maximum test error along the path, %
PRIORS = {"no_prior": "none", "dropout": "dropout"}  # seed table -> lossland's prior
PATHS = {"linear": "Linear", "arc": "Arc", "linear+WA": "Linear+WA", "arc+WA": "Arc+WA"}
NAIVE = ("Linear", "Arc")
ADVANCED = ("Linear+WA", "Arc+WA", "Linear+OT", "Arc+OT")


def seed_method(label: str) -> tuple[str, str]:
    """(seed-style method name, note) of a connect.json method label."""
    path, _, align = label.partition(", ")
    name = PATHS.get(path, path)
    if not align:
        return name, ""
    if align.startswith("ot"):
        return f"{name}+OT", align
    return f"{name}+{'WM' if align == 'weight' else align}", ""


def context(root: Path) -> dict:
    from lossland.studies.connect.study import read_connect_records, width_table

    d = sweep_dir(root, "connect_width", primary=True, siblings=recipe_names(RECIPES))
    try:
        records = read_connect_records(d)
    except LosslandError:  # no folder: every table is "not measured"
        records = []
    strength_records = []
    sd = sweep_dir(root, "connect_prior")
    if sd is not None:
        try:
            strength_records = read_connect_records(sd)
        except LosslandError:
            pass
    return {"rows": width_table(records, metric=METRIC) if records else [], "records": records,
            "strength_records": strength_records}


def _strength_rows(ctx) -> list[dict]:
    from lossland.studies.connect.strength import strength_rows

    if ctx is None or "strength_records" not in ctx:
        return []
    return ctx.setdefault("_strength_rows", strength_rows(ctx["strength_records"]))


def _mean_error_rows(ctx) -> list[dict]:
    from lossland.studies.connect.strength import mean_error_rows

    if ctx is None or "records" not in ctx:
        return []
    return ctx.setdefault("_mean_error_rows", mean_error_rows(ctx["records"]))


def _table(prior: str):
    def rows_of(ctx) -> list[Ours]:
        cells: dict[tuple, Ours] = {}
        for r in sorted(ctx["rows"], key=lambda r: r["method"]):
            if r["prior"] != prior or not isinstance(r["width"], int):
                continue
            name, note = seed_method(r["method"])
            key = (name,) if not note else (f"{name} ({note})",)
            o = cells.setdefault(key, Ours(key=key, values={}, seed_key=(name,), note=note))
            o.values[r["width"]] = r["mean"]
            o.note = (note + " " if note else "") + f"pairs: {r['n']}"
        return list(cells.values())
    return rows_of


TABLES = {tid: _table(prior) for tid, prior in PRIORS.items()}


def advanced_beat_naive(ctx, tables):
    bad, n = [], 0
    for tid, rows in tables.items():
        t = by_key(rows)
        for m in ADVANCED:
            for w, v in t.get((m,), {}).items():
                base = t.get(("Linear",), {}).get(w)
                if base is None or v is None:
                    continue
                n += 1
                if not v < base:
                    bad.append(f"{tid} {m}@{w}: {v:.2f} ≥ {base:.2f}")
    return judge(None if n == 0 else not bad, f"{n - len(bad)}/{n} (method, width) cells below Linear"
                 + (f"; fails: {', '.join(bad[:6])}" if bad else ""))


def ot_beats_linear_small_width(ctx, tables):
    parts, ok = [], []
    for tid, rows in tables.items():
        t = by_key(rows)
        ot, lin = t.get(("Linear+OT",), {}), t.get(("Linear",), {})
        common = sorted(set(ot) & set(lin))
        if not common:
            continue
        w = common[0]
        ok.append(ot[w] < lin[w])
        parts.append(f"{tid} width {w}: Linear+OT {ot[w]:.2f} vs Linear {lin[w]:.2f}")
    return judge(all(ok) if ok else None, "; ".join(parts) or "no width with both Linear+OT and Linear "
                 "(OT paths: the connect recipe's align=ot_*)")


def wider_more_connected(ctx, tables):
    parts, ok = [], []
    for tid, rows in tables.items():
        t = by_key(rows)
        for m in NAIVE:
            vals = t.get((m,), {})
            ws = sorted(w for w, v in vals.items() if v is not None)
            if len(ws) < 2:
                continue
            ok.append(vals[ws[-1]] < vals[ws[0]])
            parts.append(f"{tid} {m}: {vals[ws[0]]:.2f} (w={ws[0]}) → {vals[ws[-1]]:.2f} (w={ws[-1]})")
    return judge(all(ok) if ok else None, "; ".join(parts) or "fewer than two widths")


def prior_more_connected(ctx, tables):
    a, b = by_key(tables.get("no_prior", [])), by_key(tables.get("dropout", []))
    wins, n = 0, 0
    for m in NAIVE:
        for w in set(a.get((m,), {})) & set(b.get((m,), {})):
            n += 1
            wins += b[(m,)][w] < a[(m,)][w]
    return judge(None if n == 0 else wins > n / 2,
                 f"dropout below no prior in {wins}/{n} (Linear/Arc, width) cells" if n else
                 "needs both priors at a common width")


def stronger_prior_smoother(ctx, tables):
    """sweeps/connect_prior.sh: :func:`~lossland.studies.connect.strength.smoother_verdict`."""
    from lossland.studies.connect.strength import series_facts, smoother_verdict

    return judge(*smoother_verdict(series_facts(_strength_rows(ctx))))


def advanced_lower_mean_error(ctx, tables):
    """The seed's panels a/b: :func:`lossland.studies.connect.strength.advanced_lower_verdict`."""
    from lossland.studies.connect.strength import advanced_lower_facts, advanced_lower_verdict

    return judge(*advanced_lower_verdict(advanced_lower_facts(_mean_error_rows(ctx))))


TRENDS = {f.__name__: f for f in (advanced_beat_naive, ot_beats_linear_small_width, wider_more_connected,
                                  prior_more_connected, advanced_lower_mean_error, stronger_prior_smoother)}
RECORD_TRENDS = ("advanced_lower_mean_error", "stronger_prior_smoother")  # read the records, not the seed tables


def _max_err_table(prior: str):
    def table(ctx) -> list[dict]:
        """Methods × widths of one prior, ``ours mean ± std [seed]`` (``lossland connect-table``'s seed_table.md)."""
        from lossland.studies.connect.study import seed_table_rows

        return seed_table_rows(ctx["rows"]).get(prior, ("", []))[1] if ctx["rows"] else []
    return table


def checks(ctx) -> list[dict]:
    """``lossland connect-table``'s check lines (descriptive counts; the verdicts are :data:`TRENDS`)."""
    from lossland.studies.connect.priors import peak_rows
    from lossland.studies.connect.study import all_checks, width_table

    if not ctx["records"]:
        return []
    return [{"check": line} for line in all_checks(width_table(ctx["records"]), ctx["rows"], peak_rows(ctx["records"]))]


def _mean_err_table(prior: str):
    def table(ctx) -> list[dict]:
        """The seed's panel a / b as numbers: mean test error along the path (%), methods × widths."""
        from lossland.studies.connect.strength import mean_error_table

        return mean_error_table(_mean_error_rows(ctx), prior)
    return table


def prior_strength(ctx) -> list[dict]:
    """Max test accuracy loss (points) against the prior's strength, per seed path (sweeps/connect_prior.sh)."""
    from lossland.studies.connect.strength import strength_table

    return strength_table(_strength_rows(ctx))


EXTRA = {**{f"max_err_{p}": _max_err_table(p) for p in ("none", "weight_decay", "dropout")}, "checks": checks,
         "mean_err_none": _mean_err_table("none"), "mean_err_weight_decay": _mean_err_table("weight_decay"),
         "prior_strength": prior_strength}


def figures(ctx, out: Path) -> list[Path]:
    """The max test error against width, the priors on normalized errors (the seed's panels c–h), the mean error
    along the path (panels a/b) and the max accuracy loss against the prior's strength."""
    from lossland.studies.connect.priors import peak_rows, plot_priors
    from lossland.studies.connect.strength import plot_mean_error, plot_strength
    from lossland.studies.connect.study import plot_width

    files = []
    if ctx["rows"]:
        files.append(plot_width(ctx["rows"], out / "width_plot.png", METRIC))
        if peak_rows(ctx["records"]):
            files.append(plot_priors(ctx["records"], out / "priors.png"))
    if _mean_error_rows(ctx):
        files.append(plot_mean_error(_mean_error_rows(ctx), out / "mean_error.png"))
    if _strength_rows(ctx):
        files.append(plot_strength(_strength_rows(ctx), out / "prior_strength.png"))
    return files
