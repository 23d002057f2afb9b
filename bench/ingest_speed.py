"""Ingest benchmark: a whole `Library.add` of one PDF vs a bare embedding of its units.

    .venv/bin/python bench/ingest_speed.py [PDF] [--json OUT]

Default PDF: R's `fullrefman.pdf` (Debian `r-doc-pdf`, 2,415 pages). Two fresh
processes run one after the other:

1. `encode`: read and cut the PDF (not timed), then time a bare
   `SentenceTransformer.encode` of exactly the units the library would embed
   (one call, batch size 64, normalised): the floor any ingest has to pay.
2. `ingest`: time `Library.add` into an empty temporary library: reading the PDF,
   cutting chunks and units, embedding, and the SQLite transaction and FAISS cache.

It prints a table with both times, the ratio ingest / encode (the issue's target is
<= 1.5x) and each process's peak RSS (ru_maxrss; the target is < 2 GB).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_PDF = Path("/usr/share/R/doc/manual/fullrefman.pdf")


def _chunking() -> tuple[object, object]:
    from core.library.schema import Chunking, tokenizer_id
    from core.models.loading import counting_tokenizer, load_tokenizer

    tok = counting_tokenizer(load_tokenizer("default"))
    return Chunking(tokenizer_id(tok)), tok


def phase_encode(pdf: Path) -> dict[str, float]:
    from core.library.embed import Embedder
    from core.library.store import Library
    from core.pdf.reader import read_pdf

    chunking, tok = _chunking()
    doc = read_pdf(pdf)
    with tempfile.TemporaryDirectory() as tmp:
        lib = Library(tmp, Embedder())
        _, units, _ = lib._cut(doc, chunking, tok)  # type: ignore[arg-type]
        model = lib.embedder.model
        texts = [u.text for u in units]
        model.encode(texts[:64], batch_size=64)  # warm-up (first call allocates)
        t0 = time.perf_counter()
        model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        seconds = time.perf_counter() - t0
        lib.close()
    return {"seconds": seconds, "units": len(units), "rss_mb": _rss_mb()}


def phase_ingest(pdf: Path) -> dict[str, float]:
    from core.library.embed import Embedder
    from core.library.store import Library

    chunking, tok = _chunking()
    with tempfile.TemporaryDirectory() as tmp:
        lib = Library(tmp, Embedder())
        lib.embedder.model.encode(["warm-up"] * 64, batch_size=64)  # same warm-up as above
        t0 = time.perf_counter()
        info = lib.add(pdf, chunking=chunking, count_tokens=tok)
        seconds = time.perf_counter() - t0
        lib.close()
    return {
        "seconds": seconds, "units": info.units, "pages": info.pages, "tokens": info.tokens,
        "rss_mb": _rss_mb(),
    }  # fmt: skip


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pdf", nargs="?", type=Path, default=DEFAULT_PDF)
    parser.add_argument("--phase", choices=["encode", "ingest"], help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.phase:
        result = (phase_encode if args.phase == "encode" else phase_ingest)(args.pdf)
        print(json.dumps(result))
        return
    if not args.pdf.is_file():
        sys.exit(f"{args.pdf} not found: apt-get install r-doc-pdf, or give a PDF.")
    runs = {}
    for phase in ("encode", "ingest"):
        out = subprocess.run(
            [sys.executable, __file__, str(args.pdf), "--phase", phase],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        runs[phase] = json.loads(out.stdout.strip().splitlines()[-1])
    enc, ing = runs["encode"], runs["ingest"]
    print(
        f"{args.pdf.name}: {ing['pages']} pages, {ing['tokens']:,} tokens, {ing['units']:,} units"
    )
    print()
    print("| step | seconds | ratio to bare encode | peak RSS MB |")
    print("|---|---:|---:|---:|")
    ratio = ing["seconds"] / enc["seconds"]
    for label, run, r in (("bare SentenceTransformer.encode", enc, 1.0),
                          ("Library.add (whole ingest)", ing, ratio)):  # fmt: skip
        print(f"| {label} | {run['seconds']:.1f} | {r:.2f}x | {run['rss_mb']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"encode": enc, "ingest": ing, "ratio": ratio}, indent=1))


if __name__ == "__main__":
    main()
