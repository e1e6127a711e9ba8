"""Study D (seed 002): the seed states no result numbers; its table here is its setting (the three Dirichlet
priors), and its two conclusions are checked on the findings of the ``lossland nas`` jobs
(:func:`lossland.studies.nas.report.load_jobs`: ``summary.findings``, docs/nas.md)."""

from __future__ import annotations

from pathlib import Path

from lossland.paper.adapters import Recipe, recipe_names, sweep_dir
from lossland.paper.compare import Ours, judge

# sweeps/nas.sh: the search (three priors) and its study report (figures, findings) into <out>/nas
RECIPES = [Recipe.script("nas")]


def context(root: Path) -> dict:
    from omegaconf import OmegaConf

    from lossland.studies.nas.report import load_jobs

    d = sweep_dir(root, "nas", primary=True, siblings=recipe_names(RECIPES))
    jobs = load_jobs(d) if d and d.is_dir() else {}
    for j in jobs.values():
        cfg = Path(j["dir"]) / ".hydra" / "config.yaml"
        j["prior_cfg"] = OmegaConf.to_container(OmegaConf.load(cfg).prior) if cfg.is_file() else {}
    return {"jobs": jobs}


def priors(ctx) -> list[Ours]:
    out = []
    for name, j in ctx["jobs"].items():
        p = j["prior_cfg"]
        a = p.get("alpha")
        alpha = f"({p['alpha_end']:g}; {a:g}), changed every epoch" if p.get("alpha_end") is not None else a
        f = j["summary"]["findings"]
        out.append(Ours(key=(name,), values={"alpha": alpha},
                        note=f"edge entropy mean {f['final_entropy_mean']:.3g} (log K {f['log_k']:.3g})"))
    return out


TABLES = {"priors": priors}


def prior_makes_discrete(ctx, tables):
    jobs = ctx["jobs"] if ctx else {}
    if "weak" not in jobs or "strong" not in jobs:
        return judge(None, "needs the weak and strong prior jobs")
    f = {k: jobs[k]["summary"]["findings"] for k in ("weak", "strong")}
    ok = f["strong"]["degenerate"] and f["strong"]["final_entropy_mean"] < f["weak"]["final_entropy_mean"]
    return judge(bool(ok), f"strong: degenerate {f['strong']['degenerate']}, mean edge entropy "
                 f"{f['strong']['final_entropy_mean']:.3g}; weak: {f['weak']['final_entropy_mean']:.3g}")


def stuck_in_stationary_points(ctx, tables):
    jobs = ctx["jobs"] if ctx else {}
    if not jobs:
        return judge(None, "no nas jobs")
    stuck = {k: j["summary"]["findings"].get("stalled_undecided_edges") for k, j in jobs.items()}
    if all(v is None for v in stuck.values()):
        return judge(None, "the jobs' findings have no stalled_undecided_edges")
    return judge(any(v for v in stuck.values()), "edges stalled while undecided (not one-hot): "
                 + ", ".join(f"{k} {v}" for k, v in stuck.items()))


TRENDS = {f.__name__: f for f in (prior_makes_discrete, stuck_in_stationary_points)}
