"""The on-disk library: documents, chunks and unit vectors in SQLite, searched by FAISS.

SQLite (`library.sqlite3`, WAL journal) is the source of truth: each document's
pages (text and line rectangles), chunks and retrieval units with their vectors are
written in one transaction, so a crash at any moment leaves every document wholly
present or absent. Each write bumps the library's *generation*. The FAISS index is
a cache (`vectors-<generation>.faiss`, written atomically): on open it is loaded
when its generation matches, updated from SQLite when it is older (new units
added, removed ones dropped) and rebuilt when it is missing or unreadable.

Writers take a lock file (`write.lock`): a second RapidQA process (the GUI and a
CLI, say) that tries to change the same library gets `LibraryBusy` at once, naming
the process that holds it. Readers never wait.

The chunking settings (chunk size, overlap, unit size, tokenizer) are recorded per
document; `Library.reindex` re-cuts and re-embeds the documents cut with other
settings, from the stored text (the PDFs are not needed). The embedder is recorded
for the whole library: opening it with another is a `LibraryError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import Cancelled, ConfigError, LibraryBusy, LibraryError
from core.events import IngestProgress, drain
from core.gc_quiet import no_full_collections
from core.library.chunking import Chunk, SpanCounter, Unit, fit_units, make_chunks, make_units
from core.library.embed import Embedder, Vectors
from core.library.schema import (
    DB_NAME,
    DOC_COLUMNS,
    EMBED_BATCH,
    ENV_LIBRARY,
    LOCK_NAME,
    OWNER_NAME,
    SCHEMA,
    SCHEMA_VERSION,
    Chunking,
    DocumentInfo,
    UnitHit,
    info_of_row,
    page_of_row,
    page_row,
    pages_read,
    pdfs_near,
    remove_stale_temps,
    sha256_file,
    transaction,
    unpack,
    write_error,
)
from core.library.units import UnitVectors
from core.pdf.extract import Document
from core.pdf.reader import reading_pdf


class Library:
    """A library folder. Not thread-safe: one thread (the engine's worker) uses it.

    Several processes may open one library; writes are serialised by the lock file
    and each search first catches up with writes made by other processes.
    """

    def __init__(
        self,
        root: Path | str,
        embedder: Embedder | None = None,
        *,
        exact_limit: int = 200_000,
        read_in_child: bool = False,
    ) -> None:
        self.root = Path(root).expanduser()
        self.embedder = embedder or Embedder()
        self.exact_limit = exact_limit
        self.read_in_child = read_in_child  # parse PDFs in a child process (reading_pdf)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise LibraryError(
                f"Could not create the library folder {self.root} ({err.strerror or err}). "
                "Choose another folder with --library or RAPIDQA_LIBRARY."
            ) from err
        self._db = self._connect()
        # Read caches, valid for one generation: a few documents' texts, and chunks.
        self._docs: OrderedDict[str, Document] = OrderedDict()
        self._chunks: dict[str, list[Chunk]] = {}
        self._cache_gen = -1
        self._lock = threading.RLock()
        self.vectors = UnitVectors(
            self._db, self.root, self._meta, lambda: self.embedder.dim, exact_limit, self._lock
        )
        self._check_embedder()

    # ---------------------------------------------------------------- opening
    def _connect(self) -> sqlite3.Connection:
        path = self.root / DB_NAME
        try:
            db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=OFF")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LibraryError(
                    f"The library at {self.root} was made by a newer RapidQA (format "
                    f"{version}; this one reads {SCHEMA_VERSION}). Update RapidQA or choose "
                    "another library with --library."
                )
            if version < SCHEMA_VERSION:
                with transaction(db):
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                    db.execute("INSERT OR IGNORE INTO meta VALUES('generation', '0')")
            db.execute("SELECT count(*) FROM documents").fetchone()
        except sqlite3.DatabaseError as err:
            raise LibraryError(
                f"The library file {path} is damaged or not a RapidQA library ({err}). "
                "Move it away (the library is then rebuilt empty) or choose another "
                "library with --library."
            ) from err
        return db

    def _check_embedder(self) -> None:
        recorded = self._meta("embedder")
        if recorded is None:
            return  # recorded with the first document (the model loads then)
        if recorded != self.embedder.name:
            raise LibraryError(
                f"The library at {self.root} was built with the embedder '{recorded}', not "
                f"'{self.embedder.name}': its vectors would not match. Use --embedder "
                f"{recorded}, or choose another library folder (--library or "
                f"{ENV_LIBRARY}) for this embedder."
            )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.vectors.save()
        self._db.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------- meta
    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @property
    def generation(self) -> int:
        return int(self._meta("generation") or 0)

    def _bump(self) -> None:
        self._db.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )

    # ---------------------------------------------------------------- listing
    def documents(self) -> list[DocumentInfo]:
        """Every document, in the order they were added."""
        rows = self._db.execute(f"SELECT {DOC_COLUMNS} FROM documents ORDER BY seq").fetchall()
        return [info_of_row(row) for row in rows]

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM documents").fetchone()[0])

    def __contains__(self, doc_id: object) -> bool:
        return bool(self._db.execute("SELECT 1 FROM documents WHERE id = ?", (doc_id,)).fetchone())

    def info(self, ref: str) -> DocumentInfo:
        """A document by id, or by a unique prefix of its id (as `index list` shows)."""
        ref = ref.strip().lower()
        rows = self._db.execute(
            f"SELECT {DOC_COLUMNS} FROM documents WHERE id LIKE ? ORDER BY seq",
            (ref.replace("%", "").replace("_", "") + "%",),
        ).fetchall()
        if not ref or not rows:
            raise LibraryError(
                f"No document with id '{ref}' in the library at {self.root}. "
                "`rapidqa index list` shows the ids."
            )
        if len(rows) > 1:
            ids = ", ".join(r[0] for r in rows[:5])
            raise LibraryError(f"'{ref}' matches several documents ({ids}). Give more digits.")
        return info_of_row(rows[0])

    def find_sha(self, sha256: str) -> DocumentInfo | None:
        row = self._db.execute(
            f"SELECT {DOC_COLUMNS} FROM documents WHERE sha256 = ?", (sha256,)
        ).fetchone()
        return None if row is None else info_of_row(row)

    def document(self, doc_id: str) -> Document:
        """The document's text and pages, from SQLite (cached for a few documents)."""
        with self._lock:
            self._refresh_caches()
            if doc_id in self._docs:
                self._docs.move_to_end(doc_id)
                return self._docs[doc_id]
            info = self.info(doc_id)
            rows = self._db.execute(
                "SELECT number, label, start_char, width, height, ocr, text, line_spans, "
                "line_rects FROM pages WHERE doc_id = ? ORDER BY number",
                (info.doc_id,),
            ).fetchall()
            pages = tuple(page_of_row(row) for row in rows)
            from core.pdf.extract import PAGE_SEPARATOR

            text = PAGE_SEPARATOR.join(p.text for p in pages)
            doc = Document(
                info.doc_id, info.path, info.title, pages, text, info.sha256, info.size,
                info.notes,
            )  # fmt: skip
            self._docs[doc_id] = doc
            while len(self._docs) > 8:
                self._docs.popitem(last=False)
            return doc

    def chunks(self, doc_id: str) -> list[Chunk]:
        """The document's chunks in order (cached: retrieval looks them up per hit)."""
        with self._lock:
            self._refresh_caches()
            if doc_id not in self._chunks:
                rows = self._db.execute(
                    "SELECT idx, start_char, core_start, end_char, tokens FROM chunks "
                    "WHERE doc_id = ? ORDER BY idx",
                    (doc_id,),
                ).fetchall()
                self._chunks[doc_id] = [Chunk(doc_id, *row) for row in rows]
            return self._chunks[doc_id]

    def _refresh_caches(self) -> None:
        """Drop the read caches when the library changed (here or in another process)."""
        generation = self.generation
        if self._cache_gen != generation:
            self._docs.clear()
            self._chunks.clear()
            self._cache_gen = generation

    def units(self, doc_id: str) -> list[Unit]:
        return [unit for _, unit in self.units_with_ids(doc_id)]

    def units_with_ids(self, doc_id: str) -> list[tuple[int, Unit]]:
        """(unit id, unit) of one document, in unit order."""
        text = self.document(doc_id).text
        rows = self._db.execute(
            "SELECT id, idx, chunk, start_char, end_char FROM units WHERE doc_id = ? ORDER BY idx",
            (doc_id,),
        ).fetchall()
        return [(u, Unit(doc_id, i, c, st, e, text[st:e])) for u, i, c, st, e in rows]

    def unit_vectors(self, doc_id: str) -> tuple[npt.NDArray[np.int64], Vectors]:
        """(unit ids, vectors) of one document, in unit order."""
        rows = self._db.execute(
            "SELECT id, vector FROM units WHERE doc_id = ? ORDER BY idx", (doc_id,)
        ).fetchall()
        return unpack(rows, self.vectors.dim())

    # ----------------------------------------------------------------- adding
    def add(self, path: Path | str, password: str | None = None, **kwargs: Any) -> DocumentInfo:
        """`adding` run to the end; returns the document's entry."""
        return drain(self.adding(path, password, **kwargs))

    def adding(
        self,
        path: Path | str,
        password: str | None = None,
        *,
        chunking: Chunking,
        count_tokens: Any,
        ocr: bool | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> Generator[IngestProgress, None, DocumentInfo]:
        """Add the PDF at `path`, yielding progress; the return value is its entry.

        `count_tokens` is a `tokenizers.Tokenizer` of the target (chunk sizes are in
        its tokens). A file already in the library (same SHA-256) is not read again:
        its recorded path is updated when it moved. Nothing is written until the
        document is read and embedded whole; `cancelled()` is polled between pages and
        batches (raises `Cancelled`), leaving the library as it was.
        """
        path = Path(path).expanduser()
        with self._writing(), no_full_collections():
            found = self._known(path)
            if found is not None:
                return found
            reader = reading_pdf(
                path, password, ocr=ocr, cancelled=cancelled, isolated=self.read_in_child
            )
            doc = yield from pages_read(path.name, reader)
            title = doc.title
            again = self.find_sha(doc.sha256)  # the same bytes added meanwhile
            if again is not None:
                return again
            yield IngestProgress(title, "split", 0, 1)
            chunks, units, tokens = self._cut(doc, chunking, count_tokens)
            yield IngestProgress(title, "split", 1, 1)
            vectors = yield from self._embed(title, units, cancelled)
            yield IngestProgress(title, "save", 0, 1)
            self._store(doc, chunks, units, vectors, tokens, chunking)
            yield IngestProgress(title, "save", 1, 1)
            return self.info(doc.doc_id)

    def _known(self, path: Path) -> DocumentInfo | None:
        """The entry of the file at `path` if its bytes are already in the library."""
        if not path.is_file():
            return None
        try:
            sha = sha256_file(path)
        except OSError:
            return None  # read_pdf reports it properly
        info = self.find_sha(sha)
        if info is not None and info.path != path.resolve():
            self._set_path(info.doc_id, path)
            info = self.find_sha(sha)
        return info

    def _set_path(self, doc_id: str, path: Path) -> Path:
        """Record where a document's PDF is now (not a content change: no new
        generation); returns the resolved path."""
        resolved = path.resolve()
        with transaction(self._db):
            self._db.execute("UPDATE documents SET path = ? WHERE id = ?", (str(resolved), doc_id))
        self._docs.pop(doc_id, None)  # its cached Document carries the old path
        return resolved

    def locate(self, ref: str, folders: Sequence[Path] = ()) -> Path | None:
        """Where document `ref`'s PDF is now: its recorded path if the file there is
        still the same size, else a file with its SHA-256 found near the old place
        (the old folder and the one above it, two levels deep) or in `folders`; the
        new path is recorded. None when it is nowhere to be found."""
        info = self.info(ref)
        with contextlib.suppress(OSError):
            if info.path.is_file() and info.path.stat().st_size == info.size:
                return info.path
        roots = [*folders, info.path.parent, info.path.parent.parent]
        seen: set[Path] = set()
        for root in roots:
            for candidate in pdfs_near(root, depth=2):
                if candidate in seen:
                    continue
                seen.add(candidate)
                with contextlib.suppress(OSError):
                    if candidate.stat().st_size != info.size:
                        continue
                    if sha256_file(candidate) == info.sha256:
                        return self._set_path(info.doc_id, candidate)
        return None

    def _cut(
        self, doc: Document, chunking: Chunking, tokenizer: Any
    ) -> tuple[list[Chunk], list[Unit], int]:
        limit = self.embedder.max_pieces
        if not 1 <= chunking.unit_pieces <= limit:
            raise ConfigError(
                f"Retrieval units of {chunking.unit_pieces} word pieces do not fit the "
                f"embedder, which reads {limit}. Choose 1 to {limit}."
            )
        count_tokens = SpanCounter(tokenizer, doc.text)
        chunks = make_chunks(
            doc.doc_id, doc.text, count_tokens, chunking.chunk_tokens, chunking.overlap
        )
        pieces = SpanCounter(self.embedder.counter, doc.text)
        units = make_units(doc.doc_id, doc.text, chunks, pieces, chunking.unit_pieces)
        units = fit_units(units, doc.text, self.embedder.count_pieces_many, limit)
        return chunks, units, count_tokens.total

    def _embed(
        self,
        title: str,
        units: Sequence[Unit],
        cancelled: Callable[[], bool] | None,
    ) -> Generator[IngestProgress, None, Vectors]:
        """Vectors of `units` in batches (longest first within each, as ST sorts)."""
        parts: list[Vectors] = []
        yield IngestProgress(title, "embed", 0, len(units))
        t0 = time.perf_counter()
        for first in range(0, len(units), EMBED_BATCH):
            if cancelled is not None and cancelled():
                raise Cancelled()
            batch = units[first : first + EMBED_BATCH]
            parts.append(self.embedder.encode([u.text for u in batch]))
            done = first + len(batch)
            rate = done / max(time.perf_counter() - t0, 1e-9)
            yield IngestProgress(title, "embed", done, len(units), (len(units) - done) / rate)
        dim = self.embedder.dim
        vectors: Vectors = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
        return vectors

    def _store(
        self,
        doc: Document,
        chunks: list[Chunk],
        units: list[Unit],
        vectors: Vectors,
        tokens: int,
        chunking: Chunking,
    ) -> None:
        """One transaction: the document with its pages, chunks and unit vectors."""
        db = self._db
        try:
            with transaction(db):
                if self._meta("embedder") is None:
                    db.execute("INSERT INTO meta VALUES('embedder', ?)", (self.embedder.name,))
                    db.execute("INSERT INTO meta VALUES('dim', ?)", (str(self.embedder.dim),))
                seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM documents").fetchone()[0]
                db.execute(
                    f"INSERT INTO documents({DOC_COLUMNS}, seq) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        doc.doc_id, doc.sha256, str(doc.path.resolve()), doc.title,
                        len(doc.pages), tokens, len(doc.text), doc.size, time.time(),
                        json.dumps(list(doc.notes)), chunking.key, len(chunks), len(units), seq,
                    ),
                )  # fmt: skip
                db.executemany(
                    "INSERT INTO pages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (page_row(doc.doc_id, p) for p in doc.pages),
                )
                self._insert_cuts(doc.doc_id, chunks, units, vectors)
                self._bump()
        except sqlite3.Error as err:
            raise write_error(self.root, err, doc.title) from err
        self.vectors.after_write()

    def _insert_cuts(
        self, doc_id: str, chunks: list[Chunk], units: list[Unit], vectors: Vectors
    ) -> None:
        """A document's chunks and units with their vectors (inside a transaction)."""
        db = self._db
        db.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)",
            ((doc_id, c.index, c.start_char, c.core_start, c.end_char, c.tokens) for c in chunks),
        )
        db.executemany(
            "INSERT INTO units(doc_id, idx, chunk, start_char, end_char, vector) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                (doc_id, u.index, u.chunk, u.start_char, u.end_char, v.tobytes())
                for u, v in zip(units, vectors, strict=True)
            ),
        )

    # --------------------------------------------------------------- removing
    def remove(self, ref: str) -> DocumentInfo:
        """Remove a document (by id or unique id prefix); returns what was removed."""
        with self._writing():
            info = self.info(ref)
            try:
                with transaction(self._db):
                    for table, key in (("units", "doc_id"), ("chunks", "doc_id"),
                                       ("pages", "doc_id"), ("documents", "id")):  # fmt: skip
                        self._db.execute(f"DELETE FROM {table} WHERE {key} = ?", (info.doc_id,))
                    self._bump()
            except sqlite3.Error as err:
                raise write_error(self.root, err, info.title) from err
            self.vectors.after_write()
            return info

    # -------------------------------------------------------------- re-index
    def stale(self, chunking: Chunking) -> list[DocumentInfo]:
        """Documents cut with other settings than `chunking` (re-index them)."""
        return [d for d in self.documents() if d.chunking != chunking.key]

    def reindexing(
        self,
        chunking: Chunking,
        count_tokens: Any,
        cancelled: Callable[[], bool] | None = None,
    ) -> Iterator[IngestProgress]:
        """Re-cut and re-embed every stale document from its stored text, one
        transaction per document (an interrupted re-index resumes where it stopped)."""
        with self._writing(), no_full_collections():
            for info in self.stale(chunking):
                doc = self.document(info.doc_id)
                yield IngestProgress(info.title, "split", 0, 1)
                chunks, units, tokens = self._cut(doc, chunking, count_tokens)
                vectors = yield from self._embed(info.title, units, cancelled)
                try:
                    with transaction(self._db):
                        for table in ("units", "chunks"):
                            self._db.execute(f"DELETE FROM {table} WHERE doc_id = ?", (doc.doc_id,))
                        self._db.execute(
                            "UPDATE documents SET chunking = ?, n_chunks = ?, n_units = ?, "
                            "tokens = ? WHERE id = ?",
                            (chunking.key, len(chunks), len(units), tokens, doc.doc_id),
                        )
                        self._insert_cuts(doc.doc_id, chunks, units, vectors)
                        self._bump()
                except sqlite3.Error as err:
                    raise write_error(self.root, err, info.title) from err
                self.vectors.after_write()

    # ------------------------------------------------------------------ locks
    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        from filelock import FileLock, Timeout

        lock = FileLock(self.root / LOCK_NAME, timeout=0)
        try:
            lock.acquire()
        except Timeout as err:
            raise LibraryBusy(self._busy_message()) from err
        owner = self.root / OWNER_NAME
        remove_stale_temps(self.root)
        try:
            with contextlib.suppress(OSError):
                owner.write_text(
                    json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv)[:200]})
                )
            with self._lock:
                yield
        finally:
            with contextlib.suppress(OSError):
                owner.unlink()
            lock.release()

    def _busy_message(self) -> str:
        who = "another RapidQA window or command"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads((self.root / OWNER_NAME).read_text())
            who = f"another RapidQA process (pid {data['pid']}: {data['command']})"
        return (
            f"The library at {self.root} is being changed by {who}. Wait for it to "
            "finish, then try again (or use another library with --library)."
        )

    # ----------------------------------------------------------------- search
    def unit_count(self) -> int:
        return self.vectors.unit_count()

    def search_units(
        self, vector: Vectors, k: int, doc_ids: Iterable[str] | None = None
    ) -> list[UnitHit]:
        """The `k` units nearest `vector` [dim] (cosine), best first; only `doc_ids`'s."""
        return self.vectors.search_units(vector, k, doc_ids)

    def cosines(self, vector: Vectors, unit_ids: Sequence[int]) -> dict[int, float]:
        """Cosine of `vector` with each of `unit_ids`' stored vectors."""
        return self.vectors.cosines(vector, unit_ids)

    def unit_ids(self, doc_ids: Iterable[str]) -> npt.NDArray[np.int64]:
        return self.vectors.unit_ids(doc_ids)

    def unit_hits(self, pairs: list[tuple[int, float]]) -> list[UnitHit]:
        return self.vectors.unit_hits(pairs)

    # ------------------------------------------------------------------ check
    def check(self) -> list[str]:
        """Problems found by a full consistency check; [] for a healthy library."""
        problems: list[str] = []
        dim = self.vectors.dim()
        for info in self.documents():
            pages = self._db.execute(
                "SELECT count(*) FROM pages WHERE doc_id = ?", (info.doc_id,)
            ).fetchone()[0]
            chunks = self._db.execute(
                "SELECT count(*) FROM chunks WHERE doc_id = ?", (info.doc_id,)
            ).fetchone()[0]
            units = self._db.execute(
                "SELECT count(*), coalesce(sum(length(vector) != ?), 0) FROM units "
                "WHERE doc_id = ?",
                (dim * 4, info.doc_id),
            ).fetchone()
            if (pages, chunks, units[0], units[1]) != (info.pages, info.chunks, info.units, 0):
                problems.append(
                    f"{info.doc_id}: {pages}/{info.pages} pages, {chunks}/{info.chunks} "
                    f"chunks, {units[0]}/{info.units} units, {units[1]} bad vectors"
                )
        orphans = self._db.execute(
            "SELECT count(*) FROM units WHERE doc_id NOT IN (SELECT id FROM documents)"
        ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} units of no document")
        if self.unit_count():
            index = self.vectors.index()
            rows = self._db.execute("SELECT id FROM units").fetchall()
            if not np.array_equal(np.sort(index.ids()), np.sort([r[0] for r in rows])):
                problems.append("the vector index does not hold exactly the library's units")
        return problems
