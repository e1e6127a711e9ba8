"""Study D (seed 002): the seed states no result numbers; its table here is its setting (the three Dirichlet
priors), and its two conclusions are judged on the findings of the ``lossland nas`` jobs (``summary.findings``,
:func:`lossland.studies.nas.app.findings`), one job per prior and seed (``sweeps/nas.sh``: seeds 0, 1, 2).

The rules (the one place they are stated; docs/nas.md shows their output):

- a verdict needs :data:`MIN_SEEDS` seeds of every prior it reads, else "not measured";
- ``prior_makes_discrete`` reproduces when, in every seed, the strong prior's search is degenerate (every edge's
  final entropy <= ``findings.entropy_tol`` * log K) and its mean edge entropy is below the weak prior's;
- ``stuck_in_stationary_points`` reproduces when, for some prior, a majority of the seeds end with an edge at a
  stationary point of Q in Gamma (``stationary``: the whole dQ/dgamma small, not moving, not at a vertex). An
  edge frozen at a vertex is *saturated*, not stationary: the prior's gradient there stays at
  lambda (1 - alpha) sqrt(K (K - 1)) per edge (the detail reports it), the mixture stops only because softmax
  saturates.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from lossland.paper.adapters import Recipe, recipe_names, sweep_dir
from lossland.paper.compare import Ours, judge

# sweeps/nas.sh: the search (three priors x seeds 0, 1, 2) and its study report into <out>/nas
RECIPES = [Recipe.script("nas")]
MIN_SEEDS = 3
PRIORS = ("weak", "annealed", "strong")


def context(root: Path) -> dict:
    from omegaconf import OmegaConf

    from lossland.studies.nas.report import load_all_jobs

    d = sweep_dir(root, "nas", primary=True, siblings=recipe_names(RECIPES))
    jobs = load_all_jobs(d) if d and d.is_dir() else {}
    for j in jobs.values():
        cfg = Path(j["dir"]) / ".hydra" / "config.yaml"
        c = OmegaConf.load(cfg) if cfg.is_file() else None
        j["prior_cfg"] = OmegaConf.to_container(c.prior) if c is not None else {}
        j["epochs"] = int(c.search.epochs) if c is not None else None
    return {"jobs": jobs, "dir": d}


def _by_prior(ctx) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for (prior, _), j in (ctx or {}).get("jobs", {}).items():
        out.setdefault(prior, []).append(j)
    return out


def _ms(values) -> list:
    """[mean, std over seeds] (std None for one value) of the finite values; None when there are none."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return None
    return [statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else None]


def _pm(values, spec=".3g") -> str:
    from lossland.cells import pm

    m = _ms(values)
    return "—" if m is None else pm(m[0], m[1], spec)


def priors(ctx) -> list[Ours]:
    out = []
    for name, jobs in _by_prior(ctx).items():
        p = jobs[0]["prior_cfg"]
        a = p.get("alpha")
        alpha = (f"({p['alpha_end']:g}; {a:g}), changed every epoch ({p.get('anneal', 'log')} in alpha)"
                 if p.get("alpha_end") is not None else a)
        ent = [j["summary"]["findings"]["final_entropy_mean"] for j in jobs]
        out.append(Ours(key=(name,), values={"alpha": alpha},
                        note=f"edge entropy mean {_pm(ent)} over {len(jobs)} seed(s) "
                             f"(log K {jobs[0]['summary']['findings']['log_k']:.3g})"))
    return out


TABLES = {"priors": priors}


def seeds(ctx) -> list[dict]:
    """One row per prior: mean ± std over the seeds of the job's results and findings."""
    rows = []
    for name, jobs in _by_prior(ctx).items():
        s = [j["summary"] for j in jobs]
        f = [x["findings"] for x in s]
        rows.append({
            "prior": name, "seeds": len(jobs),
            "supernet test acc": _pm([x.get("test_acc") for x in s]),
            "argmax, supernet weights": _pm([x.get("inherited_discrete_test_acc") for x in s]),
            "discrete, from scratch": _pm([x.get("discrete_test_acc") for x in s]),
            "max edge entropy": _pm([x.get("final_entropy_max") for x in f]),
            "mean edge entropy": _pm([x.get("final_entropy_mean") for x in f]),
            "degenerate": f"{sum(bool(x.get('degenerate')) for x in f)}/{len(f)}",
            "stationary edges": _pm([x.get("stationary_edges") for x in f]),
            "saturated edges": _pm([x.get("saturated_edges") for x in f]),
            "data grad late/early": _pm([x.get("ce_grad_ratio") for x in f]),
            "prior grad per edge, late": _pm([x.get("prior_grad_per_edge_last_quarter") for x in f]),
            "final A": _pm([x.get("log_decay") for x in s]),
            "search s": _pm([x.get("search_wall_s") for x in s]),
        })
    return rows


