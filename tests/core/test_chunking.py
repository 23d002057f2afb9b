"""Tests for core.library.chunking: spans, chunks with overlap and units, with real tokenizers."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.library.chunking import (
    SpanCounter,
    fit_units,
    make_chunks,
    make_units,
    split_spans,
    text_counter,
)
from core.pdf.reader import read_pdf


def _words(text: str) -> int:
    return len(text.split())


def _split(text: str, count: Any, limit: int) -> list[str]:
    return [text[s:e] for s, e in split_spans(text, 0, len(text), text_counter(count, text), limit)]


def _check_cover(text: str, spans: list[tuple[int, int]]) -> None:
    """Spans are disjoint, in order, trimmed, and only whitespace lies outside them."""
    pos = 0
    for start, end in spans:
        assert text[pos:start].strip() == ""
        assert start < end and text[start:end] == text[start:end].strip()
        pos = end
    assert text[pos:].strip() == ""


def test_paragraphs_stay_whole_when_they_fit() -> None:
    one, two, three = "a b c d e f g h i j k l.", "m n o p q r s t.", "u v w x."
    text = f"{one}\n\n{two}\n{three}\n\n{one}"
    assert _split(text, _words, 20) == [one, f"{two}\n{three}", one]


def test_cuts_at_sentences_then_words_then_characters() -> None:
    sentences = " ".join(f"Sentence {i} has exactly six words." for i in range(5))
    parts = _split(sentences, _words, 20)
    assert [_words(p) for p in parts] == [18, 12] and all(p.endswith(".") for p in parts)
    run_on = " ".join(f"w{i}" for i in range(50))
    assert [_words(p) for p in _split(run_on, _words, 20)] == [20, 20, 10]
    assert _split("x" * 45, len, 20) == ["x" * 20, "x" * 20, "x" * 5]


@pytest.mark.parametrize("limit", [3, 17, 60])
def test_random_texts_fit_and_cover(limit: int) -> None:
    rng = random.Random(limit)
    alphabet = ["word", "a", "longerword", "x" * 70, "end.", "end!", "\n", "\n\n", "  ", "é"]
    for _ in range(30):
        text = " ".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120)))
        for count in (len, _words):
            spans = split_spans(text, 0, len(text), text_counter(count, text), limit)
            assert all(count(text[s:e]) <= limit for s, e in spans)
            _check_cover(text, spans)


def _manual_text(path: Path) -> str:
    return read_pdf(path, ocr=False).text


def test_span_counter_matches_the_tokenizer(target_tokenizer: Any, real_manual: Path) -> None:
    text = _manual_text(real_manual)
    counter = SpanCounter(target_tokenizer, text)
    exact = len(target_tokenizer.encode(text, add_special_tokens=False).ids)
    assert abs(counter.total - exact) <= 0.03 * exact  # line-wise vs whole: ~1-2 %
    rng = random.Random(0)
    for _ in range(50):
        a = rng.randrange(len(text))
        b = min(len(text), a + rng.randrange(1, 3000))
        assert abs(counter(a, b) - counter.exact(a, b)) <= 3 + 0.08 * counter.exact(a, b)


def test_chunks_overlap_and_units_partition(
    target_tokenizer: Any, embedder: Any, real_manual: Path
) -> None:
    text = _manual_text(real_manual)
    tokens = SpanCounter(target_tokenizer, text)
    chunks = make_chunks("d", text, tokens, chunk_tokens=256, overlap=32)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    _check_cover(text, [(c.core_start, c.end_char) for c in chunks])
    for prev, chunk in itertools.pairwise(chunks):
        assert prev.core_start <= chunk.start_char <= chunk.core_start  # overlap from prev
        assert tokens(chunk.start_char, chunk.core_start) <= 32
    overlapping = [c for c in chunks[1:] if c.start_char < c.core_start]
    assert len(overlapping) > 0.8 * (len(chunks) - 1)
    exact = [tokens.exact(c.start_char, c.end_char) for c in chunks]
    assert max(exact) <= 256 * 1.1 and np.mean(exact) > 256 * 0.5  # packed, about the size
    assert [c.tokens for c in chunks] == [tokens(c.start_char, c.end_char) for c in chunks]

    pieces = SpanCounter(embedder.counter, text)
    units = make_units("d", text, chunks, pieces, 200)
    units = fit_units(units, text, embedder.count_pieces_many, embedder.max_pieces)
    _check_cover(text, [(u.start_char, u.end_char) for u in units])
    assert [u.index for u in units] == list(range(len(units)))
    for unit in units:
        chunk = chunks[unit.chunk]
        assert chunk.core_start <= unit.start_char < unit.end_char <= chunk.end_char
        assert unit.text == text[unit.start_char : unit.end_char]
    counts = embedder.count_pieces_many([u.text for u in units])
    assert max(counts) <= embedder.max_pieces  # never truncated by the embedder


def test_fit_units_cuts_what_the_estimate_let_through(embedder: Any) -> None:
    text = " ".join(["supercalifragilistic"] * 300)
    # A counter that under-counts by far: units come out too long, then get fixed.
    units = make_units("d", text, make_chunks("d", text, lambda a, b: 1, 10, 0), lambda a, b: 1, 5)
    assert len(units) == 1
    fitted = fit_units(units, text, embedder.count_pieces_many, 50)
    assert len(fitted) > 1
    assert max(embedder.count_pieces_many([u.text for u in fitted])) <= 50
    _check_cover(text, [(u.start_char, u.end_char) for u in fitted])


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="overlap"):
        make_chunks("d", "text", lambda a, b: b - a, 10, 10)
    with pytest.raises(ValueError, match="limit"):
        split_spans("text", 0, 4, lambda a, b: b - a, 0)
