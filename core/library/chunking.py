"""Cut a document's text into LLM-context chunks and embedder-sized retrieval units.

Chunks (default 512 target-tokenizer tokens) are what the LLMs read: their "cores"
partition the text, and each chunk also repeats the end of the previous one
(`overlap` tokens, from a sentence start where there is one). Retrieval units
partition each core into spans that fit the embedder's window (all-MiniLM-L6-v2
reads 256 word pieces), so every unit belongs to exactly one chunk and no unit is
ever truncated by the embedder.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

Count = Callable[[int, int], int]
"""Tokens of text[start:end] of the document being cut (see `SpanCounter`)."""


class SpanCounter:
    """Token counts of any span of one text, from a single batched tokenization.

    The text is tokenized once, line by line (`encode_batch` runs on all cores);
    a span's count is the number of tokens that start inside it. Tokenizers split
    words at whitespace before anything else, so this equals tokenizing the span on
    its own up to a token at a span edge; `exact` re-counts a span for the places
    that must be exact (the embedder's window).
    """

    def __init__(self, tokenizer: Any, text: str) -> None:
        self._tokenizer = tokenizer  # a `tokenizers.Tokenizer`, no truncation or padding
        self._text = text
        lines = [(m.start(), m.group()) for m in _LINE.finditer(text) if m.group()]
        parts: list[np.ndarray[Any, np.dtype[np.int64]]] = []
        for at, encodings in encode_in_batches(tokenizer, [t for _, t in lines]):
            batch = lines[at : at + len(encodings)]
            starts = [
                base + first
                for (base, _), enc in zip(batch, encodings, strict=True)
                for first, _ in enc.offsets
            ]
            parts.append(np.asarray(starts, dtype=np.int64))
        self._starts = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        self._starts.sort()

    def __call__(self, start: int, end: int) -> int:
        lo, hi = np.searchsorted(self._starts, (start, end))
        return int(hi - lo)

    @property
    def total(self) -> int:
        return len(self._starts)

    def exact(self, start: int, end: int) -> int:
        encoding = self._tokenizer.encode(self._text[start:end], add_special_tokens=False)
        return len(encoding.ids)


def encode_in_batches(tokenizer: Any, texts: list[str]) -> Iterator[tuple[int, list[Any]]]:
    """(index of the first text, its encodings) per slice of `ENCODE_BATCH` texts,
    through `tokenizer.encode_batch` without special tokens. In slices because one
    call over a whole book holds the GIL for up to half a second (the app's window
    would stall); a slice takes milliseconds."""
    for at in range(0, len(texts), ENCODE_BATCH):
        yield at, tokenizer.encode_batch(texts[at : at + ENCODE_BATCH], add_special_tokens=False)


def text_counter(count: Callable[[str], int], text: str) -> Count:
    """A span `Count` over `text` from a plain string counter (exact, slower)."""
    return lambda start, end: count(text[start:end])


ENCODE_BATCH = 256  # texts per tokenizer call (encode_in_batches)
_LINE = re.compile(r"[^\n]*\n*")  # a line with the line breaks after it (they are tokens)


@dataclass(frozen=True)
class Chunk:
    """A passage for the LLM contexts: text[start_char:end_char] of its document.

    [core_start, end_char) is its own text; [start_char, core_start) repeats the end
    of the previous chunk (the overlap).
    """

    doc_id: str
    index: int
    start_char: int
    core_start: int
    end_char: int
    tokens: int  # target-tokenizer tokens of the whole chunk, overlap included


@dataclass(frozen=True)
class Unit:
    """A retrieval unit: the span [start_char, end_char) of its document's text."""

    doc_id: str
    index: int  # position in its document, from 0
    chunk: int  # index of the chunk whose core holds it
    start_char: int
    end_char: int
    text: str


def make_chunks(
    doc_id: str, text: str, count_tokens: Count, chunk_tokens: int = 512, overlap: int = 64
) -> list[Chunk]:
    """Chunks of about `chunk_tokens` tokens (cores of `chunk_tokens - overlap`)."""
    if not 0 <= overlap < chunk_tokens:
        raise ValueError(
            f"the overlap must be >= 0 and below the chunk size ({chunk_tokens}), got {overlap}"
        )
    cores = split_spans(text, 0, len(text), count_tokens, chunk_tokens - overlap)
    chunks: list[Chunk] = []
    for i, (core_start, end) in enumerate(cores):
        start = core_start
        if i and overlap:
            start = _overlap_start(text, cores[i - 1][0], core_start, count_tokens, overlap)
        chunks.append(Chunk(doc_id, i, start, core_start, end, count_tokens(start, end)))
    return chunks


def make_units(
    doc_id: str, text: str, chunks: list[Chunk], count_pieces: Count, unit_pieces: int
) -> list[Unit]:
    """Retrieval units of at most `unit_pieces` word pieces, each in one chunk's core."""
    units: list[Unit] = []
    for chunk in chunks:
        for start, end in split_spans(
            text, chunk.core_start, chunk.end_char, count_pieces, unit_pieces
        ):
            units.append(Unit(doc_id, len(units), chunk.index, start, end, text[start:end]))
    return units


def fit_units(
    units: list[Unit], text: str, count_many: Callable[[list[str]], list[int]], limit: int
) -> list[Unit]:
    """`units`, with any whose exact count is over `limit` cut again (exact counts).

    Span counts are exact up to a token at the edges; this makes the window a hard
    guarantee. `count_many` counts a batch of strings."""
    counts = count_many([u.text for u in units])
    fitted: list[Unit] = []

    def exact(one: str) -> int:
        return count_many([one])[0]

    for unit, pieces in zip(units, counts, strict=True):
        if pieces <= limit:
            spans = [(unit.start_char, unit.end_char)]
        else:
            spans = split_spans(
                text, unit.start_char, unit.end_char, text_counter(exact, text), limit
            )
        for start, end in spans:
            fitted.append(Unit(unit.doc_id, len(fitted), unit.chunk, start, end, text[start:end]))
    return fitted


_SENTENCE_START = re.compile(r"(?:[.!?][\"')\]\u2019\u201d]*\s+|\n\s*)(?=\S)")
_WORD_START = re.compile(r"\s+(?=\S)")
_OVERLAP_WINDOW = 16  # characters looked back per overlap token (generous)


def _overlap_start(text: str, prev_start: int, core_start: int, count: Count, overlap: int) -> int:
    """Where the overlap before `core_start` begins: the earliest sentence start
    (else word start) in the previous core whose text up to `core_start` fits
    `overlap` tokens; `core_start` itself when not even a word fits."""
    lo = max(prev_start, core_start - overlap * _OVERLAP_WINDOW)
    for pattern in (_SENTENCE_START, _WORD_START):
        starts = [m.end() for m in pattern.finditer(text, lo, core_start)]
        starts = [s for s in starts if prev_start < s < core_start]
        if lo == prev_start:
            starts.insert(0, prev_start)
        best = core_start
        for s in reversed(starts):  # nearest first: the overlap grows as we go back
            if count(s, core_start) > overlap:
                break
            best = s
        if best < core_start:
            return best
    return core_start


# Boundary strength between two neighbouring atoms; a unit is cut at the strongest
# boundary available in its second half.
_PARAGRAPH, _SENTENCE, _WORD, _NONE = 3, 2, 1, 0
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
# A sentence ends at . ! ? (or CJK ones), optionally closed by quotes or brackets,
# before whitespace; a line break also ends one (code, lists, table rows).
_SENTENCE_END = ".!?\u3002\uff01\uff1f"  # CJK text puts no space after its 。！？
_CLOSERS = "\"')]\u2019\u201d"
_SENTENCE_BREAK = re.compile(
    r"(?<=[.!?][\"')\]\u2019\u201d])\s+|(?<=[.!?])\s+|\s*\n\s*|(?<=[\u3002\uff01\uff1f])\s*"
)
_WORD_BREAK = re.compile(r"\s+")


@dataclass(frozen=True)
class _Atom:
    start: int
    end: int
    pieces: int
    level: int  # strength of the boundary before this atom (_PARAGRAPH ... _NONE)


def split_spans(text: str, start: int, end: int, count: Count, limit: int) -> list[tuple[int, int]]:
    """Cut text[start:end] into spans of at most `limit` tokens by `count`.

    Cuts fall at paragraph breaks, else sentence ends or line breaks, else spaces,
    else (a single overlong "word") inside it. Spans are disjoint, in text order, and
    only whitespace lies between them: every other character is in exactly one span.
    Each span's count is verified with `count`: none is over the limit.
    """
    if limit < 1:
        raise ValueError(f"the limit must be >= 1 token, got {limit}")
    atoms = _atoms(text, start, end, _PARAGRAPH, count, limit)
    # The boundary before an atom is as strong as the whitespace before it says.
    atoms = [
        _Atom(a.start, a.end, a.pieces, _boundary(text, atoms[i - 1].end, a.start)) if i else a
        for i, a in enumerate(atoms)
    ]
    spans: list[tuple[int, int]] = []
    for group in _pack(atoms, limit):
        spans.extend(_verified(text, group, count, limit))
    return spans


def _segments(text: str, start: int, end: int, level: int) -> Iterator[tuple[int, int]]:
    """Non-empty, whitespace-trimmed spans of text[start:end] between `level` breaks."""
    pattern = {_PARAGRAPH: _PARAGRAPH_BREAK, _SENTENCE: _SENTENCE_BREAK, _WORD: _WORD_BREAK}[level]
    pos = start
    for match in pattern.finditer(text, start, end):
        yield from _trimmed(text, pos, match.start())
        pos = match.end()
    yield from _trimmed(text, pos, end)


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield start, end


def _atoms(text: str, start: int, end: int, level: int, count: Count, limit: int) -> list[_Atom]:
    """Pieces of text[start:end] that each fit `limit`, split as coarsely as possible."""
    atoms: list[_Atom] = []
    for seg_start, seg_end in _segments(text, start, end, level):
        pieces = count(seg_start, seg_end)
        if pieces <= limit:
            atoms.append(_Atom(seg_start, seg_end, pieces, _PARAGRAPH))
        elif level > _WORD:
            atoms.extend(_atoms(text, seg_start, seg_end, level - 1, count, limit))
        else:
            atoms.extend(_cut_word(text, seg_start, seg_end, count, limit))
    return atoms


def _boundary(text: str, prev_end: int, start: int) -> int:
    """Strength of the break between an atom ending at `prev_end` and the next one."""
    gap = text[prev_end:start]
    if gap.count("\n") >= 2:
        return _PARAGRAPH
    before = text[max(prev_end - 2, 0) : prev_end].rstrip(_CLOSERS)
    if "\n" in gap or before[-1:] in tuple(_SENTENCE_END):
        return _SENTENCE
    return _WORD if gap else _NONE


def _cut_word(text: str, start: int, end: int, count: Count, limit: int) -> list[_Atom]:
    """Cut one overlong whitespace-free run into the longest prefixes that fit."""
    atoms = []
    while start < end:
        lo, hi = start + 1, end  # text[start:lo] fits (one character is one piece at most)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(start, mid) <= limit:
                lo = mid
            else:
                hi = mid - 1
        atoms.append(_Atom(start, lo, count(start, lo), _NONE))
        start = lo
    return atoms


def _pack(atoms: list[_Atom], limit: int) -> Iterator[list[_Atom]]:
    """Group atoms greedily into units whose summed pieces fit `limit`.

    When the next atom does not fit, the unit is cut at the strongest boundary that
    leaves it at least half full (the latest such one), so that paragraphs stay whole
    where they can.
    """
    current: list[_Atom] = []
    pieces = 0
    for atom in atoms:
        while current and pieces + atom.pieces > limit:
            # Candidate cut j: before current[j] (j < len) or before `atom` (j == len).
            best, best_level, filled = len(current), atom.level, 0
            for j in range(1, len(current) + 1):
                filled += current[j - 1].pieces
                level = current[j].level if j < len(current) else atom.level
                if filled * 2 >= limit and level >= best_level:
                    best, best_level = j, level
            yield current[:best]
            current = current[best:]
            pieces = sum(a.pieces for a in current)
        current.append(atom)
        pieces += atom.pieces
    if current:
        yield current


def _verified(text: str, group: list[_Atom], count: Count, limit: int) -> list[tuple[int, int]]:
    """The group's span, halved until each part's real piece count fits.

    Word pieces add up across whitespace, so this only splits groups of atoms cut
    inside a word; a single atom always fits by construction.
    """
    start, end = group[0].start, group[-1].end
    if len(group) == 1 or count(start, end) <= limit:
        return [(start, end)]
    half = len(group) // 2
    return _verified(text, group[:half], count, limit) + _verified(text, group[half:], count, limit)
