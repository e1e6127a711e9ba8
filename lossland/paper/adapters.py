"""One adapter per study (docs/paper.md). Each module defines:

- ``RECIPES``: the :class:`Recipe` list that ``lossland paper <study>`` runs (each into ``<out>/<name>``);
- ``context(root)``: what the tables and trends read, loaded once from the records under ``root``;
- ``TABLES``: {seed table id: f(ctx) -> list of :class:`lossland.paper.compare.Ours`};
- ``TRENDS``: {trend id: f(ctx, tables) -> (verdict, detail)}, ``tables`` = {table id: list of Ours};
- optionally ``figures(ctx, out) -> list of paths`` (figures beyond the per-table ones);
- optionally ``EXTRA``: {name: f(ctx) -> list of row dicts}, the study's own result tables (no seed side),
  written as ``<name>.{csv,md}`` and into ``paper.json["extra"]``.

Adding a table or a trend = one entry in ``seeds/<study>.yaml`` + one function here (tests/test_paper.py checks
that the ids match).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Recipe:
    """``argv`` run from the repository root with ``OUT=<out>/<name>`` (``{out}`` in argv is replaced too).
    ``embedded``: the recipe's knobs for ``lossland paper`` at the embedded scale (the sizes the docs' results
    were measured at; the environment overrides each); ``optional``: run only when ``--recipes`` names it."""

    name: str
    argv: tuple[str, ...]
    embedded: tuple[tuple[str, str], ...] = ()
    optional: bool = False

    @classmethod
    def script(cls, name: str, optional: bool = False, **embedded: str) -> Recipe:
        return cls(name, ("bash", f"sweeps/{name}.sh"), tuple(embedded.items()), optional)


def sweep_dir(root: Path, name: str, primary: bool = False, siblings=()) -> Path | None:
    """``<root>/<name>`` when it exists (the layout ``lossland paper`` writes); for the study's primary recipe,
    ``root`` itself when it holds none of the study's recipe folders ``siblings`` (``--from`` pointed at that
    recipe's own sweep directory); otherwise None."""
    root = Path(root)
    if (root / name).is_dir():
        return root / name
    if primary and not any((root / s).is_dir() for s in siblings):
        return root
    return None


def recipe_names(recipes) -> tuple[str, ...]:
    return tuple(r.name for r in recipes)


def by_key(rows) -> dict[tuple, dict]:
    """{key: values} of a list of Ours (the first row of a key wins)."""
    out: dict[tuple, dict] = {}
    for o in rows:
        out.setdefault(tuple(o.seed_key or o.key), o.values)
    return out
