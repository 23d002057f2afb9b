"""Draw PDF pages as pixels and find words on them, for the in-app viewer (no Qt here).

A `PageRenderer` keeps one PDF open and answers three questions about it: its layout
(page sizes and printed labels), a page's pixels at a scale, and where a word is drawn.
Coordinates are those of `core.events.ChunkRef.rects`: PDF points on the page as
displayed (rotation applied, origin top-left), so a viewer draws search matches and
retrieved passages the same way.

PyMuPDF is not thread-safe, not even for different documents: every call below holds
the engine's PyMuPDF lock (`core.pdf.extract`), so a renderer may wait while a PDF is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import Cancelled, DocumentError
from core.pdf.mupdf import (
    PYMUPDF_LOCK,
    PageRect,
    errors_off_stderr,
    open_checked,
    pdf_bytes,
    transform,
)
from core.pdf.text import normalise_text

__all__ = ["PageRenderer", "PdfLayout", "RenderedPage"]


@dataclass(frozen=True)
class PdfLayout:
    """What a viewer needs to lay out a PDF before any page is drawn."""

    path: Path
    page_sizes: tuple[tuple[float, float], ...]  # (width, height) in points, as displayed
    labels: tuple[str, ...]  # printed page labels ("iv", "12" ...), else "1", "2" ...
    title: str  # the PDF's metadata title, else the file name without extension

    @property
    def page_count(self) -> int:
        return len(self.page_sizes)


@dataclass(frozen=True)
class RenderedPage:
    """One page's pixels: RGB888 rows of `stride` bytes, no alpha."""

    page: int  # 1-based
    scale: float  # pixels per point
    width: int
    height: int
    stride: int
    samples: bytes


class PageRenderer:
    """One open PDF, drawn and searched on demand.

    Use a renderer from ONE thread only: PyMuPDF objects must not cross threads. The
    module's lock serialises it against the engine's own PDF reading.
    """

    def __init__(self) -> None:
        self._pdf: Any = None  # pymupdf.Document (PyMuPDF has no type hints)
        self._layout: PdfLayout | None = None

    @property
    def layout(self) -> PdfLayout | None:
        """The open document's layout; None when none is open."""
        return self._layout

    def open(self, path: Path, password: str | None = None) -> PdfLayout:
        """Open the PDF at `path` (closing the one open before) and return its layout.

        Raises `DocumentError` (missing, a folder, unreadable, not a PDF, damaged, cut
        off, no pages) and `PasswordRequired` (encrypted; no password or a wrong one).
        The file is read into memory, so it may be moved while it is shown.
        """
        self.close()
        path = Path(path)
        data, complete = pdf_bytes(path)
        import pymupdf  # deferred: core.api imports this on machines without PyMuPDF

        with PYMUPDF_LOCK, errors_off_stderr(pymupdf):
            pdf, title, _pages = open_checked(pymupdf, path, data, password, complete)
            try:
                layout = _layout_of(pdf, path, title)
            except Exception as err:
                pdf.close()
                raise DocumentError(
                    f"{path} is damaged and its pages could not be measured ({err}). "
                    "Download or export it again, then retry."
                ) from err
        self._pdf, self._layout = pdf, layout
        return layout

    def render(self, page: int, scale: float) -> RenderedPage:
        """The pixels of `page` (1-based) at `scale` pixels per point."""
        pdf = self._page_checked(page)
        import pymupdf as module

        pymupdf: Any = module  # PyMuPDF has no type hints
        with PYMUPDF_LOCK:
            pix = pdf[page - 1].get_pixmap(matrix=pymupdf.Matrix(scale, scale), alpha=False)
            return RenderedPage(
                page, scale, int(pix.width), int(pix.height), int(pix.stride), bytes(pix.samples)
            )

    def search_page(self, page: int, text: str) -> list[PageRect]:
        """(page, x0, y0, x1, y1) of every match of `text` on `page` (1-based), in
        displayed coordinates; case-insensitive, as MuPDF searches."""
        pdf = self._page_checked(page)
        if not text.strip():
            return []
        with PYMUPDF_LOCK:
            p = pdf[page - 1]
            matrix = p.rotation_matrix  # unrotated (what search_for returns) -> displayed
            found = p.search_for(text)
            return [(page, *transform(tuple(r), matrix)) for r in found]

    def search(
        self, text: str, limit: int = 1000, *, cancelled: Callable[[], bool] | None = None
    ) -> list[PageRect]:
        """The first `limit` matches of `text` in the document, page by page, in order.

        `cancelled()` is polled between pages (raises `Cancelled`).
        """
        layout = self._layout
        if layout is None:
            raise DocumentError("No PDF is open to search in. Open a PDF first.")
        out: list[PageRect] = []
        for page in range(1, layout.page_count + 1):
            if len(out) >= limit:
                break
            if cancelled is not None and cancelled():
                raise Cancelled()
            out.extend(self.search_page(page, text))
        return out[:limit]

    def close(self) -> None:
        """Close the open document (if any)."""
        if self._pdf is not None:
            with PYMUPDF_LOCK:
                self._pdf.close()
        self._pdf, self._layout = None, None

    def _page_checked(self, page: int) -> Any:
        if self._pdf is None or self._layout is None:
            raise DocumentError("No PDF is open. Open a PDF first.")
        if not 1 <= page <= self._layout.page_count:
            raise ValueError(f"page {page} is not in 1..{self._layout.page_count}")
        return self._pdf


def _layout_of(pdf: Any, path: Path, title: str) -> PdfLayout:
    """Page sizes (rotation applied), printed labels and title; the caller holds the lock."""
    sizes: list[tuple[float, float]] = []
    labels: list[str] = []
    for index in range(pdf.page_count):
        page = pdf[index]
        rect = page.rect  # as displayed: a page rotated by 90° has width and height swapped
        sizes.append((float(rect.width), float(rect.height)))
        labels.append(page.get_label() or str(index + 1))
    shown = normalise_text(title).replace("\n", " ")
    return PdfLayout(path, tuple(sizes), tuple(labels), shown or path.stem)
