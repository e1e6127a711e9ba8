"""Result tables and verdicts in docs/*.md generated from a committed ``paper.json`` (``lossland paper``'s output),
so the docs cannot drift from the numbers they came from.

A block in a markdown file::

    <!-- paper: results/nas/paper.json extra.seeds -->
    (generated; do not edit)
    <!-- /paper -->

is replaced by what the selector names in that ``paper.json`` (path relative to the markdown file):
``tables.<id>`` (a seed table beside ours), ``extra.<name>`` (a study's own table), ``verdicts`` (every trend's
verdict and detail) as markdown tables, ``verdict.<trend>`` as the bare verdict word(s) — usable inline in a
sentence, ``<!-- paper: ... verdict.x -->does not reproduce<!-- /paper -->``. A missing ``paper.json`` renders as
"not measured yet" with the command that makes it, so a doc never shows numbers nobody can regenerate.

    python -m lossland.paper.docs_tables docs/nas.md            # rewrite the blocks
    python -m lossland.paper.docs_tables --check docs/nas.md    # exit 1, naming each stale block
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from lossland.cells import cell
from lossland.errors import LosslandError

__all__ = ["BLOCK", "render", "fill", "stale", "main"]

BLOCK = re.compile(r"(<!-- paper: (?P<src>\S+) (?P<sel>\S+) -->)(?P<body>.*?)(<!-- /paper -->)", re.S)
PENDING = ("not measured yet (no `{src}` beside this page: `lossland paper {study}`, then "
           "`lossland paper {study} --from <out> --out <its folder>`)")


def table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    md = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n"
    return md + "".join("| " + " | ".join(cell(r.get(k)).replace("|", "\\|") for k in keys) + " |\n" for r in rows)


def render(doc: dict, sel: str) -> str:
    """The text of selector ``sel`` in a ``paper.json`` document (inline for ``verdict.<trend>``)."""
    head, _, name = sel.partition(".")
    if head == "verdict":
        v = {r["trend"]: r["verdict"] for r in doc.get("verdicts", [])}
        if name not in v:
            raise LosslandError(f"paper.json of {doc.get('study')}: no trend {name!r}; has {', '.join(v)}")
        return v[name]
    if head == "verdicts" and not name:
        return "\n" + table([{"trend": r["trend"], "verdict": r["verdict"], "detail": r["detail"]}
                             for r in doc.get("verdicts", [])])
    if head in ("tables", "extra") and name in doc.get(head, {}):
        return "\n" + table(doc[head][name])
    raise LosslandError(f"paper.json of {doc.get('study')}: no {sel!r} (tables: {', '.join(doc.get('tables', {}))}; "
                        f"extra: {', '.join(doc.get('extra', {}))})")


def _pending(src: str, sel: str) -> str:
    text = PENDING.format(src=src, study=Path(src).parent.name)
    return text if sel.startswith("verdict.") else f"\n_{text}_\n"


def fill(text: str, base: Path) -> str:
    """``text`` with every block regenerated from the ``paper.json`` it names (relative to ``base``)."""
    docs: dict[str, dict | None] = {}

    def one(m: re.Match) -> str:
        src, sel = m["src"], m["sel"]
        if src not in docs:
            p = base / src
            docs[src] = json.loads(p.read_text()) if p.is_file() else None
        body = _pending(src, sel) if docs[src] is None else render(docs[src], sel)
        return f"{m.group(1)}{body}{m.group(5)}"

    return BLOCK.sub(one, text)


def stale(path: Path) -> list[str]:
    """The blocks of ``path`` whose text differs from what their ``paper.json`` gives (one line each)."""
    path = Path(path)
    text = path.read_text()
    new = fill(text, path.parent)
    old_blocks, new_blocks = list(BLOCK.finditer(text)), list(BLOCK.finditer(new))
    return [f"{path}: block '{a['src']} {a['sel']}' differs from its paper.json"
            for a, b in zip(old_blocks, new_blocks) if a["body"] != b["body"]]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in argv
    files = [Path(a) for a in argv if a != "--check"]
    if not files:
        print("usage: python -m lossland.paper.docs_tables [--check] DOC.md ...", file=sys.stderr)
        return 2
    bad = []
    for f in files:
        if check:
            bad += stale(f)
        else:
            f.write_text(fill(f.read_text(), f.parent))
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
