"""Tests for core.retrieve: units against the real tokenizer, search against a
brute-force oracle, budgeted selection in document order (real MiniLM, real FAISS)."""

from __future__ import annotations

import random
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError, QuestionError
from core.events import ChunkRef
from core.ingest import Document, Page, read_pdf
from core.retrieve import (
    Embedder,
    InMemoryRetriever,
    Unit,
    join_chunks,
    split_units,
)

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


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real all-MiniLM-L6-v2, on the CPU, loaded once (~10-15 s here)."""
    embedder = Embedder(device="cpu")
    embedder.model  # noqa: B018 (load now, not inside the first test's timing)
    return embedder


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
        paragraphs = [_prose(topic, 5, seed=number * 10 + i) for i in range(3)]
        if number == 3:
            paragraphs[1] = f"{_prose(topic, 2, seed=99)} {VAULT_FACT} {_prose(topic, 2, 98)}"
        if number == 5:
            paragraphs[2] += " The vault of the night sky was clear."
        pages.append("\n\n".join(paragraphs))
    return pages


@pytest.fixture(scope="module")
def topic_doc(make_pdf: MakePdf) -> Document:
    return read_pdf(make_pdf(_topic_pages(), name="topics.pdf"))


@pytest.fixture(scope="module")
def kitchen_doc() -> Document:
    return _plain_doc("\n\n".join(_prose("kitchen", 4, seed=s) for s in range(6)), "kitchen")


@pytest.fixture(scope="module")
def retriever(embedder: Embedder, topic_doc: Document, kitchen_doc: Document) -> InMemoryRetriever:
    """Both documents in units of 48 word pieces (small, so that there are many)."""
    retriever = InMemoryRetriever(embedder, unit_pieces=48)
    retriever.add(topic_doc)
    retriever.add(kitchen_doc)
    return retriever


def _plain_doc(text: str, doc_id: str = "plain") -> Document:
    return Document(doc_id, Path("plain.pdf"), "plain", (Page(1, "1", text, 0),), text)


def _words(text: str) -> int:
    return len(text.split())


# -- units ---------------------------------------------------------------------------


def _check_cover(doc: Document, units: list[Unit]) -> None:
    """Units are disjoint, in order, numbered, and only whitespace lies outside them."""
    assert [u.index for u in units] == list(range(len(units)))
    pos = 0
    for unit in units:
        assert unit.doc_id == doc.doc_id
        assert doc.text[pos : unit.start_char].strip() == ""
        assert unit.start_char < unit.end_char
        assert unit.text == doc.text[unit.start_char : unit.end_char]
        assert unit.text == unit.text.strip()
        pos = unit.end_char
    assert doc.text[pos:].strip() == ""


def test_count_pieces_is_the_model_tokenizer(embedder: Embedder) -> None:
    tokenizer = embedder.model.tokenizer
    texts = ["", "Hello, world!", "exam-ple naïve Ünïcödé 東京 ok", "long " * 400]
    embedder.encode(texts)  # leaves truncation to 256 on the model's tokenizer
    for text in texts:
        expected = len(tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])
        assert embedder.count_pieces(text) == expected
    assert embedder.count_pieces("long " * 400) == 400  # not capped at the window
    assert embedder.max_pieces == 254


def test_paragraphs_stay_whole_when_they_fit() -> None:
    one, two, three = "a b c d e f g h i j k l.", "m n o p q r s t.", "u v w x."
    doc = _plain_doc(f"{one}\n\n{two}\n{three}\n\n{one}")
    units = split_units(doc, _words, max_pieces=20)
    assert [u.text for u in units] == [one, f"{two}\n{three}", one]
    _check_cover(doc, units)


def test_cuts_at_sentences_then_words_then_characters() -> None:
    sentences = " ".join(f"Sentence {i} has exactly six words." for i in range(5))
    doc = _plain_doc(sentences)
    units = split_units(doc, _words, max_pieces=20)
    assert [_words(u.text) for u in units] == [18, 12]  # three sentences, then two
    assert all(u.text.endswith(".") for u in units)

    run_on = " ".join(f"w{i}" for i in range(50))
    units = split_units(_plain_doc(run_on), _words, max_pieces=20)
    assert [_words(u.text) for u in units] == [20, 20, 10]

    blob = "x" * 45  # one "word" longer than the limit, counted in characters
    units = split_units(_plain_doc(blob), len, max_pieces=20)
    assert [u.text for u in units] == ["x" * 20, "x" * 20, "x" * 5]


@pytest.mark.parametrize("limit", [3, 17, 60])
def test_random_texts_fit_and_cover(limit: int) -> None:
    rng = random.Random(limit)
    alphabet = ["word", "a", "longerword", "x" * 70, "end.", "end!", "\n", "\n\n", "  ", "é"]
    for _ in range(30):
        text = " ".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120)))
        doc = _plain_doc(text)
        for count in (len, _words):
            units = split_units(doc, count, max_pieces=limit)
            assert all(count(u.text) <= limit for u in units)
            _check_cover(doc, units)


def test_units_of_a_real_manual_fit_the_window(embedder: Embedder, real_manual: Path) -> None:
    doc = read_pdf(real_manual)
    units = split_units(doc, embedder.count_pieces, max_pieces=200)
    tokenizer = embedder.model.tokenizer
    pieces = [
        len(ids)
        for ids in tokenizer([u.text for u in units], add_special_tokens=False)["input_ids"]
    ]
    assert max(pieces) <= 200
    assert np.mean(pieces) > 150  # packed, not one unit per line
    _check_cover(doc, units)


@pytest.mark.slow
def test_units_of_a_long_manual_fit_the_window(embedder: Embedder, long_manual: Path) -> None:
    """The 2,415-page R reference manual: ~7,300 units (about 25 s here)."""
    doc = read_pdf(long_manual)
    units = split_units(doc, embedder.count_pieces, max_pieces=200)
    assert max(embedder.count_pieces(u.text) for u in units) <= 200
    _check_cover(doc, units)


# -- embedding and search ------------------------------------------------------------


def test_encode_is_normalised(embedder: Embedder) -> None:
    vectors = embedder.encode(["a cat", "a dog", "the ledger of the bank"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)
    assert Embedder(device="cpu").model is embedder.model  # one model per process


def _oracle(
    embedder: Embedder, units: list[Unit], vectors: np.ndarray, query: str, k: int
) -> list[tuple[Unit, float]]:
    """Brute-force cosine of `query` with each unit (`vectors`: the units' embeddings)."""
    scores = vectors @ embedder.encode([query])[0]
    order = np.argsort(-scores, kind="stable")[:k]
    return [(units[i], float(scores[i])) for i in order]


def _assert_same_ranking(
    got: list[tuple[Unit, float]], expected: list[tuple[Unit, float]], tol: float = 1e-4
) -> None:
    assert len(got) == len(expected)
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=tol)
    for i, ((unit, _), (want, score)) in enumerate(zip(got, expected, strict=True)):
        tied = [u for u, s in expected if abs(s - score) <= tol]
        assert unit == want or (len(tied) > 1 and unit in tied), f"rank {i}"


