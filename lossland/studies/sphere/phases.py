"""Phase of a sphere-training run (Kodryan et al., 2022; seed 003) from its recorded metrics.

The rule is stated once, in docs/sphere.md ("Phases"); this module implements it with the thresholds below
(keyword arguments override them; ``tests/test_phases.py`` checks the page quotes these values).

Inputs: the run's ``summary`` ({"status", "final": {"train_loss", "train_error", "train_misclassified", ...}})
and its metrics history: a list of row dicts or a dict of arrays, each with ``step`` and (sparse, NaN or
absent where not logged) ``train_loss``, ``train_error``, ``cos_prev`` (cosine between the weights at
consecutive evaluation points). ``final.train_misclassified`` is the count of misclassified examples of the
whole training split at the final weights (BN in eval mode), as ``lossland.train`` records it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from omegaconf import OmegaConf

from lossland.analysis.settings import override_values, run_config
from lossland.runs import Run

__all__ = ["PHASES", "PhaseResult", "classify_run", "run_phase", "run_classification", "phase_of", "assign_phase",
           "phase_boundaries", "certain_phase",
           "SPLITS",
           "TAIL_FRACTION", "MIN_TAIL_POINTS", "PHASE3_CHANCE_FRACTION", "PHASE3_MAX_COS",
           "CONVERGED_MAX_ERRORS", "PHASE1_MIN_DECAY", "PHASE1_MIN_TSTAT", "PHASE1_MIN_COS"]

PHASES = ("1-converged", "1-not-converged", "2", "3")

TAIL_FRACTION = 0.3           # the last 30% of the run's steps
MIN_TAIL_POINTS = 3
PHASE3_CHANCE_FRACTION = 0.75  # tail train error ≥ 0.75·(1 − 1/K): 0.675 for K = 10, 0.375 for K = 2
PHASE3_MAX_COS = 0.2          # tail mean consecutive-weights cosine below this
CONVERGED_MAX_ERRORS = 0      # "1-converged": at most this many misclassified training examples at the end
PHASE1_MIN_DECAY = 0.2        # split "loss": power-law exponent of the train loss over the tail ...
PHASE1_MIN_TSTAT = 2.0        # ... and that many standard errors away from 0
PHASE1_MIN_COS = 0.95         # split "cosine" (the seed's MSE rule, Fig. 17): tail cos_prev at least this
SPLITS = ("loss", "cosine")   # how phase 1 (not converged) is told from phase 2


@dataclass
class PhaseResult:
    """The phase label and the quantities the rule looked at (NaN where not available)."""

    phase: str
    tail_train_error: float = math.nan
    tail_cos_prev: float = math.nan
    loss_decay: float = math.nan          # fitted exponent a of L ∝ step^-a over the tail
    loss_decay_stderr: float = math.nan
    final_train_error: float = math.nan
    final_misclassified: float = math.nan  # count over the whole training split (NaN: not recorded)
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
                 phase3_max_cos: float = PHASE3_MAX_COS, converged_max_errors: int = CONVERGED_MAX_ERRORS,
                 phase1_min_decay: float = PHASE1_MIN_DECAY, phase1_min_tstat: float = PHASE1_MIN_TSTAT,
                 split: str = "loss", phase1_min_cos: float = PHASE1_MIN_COS) -> PhaseResult:
    """Apply the rule of docs/sphere.md; returns the label with its evidence.

    ``num_classes`` (K, for the chance error 1 − 1/K) defaults to ``summary["num_classes"]`` or the length
    of ``summary["classes"]``, else 10. ``split``: ``"loss"`` (the train loss still falls over the tail:
    phase 1) or ``"cosine"`` (the tail cos_prev is at least ``phase1_min_cos``: phase 1), the seed's rule for
    MSE, where no run reaches zero errors.

    The rule's steps, in order, each deciding the phase or passing on: a run that did not end ``ok`` keeps its
    status; a non-finite final loss is ``diverged``; no train error is ``unknown``; near-chance error with
    near-orthogonal consecutive weights is ``3``; few enough misclassified examples is ``1-converged``; a loss
    still falling (or weights settling, ``split="cosine"``) is ``1-not-converged``; the rest is ``2``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    status = str(summary.get("status", "ok"))
    if status != "ok":
        return PhaseResult(status, reasons=[f"status {status}"])
    final = dict(summary.get("final") or {})
    h = _as_arrays(history)
    loss, err, cos = (_series(h, name) for name in ("train_loss", "train_error", "cos_prev"))
    res = PhaseResult("2", chance_error=1 - 1 / (num_classes or _num_classes(summary)))
    if _diverged(res, final, loss[1]) or _no_error(res, final, err[1]):
        return res
    tail = _Tail(tail_fraction, min_tail_points, max((s[-1] for s, _ in (loss, err) if s.size), default=0.0))
    _tail_means(res, err, cos, tail)
    if _phase3(res, phase3_chance_fraction, phase3_max_cos) or _converged(res, final, converged_max_errors):
        return res
    if split == "cosine":
        settled = _weights_settle(res, phase1_min_cos)
    else:
        settled = loss[1].size > 0 and _loss_falls(res, tail.of(*loss), phase1_min_decay, phase1_min_tstat)
    if not settled:
        res.phase = "2"
        res.reasons.append("stationary train loss, error below the phase-3 level" if split == "loss" else
                           f"tail cos_prev {res.tail_cos_prev:.3g} < {phase1_min_cos}, error below the phase-3 level")
    return res


