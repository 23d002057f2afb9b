"""Read a PDF into a `Document`, page by page with progress: the bytes checked as a
PDF, the pages extracted here or in a child process, and the document refused with a
clear error when it has no text (docs/architecture.md, "Reading PDFs")."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Generator
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from core.errors import DocumentError
from core.events import drain
from core.pdf.child import extract_in_child
from core.pdf.extract import PAGE_SEPARATOR, Document, Page, extract_pages
from core.pdf.mupdf import pdf_bytes

ProgressFn = Callable[[int, int], None]  # (pages read, pages in all)


def read_pdf(
    path: str | Path,
    password: str | None = None,
    *,
    ocr: bool | None = None,
    progress: ProgressFn | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Document:
    """Read the PDF at `path` into a `Document` (`reading_pdf` run to the end).

    `progress(done, total)` is called after each page.
    """
    reader = reading_pdf(path, password, ocr=ocr, cancelled=cancelled)
    return drain(reader, None if progress is None else lambda pages: progress(*pages))


def reading_pdf(
    path: str | Path,
    password: str | None = None,
    *,
    ocr: bool | None = None,
    cancelled: Callable[[], bool] | None = None,
    isolated: bool = False,
) -> Generator[tuple[int, int], None, Document]:
    """Read the PDF at `path` page by page, yielding (pages read, pages in all); the
    generator's return value is the `Document`.

    `ocr`: read pages that are only an image (scans) with Tesseract through PyMuPDF;
    None = when Tesseract is installed. `cancelled()` is polled between pages
    (raises `Cancelled`).

    Raises `DocumentError` (missing, folder, not a PDF, damaged, no pages, no text)
    and `PasswordRequired` (encrypted and no password or a wrong one). The file is
    read into memory first, so it may vanish or change while its pages are parsed.

    `isolated`: parse in a child process (core/pdf/child.py). PyMuPDF holds
    Python's GIL for up to half a second on a heavy page; in a child process that
    cannot stall the other threads (the app's window). A crash of MuPDF on a damaged
    file then becomes a `DocumentError`, too. Costs about half a second to start.
    """
    path = Path(path)
    data, complete = pdf_bytes(path)
    sha = hashlib.sha256(data).hexdigest()
    use_ocr = ocr_available() if ocr is None else ocr
    if isolated:
        extract = extract_in_child(path, data, password, complete, use_ocr, cancelled)
    else:
        extract = extract_pages(path, data, password, complete, use_ocr, cancelled)
    pages: list[Page] = []
    offset = 0
    while True:
        try:
            done, total, raw = next(extract)
        except StopIteration as stop:
            title, notes = stop.value
            break
        pages.append(replace(raw, start_char=offset))
        offset += len(raw.text) + len(PAGE_SEPARATOR)
        yield done, total
    if not any(page.text.strip() for page in pages):
        if not notes:  # no page holds an image: drawings only, nothing to OCR
            raise DocumentError(
                f"{path} has no text: its {len(pages)} page(s) are blank or hold only "
                "drawings (no text, no scanned images to read with OCR). Choose a PDF with text."
            )
        hint = (
            "OCR found no text either"
            if use_ocr
            else "Install Tesseract (`apt install tesseract-ocr`, or tesseract-ocr.github.io) "
            "and add it again to read them with OCR, or run `ocrmypdf in.pdf out.pdf` first"
        )
        raise DocumentError(
            f"{path} has no extractable text: its {len(pages)} page(s) look like scanned "
            f"images. {hint}."
        )
    text = PAGE_SEPARATOR.join(page.text for page in pages)
    return Document(
        sha[:16], path, title or path.stem, tuple(pages), text, sha, len(data), tuple(notes)
    )


def ocr_available() -> bool:
    """True when Tesseract and its language data are installed (PyMuPDF drives it)."""
    return _tessdata() is not None


@lru_cache(maxsize=1)
def _tessdata() -> str | None:
    if shutil.which("tesseract") is None:
        return None
    import pymupdf

    try:
        found = pymupdf.get_tessdata()  # type: ignore[no-untyped-call]
    except Exception:  # RuntimeError "No tessdata specified ..." by version
        return None
    return str(found) if found else None
