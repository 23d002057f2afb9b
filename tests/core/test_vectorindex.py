"""VectorIndex: exact and IVF kinds against a numpy oracle, removal, restricted search,
files (round trip, damage), bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

import core.library.vectors as cv
from core.errors import RapidQAError
from core.library.vectors import VectorIndex, VectorIndexError

DIM = 32
LIMIT = 2_000  # small exact_limit: 2,000+ vectors exercise the IVF kind


def _unit(x: NDArray[np.float32]) -> NDArray[np.float32]:
    out: NDArray[np.float32] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def _random(n: int, seed: int = 0) -> NDArray[np.float32]:
    return _unit(np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32))


def _clustered(
    n: int, queries: int, seed: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """n / 200 topic centres plus gaussian spread; queries are perturbed data points."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((max(1, n // 200), DIM), dtype=np.float32))
    x = centres[rng.integers(0, centres.shape[0], n)]
    x = _unit(x + rng.standard_normal((n, DIM), dtype=np.float32) * 0.6 / np.sqrt(DIM))
    q = x[rng.integers(0, n, queries)]
    q = _unit(q + rng.standard_normal(q.shape, dtype=np.float32) * 0.3 / np.sqrt(DIM))
    return x, q


def _ids(n: int, offset: int = 1000) -> NDArray[np.int64]:
    """Ids that are not row numbers (a stride and an offset), to catch mix-ups."""
    return (np.arange(n, dtype=np.int64) * 7 + offset).astype(np.int64)


