"""``lossland paper <study> [--from DIR] [--out DIR] [--recipes a,b] [--scale S] [--data-root DIR] [--plan]
[--rehearse] [--jobs N] [overrides ...]``: run the study's recipes (or read a sweep that exists), then print and
write each seed table beside ours, the figures, and the trend verdicts.

Without ``--from`` the recipes run one after another (``--jobs N``: N at once, one thread each) from the
repository root, each into ``<out>/<recipe>`` (``OUT`` set for it; ``SCALE`` (``--scale``), ``DATA_ROOT``
(``--data-root``), ``STEPS``, ... pass through from the environment; ``overrides`` go to each recipe's
``train.py`` calls), with their output in ``<out>/logs/<recipe>.log``; the comparison is then read from ``<out>``.
Everything is written into ``<out>/paper/<study>`` (``--from DIR``: ``DIR/paper/<study>`` unless ``--out``; one
folder per study, so that two studies compared from one directory never overwrite each other):
``<table>.{csv,md,png}``, ``trends.{csv,md}``, the study's own tables (``EXTRA``) and figures, ``index.md`` and
``paper.json``.

``--scale full --plan`` runs nothing: it lists every full-scale job with its cost (:mod:`lossland.paper.plan`) and
writes ``plan.json``; ``--scale full --rehearse`` runs every full-scale recipe for one step per experiment on the
CPU (:mod:`lossland.paper.rehearsal`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lossland.errors import LosslandError
from lossland.paper import compare, data, rehearsal
from lossland.records import atomic_write, write_json, write_table
from lossland.studies.connect import paper as connect_paper
from lossland.studies.exp_neuron import paper as exp_neuron_paper
from lossland.studies.nas import paper as nas_paper
from lossland.studies.optim import paper as optim_paper
from lossland.studies.sphere import paper as sphere_paper

ADAPTERS = {"sphere": sphere_paper, "connect": connect_paper, "exp_neuron": exp_neuron_paper, "nas": nas_paper,
            "optim": optim_paper}


def adapter(study: str):
    """The study's ``paper`` module (lossland/studies/<study>/paper.py)."""
    return ADAPTERS[study]


def settings(study: str):
    """The study's full-scale settings (lossland/studies/<study>/settings.yaml)."""
    from lossland.paper import settings as S

    return S.load(adapter(study).__package__)


def all_experiments() -> list:
    """Every study's full-scale experiments."""
    return [e for study in ADAPTERS for e in settings(study).experiments.values()]


def repo_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "sweeps").is_dir() or not (root / "train.py").is_file():
        raise LosslandError(f"running the recipes needs the lossland repository (sweeps/, train.py); {root} has "
                            "none: use --from <sweep dir>")
    return root


def run_recipes(study: str, out: Path, only: list[str] | None = None, echo=print, extra: list[str] | tuple = (),
                env: dict | None = None, rehearse: bool = False, jobs: int = 1) -> list[str]:
    """Run the study's recipes into ``<out>/<recipe>``; returns their names. ``extra``: arguments every recipe
    passes to its ``train.py`` calls; ``env``: more environment; ``rehearse``: each recipe's rehearsal arguments
    (:func:`lossland.paper.rehearsal.arguments`) too; ``jobs``: recipes run at once (each trains its own runs, so
    they are independent; with more than one, each process gets one thread unless ``OMP_NUM_THREADS`` is set,
    since processes with torch's default threads slow each other several-fold). A failing recipe stops the rest
    from starting, and the command with one line naming its log."""
    recipes = adapter(study).RECIPES
    names = [r.name for r in recipes]
    if jobs < 1:
        raise LosslandError(f"--jobs {jobs}: at least 1")
    if only:
        bad = [n for n in only if n not in names]
        if bad:
            raise LosslandError(f"--recipes {','.join(bad)}: not a recipe of {study}; valid: {', '.join(names)}")
        recipes = [r for r in recipes if r.name in only]
    else:
        recipes = [r for r in recipes if not r.optional]
    embedded = (env or {}).get("SCALE", os.environ.get("SCALE", "embedded")) == "embedded" and not rehearse
    threads = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} if jobs > 1 else {}
    root, py, failed = repo_root(), sys.executable, []
    lock = threading.Lock()

    def say(line: str) -> None:  # one whole line at a time from concurrent recipes
        with lock:
            echo(line)

    def one(r) -> None:
        if failed:  # a recipe failed: start no more
            return
        dest = (out / r.name).resolve()
        log = (out / "logs" / f"{r.name}.log").resolve()
        log.parent.mkdir(parents=True, exist_ok=True)
        more, more_env = rehearsal.arguments(r.name) if rehearse else ([], {})
        argv = [a.replace("{py}", py).replace("{out}", str(dest)) for a in r.argv] + more + list(extra)
        knobs = dict(r.embedded) if embedded else {}
        renv = {**threads, **knobs, **os.environ, **(env or {}), **more_env, "OUT": str(dest), "PY": py,
                "PYTHON": py, "LOSSLAND": f"{py} -m lossland.cli"}
        shown = " ".join(f"{k}='{renv[k]}'" for k in [*knobs, *more_env])
        say(f"paper {study}: {shown + ' ' if shown else ''}{' '.join(argv)} (OUT={dest}, "
             f"SCALE={renv.get('SCALE', 'embedded')}) → {log}")
        t0 = time.time()
        with open(log, "w") as f:
            rc = subprocess.call(argv, cwd=root, env=renv, stdout=f, stderr=subprocess.STDOUT)
        if rc != 0:
            failed.append(f"recipe {r.name} failed (exit {rc}); see {log}")
        else:
            say(f"paper {study}: {r.name} done in {time.time() - t0:.0f} s")

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, recipes))
    if failed:
        raise LosslandError(failed[0])
    return [r.name for r in recipes]


