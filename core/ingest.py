"""Read a PDF into page-numbered, normalised text with the rectangle of every line.

The engine's PDF reading (OCR included) lives here; core/render.py draws pages with
the same helpers. PyMuPDF is not thread-safe: a module-level lock serialises every
PyMuPDF call, one page at a time, so that a reader and the viewer's renderer thread
take turns instead of crashing. `reading_pdf(isolated=True)` reads in a child
process instead (core/ingest_process.py).
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import re
import shutil
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import Cancelled, DocumentError, PasswordRequired
from core.events import drain

PAGE_SEPARATOR = "\n\n"
"""Joins page texts into `Document.text` (a paragraph break, like blocks within a page)."""

_PYMUPDF_LOCK = threading.Lock()

# The header may sit anywhere in the first KiB (the PDF spec's readers allow junk
# before it; Acrobat looks at the first 1024 bytes).
_PDF_MAGIC = b"%PDF-"
_MAGIC_WINDOW = 1024
# A complete file ends with "%%EOF" (a little trailing junk is tolerated). MuPDF
# "repairs" a truncated download into pages that are silently empty, so a repaired
# file without it is refused rather than read in part.
_EOF_MARKER = b"%%EOF"
_EOF_WINDOW = 1024

# Control characters (C0, DEL, C1) except newline and tab; tab becomes a space below.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Spaces that are not plain ASCII spaces: tabs, NBSP, the U+2000 block, ideographic.
_ODD_SPACE = re.compile(r"[\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_ZERO_WIDTH = re.compile(r"[\u00ad\u200b-\u200d\u2060\ufeff]")  # incl. soft hyphen
_SPACE_RUN = re.compile(r" {2,}")
# A word broken at a line end: "exam-\nple" -> "example". The continuation must start
# lowercase (see `_join_broken`), so "COVID-\n19" and "Smith-\nJones" keep theirs.
_BROKEN_WORD = re.compile(r"(?<=[^\W\d_])-\n(?=([^\W\d_]))")


Rect = tuple[float, float, float, float]
PageRect = tuple[int, float, float, float, float]  # (page number, x0, y0, x1, y1)
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

    `isolated`: parse in a child process (core/ingest_process.py). PyMuPDF holds
    Python's GIL for up to half a second on a heavy page; in a child process that
    cannot stall the other threads (the app's window). A crash of MuPDF on a damaged
    file then becomes a `DocumentError`, too. Costs about half a second to start.
    """
    path = Path(path)
    data, complete = _pdf_bytes(path)
    sha = hashlib.sha256(data).hexdigest()
    use_ocr = ocr_available() if ocr is None else ocr
    if isolated:
        from core.ingest_process import extract_in_child

        extract = extract_in_child(path, data, password, complete, use_ocr, cancelled)
    else:
        extract = _extract(path, data, password, complete, use_ocr, cancelled)
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


def _pdf_bytes(path: Path) -> tuple[bytes, bool]:
    """The file's bytes, and whether it ends like a whole PDF; `DocumentError` when
    it cannot be read or is not a PDF."""
    data = _read_bytes(path)
    if _PDF_MAGIC not in data[:_MAGIC_WINDOW]:
        raise DocumentError(
            f"{path} is not a PDF file (it has no PDF header). Choose a PDF document; "
            "convert other formats (Word, HTML, images) to PDF first."
        )
    return data, _EOF_MARKER in data[-_EOF_WINDOW:]


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DocumentError(f"{path} does not exist. Check the path and try again.")
    if path.is_dir():
        raise DocumentError(f"{path} is a folder, not a PDF file. Choose a PDF file in it.")
    try:
        return path.read_bytes()
    except OSError as err:
        raise DocumentError(
            f"{path} could not be read ({err.strerror or err}). Check that the file is "
            "readable by you and not locked by another program."
        ) from err


@contextlib.contextmanager
def _errors_off_stderr(pymupdf: Any) -> Iterator[None]:
    """MuPDF's own error messages stay off stderr: what went wrong is reported as a
    `DocumentError` instead."""
    tools: Any = pymupdf.TOOLS  # PyMuPDF has no type hints
    shown = tools.mupdf_display_errors()
    tools.mupdf_display_errors(False)
    try:
        yield
    finally:
        tools.mupdf_display_errors(shown)