def _oracle(
    x: NDArray[np.float32], ids: NDArray[np.int64], q: NDArray[np.float32], k: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Brute force: scores and ids, best first, padded with (-inf, -1)."""
    scores = q @ x.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    s = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
    i = np.full((q.shape[0], k), -1, dtype=np.int64)
    s[:, : order.shape[1]] = np.take_along_axis(scores, order, axis=1)
    i[:, : order.shape[1]] = ids[order]
    return s, i


def _recall(found: NDArray[np.int64], truth: NDArray[np.int64]) -> float:
    hits = sum(np.intersect1d(f[f >= 0], t[t >= 0]).size for f, t in zip(found, truth, strict=True))
    return hits / int((truth >= 0).sum())


def _ivf(
    n: int = 4_000, seed: int = 0
) -> tuple[VectorIndex, NDArray[np.float32], NDArray[np.int64]]:
    x, _ = _clustered(n, 1, seed)
    ids = _ids(n)
    index = VectorIndex(DIM, exact_limit=LIMIT)
    index.add(ids[: LIMIT // 2], x[: LIMIT // 2])
    before = index.kind
    index.add(ids[LIMIT // 2 :], x[LIMIT // 2 :])  # passes exact_limit: becomes an IVF
    assert (before, index.kind) == ("exact", "ivf")
    return index, x, ids


def _built(kind: str) -> tuple[VectorIndex, NDArray[np.float32], NDArray[np.int64]]:
    """An index of either kind: 3,000 clustered vectors grown into an IVF, or 1,000
    random ones searched exactly."""
    if kind == "ivf":
        return _ivf(3_000)
    x, ids = _random(1_000), _ids(1_000)
    index = VectorIndex(DIM, exact_limit=LIMIT)
    index.add(ids, x)
    return index, x, ids


# -- exact kind ---------------------------------------------------------------------------


def test_exact_search_equals_oracle() -> None:
    x = _random(500)
    ids = _ids(500)
    index = VectorIndex(DIM, exact_limit=LIMIT)
    index.add(ids[:200], x[:200])
    index.add(ids[200:], x[200:])
    assert index.kind == "exact" and len(index) == 500
    assert index.nprobe is None and index.nlist is None
    q = _random(20, seed=1)
    scores, found = index.search(q, 10)
    want_s, want_i = _oracle(x, ids, q, 10)
    assert found.dtype == np.int64 and scores.dtype == np.float32
    assert found.shape == scores.shape == (20, 10)
    np.testing.assert_array_equal(found, want_i)
    np.testing.assert_allclose(scores, want_s, rtol=0, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first
    np.testing.assert_array_equal(index.ids(), np.sort(ids))


def test_padding_when_fewer_than_k() -> None:
    index = VectorIndex(DIM)
    q = _random(3, seed=1)
    scores, found = index.search(q, 4)  # empty index
    assert found.shape == (3, 4) and (found == -1).all() and np.isneginf(scores).all()
    x = _random(3)
    index.add(_ids(3), x)
    scores, found = index.search(q, 5)
    want_s, want_i = _oracle(x, _ids(3), q, 5)
    np.testing.assert_array_equal(found, want_i)
    assert (found[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    np.testing.assert_allclose(scores[:, :3], want_s[:, :3], atol=1e-5)
    scores, found = index.search(np.zeros((0, DIM), np.float32), 5)
    assert found.shape == scores.shape == (0, 5)


# -- IVF kind -----------------------------------------------------------------------------


def test_ivf_recall_against_oracle() -> None:
    x, q = _clustered(4_000, 100)
    ids = _ids(4_000)
    index = VectorIndex(DIM, exact_limit=LIMIT)
    index.add(ids, x)
    assert index.kind == "ivf" and len(index) == 4_000
    nlist, nprobe = index.nlist, index.nprobe
    assert nlist == cv.default_nlist(4_000) and nprobe == cv.default_nprobe(nlist)
    _, found = index.search(q, 10)
    _, truth = _oracle(x, ids, q, 10)
    assert _recall(found, truth) >= 0.9
    np.testing.assert_array_equal(index.ids(), np.sort(ids))


def test_switch_to_ivf_keeps_every_vector_and_takes_later_adds() -> None:
    index, x, ids = _ivf(3_000)
    extra = _random(50, seed=9)
    extra_ids = np.arange(50, dtype=np.int64) + 10**9
    index.add(extra_ids, extra)
    assert len(index) == 3_050
    np.testing.assert_array_equal(index.ids(), np.sort(np.concatenate([ids, extra_ids])))
    _, found = index.search(extra[:10], 1)  # each vector finds itself
    np.testing.assert_array_equal(found[:, 0], extra_ids[:10])
    _, found = index.search(x[:50], 1)
    assert (found[:, 0] == ids[:50]).mean() >= 0.95


def test_ivf_retrains_when_grown() -> None:
    index = VectorIndex(DIM, exact_limit=100)
    x = _random(1_000)
    ids = _ids(1_000)
    index.add(ids[:200], x[:200])
    first = index.nlist
    assert index.kind == "ivf" and first == cv.default_nlist(200)
    index.add(ids[200:], x[200:])  # 1,000 > 4 × 200: retrained with more lists
    assert index.nlist == cv.default_nlist(1_000) > first
    np.testing.assert_array_equal(index.ids(), np.sort(ids))
    _, found = index.search(x[:20], 1)
    assert (found[:, 0] == ids[:20]).mean() >= 0.9


def test_explicit_nprobe() -> None:
    x, _ = _clustered(3_000, 1)
    index = VectorIndex(DIM, exact_limit=LIMIT, nprobe=3)
    index.add(_ids(3_000), x)
    assert index.nprobe == 3 and index.nprobe_setting == 3
    big = VectorIndex(DIM, exact_limit=LIMIT, nprobe=10**6)
    big.add(_ids(3_000), x)
    assert big.nprobe == big.nlist  # capped: all lists, i.e. exact
    q = x[:10]
    _, found = big.search(q, 10)
    np.testing.assert_array_equal(found, _oracle(x, _ids(3_000), q, 10)[1])


# -- remove -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["exact", "ivf"])
def test_remove(kind: str) -> None:
    index, x, ids = _built(kind)
    assert index.kind == kind
    n = len(index)
    gone = ids[::3]
    assert index.remove(np.concatenate([gone, gone[:5], [5, 10**12]])) == gone.size
    assert len(index) == n - gone.size
    assert index.remove(gone) == 0  # already removed
    assert index.remove(np.zeros(0, dtype=np.int64)) == 0
    assert not np.isin(index.ids(), gone).any() and index.ids().size == len(index)
    _, found = index.search(x[:200], 20)  # queries at the removed vectors, too
    assert not np.isin(found, gone).any()
    keep = np.setdiff1d(np.arange(ids.size), np.arange(0, ids.size, 3))
    if kind == "exact":
        _, want_i = _oracle(x[keep], ids[keep], x[:200], 20)
        np.testing.assert_array_equal(found, want_i)
    _, found = index.search(x[keep[:50]], 1)  # the rest still there
    assert (found[:, 0] == ids[keep[:50]]).mean() >= (1.0 if kind == "exact" else 0.95)
    index.add(gone[:3], x[:3])  # a removed id can come back
    assert len(index) == n - gone.size + 3 and gone[0] in index


# -- allowed ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["exact", "ivf"])
def test_allowed_equals_restricted_oracle(kind: str) -> None:
    index, x, ids = _built(kind)
    rows = np.arange(100, 400)  # one "document": a run of ids
    q = _random(15, seed=3)
    scores, found = index.search(q, 10, allowed=ids[rows][::-1].copy())  # order irrelevant
    want_s, want_i = _oracle(x[rows], ids[rows], q, 10)
    np.testing.assert_array_equal(found, want_i)  # exact for both kinds
    np.testing.assert_allclose(scores, want_s, atol=1e-5)
    # ids not in the index are ignored; fewer than k allowed: padded
    small = np.array([ids[5], ids[7], 10**12], dtype=np.int64)
    scores, found = index.search(q, 4, allowed=small)
    assert set(found[:, :2].ravel()) == {ids[5], ids[7]} and (found[:, 2:] == -1).all()
    assert np.isneginf(scores[:, 2:]).all()
    scores, found = index.search(q, 3, allowed=np.zeros(0, dtype=np.int64))
    assert (found == -1).all() and np.isneginf(scores).all()


@pytest.mark.parametrize("kind", ["exact", "ivf"])
def test_allowed_search_sees_changes(kind: str) -> None:
    """The vectors of the last allowed set are kept between searches: not past a change."""
    index, x, ids = _built(kind)
    doc = ids[:300].copy()
    q = x[:5]
    _, found = index.search(q, 1, allowed=doc)
    np.testing.assert_array_equal(found[:, 0], ids[:5])
    index.remove(ids[:5])
    _, found = index.search(q, 10, allowed=doc)
    assert not np.isin(found, ids[:5]).any()
    index.add(ids[:5], -x[:5])  # back, pointing the other way
    scores, found = index.search(-q, 1, allowed=doc)
    np.testing.assert_array_equal(found[:, 0], ids[:5])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", ["exact", "ivf"])
def test_allowed_large_set_uses_selector(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cv, "SUBSET_EXACT_LIMIT", 10)  # force the IDSelector path
    index, x, ids = _built(kind)
    q = x[:40] + 0.0 if kind == "ivf" else _random(40, seed=4)
    rows = np.flatnonzero(np.arange(ids.size) % 4 != 1)
    scores, found = index.search(q, 10, allowed=ids[rows])
    assert np.isin(found[found >= 0], ids[rows]).all()
    want_s, want_i = _oracle(x[rows], ids[rows], q, 10)
    if kind == "exact":
        np.testing.assert_array_equal(found, want_i)
        np.testing.assert_allclose(scores, want_s, atol=1e-5)
    else:
        assert _recall(found, want_i) >= 0.9
    _, every = index.search(q, 10, allowed=ids)  # all allowed: same as unrestricted
    np.testing.assert_array_equal(every, index.search(q, 10)[1])


# -- files --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["exact", "ivf"])
def test_save_load_round_trip(kind: str, tmp_path: Path) -> None:
    if kind == "ivf":
        index, x, ids = _ivf(3_000)
        index.remove(ids[:10])
    else:
        x, ids = _random(700), _ids(700)
        index = VectorIndex(DIM, exact_limit=LIMIT, nprobe=7)
        index.add(ids, x)
    path = tmp_path / "vectors.idx"
    index.save(path)
    index.save(path)  # replaces
    assert [p.name for p in tmp_path.iterdir()] == ["vectors.idx"]  # no temp files left
    back = VectorIndex.load(path, DIM)
    assert back.kind == index.kind and len(back) == len(index)
    assert back.exact_limit == index.exact_limit and back.nprobe_setting == index.nprobe_setting
    assert back.nlist == index.nlist and back.nprobe == index.nprobe
    np.testing.assert_array_equal(back.ids(), index.ids())
    q = _random(10, seed=5)
    for allowed in (None, ids[50:150]):
        s1, i1 = index.search(q, 10, allowed)
        s2, i2 = back.search(q, 10, allowed)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(s1, s2)
    back.remove(ids[20:30])  # still fully usable
    back.add(np.array([10**9]), x[:1])
    assert len(back) == len(index) - 10 + 1


def test_load_rejects_bad_files(tmp_path: Path) -> None:
    index, _, _ = _ivf(2_500)
    good = tmp_path / "good.idx"
    index.save(good)
    data = good.read_bytes()
    mid = len(data) // 2  # inside the vectors: only the checksum notices
    cases = {
        "truncated": data[: len(data) // 2],
        "cut-trailer": data[:-3],
        "garbage": np.random.default_rng(0).integers(0, 256, 5_000, dtype=np.uint8).tobytes(),
        "empty": b"",
        "flipped": data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :],
    }
    for name, blob in cases.items():
        path = tmp_path / f"{name}.idx"
        path.write_bytes(blob)
        with pytest.raises(VectorIndexError, match=r"damaged|Could not read"):
            VectorIndex.load(path, DIM)
    with pytest.raises(VectorIndexError, match=r"dimension 32.*dimension 64"):
        VectorIndex.load(good, 64)
    with pytest.raises(VectorIndexError, match="Could not read"):
        VectorIndex.load(tmp_path / "missing.idx", DIM)
    assert issubclass(VectorIndexError, RapidQAError)


# -- bad input ----------------------------------------------------------------------------


def test_bad_input_is_rejected_and_changes_nothing() -> None:
    index = VectorIndex(DIM)
    x = _random(10)
    index.add(_ids(10), x)
    nan = x[:2].copy()
    nan[1, 3] = np.nan
    inf = x[:2].copy()
    inf[0, 0] = np.inf
    new = np.array([1, 2], dtype=np.int64)
    bad_adds = [
        (new, _random(2)[:, :-1], "shape"),  # wrong dim
        (new, _random(2)[0], "2-D"),  # 1-D
        (new, nan, "NaN"),
        (new, inf, "NaN or infinite"),
        (new, np.full((2, DIM), 1e39), "NaN or infinite"),  # overflows float32
        (np.array([3, 3]), _random(2), "Duplicate ids"),
        (np.array([4, _ids(10)[2]]), _random(2), "already in the index"),
        (np.array([1, 2, 3]), _random(2), "3 ids for 2 vectors"),
        (np.array([-1, 2]), _random(2), "≥ 0"),
        (np.array([1.0, 2.0]), _random(2), "integers"),
        (new, np.ones((2, DIM), dtype=np.int64), "floating point"),
    ]
    for ids, vectors, message in bad_adds:
        with pytest.raises(VectorIndexError, match=message):
            index.add(ids, vectors)
    assert len(index) == 10
    np.testing.assert_array_equal(index.ids(), np.sort(_ids(10)))
    with pytest.raises(VectorIndexError, match="shape"):
        index.search(_random(1)[:, :5], 3)
    with pytest.raises(VectorIndexError, match="NaN"):
        index.search(nan, 3)
    with pytest.raises(VectorIndexError, match="k must"):
        index.search(x[:1], 0)
    with pytest.raises(VectorIndexError, match="1-D"):
        index.search(x[:1], 3, allowed=np.zeros((2, 2), dtype=np.int64))
    for kwargs in ({"exact_limit": -1}, {"nprobe": 0}):
        with pytest.raises(VectorIndexError):
            VectorIndex(DIM, **kwargs)
    with pytest.raises(VectorIndexError):
        VectorIndex(0)
    index.add(np.array([1]), x[:1].astype(np.float64))  # float64 is converted
    assert 1 in index and len(index) == 11