def test_search_matches_brute_force(
    embedder: Embedder, retriever: InMemoryRetriever, topic_doc: Document
) -> None:
    units = list(retriever.units(topic_doc.doc_id))
    assert len(units) > 12
    vectors = embedder.encode([u.text for u in units])
    for query in ("vault access code", "Which instrument plays the melody?", "steam trains"):
        ranking = _oracle(embedder, units, vectors, query, len(units))
        for k in (1, 5, len(units) + 3):
            got = retriever.search(query, k, doc_ids=[topic_doc.doc_id])
            _assert_same_ranking(got, ranking[:k])


def test_search_in_chosen_documents(
    embedder: Embedder, retriever: InMemoryRetriever, kitchen_doc: Document, topic_doc: Document
) -> None:
    query = "simmer the garlic sauce"
    hits = retriever.search(query, 100, doc_ids=[kitchen_doc.doc_id])
    assert {u.doc_id for u, _ in hits} == {kitchen_doc.doc_id}
    units = list(retriever.units(kitchen_doc.doc_id))
    vectors = embedder.encode([u.text for u in units])
    _assert_same_ranking(hits, _oracle(embedder, units, vectors, query, 100))
    every = retriever.search(query, 1000)
    assert len(every) == len(units) + len(retriever.units(topic_doc.doc_id))
    assert [s for _, s in every] == sorted((s for _, s in every), reverse=True)
    assert retriever.search(query, 5, doc_ids=[]) == []
    with pytest.raises(KeyError):
        retriever.search(query, 5, doc_ids=["never-added"])


def test_adding_twice_is_free(embedder: Embedder, topic_doc: Document) -> None:
    retriever = InMemoryRetriever(embedder)
    progress = list(retriever.adding(topic_doc, step=2))
    units = retriever.units(topic_doc.doc_id)
    assert progress[0] == (0, len(units)) and progress[-1] == (len(units), len(units))
    assert list(retriever.adding(topic_doc)) == []  # nothing left to embed
    assert retriever.units(topic_doc.doc_id) is units
    assert len(retriever.search("bank", 10_000)) == len(units)


def test_abandoned_adding_leaves_retriever_unchanged(
    embedder: Embedder, topic_doc: Document
) -> None:
    retriever = InMemoryRetriever(embedder)
    steps = retriever.adding(topic_doc, step=1)
    assert next(steps)[0] == 0 and next(steps)[0] == 1
    steps.close()  # cancelled after one unit
    assert topic_doc.doc_id not in retriever
    assert retriever.search("bank", 5) == []


