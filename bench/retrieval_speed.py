"""Retrieval speed of `core.library.vectors.VectorIndex`: the exact kind against the IVF kind.

    .venv/bin/python bench/retrieval_speed.py [--sizes 10000,100000,1000000] [--queries 200]

Data (synthetic, clustered, dim 384 as all-MiniLM-L6-v2's vectors): n / 200 topic centres,
each a random unit vector (standard normal, normalised); each vector is a centre (chosen
uniformly) plus gaussian noise of norm ≈ `--spread` (1.0), normalised, so its cosine to
its centre is ≈ 0.71 and to another vector of its topic ≈ 0.5 (≈ 0 across topics).
Queries are data points (chosen uniformly) plus gaussian noise of norm ≈ `--query-noise`
(0.5), normalised: cosine ≈ 0.89 to the point they came from. Ids are 0 … n-1.

For each size, both kinds are built through `VectorIndex`, the kind forced with
`exact_limit` (n for exact, 0 for IVF; the IVF uses its default nlist and nprobe rules):

* build s: one `add` of all n vectors (for IVF: k-means training and assignment);
* p50 / p99 ms: latency of one query per `search` call (k=10), as the app searches;
* p50 / exact: the IVF's p50 over the exact kind's p50;
* recall@10: mean share of the exact kind's top 10 that the IVF's top 10 holds;
* allowed 5K p50 ms: p50 of a search restricted to one "document" of 5,000 ids (a
  contiguous id range, as one PDF's chunks are), which both kinds answer exactly:
  "same doc" asks every query about one document (VectorIndex keeps that document's
  vectors after the first search), "new doc" asks each query about another document
  (its vectors are reconstructed from the index every time).

Only one index is alive at a time (the exact one is dropped, its answers kept, before
the IVF is built): peak memory ≈ 2 × n × 384 × 4 bytes (3 GB at 1M) plus the IVF's
training sample. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import sys
import time
from pathlib import Path

import faiss
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.library.vectors import VectorIndex

DIM = 384
K = 10
DOC_IDS = 5_000
_CHUNK = 100_000


def _normalise(x: NDArray[np.float32]) -> NDArray[np.float32]:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_data(
    n: int, queries: int, *, spread: float = 1.0, query_noise: float = 0.5, seed: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(vectors [n, DIM], queries [queries, DIM]), float32, unit norm; see the docstring."""
    rng = np.random.default_rng(seed)
    centres = _normalise(rng.standard_normal((max(1, n // 200), DIM), dtype=np.float32))
    x = np.empty((n, DIM), dtype=np.float32)
    scale = np.float32(spread / math.sqrt(DIM))
    for first in range(0, n, _CHUNK):  # chunks: no n × DIM float64 temporaries
        m = min(_CHUNK, n - first)
        part = rng.standard_normal((m, DIM), dtype=np.float32) * scale
        part += centres[rng.integers(0, centres.shape[0], size=m)]
        x[first : first + m] = _normalise(part)
    q = x[rng.integers(0, n, size=queries)].copy()
    q += rng.standard_normal(q.shape, dtype=np.float32) * np.float32(query_noise / math.sqrt(DIM))
    return x, _normalise(q)


def _latencies(
    index: VectorIndex,
    q: NDArray[np.float32],
    allowed: NDArray[np.int64] | list[NDArray[np.int64]] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Seconds per single-query search, and the [m, K] ids found. `allowed`: one id set
    for all queries, or one per query."""

    def allowed_for(i: int) -> NDArray[np.int64] | None:
        return allowed[i % len(allowed)] if isinstance(allowed, list) else allowed

    for i in range(min(5, q.shape[0])):  # warm-up
        index.search(q[i : i + 1], K, allowed_for(-1 - i))
    times = np.empty(q.shape[0])
    found = np.empty((q.shape[0], K), dtype=np.int64)
    for i in range(q.shape[0]):
        sel = allowed_for(i)
        t0 = time.perf_counter()
        _, ids = index.search(q[i : i + 1], K, sel)
        times[i] = time.perf_counter() - t0
        found[i] = ids[0]
    return times, found


def _recall(found: NDArray[np.int64], truth: NDArray[np.int64]) -> float:
    hits = [np.intersect1d(f[f >= 0], t[t >= 0]).size for f, t in zip(found, truth, strict=True)]
    return float(np.sum(hits)) / float(np.sum(truth >= 0))


def _ms(t: NDArray[np.float64], pct: float) -> float:
    return float(np.percentile(t, pct)) * 1e3


def bench_size(n: int, queries: int, seed: int) -> list[str]:
    x, q = make_data(n, queries, seed=seed)
    ids = np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed + 1)
    starts = rng.integers(0, max(1, n - DOC_IDS), size=queries + 1)
    doc = ids[starts[-1] : starts[-1] + DOC_IDS]
    docs = [ids[s : s + DOC_IDS] for s in starts[:-1]]  # one per query
    rows = []

    t0 = time.perf_counter()
    exact = VectorIndex(DIM, exact_limit=n)
    exact.add(ids, x)
    build = time.perf_counter() - t0
    assert exact.kind == "exact"
    t, truth = _latencies(exact, q)
    td, doc_truth = _latencies(exact, q, doc)
    tn, docs_truth = _latencies(exact, q, docs)
    exact_p50 = _ms(t, 50)
    rows.append(
        f"| {n:,} | exact | – | {build:.2f} | {exact_p50:.2f} | {_ms(t, 99):.2f} | 1.000 "
        f"| 1.000 | {_ms(td, 50):.2f} | {_ms(tn, 50):.2f} |"
    )
    del exact
    gc.collect()

    t0 = time.perf_counter()
    ivf = VectorIndex(DIM, exact_limit=0)
    ivf.add(ids, x)
    build = time.perf_counter() - t0
    assert ivf.kind == "ivf"
    del x
    gc.collect()
    t, found = _latencies(ivf, q)
    td, doc_found = _latencies(ivf, q, doc)
    tn, docs_found = _latencies(ivf, q, docs)
    if not (np.array_equal(doc_found, doc_truth) and np.array_equal(docs_found, docs_truth)):
        print(f"warning: n={n}: restricted IVF search differs from exact", file=sys.stderr)
    p50 = _ms(t, 50)
    rows.append(
        f"| {n:,} | ivf | {ivf.nlist} / {ivf.nprobe} | {build:.2f} | {p50:.2f} "
        f"| {_ms(t, 99):.2f} | {p50 / exact_p50:.3f} | {_recall(found, truth):.3f} "
        f"| {_ms(td, 50):.2f} | {_ms(tn, 50):.2f} |"
    )
    del ivf
    gc.collect()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated counts")
    ap.add_argument("--queries", type=int, default=200, help="queries per size")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(
        f"dim {DIM}, k {K}, {args.queries} single-query searches per row; "
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads, "
        f"{platform.processor() or platform.machine()}\n"
    )
    print(
        "| n | kind | nlist / nprobe | build s | p50 ms | p99 ms | p50 / exact p50 "
        "| recall@10 | allowed 5K p50 ms, same doc | allowed 5K p50 ms, new doc |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        for row in bench_size(n, args.queries, args.seed):
            print(row, flush=True)


if __name__ == "__main__":
    main()
