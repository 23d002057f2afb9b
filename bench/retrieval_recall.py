"""Retrieval quality: recall@k of dense, BM25 and hybrid search on a labelled set.

    .venv/bin/python bench/retrieval_recall.py [--set bench/qa/r-manuals.jsonl]
        [--library DIR] [--k 1,3,5,10]

The set (bench/qa/README.md) holds hand-written questions about the R manuals
(Debian `r-doc-pdf`), each with a verbatim evidence quote. The manuals are added to
a library (kept in --library, default a temporary folder, so a second run skips
the embedding). A question counts as found at k when one of the top-k chunks
overlaps the evidence's span in the document text. Each question is searched in its
own document (as when asking about one PDF) and across the whole library.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MANUALS = Path("/usr/share/R/doc/manual")


def _normalised(text: str) -> tuple[str, list[int]]:
    """Lowercased text with whitespace runs as one space, and each char's source index."""
    out: list[str] = []
    where: list[int] = []
    for match in re.finditer(r"\s+|\S", text):
        out.append(" " if match.group().isspace() else match.group().lower())
        where.append(match.start())
    return "".join(out), where


def evidence_span(text: str, evidence: str) -> tuple[int, int] | None:
    norm, where = _normalised(text)
    quote, _ = _normalised(evidence.strip())
    at = norm.find(quote)
    if at < 0:
        return None
    return where[at], where[at + len(quote) - 1] + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, default=ROOT / "bench/qa/r-manuals.jsonl")
    parser.add_argument("--library", type=Path, default=None)
    parser.add_argument("--k", default="1,3,5,10")
    args = parser.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    questions = [json.loads(line) for line in args.set.read_text().splitlines() if line.strip()]

    from core.library.retrieve import Retriever
    from core.library.schema import Chunking, tokenizer_id
    from core.library.store import Library
    from core.models.loading import counting_tokenizer, load_tokenizer

    tok = counting_tokenizer(load_tokenizer("default"))
    chunking = Chunking(tokenizer_id(tok))
    root = args.library or Path(tempfile.mkdtemp(prefix="rapidqa-recall-"))
    lib = Library(root)
    ids: dict[str, str] = {}
    t0 = time.perf_counter()
    for name in sorted({q["doc"] for q in questions}):
        ids[name] = lib.add(MANUALS / name, chunking=chunking, count_tokens=tok).doc_id
    print(f"library: {len(ids)} manuals, {lib.unit_count()} units "
          f"({time.perf_counter() - t0:.0f} s to add)\n")  # fmt: skip

    dense, hybrid = Retriever(lib, min_score=-1.0), Retriever(lib, hybrid=True)
    found: dict[tuple[str, str], list[int]] = {}  # (method, scope) -> rank of first hit
    missing = 0
    for q in questions:
        doc_id = ids[q["doc"]]
        span = evidence_span(lib.document(doc_id).text, q["evidence"])
        if span is None:
            missing += 1
            continue
        for scope, doc_ids in (("one document", [doc_id]), ("whole library", None)):
            for method in ("dense", "bm25", "hybrid"):
                rank = _first_hit(method, dense, hybrid, q["question"], doc_ids, doc_id, span, lib)
                found.setdefault((method, scope), []).append(rank)
    n = len(questions) - missing
    print(f"{n} questions ({missing} evidence quotes not found in the text)\n")
    print("| search | scope | " + " | ".join(f"recall@{k}" for k in ks) + " | MRR@10 |")
    print("|---|---|" + "---:|" * (len(ks) + 1))
    for (method, scope), ranks in found.items():
        cells = [f"{sum(r <= k for r in ranks) / len(ranks):.2f}" for k in ks]
        mrr = sum(1 / r for r in ranks if r <= 10) / len(ranks)
        print(f"| {method} | {scope} | " + " | ".join(cells) + f" | {mrr:.2f} |")
    lib.close()


def _first_hit(
    method: str, dense: object, hybrid: object, question: str, doc_ids: list[str] | None,
    doc_id: str, span: tuple[int, int], lib: object,
) -> int:  # fmt: skip
    """1-based rank of the first of the top-10 chunks that overlaps `span`; 99 if none."""
    from core.library.retrieve import Retriever

    assert isinstance(dense, Retriever) and isinstance(hybrid, Retriever)
    if method == "bm25":
        units = hybrid._bm25_rank(question, 200, doc_ids)
        seen: list[tuple[str, int]] = []
        for u in units:
            if (u.doc_id, u.chunk) not in seen:
                seen.append((u.doc_id, u.chunk))
        spans = []
        for d, c in seen[:10]:
            chunk = hybrid.library.chunks(d)[c]
            spans.append((d, chunk.start_char, chunk.end_char))
    else:
        retriever = dense if method == "dense" else hybrid
        hits = retriever.search(question, 10, doc_ids)
        spans = [(h.ref.doc_id, h.ref.start_char, h.ref.end_char) for h in hits]
    for rank, (d, start, end) in enumerate(spans, start=1):
        if d == doc_id and start < span[1] and span[0] < end:
            return rank
    return 99


if __name__ == "__main__":
    main()