def test_empty_questions_and_bad_settings(
    embedder: Embedder, retriever: InMemoryRetriever, topic_doc: Document
) -> None:
    assert InMemoryRetriever(embedder).search("anything", 5) == []  # nothing added yet
    for query in ("", "  \n"):
        with pytest.raises(QuestionError, match="empty"):
            retriever.search(query)
        with pytest.raises(QuestionError, match="empty"):
            retriever.select(query, 100, _words)
    with pytest.raises(ConfigError, match="budget"):
        retriever.select("bank", -1, _words)
    assert retriever.select("bank", 0, _words) == []
    assert retriever.select("bank", 1000, _words, min_score=1.01) == []
    with pytest.raises(ConfigError, match="do not fit the embedder"):
        InMemoryRetriever(embedder, unit_pieces=300).add(topic_doc)


# -- selection -----------------------------------------------------------------------


def test_planted_fact_comes_first(
    embedder: Embedder, retriever: InMemoryRetriever, topic_doc: Document
) -> None:
    query = "What is the access code for vault 7?"
    (best_unit, _), *_ = retriever.search(query, 3)
    assert VAULT_FACT in best_unit.text
    assert topic_doc.pages_for_span(best_unit.start_char, best_unit.end_char) == (3,)
    chunks = retriever.select(query, 200, embedder.count_pieces)
    best = max(chunks, key=lambda c: c.score)
    assert VAULT_FACT in best.text and 3 in best.pages


def test_select_fills_budget_in_document_order(
    embedder: Embedder, retriever: InMemoryRetriever, topic_doc: Document
) -> None:
    count = embedder.count_pieces
    units = retriever.units(topic_doc.doc_id)
    only = [topic_doc.doc_id]
    for budget in (60, 150, 400):
        chunks = retriever.select("bank loans and deposits", budget, count, doc_ids=only)
        assert chunks
        assert sum(c.tokens for c in chunks) <= budget
        assert count(join_chunks(chunks)) <= budget
        assert [c.start_char for c in chunks] == sorted(c.start_char for c in chunks)
        for a, b in pairwise(chunks):
            # merged: something the budget left out lies between two passages
            assert topic_doc.text[a.end_char : b.start_char].strip()
        for c in chunks:
            assert c.text == topic_doc.text[c.start_char : c.end_char]
            assert c.pages == topic_doc.pages_for_span(c.start_char, c.end_char)
            assert c.tokens == count(c.text) and c.title == "topics"
            starts = {u.start_char for u in units}
            ends = {u.end_char for u in units}
            assert c.start_char in starts and c.end_char in ends
        # greedy: the best unit always makes it when it fits on its own
        (top, _), *_ = retriever.search("bank loans and deposits", 1, doc_ids=only)
        if count(top.text) <= budget:
            assert any(c.start_char <= top.start_char < c.end_char for c in chunks)


def test_whole_documents_merge_into_one_passage_each(
    retriever: InMemoryRetriever, topic_doc: Document, kitchen_doc: Document
) -> None:
    query = "anything at all"
    first, second = retriever.select(query, 100_000, _words, min_score=-1.0)
    for chunk, doc in ((first, topic_doc), (second, kitchen_doc)):  # in the order added
        units = retriever.units(doc.doc_id)
        assert (chunk.start_char, chunk.end_char) == (units[0].start_char, units[-1].end_char)
        assert chunk.doc_id == doc.doc_id
        (_, best), *_ = retriever.search(query, 1, doc_ids=[doc.doc_id])
        assert chunk.score == best
    assert first.pages == (1, 2, 3, 4, 5, 6)


def test_join_chunks() -> None:
    def ref(doc_id: str, start: int, end: int) -> ChunkRef:
        return ChunkRef(doc_id, "t", (1,), 0.5, f"<{start}>", 1, start, end)

    chunks = [ref("a", 0, 10), ref("a", 12, 20), ref("a", 30, 40), ref("b", 40, 50)]
    assert join_chunks(chunks) == "<0>\n\n<12>\n[...]\n<30>\n[...]\n<40>"
    assert join_chunks([]) == ""


@pytest.mark.slow
def test_real_manual_search_matches_brute_force(embedder: Embedder, real_manual: Path) -> None:
    """R-data: ~170 units of 200 word pieces, ~20 s to embed on 2 cores."""
    doc = read_pdf(real_manual)
    retriever = InMemoryRetriever(embedder)
    retriever.add(doc)
    units = list(retriever.units(doc.doc_id))
    query = "How do I import data from a spreadsheet?"
    vectors = embedder.encode([u.text for u in units])
    expected = _oracle(embedder, units, vectors, query, 10)
    _assert_same_ranking(retriever.search(query, 10), expected)
    chunks = retriever.select(query, 1024, embedder.count_pieces)
    assert sum(c.tokens for c in chunks) <= 1024
    assert [c.start_char for c in chunks] == sorted(c.start_char for c in chunks)
