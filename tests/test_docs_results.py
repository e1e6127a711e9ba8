"""The docs' result blocks are the committed paper.json files (lossland/paper/docs.py): a number edited by hand in
a block, or a paper.json regenerated without `lossland paper-docs`, fails here."""

import json
import re
import shutil
from pathlib import Path

import pytest

from lossland.errors import LosslandError
from lossland.paper.docs import blocks, render, sync

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_result_block_equals_its_paper_json():
    assert blocks(DOCS), "no <!-- paper STUDY: ... --> blocks in docs/"
    stale = sync(DOCS, check=True)
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
    assert len(sync(docs, check=True)) == 1
    assert sync(docs) and md.read_text() == text and not sync(docs, check=True)


def test_blocks_render_tables_trends_and_facts_and_refuse_unknown_ids():
    paper = {"tables": {"t": [{"q": "a", "value (seed)": "1", "value (ours)": "2", "note": ""}]},
             "verdicts": [{"trend": "x", "verdict": "reproduces", "claim": "c", "detail": "d"}],
             "facts": {"runs": [{"elr": 0.001, "train_error": 0.25, "gm": 1.23456, "phase": "2"},
                                {"elr": 0.01, "train_error": None, "gm": 2.0, "phase": "3"}], "none": []}}
    assert render(paper, "table t") == "| q | value (seed) | value (ours) |\n|---|---|---|\n| a | 1 | 2 |\n"
    assert "| x | reproduces | d |" in render(paper, "trends")
    out = render(paper, "facts runs elr:g train_error:% gm:.3g where=phase=2")
    assert out.splitlines()[0] == "| elr | final train error | final GM |"
    assert out.splitlines()[2] == "| 0.001 | 25.0 % | 1.23 |" and len(out.splitlines()) == 3
    assert "| 0.01 | — | 2 |" in render(paper, "facts runs elr:g train_error:% gm:.3g")
    assert "not part of the run" in render(paper, "facts none elr")
    for bad in ("table nope", "facts nope", "figure x"):
        with pytest.raises(LosslandError):
            render(paper, bad)


def test_committed_results_name_the_command_that_made_them():
    for p in sorted((DOCS / "results").glob("*/paper.json")):
        paper = json.loads(p.read_text())
        assert paper["study"] == p.parent.name and paper["tables"] and paper["verdicts"]
