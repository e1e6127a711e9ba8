"""The docs' result tables and verdicts, generated from the committed ``paper.json`` of each study (one source of
truth), so a page cannot drift from the numbers it came from.

A block in a markdown file between ``<!-- paper STUDY: WHAT -->`` and ``<!-- /paper -->`` is rendered from
``results/STUDY/paper.json`` beside that file (``docs/results/STUDY/``: what ``lossland paper STUDY`` wrote into its
comparison folder). ``WHAT`` names a key of ``paper.json``:

- ``table ID``: the seed's table ``ID`` beside ours (``tables``; the columns that have a value);
- ``extra NAME``: a study's own table (``extra``);
- ``verdicts``: every trend's verdict with its detail;
- ``verdict TREND``: the bare verdict word(s), inline in a sentence:
  ``<!-- paper nas: verdict x -->does not reproduce<!-- /paper -->``;
- ``facts KEY COL[:FMT] ...``: one row per record of ``facts[KEY]`` (the study's per-run facts); ``FMT`` is ``%``
  (a fraction as a percentage, one decimal), a Python format spec (``.3g``), or absent (:func:`lossland.cells.cell`).
  ``where=COL=VALUE`` keeps the records whose ``COL`` prints as ``VALUE``.

A missing ``paper.json`` renders as "not measured yet" with the command that makes it, so a page never shows numbers
nobody can regenerate. ``lossland paper-docs [FILE ...]`` rewrites the blocks (default every ``docs/*.md``),
``--check`` lists the stale ones (exit 1); ``tests/test_docs_results.py`` fails when a block differs from its
``paper.json``, so a number in such a block cannot be edited by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lossland.cells import cell
from lossland.errors import LosslandError

__all__ = ["BLOCK", "DOCS", "render", "fill", "sync", "blocks"]

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"(?<!`)(<!-- paper (?P<study>\w+): (?P<what>[^>]*?) -->)(?P<body>.*?)(<!-- /paper -->)", re.S)
PENDING = ("not measured yet (no `results/{study}/paper.json` beside this page: `lossland paper {study}`, then "
           "`lossland paper {study} --from <out> --out <its folder>`)")
INLINE = ("verdict",)  # kinds rendered inside a sentence; every other kind is a table on lines of its own
LABELS = {"elr": "elr", "phase": "phase", "train_error": "final train error", "test_error": "final test error",
          "train_misclassified": "misclassified (train)", "train_loss": "final train loss", "gm": "final GM",
          "tail_cos": "tail cos_prev", "fisher_trace": "tr F (last)", "hessian_top_eig": "λmax (last)",
          "retraction_max": "max 1 − r", "direction": "direction", "lr": "lr", "wd": "wd", "seed": "seed",
          "status": "status", "steps": "steps", "run": "run", "regime": "regime", "batch_size": "batch",
          "train_acc": "train acc (%)", "test_acc": "test acc (%)",
          "sharpness_eps=0.001": "ε-sharpness, ε = 1e-3 (%)", "sharpness_eps=0.0005": "ε-sharpness, ε = 5e-4 (%)"}


def _md(rows: list[dict], cols: list[str] | None = None, head: list[str] | None = None) -> str:
    if not rows and cols is None:
        return "(no rows)\n"
    cols = list(rows[0]) if cols is None else cols
    lines = ["| " + " | ".join(head or cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c, "")).replace("|", "\\|") for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _fmt(v, spec: str) -> str:
    if spec == "%":
        return cell(None if v is None else 100 * v, ".1f") + ("" if v is None else " %")
    return cell(v, spec) if spec else cell(v)


def _facts(paper: dict, what: str, args: list[str]) -> str:
    if not args or args[0] not in paper.get("facts", {}):
        raise LosslandError(f"paper block '{what}': no facts '{args[0] if args else ''}' in paper.json")
    recs = paper["facts"][args[0]]
    if not recs:
        return f"*No `{args[0]}` records in this paper.json: its recipe was not part of the run.*\n"
    specs = [a for a in args[1:] if not a.startswith("where=")]
    for w in (a[6:] for a in args[1:] if a.startswith("where=")):
        col, _, val = w.partition("=")
        recs = [r for r in recs if cell(r.get(col)) == val]
    cols = [(s.split(":", 1) + [""])[:2] for s in specs]
    rows = [{c: _fmt(r.get(c), f) for c, f in cols} for r in recs]
    return _md(rows, [c for c, _ in cols], [LABELS.get(c, c) for c, _ in cols])


def render(paper: dict, what: str) -> str:
    """The markdown of one block (see the module docstring): a table, or the bare words of ``verdict TREND``."""
    words = what.split()
    if not words:
        raise LosslandError("empty paper block")
    kind, args = words[0], words[1:]
    if kind in ("table", "extra"):
        key = "tables" if kind == "table" else "extra"
        if len(args) != 1 or args[0] not in paper.get(key, {}):
            raise LosslandError(f"paper block '{what}': no such {kind} in paper.json of {paper.get('study')} "
                                f"({', '.join(paper.get(key, {}))})")
        rows = paper[key][args[0]]
        if kind == "extra":
            return _md(rows)
        return _md(rows, [c for c in rows[0] if any(r.get(c) for r in rows)] if rows else [])
    if kind == "verdicts" and not args:
        return _md(paper.get("verdicts", []), ["trend", "verdict", "detail"])
    if kind == "verdict":
        v = {r["trend"]: r["verdict"] for r in paper.get("verdicts", [])}
        if len(args) != 1 or args[0] not in v:
            raise LosslandError(f"paper block '{what}': no such trend in paper.json of {paper.get('study')} "
                                f"({', '.join(v)})")
        return v[args[0]]
    if kind == "facts":
        return _facts(paper, what, args)
    raise LosslandError(f"paper block '{what}': the kind is table, extra, verdicts, verdict or facts")


def _body(paper: dict | None, study: str, what: str) -> str:
    """What sits between the markers: a table on its own lines, or inline words."""
    inline = what.split()[:1] and what.split()[0] in INLINE
    if paper is None:
        text = PENDING.format(study=study)
        return text if inline else f"\n_{text}_\n"
    out = render(paper, what)
    return out if inline else "\n" + out


def fill(text: str, base: Path, where: str = "") -> tuple[str, list[str]]:
    """``text`` with every block regenerated from ``base/results/STUDY/paper.json``, and ``where: block 'STUDY: WHAT'
    differs from its paper.json`` for each block that changed."""
    papers: dict[str, dict | None] = {}
    stale = []

    def one(m: re.Match) -> str:
        study, what = m["study"], m["what"].strip()
        if study not in papers:
            p = Path(base) / "results" / study / "paper.json"
            papers[study] = json.loads(p.read_text()) if p.is_file() else None
        body = _body(papers[study], study, what)
        if body != m["body"]:
            stale.append(f"{where}: block '{study}: {what}' differs from its paper.json")
        return m.group(1) + body + m.group(5)

    return BLOCK.sub(one, text), stale


def _files(files) -> list[Path]:
    return [Path(f) for f in files] if files else sorted(DOCS.glob("*.md"))


def sync(files=None, check: bool = False) -> list[str]:
    """Render every block of ``files`` (default every ``docs/*.md``); rewrite the files unless ``check``. Returns
    one line for each block that was (or is, with ``check``) out of date."""
    stale = []
    for md in _files(files):
        text = md.read_text()
        new, bad = fill(text, md.parent, str(md))
        stale += bad
        if new != text and not check:
            md.write_text(new)
    return stale


def blocks(files=None) -> list[tuple[str, str, str]]:
    """(file, study, what) of every block of ``files`` (default every ``docs/*.md``)."""
    return [(str(md), m["study"], m["what"].strip()) for md in _files(files) for m in BLOCK.finditer(md.read_text())]
