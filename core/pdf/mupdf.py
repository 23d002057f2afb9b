"""What every PyMuPDF user here shares: the lock, opening a PDF checked (damaged,
truncated, encrypted, empty), its bytes checked as a PDF, MuPDF's messages kept off
stderr, and page geometry.

PyMuPDF is not thread-safe: `PYMUPDF_LOCK` serialises every PyMuPDF call, one page at
a time, so that a reader (core/pdf/extract.py) and the viewer's renderer thread
(core/pdf/render.py) take turns instead of crashing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.errors import DocumentError, PasswordRequired

PYMUPDF_LOCK = threading.Lock()

# The header may sit anywhere in the first KiB (the PDF spec's readers allow junk
# before it; Acrobat looks at the first 1024 bytes).
_PDF_MAGIC = b"%PDF-"
_MAGIC_WINDOW = 1024
# A complete file ends with "%%EOF" (a little trailing junk is tolerated). MuPDF
# "repairs" a truncated download into pages that are silently empty, so a repaired
# file without it is refused rather than read in part.
_EOF_MARKER = b"%%EOF"
_EOF_WINDOW = 1024

Rect = tuple[float, float, float, float]
PageRect = tuple[int, float, float, float, float]  # (page number, x0, y0, x1, y1)


def pdf_bytes(path: Path) -> tuple[bytes, bool]:
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
def errors_off_stderr(pymupdf: Any) -> Iterator[None]:
    """MuPDF's own error messages stay off stderr: what went wrong is reported as a
    `DocumentError` instead."""
    tools: Any = pymupdf.TOOLS  # PyMuPDF has no type hints
    shown = tools.mupdf_display_errors()
    tools.mupdf_display_errors(False)
    try:
        yield
    finally:
        tools.mupdf_display_errors(shown)


def damaged_message(path: Path) -> str:
    return (
        f"{path} is damaged or incomplete and could not be read. Download or export it "
        "again, then retry."
    )


def open_checked(
    pymupdf: Any, path: Path, data: bytes, password: str | None, complete: bool
) -> tuple[Any, str, int]:
    """The opened, unlocked document, its metadata title and page count (call with the
    PyMuPDF lock held); the document is closed again when it cannot be read."""
    try:
        pdf = pymupdf.open(stream=data, filetype="pdf")
    except Exception as err:  # MuPDF raises FileDataError, RuntimeError ... by version
        raise DocumentError(damaged_message(path)) from err
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
                raise DocumentError(damaged_message(path))
            raise DocumentError(f"{path} has no pages. Choose a PDF with content.")
        title = str((pdf.metadata or {}).get("title") or "").strip()
    except BaseException:
        pdf.close()
        raise
    return pdf, title, total


def transform(bbox: tuple[float, float, float, float], m: Any) -> Rect:
    """The rectangle `bbox` mapped through the affine matrix `m` (a rotation here)."""
    x0, y0, x1, y1 = bbox
    xs = [m.a * x + m.c * y + m.e for x, y in ((x0, y0), (x1, y1))]
    ys = [m.b * x + m.d * y + m.f for x, y in ((x0, y0), (x1, y1))]
    return (min(xs), min(ys), max(xs), max(ys))
