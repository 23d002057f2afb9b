"""Read a PDF into page-numbered, normalised text (the engine's interim reader).

Every PyMuPDF call in the project lives in `read_pdf`. PyMuPDF is not thread-safe:
call `read_pdf` from one thread at a time (a module-level lock serialises calls that
come from several threads anyway, so they wait instead of crashing).
"""

from __future__ import annotations

import bisect
import hashlib
import re
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from core.errors import DocumentError, PasswordRequired

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


@dataclass(frozen=True)
class Page:
    """One page's text; `start_char` is its offset in `Document.text`."""

    number: int  # 1-based
    label: str  # the PDF's page label ("iv", "T-1" ...), else str(number)
    text: str
    start_char: int

    @property
    def end_char(self) -> int:
        return self.start_char + len(self.text)


@dataclass(frozen=True)
class Document:
    """A PDF read into text: pages joined by `PAGE_SEPARATOR`."""

    doc_id: str  # first 16 hex digits of the SHA-256 of the file's bytes
    path: Path
    title: str  # the PDF's metadata title, else the file name without extension
    pages: tuple[Page, ...]
    text: str

    @cached_property
    def _page_starts(self) -> list[int]:
        return [page.start_char for page in self.pages]

    def pages_for_span(self, start: int, end: int) -> tuple[int, ...]:
        """The 1-based numbers of the pages that the text span [start, end) touches.

        A span that falls only on the separator between two pages belongs to the
        page before it; empty pages inside a span count as covered.
        """
        if not self.pages or end <= start:
            return ()
        first = max(bisect.bisect_right(self._page_starts, start) - 1, 0)
        last = max(bisect.bisect_right(self._page_starts, end - 1) - 1, first)
        return tuple(page.number for page in self.pages[first : last + 1])


def read_pdf(path: str | Path, password: str | None = None) -> Document:
    """Read the PDF at `path` into a `Document`.

    Raises `DocumentError` (missing, folder, not a PDF, damaged, no pages, no text)
    and `PasswordRequired` (encrypted and no password or a wrong one). Not
    thread-safe across PyMuPDF: call it from one thread at a time (see module doc).
    """
    path = Path(path)
    data = _read_bytes(path)
    if _PDF_MAGIC not in data[:_MAGIC_WINDOW]:
        raise DocumentError(
            f"{path} is not a PDF file (it has no PDF header). Choose a PDF document; "
            "convert other formats (Word, HTML, images) to PDF first."
        )
    doc_id = hashlib.sha256(data).hexdigest()[:16]
    with _PYMUPDF_LOCK:
        title, raw_pages = _extract(path, data, password, _EOF_MARKER in data[-_EOF_WINDOW:])
    pages: list[Page] = []
    offset = 0
    for number, (label, raw) in enumerate(raw_pages, start=1):
        text = normalise_text(raw)
        pages.append(Page(number, label or str(number), text, offset))
        offset += len(text) + len(PAGE_SEPARATOR)
    if not any(page.text.strip() for page in pages):
        raise DocumentError(
            f"{path} has no extractable text: its {len(pages)} page(s) look like scanned "
            "images. Run OCR on it first (for example `ocrmypdf in.pdf out.pdf`) and open "
            "the result; built-in OCR is planned."
        )
    text = PAGE_SEPARATOR.join(page.text for page in pages)
    return Document(doc_id, path, title or path.stem, tuple(pages), text)


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


def _extract(
    path: Path, data: bytes, password: str | None, complete: bool
) -> tuple[str, list[tuple[str, str]]]:
    """(metadata title, [(page label, raw page text)]); the only PyMuPDF code.

    `complete`: the file ends like a whole PDF. MuPDF's error messages are kept off
    stderr while it reads: what went wrong is reported as a `DocumentError`.
    """
    import pymupdf  # deferred: the engine imports this module long before it reads

    tools: Any = pymupdf.TOOLS  # PyMuPDF has no type hints
    shown = tools.mupdf_display_errors()
    tools.mupdf_display_errors(False)
    try:
        return _extract_quietly(pymupdf, path, data, password, complete)
    finally:
        tools.mupdf_display_errors(shown)


def _extract_quietly(
    pymupdf: Any, path: Path, data: bytes, password: str | None, complete: bool
) -> tuple[str, list[tuple[str, str]]]:
    damaged = (
        f"{path} is damaged or incomplete and could not be read. Download or export it "
        "again, then retry."
    )
    try:
        pdf = pymupdf.open(stream=data, filetype="pdf")
    except Exception as err:  # MuPDF raises FileDataError, RuntimeError ... by version
        raise DocumentError(damaged) from err
    with pdf:
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
        if pdf.page_count == 0:
            if pdf.is_repaired:
                raise DocumentError(damaged)
            raise DocumentError(f"{path} has no pages. Choose a PDF with content.")
        title = str((pdf.metadata or {}).get("title") or "").strip()
        pages: list[tuple[str, str]] = []
        try:
            for page in pdf:
                pages.append((page.get_label(), _page_text(page)))
        except Exception as err:
            raise DocumentError(damaged) from err
    return normalise_text(title).replace("\n", " "), pages


def _page_text(page: Any) -> str:
    """A page's text blocks in reading order, blocks separated by a blank line.

    Blocks come in the order of the page's content stream, which is the reading order
    for what LaTeX, Word and most generators write, multi-column layouts included;
    `sort=True` would sort by position and interleave the columns of a two-column
    paper. Image blocks are skipped; ligatures are expanded (no PRESERVE_LIGATURES).
    """
    import pymupdf

    flags = pymupdf.TEXT_MEDIABOX_CLIP
    blocks = page.get_text("blocks", flags=flags)
    return "\n\n".join(block[4] for block in blocks if block[6] == 0)


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