def jobs_table(ctx) -> list[dict]:
    """One row per job (prior, seed): genotype and the counts the verdicts read."""
    rows = []
    for (prior, seed), j in (ctx or {}).get("jobs", {}).items():
        s, f = j["summary"], j["summary"]["findings"]
        g = s.get("genotype") or {}
        rows.append({"prior": prior, "seed": seed, "discrete test acc": s.get("discrete_test_acc"),
                     "max edge entropy": float(f"{f['final_entropy_max']:.3g}"),
                     "stationary": f.get("stationary_edges"), "saturated": f.get("saturated_edges"),
                     "undecided": f.get("undecided_edges"),
                     "genotype (normal / reduce)": " ".join(map(str, g.get("normal", []))) + " / "
                     + " ".join(map(str, g.get("reduce", [])))})
    return rows


def anneal(ctx) -> list[dict]:
    """The prior's weight lambda (1 - alpha) in dQ/dgamma per epoch, as the annealed job ran it (its config),
    beside the log-linear alpha it replaced."""
    from lossland.studies.nas.prior import alpha_schedule, prior_weight

    jobs = [j for (p, _), j in (ctx or {}).get("jobs", {}).items() if p == "annealed"]
    if not jobs or not jobs[0]["epochs"]:
        return []
    p, epochs = jobs[0]["prior_cfg"], jobs[0]["epochs"]
    ours = alpha_schedule(p["alpha"], p["alpha_end"], epochs, p.get("anneal", "log"))
    log = alpha_schedule(p["alpha"], p["alpha_end"], epochs, "log")
    lam = p["strength"]
    return [{"epoch": e, "alpha": float(f"{ours(e):.3g}"), "weight λ(1−α)": round(prior_weight(lam, ours(e)), 4),
             "log-linear α": float(f"{log(e):.3g}"), "its weight": round(prior_weight(lam, log(e)), 4)}
            for e in range(epochs)]


EXTRA = {"seeds": seeds, "jobs": jobs_table, "anneal": anneal}


def figures(ctx, out: Path) -> list[Path]:
    """The study report's figures (lowest seed of each prior) into the paper folder."""
    from lossland.errors import LosslandError
    from lossland.studies.nas.report import report

    d = (ctx or {}).get("dir")
    if not d or not ctx.get("jobs"):
        return []
    try:
        return [Path(p) for p in report(d, out, prefix="nas_") if str(p).endswith(".png")]
    except LosslandError as e:  # records without the report's inputs (it named each on stderr): no figures
        print(f"lossland: paper nas: no figures ({e})")
        return []


def _seed_sets(ctx, names) -> dict[int, dict]:
    by_seed: dict[int, dict] = {}
    for (prior, seed), j in ctx["jobs"].items():
        if prior in names:
            by_seed.setdefault(seed, {})[prior] = j["summary"]["findings"]
    return {s: v for s, v in by_seed.items() if set(v) == set(names)}


def prior_makes_discrete(ctx, tables):
    sets = _seed_sets(ctx or {"jobs": {}}, ("weak", "strong"))
    if len(sets) < MIN_SEEDS:
        return judge(None, f"needs the weak and strong prior jobs of {MIN_SEEDS} seeds; has {len(sets)}")
    ok = [v["strong"]["degenerate"] and v["strong"]["final_entropy_mean"] < v["weak"]["final_entropy_mean"]
          for v in sets.values()]
    return judge(all(ok), f"{sum(ok)}/{len(ok)} seeds: strong degenerate and below weak; mean edge entropy strong "
                 f"{_pm([v['strong']['final_entropy_mean'] for v in sets.values()])}, weak "
                 f"{_pm([v['weak']['final_entropy_mean'] for v in sets.values()])} (log K "
                 f"{next(iter(sets.values()))['weak']['log_k']:.3g})")


def stuck_in_stationary_points(ctx, tables):
    by = _by_prior(ctx)
    if not by or any(len(by.get(p, [])) < MIN_SEEDS for p in by):
        return judge(None, f"needs {MIN_SEEDS} seeds of every prior; has "
                     + (", ".join(f"{p} {len(v)}" for p, v in by.items()) or "no nas jobs"))
    if any(j["summary"]["findings"].get("stationary_edges") is None for v in by.values() for j in v):
        return judge(None, "the jobs' findings have no stationary_edges (records older than the rule)")
    parts, hit = [], False
    for p, jobs in by.items():
        f = [j["summary"]["findings"] for j in jobs]
        with_st = sum(x["stationary_edges"] > 0 for x in f)
        hit |= with_st > len(f) / 2
        parts.append(f"{p}: stationary edges in {with_st}/{len(f)} seeds, saturated at a vertex "
                     f"{_pm([x['saturated_edges'] for x in f], '.2g')} of {len(f[0]['edges'])} edges, prior gradient "
                     f"per edge late {_pm([x['prior_grad_per_edge_last_quarter'] for x in f])} (vertex value "
                     f"{f[0]['vertex_prior_grad']:.3g})")
    return judge(hit, "; ".join(parts))


TRENDS = {f.__name__: f for f in (prior_makes_discrete, stuck_in_stationary_points)}
