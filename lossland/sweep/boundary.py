"""Where the phase changes along a rate (``hydra/sweeper=phase_boundary``, docs/phase_boundary.md): the pure part.

The rates live on a lattice ``lo · f^j`` (j = 0..n, f ≤ the resolution, ``f^n = hi/lo``): the dense log grid of
that resolution. A coarse grid (every m-th lattice point) runs first; then each bracket (the last point below a
boundary, the first above it) is cut by K lattice points per round until its ends are neighbours. A bracket found
this way is a bracket of the dense grid, with a fraction of its runs.

A boundary ``"A|B"`` splits an ordered list of labels (``PHASES``: 1-converged, 1-not-converged, 2, 3) in two:
labels up to those named A below, those named B and later above (a name covers its sub-phases: ``"1"`` is
1-converged and 1-not-converged). Labels outside the list (failed, unknown, none) do not vote; ``diverged`` is
above every boundary. At a rate, each replicate (seed) votes; the majority decides, a tie or no vote leaves the
rate undecided, and any disagreement is recorded.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lossland.errors import LosslandError

__all__ = ["PHASES", "ABOVE_ALL", "Boundary", "Lattice", "parse_boundary", "side", "majority", "bracket",
           "coarse_indices", "k_section", "next_round", "check_settings"]

PHASES = ("1-converged", "1-not-converged", "2", "3")
ABOVE_ALL = ("diverged",)  # labels above every boundary (a sphere run cannot go further than diverging)


def _covers(name: str, label: str) -> bool:
    return label == name or label.startswith(name + "-")


@dataclass(frozen=True)
class Boundary:
    """``name`` "A|B"; ``threshold``: the rank (in the label order) of B's first label."""

    name: str
    threshold: int


def boundary_names(order: Sequence[str] = PHASES) -> list[str]:
    """Every boundary the order allows: between adjacent labels, and between adjacent groups (``1|2``)."""
    names = []
    groups = list(dict.fromkeys(label.split("-")[0] for label in order))
    for a, b in zip(order, order[1:]):
        names.append(f"{a}|{b}")
    for a, b in zip(groups, groups[1:]):
        name = f"{a}|{b}"
        if name not in names:
            names.append(name)
    return names


def parse_boundary(name: str, order: Sequence[str] = PHASES) -> Boundary:
    """The boundary "A|B" of ``order``; one line naming the valid ones for any other name."""
    a, sep, b = str(name).partition("|")
    ranks_a = [i for i, lab in enumerate(order) if _covers(a.strip(), lab)]
    ranks_b = [i for i, lab in enumerate(order) if _covers(b.strip(), lab)]
    if not sep or not ranks_a or not ranks_b or max(ranks_a) + 1 != min(ranks_b):
        raise LosslandError(f"unknown boundary {name!r}; valid boundaries: {', '.join(boundary_names(order))}")
    return Boundary(f"{a.strip()}|{b.strip()}", min(ranks_b))


def side(label: str | None, boundary: Boundary, order: Sequence[str] = PHASES) -> str | None:
    """``"below"``, ``"above"`` or None (the label does not vote)."""
    if label in order:
        return "below" if order.index(label) < boundary.threshold else "above"
    return "above" if label in ABOVE_ALL else None


def majority(labels: Sequence[str | None], boundary: Boundary, order: Sequence[str] = PHASES) -> str | None:
    """The side most replicates give (None: a tie, or none votes)."""
    votes = Counter(s for s in (side(lab, boundary, order) for lab in labels) if s is not None)
    if not votes or votes["below"] == votes["above"]:
        return None
    return "below" if votes["below"] > votes["above"] else "above"


@dataclass(frozen=True)
class Lattice:
    """The rates ``lo · f^j``, j = 0..n, with ``f = (hi/lo)^(1/n) ≤ resolution`` (n as small as that allows)."""

    lo: float
    hi: float
    resolution: float

    @property
    def n(self) -> int:
        return max(1, math.ceil(math.log(self.hi / self.lo) / math.log(self.resolution) - 1e-9))

    @property
    def factor(self) -> float:
        return (self.hi / self.lo) ** (1 / self.n)

    def rate(self, j: int) -> float:
        """The j-th rate, to 6 significant digits (what the job's override and its record say)."""
        return float(f"{self.lo * self.factor ** j:.6g}")

    def rates(self) -> list[float]:
        return [self.rate(j) for j in range(self.n + 1)]


def check_settings(lo, hi, resolution, k, coarse) -> None:
    """One line for a range that is empty or not positive, a resolution ≤ 1, K < 1, fewer than 2 coarse points."""
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise LosslandError(f"range=[{lo}, {hi}] is not valid: two positive numbers, low < high") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise LosslandError(f"range=[{lo:g}, {hi:g}] is not valid: it must be positive and not empty (low < high)")
    if not isinstance(resolution, int | float) or isinstance(resolution, bool) or not resolution > 1:
        raise LosslandError(f"resolution={resolution} is not valid: a factor in the rate greater than 1 (e.g. 1.2)")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise LosslandError(f"k={k} is not valid: the rates per bracket and round, a positive integer")
    if isinstance(coarse, bool) or not isinstance(coarse, int) or coarse < 2:
        raise LosslandError(f"coarse={coarse} is not valid: the points of the first grid, an integer ≥ 2")


def coarse_indices(n: int, points: int) -> list[int]:
    """``points`` lattice indices spread evenly over 0..n (both ends included)."""
    points = min(points, n + 1)
    return sorted({round(i * n / (points - 1)) for i in range(points)})


def k_section(lo: int, hi: int, k: int) -> list[int]:
    """Up to ``k`` lattice indices strictly inside (lo, hi), cutting it into near-equal parts."""
    inside = hi - lo - 1
    if inside <= 0:
        return []
    k = min(k, inside)
    return sorted({lo + round(i * (hi - lo) / (k + 1)) for i in range(1, k + 1)})


@dataclass
class Bracket:
    """A boundary's bracket on the lattice: ``lo``/``hi`` the indices of the last rate below and the first above
    (None: no such rate, the boundary is outside the range on that side), and the rates that contradict the
    ordering (a rate above the boundary below one that is below it)."""

    lo: int | None
    hi: int | None
    non_monotone: list[int] = field(default_factory=list)

    @property
    def resolved(self) -> bool:
        """Nothing left to run: the ends are neighbours, or the boundary is outside the range."""
        return self.lo is None or self.hi is None or self.hi - self.lo <= 1


def bracket(sides: Mapping[int, str | None]) -> Bracket:
    """The bracket of decided sides {lattice index: "below" | "above" | None}: the last index below, the
    first index above it."""
    below = [j for j, s in sides.items() if s == "below"]
    lo = max(below) if below else None
    above = sorted(j for j, s in sides.items() if s == "above" and (lo is None or j > lo))
    hi = above[0] if above else None
    odd = sorted(j for j, s in sides.items() if s == "above" and lo is not None and j < lo)
    return Bracket(lo, hi, odd)


def next_round(brackets: Sequence[Bracket], k: int, done: set[int]) -> list[int]:
    """The lattice indices of the next round: K per unresolved bracket (shared where brackets coincide),
    none already run. An undecided rate inside a bracket is not run again; K-section goes around it."""
    out: set[int] = set()
    for b in brackets:
        if b.resolved:
            continue
        todo = [j for j in range(b.lo + 1, b.hi) if j not in done]
        if not todo:
            continue
        picks = [j for j in k_section(b.lo, b.hi, k) if j not in done]
        out.update(picks or [todo[len(todo) // 2]])
    return sorted(out)
