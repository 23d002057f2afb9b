"""A FAISS vector index that stays exact while small and turns approximate when large.

`VectorIndex` holds L2-normalised float32 vectors under int64 ids; the score of a vector
for a query is their inner product, which for normalised vectors is the cosine.

Two kinds, chosen by size:

* ``"exact"``: ``IndexIDMap2(IndexFlatIP)``, a brute-force scan. Used while the index
  holds at most `exact_limit` vectors (200,000 by default; one query scans all of
  them: 32 ms at 100K and 0.5 s at 1M vectors of 384 floats in the benchmark).
* ``"ivf"``: ``IndexIVFFlat`` (inner product) with a hashtable direct map (so that ids
  can be removed and vectors reconstructed). The first `add` that takes the count past
  `exact_limit` trains it and moves every vector over; it is retrained, with more
  lists, when the count has grown `GROW_FACTOR` times past the count it was trained on.
  It never turns back into the exact kind when vectors are removed.

IVF parameters:

* ``nlist = round(4 * sqrt(n))``, at most ``n // 39`` (FAISS's k-means wants 39
  training points per centroid), at least 1;
* training sample: at most ``TRAIN_PER_LIST * nlist`` (64 × nlist) vectors, drawn
  without replacement with a fixed seed, so a build is reproducible;
* ``nprobe`` (lists scanned per query), when not given: `default_nprobe`,
  ``max(MIN_NPROBE, ceil(sqrt(nlist)))`` = ``max(16, ceil(sqrt(nlist)))``, at most
  nlist: 16 lists at 10K vectors (nlist 256), 36 at 100K, 43 at 200K, 64 at 1M (nlist
  4000, 1.6 % of the lists). On the clustered synthetic data of
  ``bench/retrieval_speed.py`` (n/200 topic centres, cosine to the centre ≈ 0.71;
  queries are perturbed data points) recall@10 against the exact search is 1.0 from
  nprobe 8 at 10K and 100K vectors and from nprobe 4 at 300K (0.94, 0.99, 1.0 at
  nprobe 4); the rule keeps a margin of 2× or more over that for real embeddings,
  which are less clearly clustered, at a cost that grows only as n^¼.
  See ``bench/results/retrieval_speed.md``.

Searches restricted to an `allowed` set of ids (a collection, one document) with fewer
than `SUBSET_EXACT_LIMIT` (50,000) ids present are exact for both kinds: the vectors
of those ids are reconstructed and scanned, which for one document (5,000 vectors)
takes 3 to 9 ms (100K to 1M vectors in the index); the vectors of the last such set
(up to `SUBSET_CACHE_BYTES`, 32 MiB) are kept until the index changes, so that further
questions about the same document skip the reconstruction (under 1 ms). Larger sets use a FAISS
`IDSelectorBatch` in the search parameters, with an IVF scanning more lists the
smaller the set (`_subset_nprobe`).

Files (`save` / `load`) are one file each, written atomically (temp file in the same
folder, fsync, `os.replace`)::

    MAGIC (8 bytes) | header length (u32 LE) | header (JSON, UTF-8)
    | FAISS index (faiss.write_index) | FAISS length (u64 LE) | CRC-32 (u32 LE) | END (8)

The header stores the kind, dimension, count, `exact_limit`, the `nprobe` setting and
the size the IVF was trained on; `load` checks the CRC before FAISS reads a byte.

Not thread-safe: use an index from one thread at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import faiss as _faiss
import numpy as np
from numpy.typing import NDArray

from core.errors import VectorIndexError
from core.library.vector_file import FORMAT, read_index_file, write_index_file

# Untyped on purpose: FAISS's stubs lack PyCallbackIOReader/Writer, DirectMap, ...
faiss: Any = _faiss

__all__ = [
    "GROW_FACTOR",
    "MIN_NPROBE",
    "SUBSET_CACHE_BYTES",
    "SUBSET_EXACT_LIMIT",
    "TRAIN_PER_LIST",
    "VectorIndex",
    "VectorIndexError",
    "default_nlist",
    "default_nprobe",
]

Kind = Literal["exact", "ivf"]

TRAIN_PER_LIST = 64  # training sample: at most this many vectors per IVF list
MIN_POINTS_PER_LIST = 39  # FAISS k-means warns below 39 training points per centroid
MIN_NPROBE = 16  # default nprobe: max(16, ceil(sqrt(nlist)))
GROW_FACTOR = 4  # retrain the IVF once the count is 4× the count it was trained on
SUBSET_EXACT_LIMIT = 50_000  # allowed sets smaller than this are searched exactly
SUBSET_CACHE_BYTES = 32 << 20  # keep the vectors of the last such set up to this size
_CHUNK = 65_536  # vectors moved per call when (re)building an IVF
_SEED = 1234


def default_nlist(n: int) -> int:
    """IVF lists for `n` vectors: round(4·√n), at most n // 39, at least 1."""
    return max(1, min(round(4 * math.sqrt(n)), n // MIN_POINTS_PER_LIST))


def default_nprobe(nlist: int) -> int:
    """Lists scanned per query when no nprobe is given: max(16, ⌈√nlist⌉), ≤ nlist."""
    return min(nlist, max(MIN_NPROBE, math.ceil(math.sqrt(nlist))))


def _subset_nprobe(nprobe: int, nlist: int, n: int, allowed: int) -> int:
    """nprobe for a selector search over `allowed` of `n` vectors: a search restricted
    to a fraction f of the vectors finds its k neighbours among the k/f nearest
    unrestricted ones, spread over more lists; scan √(1/f) times as many."""
    scale = math.sqrt(n / max(1, allowed))
    return min(nlist, max(nprobe, math.ceil(nprobe * scale)))


class VectorIndex:
    """FAISS index over L2-normalised float32 vectors with int64 ids (inner product = cosine).

    `dim`: vector length. `exact_limit`: the most vectors held by the exact kind; the add
    that passes it turns the index into an IVF (0: an IVF from the first add).
    `nprobe`: IVF lists scanned per query; None: `default_nprobe(nlist)`.
    Ids must be ≥ 0 (FAISS's -1 means "no result") and unique.
    """

    def __init__(self, dim: int, *, exact_limit: int = 200_000, nprobe: int | None = None) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise VectorIndexError(f"Vector dimension must be a positive integer, not {dim!r}.")
        if isinstance(exact_limit, bool) or not isinstance(exact_limit, int) or exact_limit < 0:
            raise VectorIndexError(
                f"exact_limit must be an integer ≥ 0 (vectors kept in the exact index), "
                f"not {exact_limit!r}."
            )
        if nprobe is not None and (
            isinstance(nprobe, bool) or not isinstance(nprobe, int) or nprobe < 1
        ):
            raise VectorIndexError(f"nprobe must be a positive integer or None, not {nprobe!r}.")
        self._dim = dim
        self._exact_limit = exact_limit
        self._nprobe_setting = nprobe
        self._kind: Kind = "exact"
        self._trained_on = 0  # vectors the IVF was trained for (0 for the exact kind)
        # (ids, vectors) of the last small `allowed` set, until the index changes
        self._subset_cache: tuple[NDArray[np.int64], NDArray[np.float32]] | None = None
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._ids: NDArray[np.int64] = np.zeros(0, dtype=np.int64)  # sorted

    # -- properties ---------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        extra = f", nlist={self.nlist}, nprobe={self.nprobe}" if self._kind == "ivf" else ""
        return f"VectorIndex(dim={self._dim}, kind={self._kind!r}, n={len(self)}{extra})"

    @property
    def kind(self) -> Kind:
        """ "exact" (flat scan) or "ivf" (approximate)."""
        return self._kind

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def exact_limit(self) -> int:
        return self._exact_limit

    @property
    def nprobe_setting(self) -> int | None:
        """The nprobe given to the constructor (None: the default rule)."""
        return self._nprobe_setting

    @property
    def nlist(self) -> int | None:
        """IVF lists, None for the exact kind."""
        return int(self._index.nlist) if self._kind == "ivf" else None

    @property
    def nprobe(self) -> int | None:
        """IVF lists scanned per (unrestricted) query, None for the exact kind."""
        if self._kind != "ivf":
            return None
        nlist = int(self._index.nlist)
        if self._nprobe_setting is None:
            return default_nprobe(nlist)
        return min(nlist, self._nprobe_setting)

    def ids(self) -> NDArray[np.int64]:
        """Ids currently in the index, ascending (a copy)."""
        return self._ids.copy()

    def __contains__(self, item: object) -> bool:
        if isinstance(item, bool) or not isinstance(item, int | np.integer):
            return False
        pos = int(np.searchsorted(self._ids, item))
        return pos < self._ids.size and int(self._ids[pos]) == int(item)

    # -- changes ------------------------------------------------------------------------

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        """Add `vectors` [n, dim] under `ids` [n]. All or nothing: on a bad input nothing
        is added. May turn the index into (or retrain) an IVF, which takes a while."""
        ids_ = _as_ids(ids, "ids")
        vecs = self._as_vectors(vectors, "vectors")
        if ids_.size != vecs.shape[0]:
            raise VectorIndexError(
                f"Got {ids_.size} ids for {vecs.shape[0]} vectors: give one id per vector."
            )
        if ids_.size == 0:
            return
        uniq, counts = np.unique(ids_, return_counts=True)
        if uniq.size != ids_.size:
            dup = uniq[counts > 1]
            raise VectorIndexError(
                f"Duplicate ids in one add: {_preview(dup)}. Give every vector its own id."
            )
        present = self._present(uniq)
        if present.size:
            raise VectorIndexError(
                f"{present.size} ids are already in the index: {_preview(present)}. "
                "Remove them first to replace their vectors."
            )
        total = len(self) + ids_.size
        self._subset_cache = None
        if self._kind == "exact" and total > self._exact_limit:
            self._build_ivf(ids_, vecs)
        elif self._kind == "ivf" and total > GROW_FACTOR * self._trained_on:
            self._build_ivf(ids_, vecs)
        else:
            self._index.add_with_ids(vecs, ids_)
        self._ids = np.union1d(self._ids, uniq).astype(np.int64, copy=False)

    def remove(self, ids: NDArray[np.int64]) -> int:
        """Remove the vectors of `ids` (ids not in the index are ignored); returns how
        many were removed."""
        present = self._present(_unique(_as_ids(ids, "ids")))
        if present.size == 0:
            return 0
        self._subset_cache = None
        if self._kind == "ivf":
            # The hashtable direct map removes only through an IDSelectorArray.
            selector: Any = faiss.IDSelectorArray(present.size, faiss.swig_ptr(present))
        else:
            selector = faiss.IDSelectorBatch(present.size, faiss.swig_ptr(present))
        removed = int(self._index.remove_ids(selector))
        if removed != present.size:  # pragma: no cover - FAISS and our id list disagree
            raise VectorIndexError(
                f"The index removed {removed} of {present.size} vectors; it is inconsistent. "
                "Rebuild it."
            )
        self._ids = np.setdiff1d(self._ids, present, assume_unique=True).astype(
            np.int64, copy=False
        )
        return removed

    # -- search -------------------------------------------------------------------------

    def search(
        self,
        queries: NDArray[np.float32],
        k: int,
        allowed: NDArray[np.int64] | None = None,
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The `k` best vectors for each query: scores [m, k] and ids [m, k], best first,
        padded with (-inf, -1) where fewer exist. `allowed`: search only these ids (ids
        not in the index are ignored)."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise VectorIndexError(f"k must be a positive integer, not {k!r}.")
        k = int(k)
        q = self._as_vectors(queries, "queries")
        m = q.shape[0]
        if allowed is not None:
            subset = self._present(_unique(_as_ids(allowed, "allowed")))
            if subset.size < SUBSET_EXACT_LIMIT or subset.size == 0:
                return self._search_subset(q, k, subset)
            if subset.size == len(self):
                allowed = None  # everything allowed: no selector needed
        if m == 0 or len(self) == 0:
            return _padded(m, k)
        params: Any = None
        selector: Any = None  # referenced here until the search returns (SWIG won't keep it)
        if allowed is not None:
            selector = faiss.IDSelectorBatch(subset.size, faiss.swig_ptr(subset))
            if self._kind == "ivf":
                nprobe = self.nprobe
                assert nprobe is not None
                params = faiss.SearchParametersIVF()
                params.nprobe = _subset_nprobe(
                    nprobe, int(self._index.nlist), len(self), subset.size
                )
            else:
                params = faiss.SearchParameters()
            params.sel = selector
        elif self._kind == "ivf":
            params = faiss.SearchParametersIVF()
            params.nprobe = self.nprobe
        scores, ids = self._index.search(q, k, params=params)
        return _clean(scores, ids)

    def _search_subset(
        self, q: NDArray[np.float32], k: int, subset: NDArray[np.int64]
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Exact search over the vectors of `subset` (ids present in the index)."""
        m = q.shape[0]
        if m == 0 or subset.size == 0:
            return _padded(m, k)
        cached = self._subset_cache
        if cached is not None and np.array_equal(cached[0], subset):
            base = cached[1]
        else:
            base = np.asarray(self._index.reconstruct_batch(subset), dtype=np.float32)
            self._subset_cache = (subset, base) if base.nbytes <= SUBSET_CACHE_BYTES else None
        scores, rows = faiss.knn(q, base, min(k, subset.size), metric=faiss.METRIC_INNER_PRODUCT)
        rows = np.asarray(rows, dtype=np.int64)
        ids = np.where(rows >= 0, subset[np.maximum(rows, 0)], -1)
        out_s, out_i = _padded(m, k)
        out_s[:, : rows.shape[1]] = scores
        out_i[:, : rows.shape[1]] = ids
        return _clean(out_s, out_i)

    # -- files --------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index to `path` atomically (a temp file in the same folder, fsync,
        os.replace): a crash leaves the old file or the new one, never half of one."""
        path = Path(path)
        header = {
            "format": FORMAT,
            "dim": self._dim,
            "kind": self._kind,
            "count": len(self),
            "exact_limit": self._exact_limit,
            "nprobe": self._nprobe_setting,
            "trained_on": self._trained_on,
            "faiss": faiss.__version__,
        }
        write_index_file(path, header, self._index)

    @classmethod
    def load(cls, path: Path, dim: int) -> VectorIndex:
        """Read an index written by `save`. Raises VectorIndexError when the file is
        missing, unreadable, damaged or holds vectors of another dimension than `dim`."""
        path = Path(path)
        try:
            return cls._load(path, dim)
        except VectorIndexError:
            raise
        except (OSError, RuntimeError, ValueError, TypeError, KeyError, MemoryError) as e:
            raise VectorIndexError(
                f"Could not read the vector index {path}: {e}. Delete it; the documents' "
                "vectors will be computed again."
            ) from e

    @classmethod
    def _load(cls, path: Path, dim: int) -> VectorIndex:
        def damaged(why: str) -> VectorIndexError:
            return VectorIndexError(
                f"The vector index {path} is damaged ({why}). Delete it; the documents' "
                "vectors will be computed again."
            )

        def check(header: dict[str, Any]) -> VectorIndex:
            kind, fdim, count = header.get("kind"), header.get("dim"), header.get("count")
            if fdim != dim:
                raise VectorIndexError(
                    f"The vector index {path} holds vectors of dimension {fdim}, but the "
                    f"embedder makes vectors of dimension {dim}. Delete the index; the "
                    "documents' vectors will be computed again with this embedder."
                )
            nprobe = header.get("nprobe")
            try:
                vi = cls(dim, exact_limit=header.get("exact_limit", -1), nprobe=nprobe)
            except VectorIndexError as e:
                raise damaged(f"bad settings: {e}") from e
            if kind not in ("exact", "ivf") or not isinstance(count, int):
                raise damaged("bad header")
            trained_on = header.get("trained_on")
            if not isinstance(trained_on, int) or trained_on < 0:
                raise damaged("bad header")
            return vi

        header, index, vi = read_index_file(path, check, damaged)
        kind, count, trained_on = header["kind"], header["count"], header["trained_on"]
        if kind == "exact":
            ok = isinstance(index, faiss.IndexIDMap2)
        else:
            ok = (
                isinstance(index, faiss.IndexIVFFlat)
                and index.metric_type == faiss.METRIC_INNER_PRODUCT
                and index.direct_map.type == faiss.DirectMap.Hashtable
            )
        if not ok or index.d != dim or index.ntotal != count:
            raise damaged("index does not match its header")
        vi._index = index
        vi._kind = kind
        vi._trained_on = trained_on
        vi._ids = np.sort(vi._stored_ids())
        if np.unique(vi._ids).size != vi._ids.size or (vi._ids.size and vi._ids[0] < 0):
            raise damaged("bad ids")
        return vi

    # -- internals ----------------------------------------------------------------------

    def _as_vectors(self, x: Any, name: str) -> NDArray[np.float32]:
        a = np.asarray(x)
        if a.ndim != 2 or a.shape[1] != self._dim:
            raise VectorIndexError(
                f"{name} must be a 2-D array [n, {self._dim}], got shape {a.shape}."
            )
        if not np.issubdtype(a.dtype, np.floating):
            raise VectorIndexError(f"{name} must be floating point, got dtype {a.dtype}.")
        with np.errstate(over="ignore"):
            a32 = np.ascontiguousarray(a, dtype=np.float32)
        for first in range(0, a32.shape[0], _CHUNK):  # no n×dim temporary
            if not np.isfinite(a32[first : first + _CHUNK]).all():
                raise VectorIndexError(
                    f"{name} contain NaN or infinite values (or values too large for float32)."
                )
        return a32

    def _present(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """The sorted unique `ids` that are in the index."""
        if ids.size == 0 or self._ids.size == 0:
            return np.zeros(0, dtype=np.int64)
        pos = np.searchsorted(self._ids, ids)
        hit = self._ids[np.minimum(pos, self._ids.size - 1)] == ids
        return np.ascontiguousarray(ids[hit], dtype=np.int64)

    def _stored_ids(self) -> NDArray[np.int64]:
        """Ids as FAISS holds them (any order)."""
        if self._kind == "exact":
            return np.asarray(faiss.vector_to_array(self._index.id_map), dtype=np.int64)
        invlists = self._index.invlists
        parts = [np.zeros(0, dtype=np.int64)]
        for lst in range(int(invlists.nlist)):
            size = int(invlists.list_size(lst))
            if size:
                ptr = invlists.get_ids(lst)
                parts.append(np.array(faiss.rev_swig_ptr(ptr, size), dtype=np.int64))
                invlists.release_ids(lst, ptr)
        return np.concatenate(parts)

    def _existing(self) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]:
        """The stored (ids, vectors), a chunk at a time."""
        for first in range(0, self._ids.size, _CHUNK):
            ids = self._ids[first : first + _CHUNK]
            yield ids, np.asarray(self._index.reconstruct_batch(ids), dtype=np.float32)

    def _build_ivf(self, new_ids: NDArray[np.int64], new_vecs: NDArray[np.float32]) -> None:
        """Replace the index by an IVF, trained for the stored vectors plus the new ones,
        holding them all."""
        old = self._ids.size
        n = old + new_ids.size
        nlist = default_nlist(n)
        rng = np.random.default_rng(_SEED)
        pick = np.sort(rng.choice(n, size=min(n, TRAIN_PER_LIST * nlist), replace=False))
        from_old = pick[pick < old]
        sample = np.empty((pick.size, self._dim), dtype=np.float32)
        if from_old.size:
            sample[: from_old.size] = self._index.reconstruct_batch(self._ids[from_old])
        sample[from_old.size :] = new_vecs[pick[from_old.size :] - old]
        quantizer = faiss.IndexFlatIP(self._dim)
        index: Any = faiss.IndexIVFFlat(quantizer, self._dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = _SEED
        index.train(sample)
        del sample
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        for ids, vecs in self._existing():
            index.add_with_ids(vecs, ids)
        index.add_with_ids(new_vecs, new_ids)
        self._index = index
        self._kind = "ivf"
        self._trained_on = n


# -- helpers ----------------------------------------------------------------------------


def _as_ids(x: Any, name: str) -> NDArray[np.int64]:
    a = np.asarray(x)
    if a.ndim != 1:
        raise VectorIndexError(f"{name} must be a 1-D array of integer ids, got shape {a.shape}.")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise VectorIndexError(f"{name} must be integers, got dtype {a.dtype}.")
    if a.size and (a.min() < 0 or (a.dtype == np.uint64 and a.max() > np.iinfo(np.int64).max)):
        raise VectorIndexError(f"{name} must be ≥ 0 and fit int64 (-1 means 'no result').")
    return np.ascontiguousarray(a, dtype=np.int64)


def _unique(a: NDArray[np.int64]) -> NDArray[np.int64]:
    """np.unique, skipped for an already sorted unique array (the usual `allowed`)."""
    if a.size < 2 or bool(np.all(a[1:] > a[:-1])):
        return a
    return np.unique(a)


def _preview(ids: NDArray[np.int64], limit: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:limit])
    return shown + (", ..." if ids.size > limit else "")


def _padded(m: int, k: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    return np.full((m, k), -np.inf, dtype=np.float32), np.full((m, k), -1, dtype=np.int64)


def _clean(scores: Any, ids: Any) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """FAISS pads with (-FLT_MAX or similar, -1): make the pad (-inf, -1)."""
    s = np.array(scores, dtype=np.float32)
    i = np.array(ids, dtype=np.int64)
    s[i < 0] = -np.inf
    return s, i
