"""The study report of a ``lossland nas`` sweep: ``lossland nas-report <sweep dir> [--out DIR] [--prefix P]``.

Reads every job directory with a nas ``summary.json`` and writes, into ``--out`` (default: the sweep directory):
``<P>dynamics_<prior>.png`` (softmax(gamma) of every edge over training, one figure per prior),
``<P>entropy.png`` (every edge's entropy, one panel per prior), ``<P>robustness_{weights,inputs}.png`` (accuracy
under noise, one curve per prior, supernet and discrete panels) — of each prior's lowest seed — and
``<P>findings.{csv,md}`` (one row per job: prior and seed); prints the table. Records may come from someone
else: a job's prior is used in file names only in a safe form (no path separators, no leading dot), and a job
whose records cannot be read is skipped and named on stderr.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from lossland.errors import LosslandError
from lossland.records import SUMMARY_JSON, write_table
from lossland.untrusted import file_stem, printable

__all__ = ["report", "load_jobs"]

ORDER = ["weak", "annealed", "strong"]


def _history(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = []
        for r in csv.DictReader(f):
            rows.append({k: float(v) for k, v in r.items() if v not in ("", None)})
    return rows


def load_jobs(sweep: Path, problems: list[str] | None = None) -> dict[str, dict]:
    """The finished nas jobs of ``sweep`` by prior (a file-name-safe form of the summary's ``prior``: records may
    come from someone else, and the prior names output files), the lowest seed's job where a prior has several
    (:func:`load_all_jobs` has every seed). A job whose records cannot be read is left out and described in
    ``problems``."""
    jobs: dict[str, dict] = {}
    for (prior, _), job in load_all_jobs(sweep, problems).items():
        jobs.setdefault(prior, job)
    return jobs


def load_all_jobs(sweep: Path, problems: list[str] | None = None) -> dict[tuple[str, int], dict]:
    """The finished nas jobs of ``sweep`` by (prior, seed), priors in :data:`ORDER`, seeds ascending."""
    jobs = {}
    for s in sorted(Path(sweep).glob(f"*/{SUMMARY_JSON}")):
        d = s.parent
        try:
            summary = json.loads(s.read_text())
            if not isinstance(summary, dict) or summary.get("app") != "nas" or summary.get("status") != "ok":
                continue
            prior = file_stem(summary.get("prior"), fallback="prior")
            job = {"dir": d, "summary": summary, "history": _history(d / "metrics.csv"),
                   "robustness": json.loads((d / "robustness.json").read_text())}
        except (OSError, ValueError, TypeError, AttributeError) as e:
            if problems is not None:
                problems.append(f"{d}: unreadable nas records ({type(e).__name__}: {e})")
            continue
        seed = summary.get("seed")
        jobs[(prior, int(seed) if isinstance(seed, (int, float)) else 0)] = job
    return dict(sorted(jobs.items(), key=lambda kv: (ORDER.index(kv[0][0]) if kv[0][0] in ORDER else 99, kv[0][1])))


def _row(prior: str, j: dict) -> dict:
    from lossland.studies.nas.search import face_dwell

    s, f = j["summary"], j["summary"]["findings"]
    rob = j["robustness"]
    dwell = face_dwell(j["history"])
    return {"prior": prior, "search_s": s["search_wall_s"], "job_s": s["wall_s"],
            "supernet_test_acc": s["test_acc"], "inherited_argmax_acc": s["inherited_discrete_test_acc"],
            "discrete_test_acc": s["discrete_test_acc"], "edge_entropy_max": f["final_entropy_max"],
            "edge_entropy_mean": f["final_entropy_mean"], "log_K": f["log_k"], "degenerate": f["degenerate"],
            "ce_grad_ratio_late_early": f["ce_grad_ratio"],
            "prior_grad_late": f["prior_grad_norm_last_quarter"],
            "mix_move_last_quarter": f["mix_move_last_quarter"],
            "stalled": f["stalled"], "face_centre_share": dwell["share"],
            "face_centre_by_m": " ".join(f"{m}:{v:.2f}" for m, v in dwell["by_m"].items()),
            "undecided_edges": f.get("undecided_edges"),
            "stalled_edges": f.get("stalled_edges"),
            "stalled_undecided_edges": f.get("stalled_undecided_edges"),
            "stationary_edges": f.get("stationary_edges"), "saturated_edges": f.get("saturated_edges"),
            "prior_grad_per_edge_late": f.get("prior_grad_per_edge_last_quarter"), "final_A": s["log_decay"],
            "supernet_acc_w_noise_max": rob["supernet"]["weights"][-1]["mean"],
            "discrete_acc_w_noise_max": rob["discrete"]["weights"][-1]["mean"],
            "genotype_normal": " ".join(map(str, s["genotype"]["normal"])),
            "genotype_reduce": " ".join(map(str, s["genotype"]["reduce"]))}


def report(sweep: Path, out: Path | None = None, prefix: str = "") -> list[Path]:
    import matplotlib

    from lossland.studies.nas import plots

    problems: list[str] = []
    rows, jobs = [], {}
    for (prior, seed), j in load_all_jobs(sweep, problems).items():
        try:  # every value the report reads is there and of the right kind
            if not j["history"]:
                raise ValueError("metrics.csv has no rows")
            rows.append({"prior": prior, "seed": seed, **_row(prior, j)})
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            problems.append(f"{j['dir']}: incomplete nas records ({type(e).__name__}: {e})")
            continue
        jobs.setdefault(prior, j)  # the figures: the lowest seed of each prior
    for p in problems:
        print(f"lossland: skipped {printable(p)}", file=sys.stderr)
    if not jobs:
        raise LosslandError(f"{printable(sweep)} holds no finished `lossland nas` jobs")
    out = Path(out or sweep)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    n_ops = None
    with matplotlib.rc_context({"text.parse_math": False}):  # labels from records: never parsed as mathtext
        for prior, j in jobs.items():
            ops = [k.split("/")[-1] for k in j["history"][0] if k.startswith("mix/normal/e0/")]
            n_ops = len(ops)
            files.append(plots.dynamics_figure(j["history"], ops, f"structure dynamics, prior={prior}",
                                               out / f"{prefix}dynamics_{prior}.png"))
        files.append(plots.entropy_figure({p: j["history"] for p, j in jobs.items()}, n_ops,
                                          out / f"{prefix}entropy.png"))
        curves = {p: j["robustness"] for p, j in jobs.items()}
        for where in ("weights", "inputs"):
            files.append(plots.robustness_figure(curves, where, out / f"{prefix}robustness_{where}.png"))
    md = write_table(rows, out, f"{prefix}findings")
    print(printable(md))
    files += [out / f"{prefix}findings.csv", out / f"{prefix}findings.md"]
    return files