@dataclass(frozen=True)
class _Tail:
    """The last ``fraction`` of the run's steps (at least ``min_points`` points) of a series."""

    fraction: float
    min_points: int
    last_step: float

    def of(self, s: np.ndarray, v: np.ndarray, last_step: float | None = None):
        return _tail(s, v, self.last_step if last_step is None else last_step, self.fraction, self.min_points)


def _diverged(res: PhaseResult, final: dict, loss: np.ndarray) -> bool:
    final_loss = _f(final.get("train_loss"))
    if math.isnan(final_loss) and loss.size:
        final_loss = float(loss[-1])
    if not math.isnan(final_loss) and not math.isfinite(final_loss):
        res.phase = "diverged"
        res.reasons.append("non-finite final train loss")
        return True
    return False


def _no_error(res: PhaseResult, final: dict, err: np.ndarray) -> bool:
    """Records the final train error (the summary's, else the last logged); True when there is none."""
    res.final_train_error = _f(final.get("train_error"))
    if math.isnan(res.final_train_error) and err.size:
        res.final_train_error = float(err[-1])
    if math.isnan(res.final_train_error):
        res.phase = "unknown"
        res.reasons.append("no train error recorded")
        return True
    return False


def _tail_means(res: PhaseResult, err: tuple, cos: tuple, tail: _Tail) -> None:
    """The tail means of the train error (else the final one) and of the consecutive cosine (where logged)."""
    res.tail_train_error = float(tail.of(*err)[1].mean()) if err[1].size else res.final_train_error
    if cos[1].size:
        res.tail_cos_prev = float(tail.of(*cos, last_step=max(tail.last_step, cos[0][-1]))[1].mean())


def _phase3(res: PhaseResult, chance_fraction: float, max_cos: float) -> bool:
    """Near-chance error and (when logged) near-orthogonal consecutive weights."""
    err3 = chance_fraction * res.chance_error
    if res.tail_train_error >= err3 and (math.isnan(res.tail_cos_prev) or res.tail_cos_prev < max_cos):
        res.phase = "3"
        res.reasons.append(f"tail train error {res.tail_train_error:.3g} ≥ {err3:.3g}"
                           + ("" if math.isnan(res.tail_cos_prev) else
                              f", tail cos_prev {res.tail_cos_prev:.3g} < {max_cos}"))
        return True
    return False


def _converged(res: PhaseResult, final: dict, max_errors: int) -> bool:
    """Phase 1, converged: a count of misclassified training examples at the end."""
    res.final_misclassified = _f(final.get("train_misclassified"))
    if math.isnan(res.final_misclassified) and res.final_train_error == 0:
        res.final_misclassified = 0.0
    if res.final_misclassified <= max_errors:
        res.phase = "1-converged"
        res.reasons.append(f"{res.final_misclassified:.0f} misclassified training examples at the end "
                           f"(≤ {max_errors})")
        return True
    return False


def _weights_settle(res: PhaseResult, min_cos: float) -> bool:
    """Phase 1, not converged, by the seed's MSE rule: the consecutive weights settle."""
    if res.tail_cos_prev >= min_cos:
        res.phase = "1-not-converged"
        res.reasons.append(f"tail cos_prev {res.tail_cos_prev:.3g} ≥ {min_cos} (weights settle)")
        return True
    return False


