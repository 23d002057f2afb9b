"""The library's records and storage helpers: the SQLite schema, the dataclasses a
library hands out (`DocumentInfo`, `Chunking`, `UnitHit`), row (de)serialisation,
transactions and the error a failed write becomes (docs/architecture.md, "The library")."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import LibraryError
from core.events import IngestProgress
from core.library.embed import Vectors
from core.pdf.extract import Document, Page

SCHEMA_VERSION = 1
DB_NAME = "library.sqlite3"
LOCK_NAME = "write.lock"
OWNER_NAME = "write.owner"
ENV_LIBRARY = "RAPIDQA_LIBRARY"
EMBED_BATCH = 128  # units per encode call: progress + cancel granularity (~3 s on 2 cores)
SAVE_EAGERLY_BELOW = 200_000  # vectors: save the FAISS cache after each write below this

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents(
    id TEXT PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
    title TEXT NOT NULL, pages INTEGER NOT NULL, tokens INTEGER NOT NULL,
    chars INTEGER NOT NULL, size INTEGER NOT NULL, added REAL NOT NULL,
    notes TEXT NOT NULL, chunking TEXT NOT NULL, n_chunks INTEGER NOT NULL,
    n_units INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pages(
    doc_id TEXT NOT NULL, number INTEGER NOT NULL, label TEXT NOT NULL,
    start_char INTEGER NOT NULL, width REAL NOT NULL, height REAL NOT NULL,
    ocr INTEGER NOT NULL, text TEXT NOT NULL, line_spans BLOB NOT NULL,
    line_rects BLOB NOT NULL, PRIMARY KEY(doc_id, number)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks(
    doc_id TEXT NOT NULL, idx INTEGER NOT NULL, start_char INTEGER NOT NULL,
    core_start INTEGER NOT NULL, end_char INTEGER NOT NULL, tokens INTEGER NOT NULL,
    PRIMARY KEY(doc_id, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS units(
    id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL, idx INTEGER NOT NULL,
    chunk INTEGER NOT NULL, start_char INTEGER NOT NULL, end_char INTEGER NOT NULL,
    vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS units_doc ON units(doc_id, idx);
"""


def default_library_dir() -> Path:
    """`RAPIDQA_LIBRARY` if set, else the platform's data folder (platformdirs)."""
    env = os.environ.get(ENV_LIBRARY, "").strip()
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("RapidQA", appauthor=False)) / "library"


@dataclass(frozen=True)
class Chunking:
    """How documents are cut; recorded per document (a change re-indexes)."""

    tokenizer: str  # fingerprint of the target tokenizer (see `tokenizer_id`)
    chunk_tokens: int = 512
    overlap: int = 64
    unit_pieces: int = 200

    @property
    def key(self) -> str:
        return f"{self.tokenizer}|{self.chunk_tokens}|{self.overlap}|{self.unit_pieces}"


def tokenizer_id(tokenizer: Any) -> str:
    """A fingerprint of the tokenizer: 16 hex digits of the SHA-256 of its definition.

    No model name is part of it: models that share a tokenizer (a target and its
    drafter, SmolLM2 and a tiny test model) share the chunks too."""
    spec = tokenizer.to_str() if hasattr(tokenizer, "to_str") else repr(tokenizer)
    return f"tokenizer:{hashlib.sha256(spec.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class DocumentInfo:
    """One library document as listed (no text)."""

    doc_id: str
    sha256: str
    path: Path
    title: str
    pages: int
    tokens: int  # target-tokenizer tokens of the whole text
    chars: int
    size: int  # bytes of the PDF
    added: float  # Unix time
    notes: tuple[str, ...]
    chunking: str
    chunks: int
    units: int

    @property
    def source_present(self) -> bool:
        return self.path.is_file()


@dataclass(frozen=True)
class UnitHit:
    """A unit found by vector (or lexical) search."""

    unit_id: int
    doc_id: str
    index: int
    chunk: int
    start_char: int
    end_char: int
    score: float


DOC_COLUMNS = (
    "id, sha256, path, title, pages, tokens, chars, size, added, notes, chunking, n_chunks, n_units"
)


def info_of_row(row: Sequence[Any]) -> DocumentInfo:
    (doc_id, sha, path, title, pages, tokens, chars, size, added, notes, chunking,
     n_chunks, n_units) = row  # fmt: skip
    return DocumentInfo(
        doc_id, sha, Path(path), title, pages, tokens, chars, size, added,
        tuple(json.loads(notes)), chunking, n_chunks, n_units,
    )  # fmt: skip


def page_of_row(row: Sequence[Any]) -> Page:
    number, label, start, width, height, ocr, text, spans, rects = row
    return Page(
        number, label, text, start, width, height,
        np.frombuffer(spans, dtype=np.int32).reshape(-1, 2),
        np.frombuffer(rects, dtype=np.float32).reshape(-1, 4), bool(ocr),
    )  # fmt: skip


def page_row(doc_id: str, p: Page) -> tuple[Any, ...]:
    return (
        doc_id, p.number, p.label, p.start_char, p.width, p.height, int(p.ocr), p.text,
        np.ascontiguousarray(p.line_spans, np.int32).tobytes(),
        np.ascontiguousarray(p.line_rects, np.float32).tobytes(),
    )  # fmt: skip


def unpack(rows: Sequence[Any], dim: int) -> tuple[npt.NDArray[np.int64], Vectors]:
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    if not rows:
        return ids, np.zeros((0, dim), dtype=np.float32)
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, dim)
    return ids, vectors


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:  # SQLITE_FULL and some I/O errors roll back on their own
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def write_error(root: Path, err: sqlite3.Error, title: str) -> LibraryError:
    text = str(err)
    if "full" in text.lower():
        return LibraryError(
            f"The disk holding the library at {root} is full: '{title}' was not added or "
            "changed, and the library is as it was. Free some space and try again."
        )
    return LibraryError(
        f"Could not write the library at {root} ({text}); '{title}' was not changed and "
        "the library is as it was. Check the folder's permissions and free space."
    )


def pages_read(
    title: str, reader: Generator[tuple[int, int], None, Document]
) -> Generator[IngestProgress, None, Document]:
    """`reader`'s pages as progress events, at most ~50 per document."""
    while True:
        try:
            done, total = next(reader)
        except StopIteration as stop:
            doc: Document = stop.value
            return doc
        if done == total or done % max(total // 50, 1) == 0:
            yield IngestProgress(title, "read", done, total)


def remove_stale_temps(root: Path, age_s: float = 60.0) -> None:
    """Delete cache files a killed process left half-written (older than `age_s`, so
    that a reader saving its cache right now keeps its own)."""
    now = time.time()
    for temp in root.glob(".vectors-*.tmp"):
        with contextlib.suppress(OSError):
            if now - temp.stat().st_mtime > age_s:
                temp.unlink()


def pdfs_near(root: Path, depth: int) -> Iterator[Path]:
    """PDF files in `root` and its subfolders down to `depth` levels (unreadable
    folders skipped)."""
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.is_file() and entry.suffix.lower() == ".pdf":
                yield entry
            elif depth > 0 and entry.is_dir() and not entry.is_symlink():
                yield from pdfs_near(entry, depth - 1)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
