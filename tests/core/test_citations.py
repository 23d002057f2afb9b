"""Sentence citations and "read beyond the passages" runs (core/citations.py), against
hand-built answers whose every span has a known origin."""

from __future__ import annotations

import re
from dataclasses import replace

from core.citations import (
    EmittedToken,
    answer_tokens,
    beyond_runs,
    cite,
    cite_document,
    split_sentences,
    token_offsets,
)
from core.events import ChunkRef, DraftStep

PASSAGES = [
    "The lighthouse was built of granite from the Dalby quarry. Work began in 1868.",
    "The light was first exhibited at sunset on 14 October 1871. It shows two white flashes.",
    "Edmund Carrow was the first principal keeper. He served from 1871 to 1897.",
]


def _chunks() -> list[ChunkRef]:
    out, pos = [], 0
    for i, text in enumerate(PASSAGES):
        out.append(ChunkRef("doc", "Handbook", (i + 1,), 0.5, text, 20, pos, pos + len(text)))
        pos += len(text) + 100
    return out


def _tokens(*parts: tuple[str, str]) -> list[EmittedToken]:
    """Tokens from (text, how) pieces; each piece is split into word tokens."""
    return [EmittedToken(w, how, 1) for text, how in parts for w in re.findall(r"\s*\S+", text)]


def _answer(tokens: list[EmittedToken]) -> str:
    return "".join(t.text for t in tokens).strip()


def test_sentences_split_at_ends_not_at_abbreviations_or_numbers() -> None:
    text = 'It is 38 m high (see p. 12). Built in Oct. 1870, e.g. of granite. Done 3.5 "Yes."\n- a'
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "It is 38 m high (see p. 12).",
        "Built in Oct. 1870, e.g. of granite.",
        'Done 3.5 "Yes."',
        "- a",
    ]
    assert split_sentences("   ") == []


def test_each_sentence_cites_exactly_the_passages_its_draft_spans_come_from() -> None:
    """Sentence 1 copies from passage 1, sentence 2 from passage 2, sentence 3 joins a
    span of passage 0 and one of passage 2; sentence 4 is the target's own words."""
    tokens = _tokens(
        (" It was", "target"),
        (" first exhibited at sunset on 14 October 1871.", "draft"),
        (" The first", "correction"),
        (" principal keeper was Edmund Carrow.", "draft"),
        (" It is built of granite from the Dalby quarry", "draft"),
        (" and he served from 1871 to 1897.", "draft"),
        (" Nobody knows why zebras hum.", "target"),
    )
    answer = _answer(tokens)
    cites = cite(answer, tokens, _chunks())
    assert [answer[c.start : c.end] for c in cites] == [
        "It was first exhibited at sunset on 14 October 1871.",
        "The first principal keeper was Edmund Carrow.",
        "It is built of granite from the Dalby quarry and he served from 1871 to 1897.",
        "Nobody knows why zebras hum.",
    ]
    assert [c.passages for c in cites] == [(1,), (2,), (0, 2), ()]
    assert [c.supported for c in cites] == [True, True, True, False]
    # the spots narrow each passage to its sentence that holds the span
    assert [s.text for s in cites[2].spots] == [
        "The lighthouse was built of granite from the Dalby quarry.",
        "He served from 1871 to 1897.",
    ]
    assert cites[0].spots[0].start_char == _chunks()[1].start_char
    assert 0.7 < cites[0].drafted < 1.0 and cites[3].drafted == 0.0


def test_a_sentence_without_draft_spans_cites_its_best_textual_match() -> None:
    tokens = _tokens(("Carrow served as principal keeper until 1897.", "target"))
    (c,) = cite(_answer(tokens), tokens, _chunks())
    assert c.passages == (2,) and c.drafted == 0.0
    assert c.spots[0].text == "Edmund Carrow was the first principal keeper."


def test_short_draft_spans_do_not_locate_a_passage() -> None:
    """ "The light" occurs in a passage but is too short to say where a sentence came
    from; the sentence's words match nothing well: unsupported."""
    tokens = _tokens(("The light", "draft"), (" tastes of purple marzipan.", "target"))
    (c,) = cite(_answer(tokens), tokens, _chunks())
    assert c.passages == ()


