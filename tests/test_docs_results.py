"""The docs' result blocks and verdicts are the committed paper.json files (lossland/paper/docs.py): a number edited by
hand in a block, or a paper.json regenerated without `lossland paper-docs`, fails here."""

import json
import re
import shutil

import pytest

from lossland.errors import LosslandError
from lossland.paper.docs import BLOCK, blocks, render, sync
from tests.conftest import ROOT, run_cli

DOCS = ROOT / "docs"


def test_every_result_block_equals_its_paper_json():
    assert blocks(), "no <!-- paper STUDY: ... --> blocks in docs/"
    stale = sync(check=True)
    assert not stale, "run `lossland paper-docs`: stale blocks " + "; ".join(stale)


def test_result_figures_the_docs_show_exist():
    for md in DOCS.glob("*.md"):
        for ref in re.findall(r"\]\((results/[^)]+)\)", md.read_text()):
            assert (DOCS / ref).is_file(), f"{md.name} shows {ref}, which is not in docs/results"


def test_sphere_figures_come_from_the_sphere_results():
    # the stale hand-made sphere figures are gone: every sphere figure the docs show is an output of paper sphere
    for md in DOCS.glob("*.md"):
        assert not re.findall(r"\]\(figures/sphere_[^)]+\)", md.read_text()), md.name
    assert not list((DOCS / "figures").glob("sphere_*.png"))


