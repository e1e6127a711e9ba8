"""The prior-strength rule and the mean-error panels (lossland/studies/connect/strength.py) on controlled inputs,
and their tables, figures and verdicts in ``lossland paper connect``."""

import csv
import json

import pytest

from lossland.cli import main
from lossland.commands.paper import adapter
from lossland.paper import compare
from lossland.studies.connect import strength as st

WD = {"_target_": "lossland.regularizers.WeightDecay"}
NONE = {"_target_": "lossland.regularizers.NoRegularizer"}


def _rec(coef=0.0, rate=0.0, label="linear", width=50, pair=0, acc_loss=5.0, acc=(90.0, 92.0), prior=None,
         curve=None):
    reg = {**WD, "coef": coef} if coef else NONE
    return {"status": "ok", "width": width, "method": {"label": label},
            "prior": prior or ("weight_decay" if coef else "dropout" if rate else "none"),
            "a": {"seed": pair, "regularizer": reg, "model": {"dropout": rate}}, "b": {"seed": 10 + pair},
            "summary": {"test": {"max_acc_loss": acc_loss, "acc_a": acc[0], "acc_b": acc[1]}},
            "result": {"test_acc": list(curve)} if curve else {}}


def test_strength_of_a_record_is_read_from_its_config():
    assert st.strengths_of(_rec(coef=1e-3)) == [("weight decay", 1e-3)]
    assert st.strengths_of(_rec(rate=0.3)) == [("dropout", 0.3)]
    assert st.strengths_of(_rec()) == [("weight decay", 0.0), ("dropout", 0.0)]   # strength 0 of both kinds
    assert st.strengths_of(_rec(coef=1e-3, rate=0.3)) == []


def test_a_series_is_smoother_when_its_loss_falls_with_strength():
    assert st.series_smoother([(0, 9.0, 3), (1e-3, 7.0, 3), (1e-2, 5.0, 3)])[0] is True
    ok, detail = st.series_smoother([(0, 5.0, 3), (1e-3, 7.0, 3), (1e-2, 9.0, 3)])
    assert ok is False and "ρ = +1.00" in detail
    # falls overall but the strongest is not below strength 0: not smoother
    assert st.series_smoother([(0, 5.0, 3), (0.1, 3.0, 3), (0.3, 2.0, 3), (0.5, 6.0, 3)])[0] is False
    assert st.series_smoother([(0, 9.0, 3), (1e-2, 5.0, 3)])[0] is None                 # two strengths
    assert st.series_smoother([(0, 9.0, 2), (1e-3, 7.0, 2), (1e-2, 5.0, 2)])[0] is None  # two pairs each
    assert st.series_smoother([(1e-4, 9.0, 3), (1e-3, 7.0, 3), (1e-2, 5.0, 3)])[0] is None  # no strength 0


def test_the_verdict_needs_a_majority_of_deciding_series():
    down = [(0, 9.0, 3), (0.1, 7.0, 3), (0.5, 5.0, 3)]
    up = [(0, 5.0, 3), (0.1, 7.0, 3), (0.5, 9.0, 3)]
    few = [(0, 5.0, 1), (0.1, 7.0, 1), (0.5, 9.0, 1)]
    f = lambda pts: {"kind": "dropout", "width": 50, "method": "linear", "points": pts}  # noqa: E731
    assert st.smoother_verdict([f(down), f(down), f(up)])[0] is True
    assert st.smoother_verdict([f(down), f(up)])[0] is False           # half is not a majority
    ok, detail = st.smoother_verdict([f(few)])
    assert ok is None and detail.startswith("not measured")
    assert st.smoother_verdict([])[0] is None


def _strength_records(falls=True):
    recs = []
    for kind, strengths in (("wd", (0.0, 1e-3, 1e-2)), ("do", (0.1, 0.5))):
        for i, s in enumerate(strengths):
            for pair in range(3):
                for label, base in (("linear", 9.0), ("arc+WA", 2.0), ("linear, ot_exact", 1.0)):
                    v = base - (i if falls else -i) * base / 4 + 0.1 * pair
                    recs.append(_rec(coef=s if kind == "wd" else 0.0, rate=s if kind == "do" else 0.0,
                                     label=label, pair=pair, acc_loss=v))
    return recs


