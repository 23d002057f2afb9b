"""Scoring answers against a labelled question set (core/quality.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.quality import (
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
    cases = [
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


def test_the_bundled_sets_load_and_score() -> None:
    items = [item for path in sorted(SETS.glob("*.jsonl")) for item in load_qa_set(path)]
    assert len(items) >= 60
    for item in items:
        assert 1 <= len(item.refs) <= 4
        # a reference that the question already contains would make every echo right
        assert not contains_reference(item.question, item.refs), item.qid
        assert score(item, "x", item.answer, 5).correct, item.qid  # the reference answers
