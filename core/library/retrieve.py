"""Question -> passages: hits with pages and rectangles, and contexts within a budget.

Dense retrieval: the question is embedded with the library's embedder and the
nearest retrieval units are found (cosine, `Library.search_units`). Units map to
their chunks; a chunk scores as its best unit. Optionally hybrid: BM25 (`bm25s`)
over the same units, fused with the dense ranking by reciprocal rank (RRF, k=60).

`select` fills a token budget greedily with the best chunks (the best unit alone
when a whole chunk no longer fits), then hands the passages back in document
order, overlapping or neighbouring ones merged (docs/architecture.md, "The algorithm",
step 1). Every passage carries its pages, printed page labels and line rectangles for
citations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from core.errors import ConfigError, QuestionError
from core.events import ChunkRef
from core.library.schema import UnitHit
from core.library.store import Library

GAP_MARKER = "\n[...]\n"  # between passages that are not adjacent in the text
_MAX_ADJACENT_GAP = 2  # chars of whitespace between neighbouring units ("\n\n" at most)
MIN_SCORE = 0.1  # cosine below which a unit is not a match (all-MiniLM-L6-v2 scale)
RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al. 2009)
_POOL = 512  # units ranked per `select` (enough to fill 4K tokens many times over)


@dataclass(frozen=True)
class Hit:
    """A chunk that matched a query: its text, where it is, and its best unit."""

    ref: ChunkRef  # the chunk's passage (text, pages, labels, rectangles, score)
    chunk: int  # chunk index in its document
    unit_start: int  # character span of the best-matching unit within the document
    unit_end: int
    rank_score: float  # what the ranking used: cosine (dense) or fused RRF (hybrid)


class Retriever:
    """Searches a `Library`. Not thread-safe (the library is not)."""

    def __init__(self, library: Library, hybrid: bool = False, min_score: float = MIN_SCORE):
        self.library = library
        self.hybrid = hybrid
        self.min_score = min_score
        self._bm25: Any = None
        self._bm25_gen = -1
        self._bm25_ids: np.ndarray[Any, np.dtype[np.int64]] = np.zeros(0, dtype=np.int64)

    # ----------------------------------------------------------------- ranking
    def rank_units(
        self, query: str, pool: int, doc_ids: Sequence[str] | None = None
    ) -> list[UnitHit]:
        """Up to `pool` units for `query`, best first (cosine >= floor, or fused)."""
        if not query.strip():
            raise QuestionError("The question is empty. Type a question about the document.")
        vector = self.library.embedder.encode([query])[0]
        dense = self.library.search_units(vector, pool, doc_ids)
        if not self.hybrid:
            return [h for h in dense if h.score >= self.min_score]
        lexical = self._bm25_rank(query, pool, doc_ids)
        fused: dict[int, float] = {}
        for ranking in (dense, lexical):
            for rank, hit in enumerate(ranking):
                fused[hit.unit_id] = fused.get(hit.unit_id, 0.0) + 1.0 / (RRF_K + rank + 1)
        # Shown scores stay cosines: units only BM25 found get theirs computed.
        dense_ids = {h.unit_id for h in dense}
        cosine = self.library.cosines(
            vector, [h.unit_id for h in lexical if h.unit_id not in dense_ids]
        )
        by_id = {
            h.unit_id: replace(h, score=cosine[h.unit_id]) for h in lexical if h.unit_id in cosine
        }
        by_id |= {h.unit_id: h for h in dense}
        order = sorted(fused, key=lambda i: -fused[i])[:pool]
        return [by_id[i] for i in order]

    def _bm25_rank(self, query: str, pool: int, doc_ids: Sequence[str] | None) -> list[UnitHit]:
        import bm25s

        index = self._bm25_index()
        if index is None:
            return []
        mask = None
        if doc_ids is not None:
            mask = np.isin(self._bm25_ids, self.library.unit_ids(doc_ids)).astype(np.float32)
            if not mask.any():
                return []
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        k = min(pool, len(self._bm25_ids))
        rows, scores = index.retrieve(
            tokens, k=k, show_progress=False, n_threads=1, weight_mask=mask
        )
        pairs = [
            (int(self._bm25_ids[r]), float(sc))
            for r, sc in zip(rows[0], scores[0], strict=True)
            if sc > 0
        ]
        return self.library.unit_hits(pairs)

    def _bm25_index(self) -> Any:
        """A BM25 index over every unit of the library, rebuilt when it changed."""
        import bm25s

        gen = self.library.generation
        if self._bm25_gen == gen:
            return self._bm25
        ids: list[int] = []
        texts: list[str] = []
        for info in self.library.documents():
            for unit_id, unit in self.library.units_with_ids(info.doc_id):
                ids.append(unit_id)
                texts.append(unit.text)
        self._bm25 = None
        if texts:
            self._bm25 = bm25s.BM25()
            tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False)
            self._bm25.index(tokens, show_progress=False)
        self._bm25_ids = np.asarray(ids, dtype=np.int64)
        self._bm25_gen = gen
        return self._bm25

    # -------------------------------------------------------------------- hits
    def search(self, query: str, k: int = 10, doc_ids: Sequence[str] | None = None) -> list[Hit]:
        """The `k` best chunks for `query`, best first."""
        if k < 1:
            raise ConfigError(f"The number of results must be >= 1, got {k}.")
        units = self.rank_units(query, max(4 * k, 64), doc_ids)
        hits: list[Hit] = []
        seen: set[tuple[str, int]] = set()
        for rank, unit in enumerate(units):
            key = (unit.doc_id, unit.chunk)
            if key in seen:
                continue
            seen.add(key)
            chunk = self.library.chunks(unit.doc_id)[unit.chunk]
            score = unit.score if not self.hybrid else 1.0 / (RRF_K + rank + 1)
            ref = self.ref(unit.doc_id, chunk.start_char, chunk.end_char, unit.score)
            hits.append(Hit(ref, unit.chunk, unit.start_char, unit.end_char, score))
            if len(hits) == k:
                break
        return hits

    def ref(self, doc_id: str, start: int, end: int, score: float, tokens: int = 0) -> ChunkRef:
        """The passage doc_id text[start:end] with its pages, labels and line rects."""
        doc = self.library.document(doc_id)
        pages = doc.pages_for_span(start, end)
        labels = tuple(doc.pages[p - 1].label for p in pages)
        return ChunkRef(
            doc_id=doc_id, title=doc.title, pages=pages, score=score,
            text=doc.text[start:end], tokens=tokens, start_char=start, end_char=end,
            rects=doc.rects_for_span(start, end), labels=labels,
        )  # fmt: skip

    # ------------------------------------------------------------------ budget
    def select(
        self,
        query: str,
        budget_tokens: int,
        count_tokens: Callable[[str], int],
        doc_ids: Sequence[str] | None = None,
    ) -> list[ChunkRef]:
        """Passages for `query` that fill `budget_tokens`, in document order.

        Greedy by score: each chunk is taken whole when it fits; when it does not,
        its best unit alone is taken if that fits. Taken spans that overlap or
        touch merge into one passage. `count_tokens` is the LLM tokenizer's count;
        `join_chunks(result)` fits the budget too.
        """
        if budget_tokens < 0:
            raise ConfigError(f"The retrieval budget must be >= 0 tokens, got {budget_tokens}.")
        separator = count_tokens(GAP_MARKER)
        chosen: list[tuple[str, int, int, float]] = []  # (doc, start, end, score)
        left, misses = budget_tokens, 0
        taken_chunks: set[tuple[str, int]] = set()
        for unit in self.rank_units(query, _POOL, doc_ids):
            if left <= 0 or misses >= 32:
                break
            key = (unit.doc_id, unit.chunk)
            if key in taken_chunks:
                continue
            chunk = self.library.chunks(unit.doc_id)[unit.chunk]
            extra = separator if chosen else 0
            doc_text = self.library.document(unit.doc_id).text
            if chunk.tokens <= left:  # stored counts are estimates: count exactly
                cost = count_tokens(doc_text[chunk.start_char : chunk.end_char]) + extra
                if cost <= left:
                    chosen.append((unit.doc_id, chunk.start_char, chunk.end_char, unit.score))
                    taken_chunks.add(key)
                    left -= cost
                    continue
            text = doc_text[unit.start_char : unit.end_char]
            cost = count_tokens(text) + extra
            if cost <= left:
                chosen.append((unit.doc_id, unit.start_char, unit.end_char, unit.score))
                left -= cost
                misses = 0
            else:
                misses += 1
        # Merged text can count a token or so more than its parts: drop the weakest
        # span until the whole context fits.
        ids = doc_ids or [info.doc_id for info in self.library.documents()]
        order = {d: i for i, d in enumerate(ids)}  # documents as given, else as added
        while chosen:
            passages = self._merged(chosen, count_tokens, order)
            if count_tokens(join_chunks(passages)) <= budget_tokens:
                return passages
            chosen.pop()  # `chosen` is in descending score order
        return []

    def _merged(
        self,
        chosen: list[tuple[str, int, int, float]],
        count_tokens: Callable[[str], int],
        order: dict[str, int],
    ) -> list[ChunkRef]:
        """Chosen spans in document order, overlapping or touching ones merged."""
        spans = sorted(chosen, key=lambda c: (order.get(c[0], len(order)), c[1]))
        merged: list[list[Any]] = []
        for doc_id, start, end, score in spans:
            last = merged[-1] if merged else None
            if last and last[0] == doc_id and start <= last[2] + _MAX_ADJACENT_GAP:
                last[2] = max(last[2], end)
                last[3] = max(last[3], score)
            else:
                merged.append([doc_id, start, end, score])
        refs = []
        for doc_id, start, end, score in merged:
            text = self.library.document(doc_id).text[start:end]
            refs.append(self.ref(doc_id, start, end, score, count_tokens(text)))
        return refs


def join_chunks(chunks: Sequence[ChunkRef]) -> str:
    """The drafter's context: passages in the given order, `GAP_MARKER` between two
    that are not neighbours in the same document, a paragraph break between two that
    are (only whitespace lies between neighbouring units)."""
    return "".join(_joined_parts(chunks))


def chunk_starts(chunks: Sequence[ChunkRef]) -> list[int]:
    """Where each passage's text starts in `join_chunks(chunks)`."""
    starts, pos = [], 0
    for i, part in enumerate(_joined_parts(chunks)):
        if i % 2 == 0:
            starts.append(pos)
        pos += len(part)
    return starts


def _joined_parts(chunks: Sequence[ChunkRef]) -> list[str]:
    """Passage, separator, passage, ... (separators at odd indices)."""
    parts: list[str] = []
    for i, chunk in enumerate(chunks):
        if i:
            prev = chunks[i - 1]
            gap = chunk.start_char - prev.end_char
            adjacent = chunk.doc_id == prev.doc_id and 0 <= gap <= _MAX_ADJACENT_GAP
            parts.append("\n\n" if adjacent else GAP_MARKER)
        parts.append(chunk.text)
    return parts
