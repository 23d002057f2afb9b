"""Tests for core.library.retrieve over a real library: dense search against a brute-force
oracle, hybrid BM25 fusion, budgeted selection in document order, citations with
pages and rectangles (real MiniLM, real FAISS, real PDFs)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import ConfigError, QuestionError
from core.events import ChunkRef
from core.library.embed import Embedder
from core.library.retrieve import Retriever, join_chunks
from core.library.schema import Chunking, tokenizer_id
from core.library.store import Library

MakePdf = Callable[..., Path]  # the `make_pdf` fixture (tests/conftest.py)

VAULT_FACT = "The access code for vault 7 is 4417."
TOPICS = {
    "garden": "tomato soil compost seedling watering greenhouse harvest mulch pruning",
    "railway": "locomotive steam track station timetable signal carriage platform freight",
    "bank": "deposit teller ledger branch cheque interest loan mortgage clerk",
    "kitchen": "pasta sauce simmer garlic oven recipe flour dough basil",
    "astronomy": "telescope galaxy orbit comet nebula planet eclipse star observatory",
    "music": "violin orchestra rehearsal melody chord concert rhythm conductor choir",
}


def _prose(topic: str, sentences: int, seed: int) -> str:
    rng = random.Random(seed)
    words = TOPICS[topic].split()
    out = []
    for _ in range(sentences):
        a, b, c = rng.sample(words, 3)
        out.append(f"The {a} near the {b} needs more {c} than it did before.")
    return " ".join(out)


def _topic_pages() -> list[str]:
    """Six pages, one topic each; the vault fact sits on page 3 among bank prose."""
    pages = []
    for number, topic in enumerate(TOPICS, start=1):
        paragraphs = [_prose(topic, 4, seed=number * 10 + i) for i in range(3)]
        if number == 3:
            paragraphs[1] = f"{_prose(topic, 2, seed=99)} {VAULT_FACT} {_prose(topic, 2, 98)}"
        pages.append("\n\n".join(paragraphs))
    return pages


@pytest.fixture(scope="module")
def chunking(target_tokenizer: Any) -> Chunking:
    """Small chunks and units, so that two short PDFs give many of each."""
    return Chunking(tokenizer_id(target_tokenizer), 96, 16, 40)


@pytest.fixture(scope="module")
def library(
    tmp_path_factory: pytest.TempPathFactory,
    make_pdf: MakePdf,
    embedder: Embedder,
    chunking: Chunking,
    target_tokenizer: Any,
) -> Iterator[Library]:
    lib = Library(tmp_path_factory.mktemp("lib"), embedder)
    topics = make_pdf(_topic_pages(), name="topics.pdf")
    kitchen = make_pdf([_prose("kitchen", 6, seed=s) for s in range(3)], name="kitchen.pdf")
    for pdf in (topics, kitchen):
        lib.add(pdf, chunking=chunking, count_tokens=target_tokenizer)
    yield lib
    lib.close()


@pytest.fixture(scope="module")
def ids(library: Library) -> tuple[str, str]:
    topics, kitchen = (d.doc_id for d in library.documents())
    return topics, kitchen


def _count(target_tokenizer: Any) -> Callable[[str], int]:
    return lambda text: len(target_tokenizer.encode(text, add_special_tokens=False).ids)


def _oracle(library: Library, query: str, doc_ids: list[str]) -> list[tuple[int, float]]:
    """Brute-force cosine of the query with every stored unit vector of `doc_ids`."""
    q = library.embedder.encode([query])[0]
    pairs = []
    for doc_id in doc_ids:
        unit_ids, vectors = library.unit_vectors(doc_id)
        pairs += list(zip(unit_ids.tolist(), (vectors @ q).tolist(), strict=True))
    return sorted(pairs, key=lambda p: -p[1])


def test_unit_search_matches_brute_force(library: Library, ids: tuple[str, str]) -> None:
    for query in ("vault access code", "Which instrument plays the melody?", "simmer garlic"):
        for doc_ids in ([ids[0]], [ids[1]], list(ids)):
            oracle = _oracle(library, query, doc_ids)
            for k in (1, 5, len(oracle) + 3):
                vector = library.embedder.encode([query])[0]
                got = library.search_units(vector, k, doc_ids)
                want = oracle[:k]
                assert len(got) == len(want)
                np.testing.assert_allclose([h.score for h in got], [s for _, s in want], atol=1e-4)
                assert {h.doc_id for h in got} <= set(doc_ids)
    assert library.search_units(library.embedder.encode(["x"])[0], 5, []) == []


def test_planted_fact_comes_first_with_its_page_and_rectangles(
    library: Library, ids: tuple[str, str]
) -> None:
    hits = Retriever(library).search("What is the access code for vault 7?", 3)
    best = hits[0]
    assert VAULT_FACT in best.ref.text
    assert best.ref.pages == (3,) and best.ref.labels == ("3",)
    doc = library.document(ids[0])
    assert best.ref.text == doc.text[best.ref.start_char : best.ref.end_char]
    assert best.ref.rects and {r[0] for r in best.ref.rects} == {3}
    page = doc.pages[2]
    for _, x0, y0, x1, y1 in best.ref.rects:
        assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height
    assert best.unit_start >= best.ref.start_char and best.unit_end <= best.ref.end_char
    assert [h.ref.score for h in hits] == sorted((h.ref.score for h in hits), reverse=True)
    assert len({(h.ref.doc_id, h.chunk) for h in hits}) == len(hits)  # one hit per chunk


def test_similarity_floor(library: Library) -> None:
    assert Retriever(library, min_score=1.01).search("bank", 5) == []
    loose = Retriever(library, min_score=-1.0).search("zebra quantum", 1000)
    chunks = sum(len(library.chunks(d.doc_id)) for d in library.documents())
    assert len(loose) == chunks  # every chunk once


def test_hybrid_finds_the_exact_term(library: Library, ids: tuple[str, str]) -> None:
    hybrid = Retriever(library, hybrid=True)
    hits = hybrid.search("4417", 3)
    assert VAULT_FACT in hits[0].ref.text
    assert [h.rank_score for h in hits] == sorted((h.rank_score for h in hits), reverse=True)
    only = hybrid.search("4417", 5, doc_ids=[ids[1]])
    assert only and {h.ref.doc_id for h in only} == {ids[1]}


def test_select_fills_budget_in_document_order(
    library: Library, ids: tuple[str, str], target_tokenizer: Any
) -> None:
    count = _count(target_tokenizer)
    retriever = Retriever(library)
    doc = library.document(ids[0])
    for budget in (40, 150, 400):
        chunks = retriever.select("bank loans and deposits", budget, count, doc_ids=[ids[0]])
        assert chunks
        assert count(join_chunks(chunks)) <= budget
        assert [c.start_char for c in chunks] == sorted(c.start_char for c in chunks)
        for a, b in pairwise(chunks):
            assert a.end_char < b.start_char  # merged when they overlap or touch
            assert doc.text[a.end_char : b.start_char].strip()
        for c in chunks:
            assert c.text == doc.text[c.start_char : c.end_char]
            assert c.pages == doc.pages_for_span(c.start_char, c.end_char)
            assert c.tokens == count(c.text) and c.title == "topics"
    everything = Retriever(library, min_score=-1.0).select("bank", 100_000, count)
    assert [c.doc_id for c in everything] == list(ids)  # both, whole, in library order
    for chunk, doc_id in zip(everything, ids, strict=True):
        text = library.document(doc_id).text
        assert chunk.text.strip() == text.strip()


def test_empty_questions_and_bad_settings(library: Library, target_tokenizer: Any) -> None:
    retriever = Retriever(library)
    for query in ("", "  \n"):
        with pytest.raises(QuestionError, match="empty"):
            retriever.search(query)
        with pytest.raises(QuestionError, match="empty"):
            retriever.select(query, 100, _count(target_tokenizer))
    with pytest.raises(ConfigError, match="budget"):
        retriever.select("bank", -1, _count(target_tokenizer))
    assert retriever.select("bank", 0, _count(target_tokenizer)) == []
    with pytest.raises(ConfigError, match="results"):
        retriever.search("bank", 0)


def test_join_chunks() -> None:
    def ref(doc_id: str, start: int, end: int) -> ChunkRef:
        return ChunkRef(doc_id, "t", (1,), 0.5, f"<{start}>", 1, start, end)

    chunks = [ref("a", 0, 10), ref("a", 12, 20), ref("a", 30, 40), ref("b", 40, 50)]
    assert join_chunks(chunks) == "<0>\n\n<12>\n[...]\n<30>\n[...]\n<40>"
    assert join_chunks([]) == ""
    assert ChunkRef("a", "t", (2, 3), 0.1, "x", 1, labels=("ii", "iii")).page_text == "pp. ii-iii"
