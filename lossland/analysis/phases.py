"""Phase of a sphere-training run (Kodryan et al., 2022; docs/studies.md#s) from its recorded metrics.

Inputs: the run's ``summary`` ({"status", "final": {"train_loss", "train_error", "test_error", "gm"}, ...})
and its metrics history: a list of row dicts or a dict of arrays, each with ``step`` and (sparse, NaN or
absent where not logged) ``train_loss``, ``train_error``, ``cos_prev`` (cosine between the weights at
consecutive evaluation points), ...

The rule (thresholds are the module constants below, overridable by keyword):

0. ``status`` "diverged" or "failed" → that status; any other status except "ok" → that status; a
   non-finite final train loss → "diverged"; no train error at all (final or logged) → "unknown".
1. The *tail* is the evaluation points with ``step ≥ (1 − TAIL_FRACTION)·last_step`` (at least
   ``MIN_TAIL_POINTS`` points: the last ones if the tail has fewer). ``E_tail`` = mean train error over
   the tail (the final train error when none is logged); ``cos_tail`` = mean ``cos_prev`` over the tail.
2. **Phase 3** (destabilized, random-walk-like): ``E_tail ≥ PHASE3_CHANCE_FRACTION·(1 − 1/K)`` (near
   chance error, K classes) and ``cos_tail < PHASE3_MAX_COS`` (when ``cos_prev`` is not logged, the error
   criterion alone decides). The random-walk cosine is the sharp criterion; the error bound only has to
   separate near-chance runs from phase 2 (on the embedded CE recipe, phase-3 tail errors measured on the
   small fixed evaluation subset fluctuate between 0.57 and 0.89 around a mean of 0.78-0.86, phase-2 ones
   stay at 0.06-0.2), hence 0.75 rather than a tighter fraction of chance.
3. **Phase 1** (convergence): the final train error is below ``CONVERGED_TRAIN_ERROR`` →
   ``"1-converged"``; else, if the train loss still falls over the tail → ``"1-not-converged"``. "Still
   falls" means: a least-squares fit of ``log L = c − a·log(step + 1)`` over the tail (a power law, so
   the test does not depend on the run's length) has ``a ≥ PHASE1_MIN_DECAY`` and
   ``a ≥ PHASE1_MIN_TSTAT·stderr(a)`` (clearly negative slope, not noise).
4. **Phase 2** (chaotic equilibrium): otherwise (stationary loss, error below the phase-3 level).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["PHASES", "PhaseResult", "classify_run", "assign_phase", "phase_boundaries",
           "TAIL_FRACTION", "MIN_TAIL_POINTS", "PHASE3_CHANCE_FRACTION", "PHASE3_MAX_COS",
           "CONVERGED_TRAIN_ERROR", "PHASE1_MIN_DECAY", "PHASE1_MIN_TSTAT"]

PHASES = ("1-converged", "1-not-converged", "2", "3")

TAIL_FRACTION = 0.3           # the last 30% of the run's steps
MIN_TAIL_POINTS = 3
PHASE3_CHANCE_FRACTION = 0.75  # tail train error ≥ 0.75·(1 − 1/K): 0.675 for K = 10, 0.375 for K = 2
PHASE3_MAX_COS = 0.2          # tail mean consecutive-weights cosine below this
CONVERGED_TRAIN_ERROR = 0.01  # final train error below 1%: "1-converged"
PHASE1_MIN_DECAY = 0.2        # power-law exponent of the train loss over the tail
PHASE1_MIN_TSTAT = 2.0        # ... and that many standard errors away from 0


@dataclass
class PhaseResult:
    """The phase label and the quantities the rule looked at (NaN where not available)."""

    phase: str
    tail_train_error: float = math.nan
    tail_cos_prev: float = math.nan
    loss_decay: float = math.nan          # fitted exponent a of L ∝ step^-a over the tail
    loss_decay_stderr: float = math.nan
    final_train_error: float = math.nan
    chance_error: float = math.nan
    reasons: list[str] = field(default_factory=list)


def _as_arrays(history) -> dict[str, np.ndarray]:
    if history is None:
        return {}
    if isinstance(history, Mapping):
        return {k: np.asarray(v, dtype=np.float64) for k, v in history.items()}
    rows = list(history)
    keys = dict.fromkeys(k for r in rows for k in r)
    return {k: np.array([_f(r.get(k)) for r in rows], dtype=np.float64) for k in keys}


def _f(v) -> float:
    try:
        return math.nan if v is None or v == "" else float(v)
    except (TypeError, ValueError):
        return math.nan


def _series(h: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    if name not in h or "step" not in h:
        return np.empty(0), np.empty(0)
    s, v = h["step"], h[name]
    keep = ~np.isnan(v) & ~np.isnan(s)
    s, v = s[keep], v[keep]
    order = np.argsort(s, kind="stable")
    return s[order], v[order]


def _tail(s: np.ndarray, v: np.ndarray, last_step: float, frac: float, min_points: int):
    keep = s >= (1 - frac) * last_step
    if keep.sum() < min_points:
        keep = np.zeros_like(keep)
        keep[-min_points:] = True
    return s[keep], v[keep]


def _num_classes(summary: Mapping) -> int:
    for key in ("num_classes", "classes"):
        v = summary.get(key)
        if isinstance(v, int | float) and v >= 2:
            return int(v)
        if isinstance(v, Sequence) and not isinstance(v, str) and len(v) >= 2:
            return len(v)
    return 10


def classify_run(summary: Mapping, history=None, num_classes: int | None = None, *,
                 tail_fraction: float = TAIL_FRACTION, min_tail_points: int = MIN_TAIL_POINTS,
                 phase3_chance_fraction: float = PHASE3_CHANCE_FRACTION,
                 phase3_max_cos: float = PHASE3_MAX_COS, converged_train_error: float = CONVERGED_TRAIN_ERROR,
                 phase1_min_decay: float = PHASE1_MIN_DECAY,
                 phase1_min_tstat: float = PHASE1_MIN_TSTAT) -> PhaseResult:
    """Apply the module's rule; returns the label with its evidence.

    ``num_classes`` (K, for the chance error 1 − 1/K) defaults to ``summary["num_classes"]`` or the length
    of ``summary["classes"]``, else 10.
    """
    status = str(summary.get("status", "ok"))
    if status != "ok":
        return PhaseResult(status, reasons=[f"status {status}"])
    final = dict(summary.get("final") or {})
    h = _as_arrays(history)
    K = num_classes or _num_classes(summary)
    res = PhaseResult("2", chance_error=1 - 1 / K)

    s_loss, loss = _series(h, "train_loss")
    final_loss = _f(final.get("train_loss"))
    if math.isnan(final_loss) and loss.size:
        final_loss = float(loss[-1])
    if not math.isnan(final_loss) and not math.isfinite(final_loss):
        res.phase = "diverged"
        res.reasons.append("non-finite final train loss")
        return res

    s_err, err = _series(h, "train_error")
    res.final_train_error = _f(final.get("train_error"))
    if math.isnan(res.final_train_error) and err.size:
        res.final_train_error = float(err[-1])
    if math.isnan(res.final_train_error):
        res.phase = "unknown"
        res.reasons.append("no train error recorded")
        return res

    steps = [a[-1] for a in (s_loss, s_err) if a.size]
    last_step = max(steps) if steps else 0.0
    if err.size:
        res.tail_train_error = float(_tail(s_err, err, last_step, tail_fraction, min_tail_points)[1].mean())
    else:
        res.tail_train_error = res.final_train_error
    s_cos, cos = _series(h, "cos_prev")
    if cos.size:
        res.tail_cos_prev = float(_tail(s_cos, cos, max(last_step, s_cos[-1]), tail_fraction,
                                        min_tail_points)[1].mean())

    # phase 3: near-chance error and (when logged) near-orthogonal consecutive weights
    err3 = phase3_chance_fraction * res.chance_error
    if res.tail_train_error >= err3 and (math.isnan(res.tail_cos_prev) or res.tail_cos_prev < phase3_max_cos):
        res.phase = "3"
        res.reasons.append(f"tail train error {res.tail_train_error:.3g} ≥ {err3:.3g}"
                           + ("" if math.isnan(res.tail_cos_prev) else
                              f", tail cos_prev {res.tail_cos_prev:.3g} < {phase3_max_cos}"))
        return res

    # phase 1: converged, or loss still falling over the tail
    if res.final_train_error < converged_train_error:
        res.phase = "1-converged"
        res.reasons.append(f"final train error {res.final_train_error:.3g} < {converged_train_error}")
        return res
    if loss.size:
        ts, tl = _tail(s_loss, loss, last_step, tail_fraction, min_tail_points)
        ok = (tl > 0) & np.isfinite(tl)
        if ok.sum() >= 3:
            a, se = _power_law_decay(ts[ok], tl[ok])
            res.loss_decay, res.loss_decay_stderr = a, se
            if a >= phase1_min_decay and a >= phase1_min_tstat * se:
                res.phase = "1-not-converged"
                res.reasons.append(f"train loss still falls over the tail: L ∝ step^-{a:.3g} (±{se:.2g})")
                return res
    res.phase = "2"
    res.reasons.append("stationary train loss, error below the phase-3 level")
    return res


def _power_law_decay(steps: np.ndarray, loss: np.ndarray) -> tuple[float, float]:
    """Least-squares fit of log L = c − a·log(step + 1): returns (a, standard error of a)."""
    x, y = np.log(steps + 1.0), np.log(loss)
    n = x.size
    xc = x - x.mean()
    sxx = float((xc * xc).sum())
    if sxx <= 0:
        return math.nan, math.nan
    slope = float((xc * (y - y.mean())).sum() / sxx)
    resid = y - y.mean() - slope * xc
    se = math.sqrt(float((resid * resid).sum()) / max(n - 2, 1) / sxx)
    return -slope, se


def assign_phase(summary: Mapping, history=None, num_classes: int | None = None, **kwargs) -> str:
    """The phase label: "1-converged" | "1-not-converged" | "2" | "3" | "diverged" | "failed" | "unknown".

    See the module docstring for the rule; keyword arguments override its thresholds.
    """
    return classify_run(summary, history, num_classes, **kwargs).phase


def phase_boundaries(elrs: Sequence[float], phases: Sequence[str]) -> dict[str, tuple[float, float]]:
    """{phase: (smallest elr, largest elr)} over the runs with that phase (sub-phases of 1 kept apart,
    and ``"1"`` added for both together when present). Runs without an elr are ignored."""
    out: dict[str, tuple[float, float]] = {}
    for e, p in zip(elrs, phases):
        if e is None or not math.isfinite(e):
            continue
        keys = [p, "1"] if p.startswith("1-") else [p]
        for k in keys:
            lo, hi = out.get(k, (e, e))
            out[k] = (min(lo, e), max(hi, e))
    order = {p: i for i, p in enumerate(("1", *PHASES))}
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
