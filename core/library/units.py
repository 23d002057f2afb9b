"""The units' vectors: stored in SQLite (the source of truth), searched through a FAISS
index that is a cache per library generation (`vectors-<generation>.faiss`): loaded
when its generation matches, caught up from SQLite when older (new units added,
removed ones dropped), rebuilt when missing or unreadable."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.library.embed import Vectors
from core.library.schema import SAVE_EAGERLY_BELOW, UnitHit, unpack
from core.library.vectors import VectorIndex, VectorIndexError


class UnitVectors:
    """Search over one library's units. `meta` reads the library's meta table (its
    `generation` and recorded `dim`); `default_dim` is the embedder's dimension, asked
    only before the first document records one."""

    def __init__(
        self,
        db: sqlite3.Connection,
        root: Path,
        meta: Callable[[str], str | None],
        default_dim: Callable[[], int],
        exact_limit: int,
        lock: threading.RLock,
    ) -> None:
        self._db = db
        self.root = root
        self._meta = meta
        self._default_dim = default_dim
        self.exact_limit = exact_limit
        self._lock = lock
        self._index: VectorIndex | None = None
        self._gen = -1

    def _generation(self) -> int:
        return int(self._meta("generation") or 0)

    def dim(self) -> int:
        recorded = self._meta("dim")
        return int(recorded) if recorded else self._default_dim()

    def unit_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM units").fetchone()[0])

    def search_units(
        self, vector: Vectors, k: int, doc_ids: Iterable[str] | None = None
    ) -> list[UnitHit]:
        """The `k` units nearest `vector` [dim] (cosine), best first; only `doc_ids`'s."""
        with self._lock:
            index = self.index()
            allowed = None if doc_ids is None else self.unit_ids(doc_ids)
            total = len(index) if allowed is None else len(allowed)
            k = min(k, total)
            if k <= 0:
                return []
            scores, ids = index.search(vector.reshape(1, -1).astype(np.float32), k, allowed)
            pairs = [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
            return self.unit_hits(pairs)

    def cosines(self, vector: Vectors, unit_ids: Sequence[int]) -> dict[int, float]:
        """Cosine of `vector` with each of `unit_ids`' stored vectors."""
        out: dict[int, float] = {}
        for first in range(0, len(unit_ids), 500):
            part = list(unit_ids[first : first + 500])
            rows = self._db.execute(
                f"SELECT id, vector FROM units WHERE id IN ({','.join('?' * len(part))})", part
            ).fetchall()
            ids, vectors = unpack(rows, self.dim())
            out.update(zip(ids.tolist(), (vectors @ vector).tolist(), strict=True))
        return out

    def unit_ids(self, doc_ids: Iterable[str]) -> npt.NDArray[np.int64]:
        ids = list(doc_ids)
        if not ids:
            return np.zeros(0, dtype=np.int64)
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(f"SELECT id FROM units WHERE doc_id IN ({marks})", ids).fetchall()
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    def unit_hits(self, pairs: list[tuple[int, float]]) -> list[UnitHit]:
        if not pairs:
            return []
        found: dict[int, tuple[Any, ...]] = {}
        ids = [i for i, _ in pairs]
        for first in range(0, len(ids), 500):
            part = ids[first : first + 500]
            rows = self._db.execute(
                "SELECT id, doc_id, idx, chunk, start_char, end_char FROM units WHERE id IN "
                f"({','.join('?' * len(part))})",
                part,
            ).fetchall()
            found.update((row[0], row[1:]) for row in rows)
        return [
            UnitHit(i, found[i][0], found[i][1], found[i][2], found[i][3], found[i][4], score)
            for i, score in pairs
            if i in found
        ]

    def index(self) -> VectorIndex:
        """The FAISS index at the current generation (loaded, updated or rebuilt)."""
        gen = self._generation()
        if self._index is not None and self._gen == gen:
            return self._index
        if self._index is None:
            self._index = self._load_cache()
        dim = self.dim()
        if self._index is None or self._index.dim != dim:
            self._index = VectorIndex(dim, exact_limit=self.exact_limit)
        self._catch_up(self._index)
        self._gen = gen
        self.save()
        return self._index

    def _catch_up(self, index: VectorIndex) -> None:
        """Make `index` hold exactly the units in SQLite (add new, drop removed)."""
        have = index.ids()
        rows = self._db.execute("SELECT id FROM units").fetchall()
        present = np.asarray([r[0] for r in rows], dtype=np.int64)
        gone = np.setdiff1d(have, present, assume_unique=True)
        if len(gone):
            index.remove(gone)
        new = np.setdiff1d(present, have, assume_unique=True)
        for first in range(0, len(new), 50_000):
            part = new[first : first + 50_000].tolist()
            rows = self._db.execute(
                f"SELECT id, vector FROM units WHERE id IN ({','.join('?' * len(part))})", part
            ).fetchall()
            ids, vectors = unpack(rows, self.dim())
            if len(ids):
                index.add(ids, vectors)

    def _cache_files(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.root.glob("vectors-*.faiss"):
            with contextlib.suppress(ValueError):
                found.append((int(path.stem.removeprefix("vectors-")), path))
        return sorted(found)

    def _load_cache(self) -> VectorIndex | None:
        gen = self._generation()
        for file_gen, path in reversed(self._cache_files()):
            if file_gen > gen:
                continue  # from a write that never committed
            try:
                return VectorIndex.load(path, self.dim())
            except (VectorIndexError, OSError):
                continue
        return None

    def save(self) -> None:
        """Write the FAISS cache for the generation it holds; drop older caches.

        A failure (full disk ...) only costs a rebuild at the next open."""
        index, gen = self._index, self._gen
        if index is None or gen < 0 or gen != self._generation():
            return
        target = self.root / f"vectors-{gen}.faiss"
        if not target.exists():
            try:
                index.save(target)
            except (OSError, VectorIndexError):
                return
        for file_gen, path in self._cache_files():
            if file_gen != gen:
                with contextlib.suppress(OSError):
                    path.unlink()

    def after_write(self) -> None:
        """Bring the in-memory index up to date; save it while it is cheap to.
        (The read caches see the new generation themselves.)"""
        if self._index is not None:
            self._catch_up(self._index)
            self._gen = self._generation()
            if len(self._index) < SAVE_EAGERLY_BELOW:
                self.save()