def compare_study(study: str, root: str | Path) -> dict:
    """The seed, our rows per table and the verdicts per trend (nothing written)."""
    mod = adapter(study)
    seed = data.load(mod.__package__)
    missing = [t for t in seed.tables if t not in mod.TABLES] + [t.id for t in seed.trends if t.id not in mod.TRENDS]
    if missing:
        raise LosslandError(f"paper {study}: no adapter function for {', '.join(missing)} "
                            f"(lossland/paper/adapters/{study}.py)")
    root = Path(root)
    if not root.is_dir():
        raise LosslandError(f"--from {root}: no such directory")
    if not any(p.is_file() for p in root.rglob("*") if p.relative_to(root).parts[0] != "paper"):
        raise LosslandError(f"--from {root}: no records there (an empty directory); run the recipes first "
                            f"(`lossland paper {study}`) or name the sweep that holds them")
    ctx = mod.context(root)
    ours = {tid: mod.TABLES[tid](ctx) for tid in seed.tables}
    verdicts = [compare.Verdict(t.id, *mod.TRENDS[t.id](ctx, ours), claim=t.claim) for t in seed.trends]
    if verdicts and all(v.verdict == compare.NOT_MEASURED for v in verdicts) \
            and not any(v is not None for rows in ours.values() for o in rows for v in o.values.values()):
        raise LosslandError(f"--from {root}: none of the {study} study's records there (every table empty, every "
                            f"trend not measured); is it the sweep of another study?")
    return {"seed": seed, "ctx": ctx, "ours": ours, "verdicts": verdicts, "module": mod}


def _print(seed: data.Seed, sides: dict[str, list[dict]], verdicts) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=200)
    con.print(f"[bold]{seed.title}[/bold] — seed {seed.seed}")
    for tid, rows in sides.items():
        t = seed.tables[tid]
        table = Table(title=f"{t.title} [{t.unit}]", title_justify="left")
        cols = [c for c in rows[0] if any(r[c] for r in rows)]
        for c in cols:
            table.add_column(c, style="cyan" if c.endswith("(seed)") else "green" if c.endswith("(ours)") else None)
        for r in rows:
            table.add_row(*(r[c] for c in cols))
        con.print(table)
    style = {compare.REPRODUCES: "green", compare.FAILS: "red", compare.NOT_MEASURED: "yellow"}
    table = Table(title="claimed trends at this scale", title_justify="left")
    for c in ("trend", "verdict", "claim", "detail"):
        table.add_column(c, overflow="fold")
    for v in verdicts:
        table.add_row(v.trend, f"[{style[v.verdict]}]{v.verdict}[/]", v.claim, v.detail)
    con.print(table)


def write_paper(study: str, root: str | Path, out: str | Path | None = None, quiet: bool = False) -> dict:
    """Compare the records under ``root`` with the seed of ``study``; write everything into ``out``
    (default ``<root>/paper``). Returns {tables: {id: side-by-side rows}, verdicts, files}."""
    res = compare_study(study, root)
    seed, ours, verdicts = res["seed"], res["ours"], res["verdicts"]
    out = Path(out) if out is not None else Path(root) / "paper" / study  # one folder per study: never shared
    files, sides, parts = [], {}, [f"# {seed.title}: the seed beside ours\n",
                                   f"Seed: `shared/seeds/{seed.seed}`; records: `{root}`.\n"]
    for tid, t in seed.tables.items():
        rows = compare.side_by_side(t, ours[tid])
        sides[tid] = rows
        md = compare.header(t) + write_table(rows, out, tid)
        files += [out / f"{tid}.csv", atomic_write(out / f"{tid}.md", md)]
        parts.append(f"## {tid}\n\n{md}")
        png = compare.save_table_figure(t, ours[tid], out)
        if png is not None:
            files.append(png)
            parts.append(f"![{tid}]({png.name})\n")
    tables_extra = {}
    for name, f in getattr(res["module"], "EXTRA", {}).items():  # the study's own result tables (no seed side)
        rows = f(res["ctx"])
        if rows:
            tables_extra[name] = rows
            files += [out / f"{name}.csv", out / f"{name}.md"]
            parts.append(f"## {name}\n\n{write_table(rows, out, name)}")
    extra = res["module"].figures(res["ctx"], out) if hasattr(res["module"], "figures") else []
    files += extra
    parts += [f"![{p.stem}]({p.name})\n" for p in extra]
    trows = [{"trend": v.trend, "verdict": v.verdict, "claim": v.claim, "detail": v.detail} for v in verdicts]
    tmd = write_table(trows, out, "trends")
    files += [out / "trends.csv", out / "trends.md"]
    parts.append("## Claimed trends at this scale\n\n" + tmd)
    files.append(atomic_write(out / "index.md", "\n".join(parts)))
    files.append(write_json(out / "paper.json", {
        "study": study, "seed": seed.seed, "root": str(root), "tables": sides, "verdicts": trows,
        "extra": tables_extra,
        "facts": res["module"].facts(res["ctx"]) if hasattr(res["module"], "facts") else {},
        "ours": {tid: [{"key": list(o.key), "seed_key": list(o.seed_key) if o.seed_key else None,
                        "values": {str(k): v for k, v in o.values.items()}, "note": o.note} for o in rows]
                 for tid, rows in ours.items()}}))
    if not quiet:
        _print(seed, sides, verdicts)
    return {"tables": sides, "verdicts": verdicts, "files": [str(f) for f in files], "out": out}