def _loss_falls(res: PhaseResult, tail_loss: tuple[np.ndarray, np.ndarray], min_decay: float,
                min_tstat: float) -> bool:
    """Phase 1, not converged: the train loss still falls as a power law over the tail."""
    ts, tl = tail_loss
    ok = (tl > 0) & np.isfinite(tl)
    if ok.sum() < 3:
        return False
    a, se = _power_law_decay(ts[ok], tl[ok])
    res.loss_decay, res.loss_decay_stderr = a, se
    if a >= min_decay and a >= min_tstat * se:
        res.phase = "1-not-converged"
        res.reasons.append(f"train loss still falls over the tail: L ∝ step^-{a:.3g} (±{se:.2g})")
        return True
    return False


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

    The rule: docs/sphere.md#phases; keyword arguments override its thresholds.
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


def run_phase(run: Run, num_classes: int | None = None, **thresholds) -> str | None:
    """The phase (docs/sphere.md) of a finished run that logged phase metrics (``train_error``); None for
    the others. K comes from ``data.classes`` (else 2 for the synthetic binary sets, else 10); MSE runs are
    split into phases 1 and 2 by the consecutive cosine (the seed's MSE rule), the others by the loss trend."""
    res = run_classification(run, num_classes, **thresholds)
    return None if res is None else res.phase


def run_classification(run: Run, num_classes: int | None = None, **thresholds) -> PhaseResult | None:
    """:func:`run_phase` with the quantities the rule looked at (tail error and cosine, loss decay)."""
    m = run.metrics
    if run.status not in ("ok", "diverged") or "train_error" not in m or not ("gm" in m or "cos_prev" in m):
        return None
    if not np.isfinite(m["train_error"]).any():  # a header without rows: nothing measured, no phase
        return None
    cfg = run_config(run)
    target = str(OmegaConf.select(cfg, "data._target_", default="") or "")
    classes = OmegaConf.select(cfg, "data.classes", default=None)
    k = num_classes or (len(classes) if classes is not None and len(classes) >= 2
                        else 2 if target.endswith(("Spheres", "Gaussians")) else None)
    loss = str(OmegaConf.select(cfg, "loss._target_", default="") or "") or \
        str(override_values(run.summary.get("overrides", [])).get("loss", ""))
    thresholds.setdefault("split", "cosine" if loss.lower().endswith("mse") else "loss")
    return classify_run(run.summary, run.metrics, k, **thresholds)


def phase_of(run: Run) -> str | None:
    """The phase label of a finished run that logged phase metrics; None otherwise."""
    try:
        return run_phase(run)
    except (ValueError, KeyError):
        return None


def certain_phase(history, num_classes: int | None = None, misclassified=None, points: int = 3,
                  **thresholds) -> tuple[str, str] | None:
    """Whether a run's phase can no longer change by the rule above, from its phase-metric points so far
    (``history``: rows with ``step``, ``train_error``, ``cos_prev``): ``(phase, why)`` or None. Used to end a run
    early (``metrics.early_stop.phase=true``, docs/phase_boundary.md).

    - ``"3"``: the last ``points`` points each at the phase-3 level (train error ≥ the chance fraction, cos_prev
      below its bound) and the rule, applied to the run as if it ended now, says 3;
    - ``"1-converged"``: the last ``points`` points have zero train error on the evaluation subset and
      ``misclassified()`` (the whole training split, BN in eval mode; None: not asked) is within the rule's
      count, which is what the rule reads at the end.
    """
    rows = [r for r in history if not math.isnan(_f(r.get("train_error")))]
    if len(rows) < max(points, MIN_TAIL_POINTS):
        return None
    last = rows[-points:]
    k = num_classes or 10
    err3 = thresholds.get("phase3_chance_fraction", PHASE3_CHANCE_FRACTION) * (1 - 1 / k)
    max_cos = thresholds.get("phase3_max_cos", PHASE3_MAX_COS)
    if all(_f(r.get("train_error")) >= err3 and _f(r.get("cos_prev")) < max_cos for r in last):
        res = classify_run({"status": "ok", "final": {}}, rows, k, **thresholds)
        if res.phase == "3":
            return "3", f"{points} points at the phase-3 level; " + "; ".join(res.reasons)
    if misclassified is not None and all(_f(r.get("train_error")) == 0 for r in last):
        wrong = int(misclassified())
        if wrong <= thresholds.get("converged_max_errors", CONVERGED_MAX_ERRORS):
            return "1-converged", f"{wrong} misclassified training examples, train error 0 at the last {points} points"
    return None