def test_strength_rows_table_and_series():
    rows = st.strength_rows(_strength_records())
    table = st.strength_table(rows)
    first = table[0]
    assert (first["prior"], first["strength"], first["width"], first["pairs"]) == ("weight decay", "0", "50", "3")
    assert first["endpoint test error (%)"] == "9.00 ± 0.00" and first["Linear"] == "9.10 ± 0.10"
    assert first["Arc"] == "—"
    # no-prior nets are strength 0 of dropout too
    assert [(r["prior"], r["strength"]) for r in table][3:] == [("dropout", "0"), ("dropout", "0.1"),
                                                                ("dropout", "0.5")]
    facts = st.series_facts(rows)
    assert {(f["kind"], f["method"]) for f in facts} == {(k, m) for k in st.KINDS
                                                         for m in ("linear", "linear, ot_exact")}  # best advanced
    assert st.smoother_verdict(facts)[0] is True
    assert st.smoother_verdict(st.series_facts(st.strength_rows(_strength_records(falls=False))))[0] is False


def test_mean_error_and_the_panels_rule():
    assert st.mean_error(_rec(curve=(90.0, 80.0, 70.0))) == pytest.approx(20.0)
    assert st.mean_error(_rec()) is None
    recs = [_rec(label=lab, width=w, pair=p, prior=prior, curve=(90.0, 90.0 - drop, 90.0))
            for prior in ("none", "weight_decay") for w in (10, 100) for p in (0, 1)
            for lab, drop in (("linear", 30), ("arc", 24), ("linear+WA", 9), ("arc, ot_exact", 6))]
    rows = st.mean_error_rows(recs)
    table = st.mean_error_table(rows, "none")
    assert [r["method"] for r in table] == ["Linear", "Arc", "Linear + WA", "Arc + OT"]
    assert table[0] == {"method": "Linear", "10": "20.00 ± 0.00", "100": "20.00 ± 0.00"}
    facts = st.advanced_lower_facts(rows)
    assert len(facts) == 8 and st.advanced_lower_verdict(facts)[0] is True
    facts[0]["value"] = facts[0]["arc"] + 1  # one WA / OT cell above Arc
    ok, detail = st.advanced_lower_verdict(facts)
    assert ok is False and "7/8" in detail
    assert st.advanced_lower_verdict([])[0] is None


def test_adapter_trends_read_the_context():
    mod = adapter("connect")
    assert set(mod.RECORD_TRENDS) <= set(mod.TRENDS)
    assert mod.stronger_prior_smoother(None, {})[0] == compare.NOT_MEASURED
    assert mod.advanced_lower_mean_error(None, {})[0] == compare.NOT_MEASURED
    ctx = {"records": [], "rows": [], "strength_records": _strength_records()}
    assert mod.stronger_prior_smoother(ctx, {})[0] == compare.REPRODUCES
    assert mod.prior_strength(ctx)[0]["Linear"] == "9.10 ± 0.10"


def test_paper_connect_tables_the_strength_sweep_and_the_panels(tmp_path, capsys):
    """A paper layout: connect_width/ (the panels' records) and connect_prior/ (the strength sweep)."""
    for i, rec in enumerate(_strength_records(falls=False)):
        d = tmp_path / "in" / "connect_prior" / str(i)
        d.mkdir(parents=True)
        (d / "connect.json").write_text(json.dumps(rec))
    for i, (prior, lab, w, p) in enumerate((pr, lab, w, p) for pr in ("none", "weight_decay")
                                           for lab in ("linear", "arc", "linear, ot_exact")
                                           for w in (10, 100) for p in (0, 1)):
        drop = {"linear": 30, "arc": 20, "linear, ot_exact": 5}[lab]
        d = tmp_path / "in" / "connect_width" / str(i)
        d.mkdir(parents=True)
        rec = _rec(label=lab, width=w, pair=p, prior=prior, curve=(90.0, 90.0 - drop, 90.0))
        rec["summary"]["test"]["min_acc"] = 90.0 - drop
        (d / "connect.json").write_text(json.dumps(rec))
    main(["paper", "connect", "--from", str(tmp_path / "in"), "--out", str(tmp_path / "p")])
    capsys.readouterr()
    with open(tmp_path / "p" / "trends.csv") as f:
        got = {r["trend"]: r["verdict"] for r in csv.DictReader(f)}
    assert got["stronger_prior_smoother"] == compare.FAILS and got["advanced_lower_mean_error"] == compare.REPRODUCES
    extra = json.loads((tmp_path / "p" / "paper.json").read_text())["extra"]
    assert {r["method"]: r for r in extra["mean_err_weight_decay"]}["Linear + OT"]["10"] == "11.67 ± 0.00"
    assert len(extra["prior_strength"]) == 6
    for name in ("mean_error.png", "prior_strength.png"):
        assert (tmp_path / "p" / name).stat().st_size > 0
