"""Tests for core.library.store: the on-disk library (real PDFs, real MiniLM, SQLite, FAISS)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import Cancelled, DocumentError, LibraryBusy, LibraryError
from core.events import drain
from core.library.embed import Embedder
from core.library.schema import Chunking, tokenizer_id
from core.library.store import Library
from core.pdf.reader import read_pdf

MakePdf = Callable[..., Path]
ROOT = Path(__file__).resolve().parents[2]


def _pages(topic: str, n: int) -> list[str]:
    return [
        "\n\n".join(
            f"Section {p}.{i} of the {topic} notes: the {topic} item number {p * 10 + i} is "
            f"stored on shelf {p + i} and checked every {i + 2} days by the {topic} clerk."
            for i in range(6)
        )
        for p in range(1, n + 1)
    ]


@pytest.fixture(scope="module")
def chunking(target_tokenizer: Any) -> Chunking:
    return Chunking(tokenizer_id(target_tokenizer), 128, 16, 48)


@pytest.fixture(scope="module")
def pdfs(make_pdf: MakePdf) -> dict[str, Path]:
    return {t: make_pdf(_pages(t, 3), name=f"{t}.pdf") for t in ("harbour", "orchard", "archive")}


def _add(lib: Library, pdf: Path, chunking: Chunking, tok: Any, **kw: Any) -> Any:
    return lib.add(pdf, chunking=chunking, count_tokens=tok, **kw)


def test_add_list_readd_remove_and_round_trip(
    tmp_path: Path, pdfs: dict[str, Path], embedder: Embedder, chunking: Chunking,
    target_tokenizer: Any,
) -> None:  # fmt: skip
    root = tmp_path / "lib"
    with Library(root, embedder) as lib:
        a = _add(lib, pdfs["harbour"], chunking, target_tokenizer)
        b = _add(lib, pdfs["orchard"], chunking, target_tokenizer)
        assert [d.doc_id for d in lib.documents()] == [a.doc_id, b.doc_id]
        assert a.pages == 3 and a.chunks >= 2 and a.units >= a.chunks and a.tokens > 100
        gen = lib.generation
        assert _add(lib, pdfs["harbour"], chunking, target_tokenizer) == a  # same bytes: no-op
        assert lib.generation == gen
        vector = embedder.encode(["which shelf holds the orchard item?"])[0]
        before = lib.search_units(vector, 5)
        chunks, units = lib.chunks(a.doc_id), lib.units(a.doc_id)
    with Library(root, embedder) as lib:  # reopened: everything equal
        doc = lib.document(a.doc_id)
        fresh = read_pdf(pdfs["harbour"], ocr=False)
        assert doc.pages == fresh.pages and doc.text == fresh.text and doc.title == fresh.title
        assert doc.sha256 == fresh.sha256
        assert lib.chunks(a.doc_id) == chunks and lib.units(a.doc_id) == units
        assert lib.search_units(vector, 5) == before
        assert lib.check() == []
        assert lib.info(a.doc_id[:6]).doc_id == a.doc_id  # a prefix is enough
        removed = lib.remove(a.doc_id[:8])
        assert removed.doc_id == a.doc_id and a.doc_id not in lib
        assert {h.doc_id for h in lib.search_units(vector, 100)} == {b.doc_id}
        assert lib.check() == []
        with pytest.raises(LibraryError, match="No document"):
            lib.remove(a.doc_id)


def test_moved_file_is_found_by_its_bytes(
    tmp_path: Path, pdfs: dict[str, Path], embedder: Embedder, chunking: Chunking,
    target_tokenizer: Any,
) -> None:  # fmt: skip
    with Library(tmp_path / "lib", embedder) as lib:
        info = _add(lib, pdfs["archive"], chunking, target_tokenizer)
        moved = tmp_path / "elsewhere" / "renamed.pdf"
        moved.parent.mkdir()
        shutil.copy(pdfs["archive"], moved)
        again = _add(lib, moved, chunking, target_tokenizer)
        assert again.doc_id == info.doc_id and again.path == moved.resolve()
        assert len(lib) == 1


def test_a_moved_file_is_located_near_its_old_place(
    tmp_path: Path, pdfs: dict[str, Path], embedder: Embedder, chunking: Chunking,
    target_tokenizer: Any,
) -> None:  # fmt: skip
    home = tmp_path / "papers"
    home.mkdir()
    original = home / "orchard.pdf"
    shutil.copy(pdfs["orchard"], original)
    with Library(tmp_path / "lib", embedder) as lib:
        info = _add(lib, original, chunking, target_tokenizer)
        assert lib.locate(info.doc_id) == original.resolve()
        moved = home / "2026" / "orchard-final.pdf"
        moved.parent.mkdir()
        original.rename(moved)
        decoy = bytearray(moved.read_bytes())
        decoy[-1] ^= 1  # same size, other bytes: not the document
        (home / "2026" / "decoy.pdf").write_bytes(bytes(decoy))
        assert not lib.info(info.doc_id).source_present
        assert lib.locate(info.doc_id) == moved.resolve()
        assert lib.info(info.doc_id).path == moved.resolve()
        moved.unlink()
        assert lib.locate(info.doc_id) is None
        elsewhere = tmp_path / "usb"
        elsewhere.mkdir()
        shutil.copy(pdfs["orchard"], elsewhere / "x.pdf")
        assert lib.locate(info.doc_id, [elsewhere]) == (elsewhere / "x.pdf").resolve()


def test_bad_input_leaves_the_library_as_it_was(
    tmp_path: Path, pdfs: dict[str, Path], make_pdf: MakePdf, embedder: Embedder,
    chunking: Chunking, target_tokenizer: Any, cancel_after: Callable[[int], Any],
) -> None:  # fmt: skip
    with Library(tmp_path / "lib", embedder) as lib:
        _add(lib, pdfs["harbour"], chunking, target_tokenizer)
        gen, docs = lib.generation, lib.documents()
        junk = tmp_path / "junk.pdf"
        junk.write_bytes(b"hello, not a pdf")
        with pytest.raises(DocumentError, match="not a PDF"):
            _add(lib, junk, chunking, target_tokenizer)
        with pytest.raises(DocumentError, match="does not exist"):
            _add(lib, tmp_path / "missing.pdf", chunking, target_tokenizer)
        with pytest.raises(Cancelled):
            _add(lib, pdfs["orchard"], chunking, target_tokenizer, cancelled=cancel_after(2))
        # A full disk during the commit: SQLite reports SQLITE_FULL and rolls back.
        pages = lib._db.execute("PRAGMA page_count").fetchone()[0]
        lib._db.execute(f"PRAGMA max_page_count = {pages + 1}")
        with pytest.raises(LibraryError, match=r"disk .* is full"):
            _add(lib, pdfs["orchard"], chunking, target_tokenizer)
        assert lib.generation == gen and lib.documents() == docs and lib.check() == []


def test_a_second_writer_gets_a_clear_busy_error(
    tmp_path: Path, pdfs: dict[str, Path], embedder: Embedder, chunking: Chunking,
    target_tokenizer: Any,
) -> None:  # fmt: skip
    root = tmp_path / "lib"
    Library(root, embedder).close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from core.library.store import Library; lib = Library(sys.argv[1]);\n"
         "with lib._writing():\n    print('locked', flush=True); time.sleep(60)", str(root)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with Library(root, embedder) as lib:
            with pytest.raises(LibraryBusy, match=f"being changed by .*pid {holder.pid}"):
                _add(lib, pdfs["harbour"], chunking, target_tokenizer)
            assert lib.documents() == []  # reading still works
    finally:
        holder.kill()
        holder.wait()
    with Library(root, embedder) as lib:  # the lock died with its holder
        _add(lib, pdfs["harbour"], chunking, target_tokenizer)
        assert len(lib) == 1


def test_other_embedder_and_damaged_files_are_clear_errors(
    tmp_path: Path, pdfs: dict[str, Path], embedder: Embedder, chunking: Chunking,
    target_tokenizer: Any,
) -> None:  # fmt: skip
    root = tmp_path / "lib"
    with Library(root, embedder) as lib:
        _add(lib, pdfs["harbour"], chunking, target_tokenizer)
    with pytest.raises(LibraryError, match="built with the embedder 'default'"):
        Library(root, Embedder("sentence-transformers/all-mpnet-base-v2"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "library.sqlite3").write_bytes(b"garbage" * 1000)
    with pytest.raises(LibraryError, match="damaged or not a RapidQA library"):
        Library(broken, embedder)


def test_search_cache_is_rebuilt_or_updated(
    tmp_path: Path, pdfs: dict[str, Path], embedder: Embedder, chunking: Chunking,
    target_tokenizer: Any,
) -> None:  # fmt: skip
    root = tmp_path / "lib"
    vector = embedder.encode(["orchard clerk"])[0]
    with Library(root, embedder) as lib:
        _add(lib, pdfs["harbour"], chunking, target_tokenizer)
        expected_one = lib.search_units(vector, 50)
        _add(lib, pdfs["orchard"], chunking, target_tokenizer)
        expected = lib.search_units(vector, 50)
    caches = list(root.glob("vectors-*.faiss"))
    assert [p.name for p in caches] == ["vectors-2.faiss"]
    caches[0].write_bytes(b"corrupt")  # a damaged cache: rebuilt from SQLite
    with Library(root, embedder) as lib:
        assert lib.search_units(vector, 50) == expected
    (root / "vectors-2.faiss").rename(root / "vectors-1.faiss")  # an older cache: updated
    with Library(root, embedder) as lib:
        assert lib.search_units(vector, 50) == expected and lib.check() == []
        lib.remove(lib.documents()[1].doc_id)
        assert lib.search_units(vector, 50) == expected_one
    for cache in root.glob("vectors-*.faiss"):
        cache.unlink()  # no cache at all: rebuilt
    with Library(root, embedder) as lib:
        assert lib.search_units(vector, 50) == expected_one


def test_approximate_index_past_the_limit(
    tmp_path: Path, pdfs: dict[str, Path], embedder: Embedder, chunking: Chunking,
    target_tokenizer: Any,
) -> None:  # fmt: skip
    with Library(tmp_path / "lib", embedder, exact_limit=20) as lib:
        for pdf in pdfs.values():
            _add(lib, pdf, chunking, target_tokenizer)
        assert lib.unit_count() > 20 and lib.vectors.index().kind == "ivf"
        queries = ["harbour shelf", "orchard item 23", "archive clerk every 4 days"]
        recall = []
        for query in queries:
            vector = embedder.encode([query])[0]
            ids = np.concatenate([lib.unit_vectors(d.doc_id)[0] for d in lib.documents()])
            vecs = np.concatenate([lib.unit_vectors(d.doc_id)[1] for d in lib.documents()])
            exact = set(ids[np.argsort(-(vecs @ vector))[:10]].tolist())
            got = {h.unit_id for h in lib.search_units(vector, 10)}
            recall.append(len(exact & got) / 10)
        assert np.mean(recall) >= 0.8
        gone = lib.remove(lib.documents()[0].doc_id)
        hits = lib.search_units(embedder.encode(["harbour"])[0], 100)
        assert gone.doc_id not in {h.doc_id for h in hits} and lib.check() == []


def test_reindex_after_a_chunking_change(
    tmp_path: Path, pdfs: dict[str, Path], embedder: Embedder, chunking: Chunking,
    target_tokenizer: Any,
) -> None:  # fmt: skip
    with Library(tmp_path / "lib", embedder) as lib:
        info = _add(lib, pdfs["archive"], chunking, target_tokenizer)
        bigger = Chunking(chunking.tokenizer, 512, 64, 200)
        assert [d.doc_id for d in lib.stale(bigger)] == [info.doc_id]
        started = time.perf_counter()
        events = list(lib.reindexing(bigger, target_tokenizer))
        assert events and time.perf_counter() - started < 120
        after = lib.info(info.doc_id)
        assert after.chunking == bigger.key and after.chunks < info.chunks
        assert lib.stale(bigger) == [] and lib.check() == []
        assert lib.document(info.doc_id).text == read_pdf(pdfs["archive"]).text


def test_a_file_that_vanishes_mid_ingest_is_still_added_whole(
    tmp_path: Path, pdfs: dict[str, Path], embedder: Embedder, chunking: Chunking,
    target_tokenizer: Any,
) -> None:  # fmt: skip
    copy = tmp_path / "vanishing.pdf"
    shutil.copy(pdfs["orchard"], copy)
    with Library(tmp_path / "lib", embedder) as lib:
        adding = lib.adding(copy, chunking=chunking, count_tokens=target_tokenizer)
        first = next(adding)
        assert first.stage == "read"
        copy.unlink()  # the bytes were read before the first page was parsed
        info = drain(adding)
        assert info.doc_id in lib and lib.check() == []
        assert not info.source_present  # listed as missing until it is added again
