"""Scoring answers against a labelled question set (bench/scoring.py)."""

from __future__ import annotations

import importlib.util
import json
import re
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bench.scoring import (
    QASetError,
    Scored,
    contains_reference,
    load_qa_set,
    score,
    summarise,
    token_f1,
)

SETS = Path(__file__).resolve().parents[2] / "bench" / "qa"


def test_references_match_whole_words_only() -> None:
    assert contains_reference("There are about 25 packages.", ["25"])
    assert not contains_reference("There are about 250 packages.", ["25"])
    assert contains_reference("Use Write.Table(x) to save it", ["write.table"])
    assert not contains_reference("use rewrite.tables", ["write.table"])
    assert contains_reference("it is  case\nsensitive", ["case sensitive"])
    assert contains_reference("R_LIBS_USER sets it", ["nothing", "R_LIBS_USER"])
    assert not contains_reference("no reference here", ["   "])


def test_token_f1_follows_squad() -> None:
    assert token_f1("The cat sat.", "a cat sat") == 1.0  # articles and punctuation go
    assert token_f1("cat", "cat sat") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert token_f1("dog", "cat") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "cat") == 0.0
    assert token_f1("cat cat", "cat") == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def _write(tmp_path: Path, rows: list[object]) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_a_bad_set_names_the_line(tmp_path: Path) -> None:
    good = {"id": "a", "doc": "x.pdf", "question": "q?", "answer": "A.", "refs": ["A"]}
    assert load_qa_set(_write(tmp_path, [good]))[0].refs == ("A",)
    cases: list[tuple[list[object], str]] = [
        ([good, {**good, "id": "b", "refs": []}], "line 2: refs must be"),
        ([{k: v for k, v in good.items() if k != "refs"}], "line 1 lacks refs"),
        ([good, good], "used twice"),
        ([[1, 2]], "not a JSON object"),
    ]
    for rows, message in cases:
        with pytest.raises(QASetError, match=message):
            load_qa_set(_write(tmp_path, rows))
    (tmp_path / "broken.jsonl").write_text('{"id": ', encoding="utf-8")
    with pytest.raises(QASetError, match="line 1 is not JSON"):
        load_qa_set(tmp_path / "broken.jsonl")
    with pytest.raises(QASetError, match="Cannot read"):
        load_qa_set(tmp_path / "missing.jsonl")


def test_summary_per_mode() -> None:
    rows = [
        Scored("1", "target", True, 1.0, 10),
        Scored("2", "target", False, 0.5, 20),
        Scored("1", "rapid", True, 0.8, 12, drafted=10, accepted=6, rounds=4),
        Scored("2", "rapid", True, 0.6, 14, drafted=6, accepted=2, rounds=4),
    ]
    target, rapid = summarise(rows)
    assert (target.mode, target.accuracy, target.f1, target.mean_answer_tokens) == (
        "target",
        0.5,
        0.75,
        15.0,
    )
    assert target.acceptance_rate is None and target.mean_accepted_length is None
    assert rapid.accuracy == 1.0 and rapid.acceptance_rate == 0.5
    assert rapid.mean_accepted_length == 1.0


# The documents whose whole text fits the default model's 8K window (see
# bench/qa/README.md for their token counts); every other document is a long manual.
FITS_WINDOW = frozenset(
    {
        "base/ltnews30.pdf",
        "base/ltnews31.pdf",
        "base/cfgguide.pdf",
        "base/modguide.pdf",
        "natbib/natnotes.pdf",
        "url/url.pdf",
        "parskip/parskip.pdf",
        "harrow-point-handbook.pdf",
    }
)


def _bundled_rows() -> list[dict[str, Any]]:
    """Every line of every bench/qa/*.jsonl, as JSON."""
    return [
        json.loads(line)
        for path in sorted(SETS.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def _bundled_docs() -> list[str]:
    return sorted({row["doc"] for row in _bundled_rows()})


def _apt_package(doc: str) -> str:
    """The Debian/Ubuntu package that installs a bundled set's document."""
    if doc == "gnuplot.pdf":
        return "gnuplot-doc"
    if doc.startswith("R-"):
        return "r-doc-pdf"
    if doc.startswith("parskip/"):
        return "texlive-latex-recommended-doc"
    return "texlive-latex-base-doc"


@cache
def _check_set() -> ModuleType:
    """bench/qa/check_set.py as a module (it imports PyMuPDF: only load it when needed)."""
    pytest.importorskip("pymupdf")
    spec = importlib.util.spec_from_file_location("check_set", SETS / "check_set.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _installed(doc: str) -> Path:
    """The bundled set's document, resolved like the benchmark does; skips when absent."""
    pdf: Path | None = _check_set().resolve_doc(doc)
    if pdf is None:
        pytest.skip(f"{doc} is not installed (apt-get install {_apt_package(doc)})")
    return pdf


def test_the_bundled_sets_load_and_score() -> None:
    paths = sorted(SETS.glob("*.jsonl"))
    assert {p.name for p in paths} >= {"r-manuals.jsonl", "latex-gnuplot.jsonl", "sample.jsonl"}
    items = [item for path in paths for item in load_qa_set(path)]
    assert len(items) >= 60
    ids = [item.qid for item in items]
    assert len(set(ids)) == len(ids), "ids must be unique across all the sets"
    for item in items:
        assert 1 <= len(item.refs) <= 4, item.qid
        assert all(1 <= len(ref.split()) <= 4 for ref in item.refs), item.qid
        # a reference that the question already contains would make every echo right
        assert not contains_reference(item.question, item.refs), item.qid
        assert score(item, "x", item.answer, 5).correct, item.qid  # the reference answers
        assert item.page is not None and item.page >= 1, item.qid
    # enough questions answered from a whole document in the window, not only retrieval
    assert sum(item.doc in FITS_WINDOW for item in items) >= 15
    assert sum(item.doc not in FITS_WINDOW for item in items) >= 15


def test_the_bundled_rows_follow_the_format() -> None:
    rows = _bundled_rows()
    keys = {"id", "doc", "question", "answer", "refs", "evidence", "page"}
    for row in rows:
        assert set(row) == keys, row["id"]
        assert 10 <= len(row["evidence"].split()) <= 40, row["id"]
        stem = Path(row["doc"]).stem.lower()
        assert re.fullmatch(rf"{re.escape(stem)}-\d\d", row["id"]), row["id"]
        # a relative path under one of the benchmark's document folders
        assert not Path(row["doc"]).is_absolute() and ".." not in Path(row["doc"]).parts


@pytest.mark.parametrize("doc", _bundled_docs())
def test_the_evidence_is_on_its_page(doc: str) -> None:
    import pymupdf

    check_set = _check_set()
    pdf = _installed(doc)
    rows = [row for row in _bundled_rows() if row["doc"] == doc]
    with pymupdf.open(pdf) as opened:  # type: ignore[no-untyped-call]  # no type hints
        for row in rows:
            assert 1 <= row["page"] <= len(opened), row["id"]
            text = check_set.normalise(opened[row["page"] - 1].get_text())
            assert check_set.normalise(row["evidence"]) in text, row["id"]


@pytest.mark.parametrize("doc", sorted(FITS_WINDOW))
def test_the_short_documents_fit_the_window(doc: str, request: pytest.FixtureRequest) -> None:
    check_set = _check_set()
    pdf = _installed(doc)
    tokenizer = request.getfixturevalue("target_tokenizer")  # only once a PDF is there
    tokens = len(tokenizer.encode(check_set.raw_text(pdf)).ids)
    assert tokens <= check_set.FITS  # 7,000 of 8,192: room for the prompt and the answer
