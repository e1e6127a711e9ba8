"""The phase rule of lossland.studies.sphere.phases on synthetic records, one per phase."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lossland.studies.sphere.phases import assign_phase, classify_run, phase_boundaries

STEPS = np.unique(np.round(np.geomspace(1, 5000, 40))).astype(float)  # log-spaced evaluation points


def history(loss, err, cos, steps=STEPS, sparse_rows=False):
    """A metrics history as a dict of arrays, or as sparse CSV-like rows (one metric per row)."""
    if not sparse_rows:
        return {"step": steps, "train_loss": loss, "train_error": err, "cos_prev": cos}
    rows = []
    for s, lv, ev, cv in zip(steps, loss, err, cos):
        rows += [{"step": s, "train_loss": lv}, {"step": s, "train_error": ev, "test_error": ev + 0.05},
                 {"step": s, "cos_prev": cv, "gm": ""}]
    return rows


def summary(h, status="ok", **extra):
    final = {"train_loss": float(h["train_loss"][-1]), "train_error": float(h["train_error"][-1])}
    return {"status": status, "final": final, **extra}


rng = np.random.default_rng(0)
noise = lambda scale: 1 + scale * rng.standard_normal(STEPS.size)


def converged():
    loss = 2.3 * (STEPS + 1) ** -1.0
    return history(loss, np.clip(0.9 * (STEPS + 1) ** -0.8, 0, None) * (STEPS < 3000), 1 - 1 / (STEPS + 10))


def not_converged():
    loss = 2.3 * (STEPS + 1) ** -0.4 * noise(0.02)
    return history(loss, 0.9 * (STEPS + 1) ** -0.2, np.full(STEPS.size, 0.99))


def equilibrium():
    loss = (0.6 + 1.7 * np.exp(-STEPS / 50)) * noise(0.08)
    err = (0.2 + 0.7 * np.exp(-STEPS / 50)) * noise(0.05)
    return history(loss, err, np.full(STEPS.size, 0.5) * noise(0.1))


def destabilized():
    return history(2.30 * noise(0.01), 0.9 * noise(0.02), 0.03 * noise(1.0))


@pytest.mark.parametrize("make, phase", [(converged, "1-converged"), (not_converged, "1-not-converged"),
                                         (equilibrium, "2"), (destabilized, "3")])
def test_one_record_per_phase(make, phase):
    h = make()
    assert assign_phase(summary(h), h) == phase
    # the same record as sparse CSV-like rows gives the same phase
    rows = history(h["train_loss"], h["train_error"], h["cos_prev"], sparse_rows=True)
    assert assign_phase(summary(h), rows) == phase


def test_evidence_and_thresholds():
    h = destabilized()
    res = classify_run(summary(h), h)
    assert res.phase == "3" and res.tail_train_error > 0.81 and res.tail_cos_prev < 0.2
    assert res.chance_error == pytest.approx(0.9) and res.reasons
    # a high consecutive cosine is not a random walk: no longer phase 3
    h3 = dict(h, cos_prev=np.full(STEPS.size, 0.9))
    assert assign_phase(summary(h3), h3) != "3"
    # the chance level follows K: 0.6 error is near chance (0.5) with 2 classes, far below it (0.9) with 10
    h6 = dict(h, train_error=0.6 * noise(0.02))
    assert assign_phase(summary(h6), h6, num_classes=2) == "3"
    assert assign_phase(summary(h6), h6, num_classes=10) != "3"
    assert assign_phase(summary(h, classes=list(range(10))), h) == "3"
    # thresholds are parameters
    h2 = equilibrium()
    assert assign_phase(summary(h2), h2, phase3_chance_fraction=0.1, phase3_max_cos=0.9) == "3"
    nc = not_converged()
    res = classify_run(summary(nc), nc)
    assert res.loss_decay == pytest.approx(0.4, abs=0.1) and res.loss_decay > 2 * res.loss_decay_stderr
    assert assign_phase(summary(nc), nc, phase1_min_decay=0.6) == "2"


def test_binary_chance_level():
    err = 0.5 * noise(0.02)
    h = history(np.full(STEPS.size, 0.69), err, np.full(STEPS.size, 0.01))
    assert assign_phase(summary(h), h, num_classes=2) == "3"
    assert assign_phase(summary(h, num_classes=2), h) == "3"


def test_status_and_missing_data():
    h = converged()
    assert assign_phase(summary(h, status="diverged"), h) == "diverged"
    assert assign_phase(summary(h, status="failed"), None) == "failed"
    bad = summary(h)
    bad["final"]["train_loss"] = math.inf
    assert assign_phase(bad, h) == "diverged"
    assert assign_phase({"status": "ok", "final": {}}, {"step": STEPS}) == "unknown"
    # final metrics only, no history: converged by train error; otherwise stationary (no slope to fit)
    assert assign_phase({"status": "ok", "final": {"train_error": 0.0}}) == "1-converged"
    assert assign_phase({"status": "ok", "final": {"train_error": 0.3}}) == "2"
    assert assign_phase({"status": "ok", "final": {"train_error": 0.88}}) == "3"


def test_short_tail_uses_last_points():
    steps = np.array([0.0, 10, 20, 1000, 1001])  # the 30% tail holds only 2 points: use the last 3
    h = history(np.array([2.3, 1.0, 0.8, 0.5, 0.49]), np.full(5, 0.2), np.full(5, 0.9), steps=steps)
    res = classify_run(summary(h), h)
    assert res.phase in ("1-not-converged", "2") and not math.isnan(res.loss_decay)


def test_phase_boundaries():
    elrs = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, None]
    phases = ["1-converged", "1-not-converged", "2", "2", "3", "3", "2"]
    b = phase_boundaries(elrs, phases)
    assert list(b) == ["1", "1-converged", "1-not-converged", "2", "3"]
    assert b["1"] == (1e-4, 3e-4) and b["2"] == (1e-3, 3e-3) and b["3"] == (1e-2, 3e-2)


def test_converged_is_a_count_of_misclassified_training_examples():
    h = not_converged()
    s = summary(h)
    s["final"].update(train_error=12 / 2000, train_misclassified=12)
    res = classify_run(s, h)
    assert res.phase == "1-not-converged" and res.final_misclassified == 12
    assert assign_phase(s, h, converged_max_errors=15) == "1-converged"   # the seed's 10-15 example boundary
    s["final"].update(train_error=0.0, train_misclassified=0)
    assert assign_phase(s, h) == "1-converged"


def test_cosine_split_of_phases_1_and_2():
    """The seed's MSE rule (Fig. 17): settled weights (high consecutive cosine) are phase 1, else 2."""
    h = equilibrium()   # stationary loss: phase 2 by the loss trend
    assert assign_phase(summary(h), h) == "2"
    settled = dict(h, cos_prev=np.full(STEPS.size, 0.99))
    assert assign_phase(summary(settled), settled, split="cosine") == "1-not-converged"
    assert assign_phase(summary(h), h, split="cosine") == "2"
    with pytest.raises(ValueError, match="split"):
        assign_phase(summary(h), h, split="grad")


def test_docs_state_the_rule_with_these_thresholds():
    """docs/sphere.md states the rule once; its numbers are this module's constants."""
    from pathlib import Path

    from lossland.studies.sphere import phases

    page = (Path(__file__).resolve().parent.parent / "docs" / "sphere.md").read_text()
    section = page[page.index("## Phases"):]
    section = section[:section.index("\n## ", 4)]
    for text in (f"{phases.PHASE3_CHANCE_FRACTION}·(1 − 1/K)", f"< {phases.PHASE3_MAX_COS}",
                 f"last {round(100 * phases.TAIL_FRACTION)} %", f"≤ {phases.CONVERGED_MAX_ERRORS}",
                 "`converged_max_errors`", f"≥ {phases.PHASE1_MIN_COS}", f"{phases.PHASE1_MIN_DECAY}",
                 f"{phases.PHASE1_MIN_TSTAT:g} standard errors"):
        assert text in section, text
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "0.9·(1 − 1/K)" not in readme and "docs/sphere.md#phases" in readme
