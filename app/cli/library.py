"""`rapidqa index add|list|remove` and `rapidqa search`: the library from the terminal."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from app.cli.common import EXIT_ERROR, EXIT_OK, UsageError, check_pdf, engine_for
from app.cli.render import Console
from core.errors import Cancelled, DocumentError, RapidQAError
from core.events import drain

if TYPE_CHECKING:  # core.api imports the library (numpy, FAISS): not at start-up
    from core.api import EngineAPI


def cmd_index(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    engine = engine_for(args)
    try:
        if args.index_command == "add":
            return _index_add(engine, args, out, err)
        if args.index_command == "list":
            return _index_list(engine, args, out)
        return _index_remove(engine, args, out, err)
    finally:
        engine.close()


def _index_add(engine: EngineAPI, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    console = Console(out, err, colour=False, stream_answer=False)
    failed = 0
    for pdf in args.pdfs:
        known = {d.doc_id for d in engine.documents()}
        try:
            check_pdf(pdf)
            info = drain(engine.add(pdf, args.password, args.ocr), console.show)
        except (DocumentError, Cancelled) as exc:  # the next file may be fine
            console.end_progress()
            print(f"error: {exc}", file=err)
            failed += 1
            continue
        verb = "already in the library" if info.doc_id in known else "added"
        out.write(
            f"{verb}: {info.doc_id[:12]}  {info.title} ({info.pages} pages, "
            f"{info.tokens:,} tokens, {info.chunks} chunks)\n"
        )
        out.flush()
    if failed:
        print(f"{failed} of {len(args.pdfs)} file(s) could not be added (see above).", file=err)
    return EXIT_ERROR if failed else EXIT_OK


def _index_list(engine: EngineAPI, args: argparse.Namespace, out: TextIO) -> int:
    docs = engine.documents()
    if any(not d.source_present for d in docs):  # moved files: look near the old place
        for d in docs:
            if not d.source_present:
                engine.locate(d.doc_id)
        docs = engine.documents()
    if args.json:
        rows = [
            {
                "id": d.doc_id,
                "title": d.title,
                "path": str(d.path),
                "source_present": d.source_present,
                "pages": d.pages,
                "tokens": d.tokens,
                "chunks": d.chunks,
                "units": d.units,
                "bytes": d.size,
                "sha256": d.sha256,
                "added": iso(d.added),
                "notes": list(d.notes),
            }
            for d in docs
        ]
        out.write(json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
        return EXIT_OK
    if not docs:
        out.write(f"The library at {engine.library_root} is empty. "
                  "Add PDFs with `rapidqa index add FILE.pdf`.\n")  # fmt: skip
        return EXIT_OK
    out.write(f"{'ID':12}  {'PAGES':>5}  {'TOKENS':>9}  {'ADDED':16}  TITLE\n")
    for d in docs:
        missing = "" if d.source_present else f"  [file missing: {d.path}]"
        out.write(
            f"{d.doc_id[:12]}  {d.pages:>5}  {d.tokens:>9,}  {iso(d.added)[:16]:16}  "
            f"{d.title}{missing}\n"
        )
    out.write(f"{len(docs)} document(s) in {engine.library_root}\n")
    return EXIT_OK


def _index_remove(engine: EngineAPI, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    failed = 0
    for ref in args.ids:
        try:
            info = engine.remove(ref)
        except RapidQAError as exc:
            print(f"error: {exc}", file=err)
            failed += 1
            continue
        out.write(f"removed: {info.doc_id[:12]}  {info.title}\n")
    return EXIT_ERROR if failed else EXIT_OK


def cmd_search(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    query = args.query.strip()
    if not query:
        raise UsageError('the query is empty: pass it with -q "..."')
    engine = engine_for(args)
    try:
        if not engine.documents():
            raise RapidQAError(
                f"The library at {engine.library_root} is empty. Add PDFs first with "
                "`rapidqa index add FILE.pdf`."
            )
        doc_ids = [engine.document(ref).doc_id for ref in args.doc] if args.doc else None
        hits = engine.search(query, args.k, doc_ids)
    finally:
        engine.close()
    if args.json:
        rows = [
            {
                "doc": h.ref.doc_id,
                "title": h.ref.title,
                "pages": list(h.ref.pages),
                "score": round(h.ref.score, 4),
                "text": h.ref.text,
            }
            for h in hits
        ]
        out.write(json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
        return EXIT_OK
    if not hits:
        print("No passage matches the query well enough. Try other words.", file=err)
        return EXIT_OK
    for rank, hit in enumerate(hits, start=1):
        ref = hit.ref
        out.write(f"{rank}. {ref.title}, {ref.page_text} (score {ref.score:.2f}, id "
                  f"{ref.doc_id[:12]})\n")  # fmt: skip
        snippet = " ".join(ref.text.split())
        out.write(f"   {snippet[:300]}{'...' if len(snippet) > 300 else ''}\n")
    return EXIT_OK


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).isoformat(timespec="seconds")
