"""The docs' result tables, generated from the committed ``paper.json`` of each study (one source of truth).

A block in ``docs/*.md`` between ``<!-- paper STUDY: WHAT -->`` and ``<!-- /paper -->`` is rendered from
``docs/results/STUDY/paper.json`` (what ``lossland paper STUDY`` wrote into its comparison folder):

- ``table ID``: the seed's table ``ID`` beside ours (``paper.json`` ``tables``; the columns that have a value);
- ``trends``: every verdict with its detail;
- ``facts KEY COL[:FMT] ...``: one row per record of ``facts[KEY]`` (the study's per-run facts); ``FMT`` is ``%``
  (a fraction as a percentage, one decimal), a Python format spec (``.3g``), or absent (:func:`lossland.cells.cell`).
  ``where=COL=VALUE`` keeps the records whose ``COL`` prints as ``VALUE``.

``lossland paper-docs`` rewrites the blocks, ``lossland paper-docs --check`` lists the stale ones (exit 1);
``tests/test_docs_results.py`` fails when a block differs from its ``paper.json``, so a number in such a block
cannot be edited by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lossland.cells import cell
from lossland.errors import LosslandError

BLOCK = re.compile(r"(<!-- paper (?P<study>\w+): (?P<what>[^>]*?) -->\n)(?P<body>.*?)(<!-- /paper -->)", re.S)
LABELS = {"elr": "elr", "phase": "phase", "train_error": "final train error", "test_error": "final test error",
          "train_misclassified": "misclassified (train)", "train_loss": "final train loss", "gm": "final GM",
          "tail_cos": "tail cos_prev", "fisher_trace": "tr F (last)", "hessian_top_eig": "λmax (last)",
          "retraction_max": "max 1 − r", "direction": "direction", "lr": "lr", "wd": "wd", "seed": "seed",
          "status": "status", "steps": "steps"}


def _md(rows: list[dict], cols: list[str], head: list[str] | None = None) -> str:
    head = head or cols
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")).replace("|", "\\|") for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _fmt(v, spec: str) -> str:
    if spec == "%":
        return cell(None if v is None else 100 * v, ".1f") + ("" if v is None else " %")
    return cell(v, spec) if spec else cell(v)


def render(paper: dict, what: str) -> str:
    """The markdown of one block (see the module docstring)."""
    words = what.split()
    if not words:
        raise LosslandError("empty paper block")
    kind, args = words[0], words[1:]
    if kind == "table":
        if len(args) != 1 or args[0] not in paper.get("tables", {}):
            raise LosslandError(f"paper block 'table {' '.join(args)}': no such table in paper.json "
                                f"({', '.join(paper.get('tables', {}))})")
        rows = paper["tables"][args[0]]
        cols = [c for c in rows[0] if any(r.get(c) for r in rows)] if rows else []
        return _md(rows, cols)
    if kind == "trends":
        return _md(paper.get("verdicts", []), ["trend", "verdict", "detail"])
    if kind == "facts":
        if not args or args[0] not in paper.get("facts", {}):
            raise LosslandError(f"paper block '{what}': no facts '{args[0] if args else ''}' in paper.json")
        recs = paper["facts"][args[0]]
        if not recs:
            return f"*No `{args[0]}` records in this paper.json: its recipe was not part of the run.*\n"
        specs = [a for a in args[1:] if not a.startswith("where=")]
        for w in (a[6:] for a in args[1:] if a.startswith("where=")):
            col, _, val = w.partition("=")
            recs = [r for r in recs if cell(r.get(col)) == val]
        cols = [s.split(":", 1) + [""] if ":" not in s else s.split(":", 1) for s in specs]
        rows = [{c: _fmt(r.get(c), f) for c, f in ((c[0], c[1]) for c in cols)} for r in recs]
        return _md(rows, [c[0] for c in cols], [LABELS.get(c[0], c[0]) for c in cols])
    raise LosslandError(f"paper block '{what}': the kind is table, trends or facts")


def load(results: Path, study: str) -> dict:
    path = Path(results) / study / "paper.json"
    if not path.is_file():
        raise LosslandError(f"docs block of study {study}: {path} does not exist (lossland paper {study} "
                            f"--out ..., then copy its paper/ folder there)")
    return json.loads(path.read_text())


def sync(docs: Path, results: Path | None = None, check: bool = False) -> list[str]:
    """Render every block of ``docs/*.md`` from ``results`` (default ``docs/results``); rewrite the files unless
    ``check``. Returns ``file: study: what`` for each block that was (or is, with ``check``) out of date."""
    docs = Path(docs)
    results = Path(results) if results is not None else docs / "results"
    stale, cache = [], {}
    def sub(m, name):
        study = m["study"]
        if study not in cache:
            cache[study] = load(results, study)
        body = render(cache[study], m["what"].strip())
        if body != m["body"]:
            stale.append(f"{name}: {study}: {m['what'].strip()}")
        return m.group(1) + body + m.group(5)

    for md in sorted(docs.glob("*.md")):
        text = md.read_text()
        new = BLOCK.sub(lambda m, n=md.name: sub(m, n), text)
        if new != text and not check:
            md.write_text(new)
    return stale


def blocks(docs: Path) -> list[tuple[str, str, str]]:
    """(file, study, what) of every block under ``docs``."""
    return [(md.name, m["study"], m["what"].strip()) for md in sorted(Path(docs).glob("*.md"))
            for m in BLOCK.finditer(md.read_text())]