def test_a_hand_edited_number_is_stale_and_sync_restores_it(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    md = next(p for p in sorted(docs.glob("*.md")) if "<!-- paper sphere: " in p.read_text())
    text = md.read_text()
    start = text.index("<!-- paper sphere: ")
    body_at = text.index("\n", start) + 1
    m = re.search(r"\d", text[body_at:])
    edited = text[:body_at + m.start()] + str((int(m.group()) + 1) % 10) + text[body_at + m.end():]
    md.write_text(edited)
    files = sorted(docs.glob("*.md"))
    assert len(sync(files, check=True)) == 1
    assert sync(files) and md.read_text() == text and not sync(files, check=True)


def test_blocks_render_tables_trends_and_facts_and_refuse_unknown_ids():
    paper = {"tables": {"t": [{"q": "a", "value (seed)": "1", "value (ours)": "2", "note": ""}]},
             "verdicts": [{"trend": "x", "verdict": "reproduces", "claim": "c", "detail": "d"}],
             "facts": {"runs": [{"elr": 0.001, "train_error": 0.25, "gm": 1.23456, "phase": "2"},
                                {"elr": 0.01, "train_error": None, "gm": 2.0, "phase": "3"}], "none": []}}
    assert render(paper, "table t") == "| q | value (seed) | value (ours) |\n|---|---|---|\n| a | 1 | 2 |\n"
    assert "| x | reproduces | d |" in render(paper, "verdicts")
    assert render(paper, "verdict x") == "reproduces"
    out = render(paper, "facts runs elr:g train_error:% gm:.3g where=phase=2")
    assert out.splitlines()[0] == "| elr | final train error | final GM |"
    assert out.splitlines()[2] == "| 0.001 | 25.0 % | 1.23 |" and len(out.splitlines()) == 3
    assert "| 0.01 | — | 2 |" in render(paper, "facts runs elr:g train_error:% gm:.3g")
    assert "not part of the run" in render(paper, "facts none elr")
    for bad in ("table nope", "facts nope", "figure x", "verdict nope", "extra nope", "trends"):
        with pytest.raises(LosslandError):
            render(paper, bad)


def test_committed_results_name_the_command_that_made_them():
    for p in sorted((DOCS / "results").glob("*/paper.json")):
        paper = json.loads(p.read_text())
        assert paper["study"] == p.parent.name and paper["tables"] and paper["verdicts"]


PAPER = {"study": "s", "tables": {"t": [{"k": "a", "v (seed)": "1", "v (ours)": "0.5"}]},
         "extra": {"seeds": [{"prior": "weak", "acc": 0.98765}]},
         "verdicts": [{"trend": "up", "verdict": "does not reproduce", "claim": "c", "detail": "0/3 seeds"}]}


def _doc(tmp_path, body):  # a page beside results/s/paper.json
    (tmp_path / "results" / "s").mkdir(parents=True, exist_ok=True)
    (tmp_path / "results" / "s" / "paper.json").write_text(json.dumps(PAPER))
    p = tmp_path / "s.md"
    p.write_text(body)
    return p


def test_blocks_are_generated_from_paper_json_and_a_hand_edit_is_caught(tmp_path):
    p = _doc(tmp_path, "Speed: <!-- paper s: verdict up -->reproduces<!-- /paper -->.\n\n"
                       "<!-- paper s: extra seeds -->\n<!-- /paper -->\n"
                       "<!-- paper s: verdicts -->\n<!-- /paper -->\n")
    assert len(sync([p], check=True)) == 3
    assert len(sync([p])) == 3
    text = p.read_text()
    assert "Speed: <!-- paper s: verdict up -->does not reproduce<!-- /paper -->." in text
    assert "| prior | acc |\n|---|---|\n| weak | 0.9877 |\n" in text
    assert "| up | does not reproduce | 0/3 seeds |" in text
    assert sync([p], check=True) == []
    p.write_text(text.replace("0.9877", "0.99"))  # a hand edit
    assert sync([p], check=True) == [f"{p}: block 's: extra seeds' differs from its paper.json"]


def test_a_missing_paper_json_reads_not_measured_and_a_bad_selector_is_refused(tmp_path):
    p = tmp_path / "x.md"
    p.write_text("<!-- paper nas: verdict up -->reproduces<!-- /paper -->\n"
                 "<!-- paper nas: extra seeds -->\n<!-- /paper -->")
    sync([p])
    assert p.read_text().startswith("<!-- paper nas: verdict up -->not measured yet (no "
                                    "`results/nas/paper.json` beside this page: `lossland paper nas`")
    assert "<!-- paper nas: extra seeds -->\n_not measured yet" in p.read_text()
    q = _doc(tmp_path, "<!-- paper s: extra nope --><!-- /paper -->")
    with pytest.raises(LosslandError, match="'extra nope': no such extra"):
        sync([q], check=True)


def test_the_command_rewrites_the_files_it_is_given_and_check_exits_1_on_a_stale_block(tmp_path):
    p = _doc(tmp_path, "<!-- paper s: extra seeds -->\n| prior | acc |\n<!-- /paper -->\n")
    r = run_cli("-m", "lossland.cli", "paper-docs", "--check", str(p))
    assert r.returncode == 1 and f"stale: {p}: block 's: extra seeds'" in r.stdout, r.stdout + r.stderr
    r = run_cli("-m", "lossland.cli", "paper-docs", str(p))
    assert r.returncode == 0 and "| weak | 0.9877 |" in p.read_text(), r.stdout + r.stderr
    assert run_cli("-m", "lossland.cli", "paper-docs", "--check", str(p)).returncode == 0


def test_a_marker_quoted_in_prose_is_not_a_block(tmp_path):
    p = _doc(tmp_path, "blocks sit between `<!-- paper s: ... -->` and `<!-- /paper -->` markers\n")
    assert blocks([p]) == [] and sync([p]) == []


def test_the_nas_doc_takes_its_results_and_verdicts_from_paper_json():
    found = {m["what"] for m in BLOCK.finditer((DOCS / "nas.md").read_text()) if m["study"] == "nas"}
    assert {"extra seeds", "extra anneal", "verdicts", "verdict prior_makes_discrete",
            "verdict stuck_in_stationary_points"} <= found


def test_the_connect_doc_takes_its_tables_checks_and_verdicts_from_paper_json():
    """Study C's three prior tables, connect-table's checks, the verdicts and each verdict word of docs/connect.md
    are blocks of docs/results/connect/paper.json, and no hand-made table is left in its measured section."""
    text = (DOCS / "connect.md").read_text()
    found = {m["what"] for m in BLOCK.finditer(text) if m["study"] == "connect"}
    tables = {f"extra max_err_{p}" for p in ("none", "weight_decay", "dropout")} | {"extra checks", "verdicts"} | {
        "extra mean_err_none", "extra mean_err_weight_decay", "extra prior_strength"}
    words = {f"verdict {t}" for t in ("advanced_beat_naive", "ot_beats_linear_small_width", "wider_more_connected",
                                      "prior_more_connected", "advanced_lower_mean_error", "stronger_prior_smoother")}
    assert tables | words <= found
    measured = BLOCK.sub("", text[text.index("### Measured (embedded scale)"):])
    assert not [line for line in measured.splitlines() if line.startswith("|")], "a table outside the blocks"
