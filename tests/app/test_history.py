"""Answer history on disk and its Markdown / JSON exports (no Qt), provenance included:
sentence citations, unsupported sentences, runs beyond the passages, the preliminary
answer and citations added from the target's evidence; old records still load."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from app.gui.export import to_json, to_markdown
from app.gui.history import AddedCitation, AnswerRecord, Comparison, HistoryStore, sentence_at
from core.events import BeyondRun, ChunkRef, Finished, SentenceCitation


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


ANSWER = "The lamp is lit at dusk. It burns all night. Keepers wound it hourly."
SPOT = ChunkRef("d1", "Manual d1", (3,), 0.53, "lit at dusk", 4, 40, 51,
                ((3, 60.0, 70.0, 200.0, 82.0),), ("3",))  # fmt: skip
EVIDENCE = ChunkRef("d1", "Manual d1", (9,), 0.0, "wound the clockwork every hour", 8,
                    rects=((9, 50.0, 300.0, 420.0, 314.0),), labels=("ix",))  # fmt: skip


def _provenance_record(**kw: object) -> AnswerRecord:
    i, j = ANSWER.index("It"), ANSWER.index("Keepers")
    fin = _finished(
        ANSWER,
        citations=(
            SentenceCitation(0, i - 1, (0,), (SPOT,), 0.75),
            SentenceCitation(i, j - 1, (0, 1), (SPOT, _chunk(7, "d2")), 0.5),
            SentenceCitation(j, len(ANSWER), (), (), 0.0),
        ),
        beyond=(BeyondRun(12, 16, j, j + len("Keepers wound it"), 3),),
        answer_ids=tuple(range(20)),
        preliminary="At dusk, probably.",
    )
    return replace(_record(**kw), finished=fin)


def test_json_export_has_sentences_beyond_runs_and_the_preliminary() -> None:
    added = (AddedCitation(2, EVIDENCE, 0.42),)
    data = json.loads(to_json(_provenance_record(added=added)))
    first, second, third = data["sentences"]
    assert first == {
        "n": 1, "text": "The lamp is lit at dusk.", "start": 0, "end": 24, "marks": [1],
        "supported": True, "drafted_share": 0.75,
        "spots": [{"mark": 1, "doc_id": "d1", "title": "Manual d1", "pages": [3],
                   "page_labels": ["3"], "where": "p. 3", "text": "lit at dusk"}],
    }  # fmt: skip
    assert second["marks"] == [1, 2] and [p["where"] for p in second["spots"]] == [
        "p. 3", "pp. 7-8"]  # fmt: skip
    assert third["marks"] == [3] and third["supported"] is True  # the added citation
    assert third["spots"][0]["added"] is True and third["spots"][0]["where"] == "p. ix"
    assert data["unsupported_sentences"] == 0
    assert data["beyond_passages"] == [{
        "text": "Keepers wound it", "start": 45, "end": 61, "first_token": 12,
        "last_token": 16, "corrections": 3, "sentence": 3,
    }]  # fmt: skip
    assert data["preliminary_answer"] == "At dusk, probably."
    assert data["answer_with_marks"] == (
        "The lamp is lit at dusk.[1] It burns all night.[1][2] Keepers wound it hourly.[3]"
    )
    assert [c["n"] for c in data["citations"]] == [1, 2, 3]
    assert data["citations"][2]["added"] is True and data["citations"][2]["score"] == 0.42


def test_markdown_export_flags_unsupported_sentences() -> None:
    md = to_markdown(_provenance_record())
    assert "## Answer\n\nThe lamp is lit at dusk.[1] It burns all night.[1][2] Keepers " \
        "wound it hourly.\n" in md  # fmt: skip
    assert "1. “The lamp is lit at dusk.” — [1] Manual d1, p. 3\n" in md
    assert "2. “It burns all night.” — [1] Manual d1, p. 3; [2] Manual d2, pp. 7-8\n" in md
    assert "3. “Keepers wound it hourly.” — **unsupported**: no retrieved passage supports it" in md
    assert "## Read beyond the passages" in md
    assert "- “Keepers wound it” (sentence 3, 3 corrections)" in md
    assert "## Preliminary answer (passages only)" in md and "> At dusk, probably." in md


def test_provenance_round_trips_and_old_records_load(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    store = HistoryStore(path)
    record = _provenance_record(added=(AddedCitation(2, EVIDENCE, 0.42),))
    store.add(record)
    loaded = HistoryStore(path).records[0]
    assert loaded.finished == record.finished  # citations, spots, runs, ids, preliminary
    assert loaded.added == record.added
    assert loaded.finished.citations[1].spots[1].rects == ((7, 50.0, 60.0, 300.0, 72.0),)
    old = json.loads(path.read_text(encoding="utf-8"))
    for key in ("citations", "beyond", "answer_ids", "preliminary"):
        del old["records"][0]["finished"][key]
    del old["records"][0]["added"]
    path.write_text(json.dumps(old), encoding="utf-8")
    before = HistoryStore(path)
    assert before.problem == "" and len(before.records) == 1
    fin = before.records[0].finished
    assert (fin.citations, fin.beyond, fin.answer_ids, fin.preliminary) == ((), (), (), "")
    assert before.records[0].added == () and fin.chunks == record.finished.chunks
    md = to_markdown(before.records[0])
    assert "## Answer\n\n" + ANSWER + "\n" in md and "Sentences" not in md


def test_sentence_at() -> None:
    c = _provenance_record().finished.citations
    assert [sentence_at(c, p) for p in (0, 23, 24, 25, 45, 200)] == [0, 0, 1, 1, 2, 2]
    assert sentence_at((), 5) == -1