def _extract(
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
    with _errors_off_stderr(pymupdf):
        # The PyMuPDF lock is held per call, not for the whole document, so that the
        # viewer's renderer thread can draw pages while a long PDF is being read.
        with _PYMUPDF_LOCK:
            pdf, title, total = _open_checked(pymupdf, path, data, password, complete)
        try:
            notes: list[str] = []
            for index in range(total):
                if cancelled is not None and cancelled():
                    raise Cancelled()
                try:
                    with _PYMUPDF_LOCK:
                        page = _read_page(pymupdf, pdf[index], index + 1, ocr, notes)
                except (DocumentError, Cancelled):
                    raise
                except Exception as err:
                    raise DocumentError(f"{_damaged(path)} (page {index + 1}: {err})") from err
                yield index + 1, total, page
        finally:
            with _PYMUPDF_LOCK:
                pdf.close()
        return normalise_text(title).replace("\n", " "), notes


def _damaged(path: Path) -> str:
    return (
        f"{path} is damaged or incomplete and could not be read. Download or export it "
        "again, then retry."
    )


def _open_checked(
    pymupdf: Any, path: Path, data: bytes, password: str | None, complete: bool
) -> tuple[Any, str, int]:
    """The opened, unlocked document, its metadata title and page count (call with the
    PyMuPDF lock held); the document is closed again when it cannot be read."""
    try:
        pdf = pymupdf.open(stream=data, filetype="pdf")
    except Exception as err:  # MuPDF raises FileDataError, RuntimeError ... by version
        raise DocumentError(_damaged(path)) from err
    try:
        if pdf.is_repaired and not complete:
            raise DocumentError(
                f"{path} is incomplete (the file is cut off, as after an interrupted "
                "download or copy). Download or copy it again, then retry."
            )
        if pdf.needs_pass:
            if password is None:
                raise PasswordRequired(
                    f"{path} is password-protected. Give its password with --password "
                    "(CLI) or in the password prompt."
                )
            if not pdf.authenticate(password):
                raise PasswordRequired(
                    f"The password for {path} is wrong. Check it (passwords are "
                    "case-sensitive) and try again.",
                    wrong_password=True,
                )
        total = pdf.page_count
        if total == 0:
            if pdf.is_repaired:
                raise DocumentError(_damaged(path))
            raise DocumentError(f"{path} has no pages. Choose a PDF with content.")
        title = str((pdf.metadata or {}).get("title") or "").strip()
    except BaseException:
        pdf.close()
        raise
    return pdf, title, total


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
            clean = _clean_line("".join(span["text"] for span in line["spans"]))
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
            rects.append(_transform(line["bbox"], matrix))
            pos += len(clean)
            first_in_block = False
    return "".join(parts), spans, rects


def _broken_word(prev: str, line: str) -> bool:
    """ "exam-" + "ple": a hyphen that only breaks a word across lines."""
    return len(prev) >= 2 and prev[-1] == "-" and prev[-2].isalpha() and line[0].islower()


def _broken_name(prev: str, line: str) -> bool:
    """ "LD_LIBRARY_" + "PATH": code identifiers are broken after an underscore."""
    return len(prev) >= 2 and prev[-1] == "_" and prev[-2].isalnum() and line[0].isalnum()


def _transform(bbox: tuple[float, float, float, float], m: Any) -> Rect:
    """The rectangle `bbox` mapped through the affine matrix `m` (a rotation here)."""
    x0, y0, x1, y1 = bbox
    xs = [m.a * x + m.c * y + m.e for x, y in ((x0, y0), (x1, y1))]
    ys = [m.b * x + m.d * y + m.f for x, y in ((x0, y0), (x1, y1))]
    return (min(xs), min(ys), max(xs), max(ys))


def _clean_line(raw: str) -> str:
    """One line's text: no control or zero-width characters, single spaces, stripped."""
    text = _ZERO_WIDTH.sub("", _CONTROL.sub("", raw))
    text = _ODD_SPACE.sub(" ", text)
    return _SPACE_RUN.sub(" ", text).strip()


def normalise_text(raw: str) -> str:
    """Clean extracted text: no control characters, joined broken words, tidy spaces.

    Lines keep their breaks (code and tables read better); a blank line (paragraph
    break) separates blocks; runs of spaces collapse to one; lines are stripped.
    """
    text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    text = _ZERO_WIDTH.sub("", _CONTROL.sub("", text))
    text = _ODD_SPACE.sub(" ", text)
    lines = [_SPACE_RUN.sub(" ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = _BROKEN_WORD.sub(_join_broken, text)
    paragraphs = (p.strip("\n") for p in re.split(r"\n{2,}", text))
    return "\n\n".join(p for p in paragraphs if p)


def _join_broken(match: re.Match[str]) -> str:
    return "" if match.group(1).islower() else match.group(0)
