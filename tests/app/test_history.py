"""Answer history on disk and its Markdown / JSON exports (no Qt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.gui.history import AnswerRecord, Comparison, HistoryStore, to_json, to_markdown
from core.events import ChunkRef, Finished


def _chunk(n: int, doc: str = "d1") -> ChunkRef:
    return ChunkRef(
        doc_id=doc,
        title=f"Manual {doc}",
        pages=(n, n + 1),
        score=0.5 + n / 100,
        text=f"Passage {n} says the lamp is lit at dusk.",
        tokens=12,
        start_char=10 * n,
        end_char=10 * n + 40,
        rects=((n, 50.0, 60.0, 300.0, 72.0),),
        labels=(f"{n}", f"{n + 1}"),
    )


def _finished(answer: str = "At dusk.", **kw: object) -> Finished:
    fields: dict[str, object] = dict(
        answer=answer,
        mode="rapid",
        stop_reason="eos",
        new_tokens=20,
        rounds=8,
        drafted=24,
        accepted=12,
        target_prefill_s=3.0,
        drafter_prefill_s=0.5,
        decode_s=2.0,
        end_to_end_s=6.0,
        baseline_step_s=0.125,
        chunks=(_chunk(3), _chunk(7, "d2")),
        time_to_first_token_s=3.6,
    )
    fields.update(kw)
    return Finished(**fields)  # type: ignore[arg-type]


def _record(
    question: str = "When is the lamp lit?", docs: tuple[str, ...] = ("d1", "d2"), **kw: object
) -> AnswerRecord:
    return AnswerRecord(
        question=question,
        doc_ids=docs,
        titles=tuple(f"Manual {d}" for d in docs),
        finished=_finished(),
        settings={"mode": "rapid", "eta": 5.0},
        tokens=({"text": "At", "kind": "accepted", "round": 1},),
        asked_at=1_700_000_000.0,
        **kw,  # type: ignore[arg-type]
    )


def test_json_export_has_answer_citations_with_pages_and_statistics() -> None:
    comparison = Comparison(8.0, 10.0, True, "At dusk.")
    data = json.loads(to_json(_record(comparison=comparison)))
    assert data["question"] == "When is the lamp lit?"
    assert data["answer"] == "At dusk."
    assert [c["where"] for c in data["citations"]] == ["pp. 3-4", "pp. 7-8"]
    assert data["citations"][1]["doc_id"] == "d2" and data["citations"][0]["n"] == 1
    stats = data["statistics"]
    assert stats["acceptance_rate"] == 0.5 and stats["mean_accepted_length"] == 1.5
    assert stats["tokens_per_s"] == 10.0 and stats["speedup_estimate"] == 1.25
    assert data["comparison"]["measured_speedup"] == 1.25
    assert data["comparison"]["identical_answers"] is True
    assert data["documents"] == [
        {"id": "d1", "title": "Manual d1"},
        {"id": "d2", "title": "Manual d2"},
    ]


def test_markdown_export_reads_as_a_report() -> None:
    md = to_markdown(_record())
    assert md.startswith("# When is the lamp lit?\n")
    assert "## Answer\n\nAt dusk.\n" in md
    assert "1. **Manual d1**, pp. 3-4: “Passage 3 says" in md
    assert "| Acceptance | 50% (12 of 24) |" in md
    assert "| Speedup (engine's estimate) | 1.25× |" in md


def test_store_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    store = HistoryStore(path)
    first = _record()
    store.add(first)
    store.update(first, comparison=Comparison(8.0, 10.0, False, "Dusk"))
    store.add(_record("Who kept the light?", ("d3",)))
    again = HistoryStore(path)
    assert [r.question for r in again.records] == ["When is the lamp lit?", "Who kept the light?"]
    loaded = again.records[0]
    assert loaded.finished == first.finished  # chunks, rects and labels come back as tuples
    assert loaded.comparison == Comparison(8.0, 10.0, False, "Dusk")
    assert loaded.tokens == first.tokens and loaded.asked_at == first.asked_at


def test_history_per_document(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.json")
    store.add(_record("q1", ("a",)))
    store.add(_record("q2", ("b",)))
    store.add(_record("q3", ()))  # the whole library
    assert [r.question for r in store.about(["a"])] == ["q3", "q1"]
    assert [r.question for r in store.about([])] == ["q3", "q2", "q1"]
    store.remove(store.records[0])
    assert [r.question for r in HistoryStore(tmp_path / "h.json").records] == ["q2", "q3"]


def test_a_damaged_file_is_set_aside_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_text('{"records": [{"question": ', encoding="utf-8")
    store = HistoryStore(path)
    assert store.records == [] and "set aside" in store.problem
    assert path.with_suffix(".damaged").read_text(encoding="utf-8").startswith('{"records"')
    store.add(_record())
    assert len(HistoryStore(path).records) == 1


def test_a_failed_save_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "history.json"
    store = HistoryStore(path)
    store.add(_record("kept"))
    before = path.read_bytes()

    def full_disk(*_args: object, **_kw: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("app.gui.history.json.dump", full_disk)
    with pytest.raises(OSError):
        store.add(_record("lost"))
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".history-*"))
