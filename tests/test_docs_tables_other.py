"""The docs' result tables and verdicts of studies D, E and C (docs/nas.md, docs/exp_neuron.md, docs/connect.md) are
the committed ``paper.json`` they name (lossland.paper.docs_tables): a number edited by hand, or a paper.json
regenerated without regenerating the doc, fails here."""

import json

import pytest

from lossland.errors import LosslandError
from lossland.paper import docs_tables as D
from tests.conftest import ROOT

STUDY_DOCS = ["nas.md", "exp_neuron.md", "connect.md"]

PAPER = {"study": "s", "tables": {"t": [{"k": "a", "v (seed)": "1", "v (ours)": "0.5"}]},
         "extra": {"seeds": [{"prior": "weak", "acc": 0.98765}]},
         "verdicts": [{"trend": "up", "verdict": "does not reproduce", "claim": "c", "detail": "0/3 seeds"}]}


def _doc(tmp_path, body):
    (tmp_path / "results" / "s").mkdir(parents=True, exist_ok=True)
    (tmp_path / "results" / "s" / "paper.json").write_text(json.dumps(PAPER))
    p = tmp_path / "s.md"
    p.write_text(body)
    return p


def test_blocks_are_generated_from_paper_json_and_a_hand_edit_is_caught(tmp_path):
    p = _doc(tmp_path, "Speed: <!-- paper: results/s/paper.json verdict.up -->reproduces<!-- /paper -->.\n\n"
                       "<!-- paper: results/s/paper.json extra.seeds -->\n<!-- /paper -->\n"
                       "<!-- paper: results/s/paper.json verdicts -->\n<!-- /paper -->\n")
    assert len(D.stale(p)) == 3
    assert D.main([str(p)]) == 0
    text = p.read_text()
    assert "Speed: <!-- paper: results/s/paper.json verdict.up -->does not reproduce<!-- /paper -->." in text
    assert "| prior | acc |\n|---|---|\n| weak | 0.9877 |\n" in text
    assert "| up | does not reproduce | 0/3 seeds |" in text
    assert D.stale(p) == [] and D.main(["--check", str(p)]) == 0
    p.write_text(text.replace("0.9877", "0.99"))  # a hand edit
    assert D.stale(p) == [f"{p}: block 'results/s/paper.json extra.seeds' differs from its paper.json"]
    assert D.main(["--check", str(p)]) == 1


def test_a_missing_paper_json_reads_not_measured_and_a_bad_selector_is_refused(tmp_path):
    p = tmp_path / "x.md"
    p.write_text("<!-- paper: results/nas/paper.json verdict.up -->reproduces<!-- /paper -->")
    D.main([str(p)])
    assert p.read_text().startswith("<!-- paper: results/nas/paper.json verdict.up -->not measured yet (no "
                                    "`results/nas/paper.json` beside this page: `lossland paper nas`")
    q = _doc(tmp_path, "<!-- paper: results/s/paper.json extra.nope --><!-- /paper -->")
    with pytest.raises(LosslandError, match="no 'extra.nope'"):
        D.stale(q)


@pytest.mark.parametrize("doc", STUDY_DOCS)
def test_the_study_docs_show_their_committed_paper_json(doc):
    path = ROOT / "docs" / doc
    assert D.stale(path) == [], "regenerate: python -m lossland.paper.docs_tables docs/" + doc


def test_the_nas_doc_takes_its_results_and_verdicts_from_paper_json():
    blocks = {m["sel"] for m in D.BLOCK.finditer((ROOT / "docs" / "nas.md").read_text())}
    assert {"extra.seeds", "extra.anneal", "verdicts", "verdict.prior_makes_discrete",
            "verdict.stuck_in_stationary_points"} <= blocks


# ------------------------------------------------- study E: its tables predate paper.json; its words are the rules'
def _md_table(text: str, heading: str) -> list[dict]:
    """The first markdown table after ``heading`` as rows {column: cell}."""
    lines = text[text.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    head = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(head, (c.strip() for c in line.strip("|").split("|")))))
    return rows


def _pair(c: str):
    loss, wrong = c.split("\\")
    return [float(loss), int(wrong)]


def test_the_exp_neuron_doc_says_the_verdicts_its_rules_give_on_its_own_tables():
    """docs/exp_neuron.md's words for quality, speed and generalization are what `paper exp_neuron`'s rules
    (lossland/studies/exp_neuron/paper.py) give on the tables the page shows."""
    import re

    from lossland.commands.paper import adapter
    from lossland.paper.compare import Ours

    text = (ROOT / "docs" / "exp_neuron.md").read_text()
    cells = {"quality": _pair, "speed": lambda c: int(c.split()[0]), "generalization": _pair}
    heads = {"quality": "### Quality (Table 1)", "speed": "### Speed (Table 2)",
             "generalization": "### Generalization (Table 3)"}
    tables = {t: [Ours(key=(r["data set"], int(r["train"])), values={m: cells[t](r[f"ours: {m}"]) for m in
                                                                    ("none", "exp")})
                  for r in _md_table(text, heads[t])] for t in heads}
    trends = adapter("exp_neuron").TRENDS
    words = {"quality_mixed": "Quality", "not_faster": "Speed", "worse_generalization": "Generalization"}
    for trend, word in words.items():
        said = re.search(rf"- \*\*{word} — \"[^\"]*\": ([a-z ]+)\*\*", text)
        assert said, word
        assert said.group(1) == trends[trend](None, tables)[0], (word, trends[trend](None, tables))


def test_the_connect_doc_says_the_verdicts_its_rules_give_on_its_own_tables():
    """docs/connect.md's words for the four claimed trends are what `paper connect`'s rules
    (lossland/studies/connect/paper.py) give on the measured tables the page shows (ours: the mean before ±)."""
    import re

    from lossland.commands.paper import adapter
    from lossland.paper.compare import Ours

    text = (ROOT / "docs" / "connect.md").read_text()
    measured = text[text.index("### Measured (embedded scale"):]
    tables = {}
    for tid, heading in (("no_prior", "#### prior: none"), ("dropout", "#### prior: dropout")):
        rows = []
        for r in _md_table(measured, heading):
            vals = {int(w): float(c.split()[0]) for w, c in r.items() if w.isdigit() and c.split()[0] != "—"}
            rows.append(Ours(key=(r["method"].replace(" + ", "+"),), values=vals))
        tables[tid] = rows
    trends = adapter("connect").TRENDS
    words_part = re.sub(r"\n +", " ", text[text.index("**Which of the seed's trends"):])  # bullets on one line
    said = dict(re.findall(r"^- \*(.+?)\*: \*\*([a-z ]+)\*\*", words_part, re.M))
    words = {"advanced_beat_naive": "WA and OT paths have a lower maximum test error than the naive Linear path "
                                    "(every width, every prior)",
             "ot_beats_linear_small_width": "At the smallest width Linear + OT is below naive Linear",
             "wider_more_connected": "Minima become more connected as the width grows (naive Linear and Arc)",
             "prior_more_connected": "The prior (dropout 0.5) makes the naive paths' minima more connected"}
    for trend, claim in words.items():
        assert said.get(claim) == trends[trend](None, tables)[0], (claim, trends[trend](None, tables))