def test_token_offsets_follow_the_stripped_answer() -> None:
    tokens = [EmittedToken(t, "draft", 1) for t in ["\n", " Yes", ",", " it", " is", ".", "\n"]]
    answer = _answer(tokens)
    spans = token_offsets(tokens)
    assert answer == "Yes, it is."
    assert [answer[s:e] for s, e in spans] == ["", "Yes", ",", " it", " is", ".", ""]


def _step(n: int, drafted: int, accepted: int, kind: str) -> DraftStep:
    return DraftStep(
        round=n, drafted_ids=tuple(range(drafted)),
        drafted_texts=tuple(f" d{n}_{i}" for i in range(drafted)), accepted=accepted,
        token_id=1, token_text=f" t{n}", token_kind=kind,  # type: ignore[arg-type]
        source="model", p_target=(0.5,) * drafted, p_draft=(0.5,) * drafted,
        p_hat=(0.5,) * drafted, token_p_target=0.5, token_p_hat=0.5, draft_s=0.0,
        verify_s=0.0, context_tokens=0,
    )  # fmt: skip


def test_beyond_runs_are_consecutive_low_acceptance_corrections() -> None:
    steps = [
        _step(1, 4, 4, "bonus"),  # tokens 0-4
        _step(2, 4, 0, "correction"),  # token 5          <- run 1
        _step(3, 0, 0, "target"),  # token 6 (no draft: neither breaks nor extends)
        _step(4, 4, 1, "correction"),  # tokens 7-8      <- run 1
        _step(5, 4, 3, "correction"),  # tokens 9-12 (3 of 4 kept: not low)
        _step(6, 4, 0, "correction"),  # token 13: a lone correction is noise
        _step(7, 2, 2, "bonus"),  # tokens 14-16
    ]
    (run,) = beyond_runs(steps)
    assert (run.first, run.last, run.corrections) == (5, 9, 2)
    tokens = answer_tokens(steps)
    answer = _answer(tokens)
    assert answer[run.start : run.end] == "t2 t3 d4_0 t4"
    assert len(beyond_runs(steps, min_corrections=1)) == 2
    assert beyond_runs([_step(1, 4, 4, "bonus")]) == ()


def test_unsupported_sentences_are_cited_from_the_rest_of_the_document() -> None:
    """The target read the whole document: a sentence no retrieved passage supports
    cites the searched passage holding most of its words, numbered after the others."""
    chunks = _chunks()[:2]
    elsewhere = ChunkRef("doc", "Handbook", (7,), 0.4, "Intro. " + PASSAGES[2], 20, 900, 983)
    searched: list[str] = []

    def search(sentence: str) -> list[ChunkRef]:
        searched.append(sentence)
        return [chunks[0], elsewhere]

    tokens = _tokens(
        (" It was first exhibited at sunset on 14 October 1871.", "draft"),
        (" Edmund Carrow served from 1871 to 1897.", "target"),
        (" Nobody knows why zebras hum.", "target"),
    )
    answer = _answer(tokens)
    first = cite(answer, tokens, chunks)
    assert [c.passages for c in first] == [(1,), (), ()]
    cites, extra = cite_document(answer, first, chunks, search)
    assert searched == ["Edmund Carrow served from 1871 to 1897.", "Nobody knows why zebras hum."]
    assert extra == (replace(elsewhere, origin="document"),)
    assert [c.passages for c in cites] == [(1,), (2,), ()]
    assert cites[1].spots[0].text == "He served from 1871 to 1897."
    assert cites[1].spots[0].origin == "document" and cites[0] == first[0]


def test_beyond_runs_cover_whole_words() -> None:
    """A run that starts inside a word ("Har|row") marks the whole word."""
    first = replace(_step(1, 2, 2, "bonus"), drafted_texts=(" The", " Har"), token_text="")
    first = replace(first, token_id=None)
    runs = [replace(_step(n, 3, 0, "correction"), token_text=t)
            for n, t in ((2, "row"), (3, " Point"))]  # fmt: skip
    (run,) = beyond_runs([first, *runs])
    answer = _answer(answer_tokens([first, *runs]))
    assert answer == "The Harrow Point"
    assert answer[run.start : run.end] == "Harrow Point" and run.first == 2