def write_plan(study: str, data_root: str, out: str | Path | None = None, quiet: bool = False) -> Path:
    """The study's full-scale plan (every job, its cost), printed and written to ``out`` (a ``.json`` file or a
    folder; default ``multirun/paper/<study>/plan.json``); nothing runs."""
    from lossland.paper.plan import plan_study, print_plan

    plan = plan_study(settings(study), data_root, supernet=_supernet if study == "nas" else None)
    out = Path(out) if out else Path("multirun") / "paper" / study / "plan.json"
    if out.suffix != ".json":
        out = out / "plan.json"
    write_json(out, plan)
    if not quiet:
        print_plan(plan)
    return out


def _supernet(cfg, input_shape, classes):
    """Study D's search model for the plan's FLOP count (its code lives above lossland.paper)."""
    from lossland.studies.nas.supernet import Supernet

    n = cfg.nas
    return Supernet(input_shape, classes, list(n.ops), n.channels, n.cells, n.nodes,
                    None if n.reductions is None else list(n.reductions), n.stem_multiplier, n.gamma_init)


def paper_command(args) -> None:
    """The ``lossland paper`` CLI command (lossland/cli.py)."""
    only = [s for s in (args.recipes or "").split(",") if s] or None
    scale = getattr(args, "scale", None)
    data_root = getattr(args, "data_root", None) or os.environ.get("DATA_ROOT")
    overrides = list(getattr(args, "overrides", None) or [])
    plan, rehearse = getattr(args, "plan", False), getattr(args, "rehearse", False)
    if (plan or rehearse) and scale != "full":
        raise LosslandError(f"{'--plan' if plan else '--rehearse'} is about the paper's scale: add --scale full")
    if plan and (rehearse or args.from_dir or overrides):
        raise LosslandError("--plan runs nothing: it takes no --rehearse, --from or overrides")
    if plan:
        print(write_plan(args.study, data_root or "$DATA_ROOT", args.out))
        return
    if args.from_dir and (scale or rehearse or overrides):
        raise LosslandError("--from reads a sweep that exists: --scale, --rehearse and overrides run recipes")
    env = {}
    if scale:
        env["SCALE"] = scale
    if (scale or os.environ.get("SCALE")) == "full":
        if not data_root:
            raise LosslandError("--scale full needs --data-root DIR (or DATA_ROOT): the folder with "
                                "cifar-10-batches-py/ and/or the MNIST IDX files")
        if not Path(data_root).expanduser().is_dir():
            raise LosslandError(f"--data-root {data_root}: no such directory")
    if data_root:
        env["DATA_ROOT"] = str(Path(data_root).expanduser())
    if args.from_dir:
        root = Path(args.from_dir)
    else:
        stamp = time.strftime("%Y-%m-%d/%H-%M-%S")
        root = Path(args.out or f"multirun/paper/{args.study}/{stamp}")
        t0 = time.time()
        run_recipes(args.study, root, only, extra=overrides, env=env, rehearse=rehearse,
                    jobs=getattr(args, "jobs", 1) or 1)
        if rehearse:
            print(f"paper {args.study}: rehearsal of the full-scale recipes took {time.time() - t0:.0f} s")
    result = write_paper(args.study, root, args.out if args.from_dir else None)
    for f in result["files"]:
        print(f)


def paper_docs_command(args) -> None:
    """``lossland paper-docs [--check] [FILE ...]``: the result blocks from results/<study>/paper.json."""
    from lossland.paper.docs import sync

    stale = sync(args.files, check=args.check)
    for s in stale:
        print(("stale: " if args.check else "rewrote: ") + s)
    if args.check and stale:
        raise SystemExit(1)
