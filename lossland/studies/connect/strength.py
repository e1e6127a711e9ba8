"""The prior's strength (seed 001, "более информативное априорное распределение задает более гладкое пространство
параметров": a more informative prior gives a smoother parameter space) and the mean error along the path (the
seed's panels a/b, "advanced methods build curves with a lower mean error").

Strength: ``sweeps/connect_prior.sh`` trains pairs at a few weight-decay coefficients and dropout rates at one
width; the strength of a record is read from its A net's config (``regularizer.coef``, ``model.dropout``), a net
with neither being strength 0 of both kinds. Connectivity is ``test.max_acc_loss`` (the max over t of the
endpoints' mean test accuracy minus the accuracy at t, points), which does not move when a prior only changes the
endpoints' own error. The rule (:func:`smoother_verdict`): a *series* (kind, path, width) decides when at least
``MIN_STRENGTHS`` strengths, 0 among them, have ``MIN_PAIRS`` pairs each; it is *smoother* when the Spearman
correlation of strength and mean max accuracy loss is negative and the strongest prior's mean is below strength
0's. Paths: naive Linear and the best advanced path (the WA / OT path with the lowest mean over the series).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from lossland.cells import pm
from lossland.figures import figure, save_figure
from lossland.studies.connect.seed import METHOD_LABELS

KINDS = ("weight decay", "dropout")
MIN_PAIRS, MIN_STRENGTHS = 3, 3
NAIVE = "linear"
ADVANCED = ("linear+WA", "arc+WA", "linear, ot_exact", "arc, ot_exact")
NAMES = {lab: name for name, lab in METHOD_LABELS.items()}
METRIC = "test.max_acc_loss"


def strengths_of(rec: dict) -> list[tuple[str, float]]:
    """[(kind, strength)] of a record: weight decay → its coefficient, dropout → its rate, neither → strength 0
    of both kinds; both at once → [] (not on this axis)."""
    a = rec.get("a") or {}
    reg = a.get("regularizer") or {}
    coef = float(reg.get("coef") or 0) if str(reg.get("_target_", "")).endswith("WeightDecay") else 0.0
    rate = float((a.get("model") or {}).get("dropout") or 0)
    if coef > 0 and rate > 0:
        return []
    if coef > 0:
        return [("weight decay", coef)]
    if rate > 0:
        return [("dropout", rate)]
    return [(k, 0.0) for k in KINDS]


def _mean_std(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    m = sum(xs) / n
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0)


def strength_rows(records: list[dict], metric: str = METRIC) -> list[dict]:
    """Rows {kind, strength, width, method, n, mean, std} over pairs; method ``endpoints`` is the endpoints'
    mean test error (%), one value per pair."""
    from lossland.studies.connect.study import metric_value

    groups: dict[tuple, list[float]] = defaultdict(list)
    seen = set()
    for rec in records:
        w = rec.get("width")
        if not isinstance(w, int):
            continue
        label = rec.get("method", {}).get("label", "?")
        v = metric_value(rec, metric)
        ends = (metric_value(rec, "test.acc_a"), metric_value(rec, "test.acc_b"))
        pair = (rec.get("a", {}).get("seed"), rec.get("b", {}).get("seed"))
        for kind, s in strengths_of(rec):
            if v is not None:
                groups[(kind, s, w, label)].append(float(v))
            if None not in ends and (kind, s, w, pair) not in seen:
                seen.add((kind, s, w, pair))
                groups[(kind, s, w, "endpoints")].append(100.0 - (ends[0] + ends[1]) / 2)
    rows = []
    for (kind, s, w, label), xs in groups.items():
        m, sd = _mean_std(xs)
        rows.append({"kind": kind, "strength": s, "width": w, "method": label, "n": len(xs), "mean": m, "std": sd})
    rows.sort(key=lambda r: (KINDS.index(r["kind"]), r["width"], r["strength"], r["method"]))
    return rows


def strength_table(rows: list[dict]) -> list[dict]:
    """One row per (prior, strength, width): pairs, the endpoints' test error and each seed path's max accuracy
    loss, ``mean ± std``."""
    cells = {(r["kind"], r["strength"], r["width"], r["method"]): r for r in rows}
    out = []
    for kind, s, w in sorted({k[:3] for k in cells}, key=lambda k: (KINDS.index(k[0]), k[2], k[1])):
        ns = sorted({r["n"] for (k, st, wd, m), r in cells.items() if (k, st, wd) == (kind, s, w)
                     and m != "endpoints"})
        row = {"prior": kind, "strength": f"{s:g}", "width": str(w), "pairs": "/".join(map(str, ns))}
        e = cells.get((kind, s, w, "endpoints"))
        row["endpoint test error (%)"] = pm(e["mean"], e["std"]) if e else "—"
        for name, lab in METHOD_LABELS.items():
            r = cells.get((kind, s, w, lab))
            row[name] = pm(r["mean"], r["std"]) if r else "—"
        out.append(row)
    return out


def series_facts(rows: list[dict]) -> list[dict]:
    """The series of the rule (module doc): {kind, width, method, points: [(strength, mean, n)]}, for Linear and
    the best advanced path of each (kind, width)."""
    by: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["method"] != "endpoints":
            by[(r["kind"], r["width"])][r["method"]].append((r["strength"], r["mean"], r["n"]))
    facts = []
    for (kind, w), methods in sorted(by.items(), key=lambda kv: (KINDS.index(kv[0][0]), kv[0][1])):
        adv = [m for m in ADVANCED if m in methods]
        best = min(adv, key=lambda m: sum(v for _, v, _ in methods[m]) / len(methods[m])) if adv else None
        for m in (NAIVE, best):
            if m in methods:
                facts.append({"kind": kind, "width": w, "method": m, "points": sorted(methods[m])})
    return facts


def _spearman(x, y) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def series_smoother(points: list[tuple], min_pairs: int = MIN_PAIRS,
                    min_strengths: int = MIN_STRENGTHS) -> tuple[bool | None, str]:
    """(smoother?, detail) of one series; None when it cannot decide (too few strengths with enough pairs, or no
    strength 0)."""
    pts = [p for p in points if p[2] >= min_pairs]
    if len(pts) < min_strengths or pts[0][0] != 0:
        return None, f"{len(pts)} strengths with ≥ {min_pairs} pairs" + ("" if pts and pts[0][0] == 0
                                                                        else ", no strength 0")
    rho = _spearman([p[0] for p in pts], [p[1] for p in pts])
    ok = rho < 0 and pts[-1][1] < pts[0][1]
    return ok, f"ρ = {rho:+.2f}, {pts[0][1]:.2f} (0) → {pts[-1][1]:.2f} ({pts[-1][0]:g})"


def smoother_verdict(facts: list[dict], min_pairs: int = MIN_PAIRS) -> tuple[bool | None, str]:
    """The rule (module doc) over :func:`series_facts`: True when more than half of the deciding series are
    smoother, None when none decides."""
    parts, oks = [], []
    for f in facts:
        ok, detail = series_smoother(f["points"], min_pairs)
        name = NAMES.get(f["method"], f["method"])
        parts.append(f"{f['kind']} {name} w={f['width']}: {detail}" + ("" if ok is None else
                                                                       (" (smoother)" if ok else " (not)")))
        if ok is not None:
            oks.append(ok)
    if not oks:
        return None, "not measured: " + ("; ".join(parts) or "no prior-strength runs (sweeps/connect_prior.sh)")
    return 2 * sum(oks) > len(oks), f"{sum(oks)}/{len(oks)} series smoother with strength; " + "; ".join(parts)


def plot_strength(rows: list[dict], out: str | Path) -> Path:
    """Max accuracy loss against the prior's strength, one panel per kind, one line per (path, width); strength 0
    drawn at the left edge of the log axis."""
    fig = figure(10.4, 4.0, layout=None)
    axes = fig.subplots(1, len(KINDS), squeeze=False)[0]
    for ax, kind in zip(axes, KINDS):
        pos = sorted({r["strength"] for r in rows if r["kind"] == kind and r["strength"] > 0})
        zero = pos[0] / 3 if pos else 1e-5
        for i, lab in enumerate(METHOD_LABELS.values()):
            for w in sorted({r["width"] for r in rows if r["kind"] == kind}):
                pts = sorted((r["strength"] or zero, r["mean"], r["std"]) for r in rows
                             if r["kind"] == kind and r["method"] == lab and r["width"] == w)
                if pts:
                    ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                                ms=3, capsize=2, color=f"C{i}", ls="--" if lab in ("linear", "arc") else "-",
                                label=f"{NAMES[lab]} (w={w})")
        ax.set_xscale("log")
        if pos:
            ax.set_xticks([zero, *pos], ["0", *(f"{p:g}" for p in pos)])
            ax.minorticks_off()
        ax.set(title=f"prior: {kind}", xlabel="coefficient" if kind == "weight decay" else "dropout rate",
               ylabel="max test accuracy loss (points)")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out, dpi=120)


# ------------------------------------------------------------------------------- the seed's panels a/b: mean error
PANELS = (("a", "none", "no prior"), ("b", "weight_decay", "Gaussian prior (weight decay)"))


def mean_error(rec: dict, split: str = "test") -> float | None:
    """The mean error along the path, % (100 − the mean accuracy over the path's points)."""
    acc = (rec.get("result") or {}).get(f"{split}_acc")
    return None if not acc else 100.0 - sum(acc) / len(acc)


def mean_error_rows(records: list[dict]) -> list[dict]:
    """Rows {prior, method, width, n, mean, std} of :func:`mean_error` over pairs (the seed's six paths)."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for rec in records:
        lab, w, v = rec.get("method", {}).get("label"), rec.get("width"), mean_error(rec)
        if lab in NAMES and isinstance(w, int) and v is not None:
            groups[(rec.get("prior", "?"), lab, w)].append(v)
    return [{"prior": p, "method": m, "width": w, "n": len(xs), **dict(zip(("mean", "std"), _mean_std(xs)))}
            for (p, m, w), xs in sorted(groups.items(), key=lambda kv: (kv[0][0], list(NAMES).index(kv[0][1]),
                                                                         kv[0][2]))]


def mean_error_table(rows: list[dict], prior: str) -> list[dict]:
    """Methods × widths of one prior, ``mean ± std`` of the mean test error along the path (%)."""
    cells = {(r["method"], r["width"]): r for r in rows if r["prior"] == prior}
    widths = sorted({w for _, w in cells})
    out = []
    for name, lab in METHOD_LABELS.items():
        if any((lab, w) in cells for w in widths):
            out.append({"method": name, **{str(w): pm(cells[(lab, w)]["mean"], cells[(lab, w)]["std"])
                                           if (lab, w) in cells else "—" for w in widths}})
    return out


def advanced_lower_facts(rows: list[dict]) -> list[dict]:
    """One fact per (panel prior, advanced path, width) with both naive paths: {prior, method, width, value,
    linear, arc}."""
    cells = {(r["prior"], r["method"], r["width"]): r["mean"] for r in rows}
    out = []
    for _, prior, _ in PANELS:
        for (p, m, w), v in sorted(cells.items(), key=lambda kv: (kv[0][2], kv[0][1])):
            if p == prior and m in ADVANCED and (p, "linear", w) in cells and (p, "arc", w) in cells:
                out.append({"prior": p, "method": m, "width": w, "value": v, "linear": cells[(p, "linear", w)],
                            "arc": cells[(p, "arc", w)]})
    return out


def advanced_lower_verdict(facts: list[dict]) -> tuple[bool | None, str]:
    """True when every WA / OT path's mean error along the path is below both Linear's and Arc's at every width
    of both panels' priors; None without such cells."""
    if not facts:
        return None, "no width with WA / OT and both naive paths for no prior or weight decay"
    bad = [f"{f['prior']} {NAMES[f['method']]}@{f['width']}: {f['value']:.2f} vs Linear {f['linear']:.2f}, "
           f"Arc {f['arc']:.2f}" for f in facts if not f["value"] < min(f["linear"], f["arc"])]
    priors = sorted({f["prior"] for f in facts})
    return not bad, (f"{len(facts) - len(bad)}/{len(facts)} (prior, path, width) cells below Linear and Arc "
                     f"({', '.join(priors)})" + (f"; fails: {'; '.join(bad[:6])}" if bad else ""))


def plot_mean_error(rows: list[dict], out: str | Path) -> Path:
    """The seed's panels a (no prior) and b (Gaussian prior): mean test error along the path against width, one
    line per path (error bars: std over pairs)."""
    fig = figure(10.4, 4.0, layout=None)
    axes = fig.subplots(1, len(PANELS), squeeze=False, sharey=True)[0]
    for ax, (letter, prior, title) in zip(axes, PANELS):
        for i, (name, lab) in enumerate(METHOD_LABELS.items()):
            pts = sorted((r["width"], r["mean"], r["std"]) for r in rows if r["prior"] == prior
                         and r["method"] == lab)
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", ms=3,
                            capsize=2, color=f"C{i}", ls="--" if lab in ("linear", "arc") else "-", label=name)
        ax.set_xscale("log")
        ax.set(title=f"({letter}) {title}", xlabel="hidden width")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean test error along the path (%)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out, dpi=120)
