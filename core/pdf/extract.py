"""Extract one PDF's pages: page-numbered, normalised text with the rectangle of every
line (OCR for scanned pages). `extract_pages` holds every PyMuPDF call of a read;
core/pdf/reader.py runs it here or in a child process (core/pdf/child.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import Cancelled, DocumentError
from core.pdf.mupdf import (
    PYMUPDF_LOCK,
    PageRect,
    Rect,
    damaged_message,
    errors_off_stderr,
    open_checked,
    transform,
)
from core.pdf.text import clean_line, normalise_text

PAGE_SEPARATOR = "\n\n"
"""Joins page texts into `Document.text` (a paragraph break, like blocks within a page)."""

_NO_SPANS = np.zeros((0, 2), dtype=np.int32)
_NO_RECTS = np.zeros((0, 4), dtype=np.float32)


@dataclass(frozen=True, eq=False)
class Page:
    """One page's text and where each of its lines is drawn.

    `start_char` is the page's offset in `Document.text`. Line `i` is the text span
    `line_spans[i]` (page-relative characters) drawn in the rectangle `line_rects[i]`
    = (x0, y0, x1, y1) in PDF points, in the page as displayed (rotation applied,
    origin top-left), on a `width` x `height` page (a glyph of an overfull line may
    stick out of it by a few points).
    """

    number: int  # 1-based
    label: str  # the PDF's page label ("iv", "T-1" ...), else str(number)
    text: str
    start_char: int
    width: float = 0.0
    height: float = 0.0
    line_spans: npt.NDArray[np.int32] = field(default_factory=lambda: _NO_SPANS)
    line_rects: npt.NDArray[np.float32] = field(default_factory=lambda: _NO_RECTS)
    ocr: bool = False  # the text came from OCR (the page is a scanned image)

    @property
    def end_char(self) -> int:
        return self.start_char + len(self.text)

    def rects_for(self, start: int, end: int) -> list[Rect]:
        """Rectangles of the lines that the page-relative span [start, end) touches."""
        if end <= start or not len(self.line_spans):
            return []
        hit = (self.line_spans[:, 0] < end) & (self.line_spans[:, 1] > start)
        return [(float(r[0]), float(r[1]), float(r[2]), float(r[3])) for r in self.line_rects[hit]]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Page):
            return NotImplemented
        return (
            (self.number, self.label, self.text, self.start_char, self.ocr)
            == (other.number, other.label, other.text, other.start_char, other.ocr)
            and abs(self.width - other.width) < 1e-3
            and abs(self.height - other.height) < 1e-3
            and np.array_equal(self.line_spans, other.line_spans)
            and np.allclose(self.line_rects, other.line_rects, atol=1e-3)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside


@dataclass(frozen=True)
class Document:
    """A PDF read into text: pages joined by `PAGE_SEPARATOR`."""

    doc_id: str  # first 16 hex digits of the SHA-256 of the file's bytes
    path: Path
    title: str  # the PDF's metadata title, else the file name without extension
    pages: tuple[Page, ...]
    text: str
    sha256: str = ""
    size: int = 0  # bytes
    notes: tuple[str, ...] = ()  # what the reader had to skip or work around, per page

    @cached_property
    def _page_starts(self) -> list[int]:
        return [page.start_char for page in self.pages]

    def _page_range(self, start: int, end: int) -> range:
        first = max(bisect.bisect_right(self._page_starts, start) - 1, 0)
        last = max(bisect.bisect_right(self._page_starts, end - 1) - 1, first)
        return range(first, last + 1)

    def pages_for_span(self, start: int, end: int) -> tuple[int, ...]:
        """The 1-based numbers of the pages that the text span [start, end) touches.

        A span that falls only on the separator between two pages belongs to the
        page before it; empty pages inside a span count as covered.
        """
        if not self.pages or end <= start:
            return ()
        return tuple(self.pages[i].number for i in self._page_range(start, end))

    def rects_for_span(self, start: int, end: int) -> tuple[PageRect, ...]:
        """(page, x0, y0, x1, y1) of every line the span [start, end) touches, in order."""
        if not self.pages or end <= start:
            return ()
        out: list[PageRect] = []
        for i in self._page_range(start, end):
            page = self.pages[i]
            rel_start, rel_end = start - page.start_char, end - page.start_char
            out.extend((page.number, *r) for r in page.rects_for(rel_start, rel_end))
        return tuple(out)


def extract_pages(
    path: Path,
    data: bytes,
    password: str | None,
    complete: bool,
    ocr: bool,
    cancelled: Callable[[], bool] | None,
) -> Generator[tuple[int, int, Page], None, tuple[str, list[str]]]:
    """Yields (pages read, pages in all, the page without its offset); returns the
    metadata title and the notes. All of the reading's PyMuPDF calls are here.

    `complete`: the file ends like a whole PDF.
    """
    import pymupdf as module  # deferred: the engine imports this module long before it reads

    pymupdf: Any = module  # PyMuPDF has no type hints
    with errors_off_stderr(pymupdf):
        # The PyMuPDF lock is held per call, not for the whole document, so that the
        # viewer's renderer thread can draw pages while a long PDF is being read.
        with PYMUPDF_LOCK:
            pdf, title, total = open_checked(pymupdf, path, data, password, complete)
        try:
            notes: list[str] = []
            for index in range(total):
                if cancelled is not None and cancelled():
                    raise Cancelled()
                try:
                    with PYMUPDF_LOCK:
                        page = _read_page(pymupdf, pdf[index], index + 1, ocr, notes)
                except (DocumentError, Cancelled):
                    raise
                except Exception as err:
                    raise DocumentError(
                        f"{damaged_message(path)} (page {index + 1}: {err})"
                    ) from err
                yield index + 1, total, page
        finally:
            with PYMUPDF_LOCK:
                pdf.close()
        return normalise_text(title).replace("\n", " "), notes


def _read_page(pymupdf: Any, page: Any, number: int, ocr: bool, notes: list[str]) -> Page:
    """One page: its text blocks in reading order, each line with its rectangle.

    Blocks come in the order of the page's content stream, which is the reading order
    for what LaTeX, Word and most generators write, multi-column layouts included;
    `sort=True` would sort by position and interleave the columns of a two-column
    paper. Ligatures are expanded (no PRESERVE_LIGATURES). A page with no text but
    images is a scan: read with OCR when asked, else noted and left empty.
    """
    flags = pymupdf.TEXT_MEDIABOX_CLIP
    label = page.get_label() or str(number)
    blocks = page.get_text("dict", flags=flags)["blocks"]
    used_ocr = False
    if not any(_has_text(b) for b in blocks) and page.get_images(full=False):
        if ocr:
            textpage = page.get_textpage_ocr(flags=flags, language="eng", dpi=200, full=True)
            blocks = page.get_text("dict", flags=flags, textpage=textpage)["blocks"]
            used_ocr = True
            notes.append(f"Page {label} is a scanned image; its text was read with OCR.")
        else:
            notes.append(
                f"Page {label} is a scanned image with no text; it was skipped. Install "
                "Tesseract (`apt install tesseract-ocr`) and add the PDF again to read it."
            )
    matrix = page.rotation_matrix  # unrotated -> displayed coordinates
    text, spans, rects = _assemble(blocks, matrix)
    rect = page.rect
    return Page(
        number, label, text, 0, float(rect.width), float(rect.height),
        np.asarray(spans, dtype=np.int32).reshape(-1, 2),
        np.asarray(rects, dtype=np.float32).reshape(-1, 4), used_ocr,
    )  # fmt: skip


def _has_text(block: dict[str, Any]) -> bool:
    return block.get("type") == 0 and any(
        span["text"].strip() for line in block["lines"] for span in line["spans"]
    )


def _assemble(
    blocks: list[dict[str, Any]], matrix: Any
) -> tuple[str, list[tuple[int, int]], list[Rect]]:
    """Page text from its blocks (a blank line between blocks, a line break between
    lines) and each line's character span and displayed rectangle.

    A word broken at a line end ("exam-" + "ple") is joined when the next line goes
    on in lowercase; "COVID-" + "19" and "Smith-" + "Jones" keep their hyphen.
    """
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    rects: list[Rect] = []
    pos = 0
    for block in blocks:
        if block.get("type") != 0:
            continue
        first_in_block = True
        for line in block["lines"]:
            clean = clean_line("".join(span["text"] for span in line["spans"]))
            if not clean:
                continue
            if parts:
                prev = parts[-1]
                if not first_in_block and _broken_word(prev, clean):
                    parts[-1] = prev[:-1]
                    pos -= 1
                    spans[-1] = (spans[-1][0], pos)
                elif not first_in_block and _broken_name(prev, clean):
                    pass  # "R_" + "NilValue": an identifier broken after an underscore
                else:
                    sep = "\n" if not first_in_block else PAGE_SEPARATOR
                    parts.append(sep)
                    pos += len(sep)
            parts.append(clean)
            spans.append((pos, pos + len(clean)))
            rects.append(transform(line["bbox"], matrix))
            pos += len(clean)
            first_in_block = False
    return "".join(parts), spans, rects


def _broken_word(prev: str, line: str) -> bool:
    """ "exam-" + "ple": a hyphen that only breaks a word across lines."""
    return len(prev) >= 2 and prev[-1] == "-" and prev[-2].isalpha() and line[0].islower()


def _broken_name(prev: str, line: str) -> bool:
    """ "LD_LIBRARY_" + "PATH": code identifiers are broken after an underscore."""
    return len(prev) >= 2 and prev[-1] == "_" and prev[-2].isalnum() and line[0].isalnum()
