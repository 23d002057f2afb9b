"""Parse a PDF in a child process, page by page, so that PyMuPDF never holds the
GIL of the process that shows a window.

The child runs `core.pdf.extract.extract_pages` and sends each page as it is read; the parent
generator yields them with the same contract as `extract_pages`. Cancel terminates the
child. Errors come back as the same `DocumentError` / `PasswordRequired`, and a
child that dies (MuPDF crashing on a damaged file) becomes a `DocumentError`.

The child is started with "spawn" (never fork a process that runs Qt and torch
threads); a frozen app must call `multiprocessing.freeze_support()` first.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Generator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from core.errors import Cancelled, DocumentError, PasswordRequired

POLL_S = 0.05  # how often the parent checks `cancelled()` while it waits for a page
JOIN_S = 5.0


def _child(conn: Connection, path: str, data: bytes, password: str | None, complete: bool,
           ocr: bool) -> None:  # fmt: skip
    """The child's whole life: read, send page by page, then the title and notes."""
    from core.pdf.extract import extract_pages

    try:
        extract = extract_pages(Path(path), data, password, complete, ocr, None)
        while True:
            try:
                done, total, page = next(extract)
            except StopIteration as stop:
                conn.send(("end", stop.value))
                return
            conn.send(("page", (done, total, page)))
    except PasswordRequired as err:
        conn.send(("password", (str(err), err.wrong_password)))
    except DocumentError as err:
        conn.send(("error", str(err)))
    except Exception as err:  # a bug or a MuPDF failure not caught by extract_pages
        conn.send(("error", f"{path} could not be read ({type(err).__name__}: {err})."))
    finally:
        conn.close()


def extract_in_child(
    path: Path,
    data: bytes,
    password: str | None,
    complete: bool,
    ocr: bool,
    cancelled: Callable[[], bool] | None,
) -> Generator[tuple[int, int, Any], None, tuple[str, list[str]]]:
    """`core.pdf.extract.extract_pages`, run in a child process (same yields and return)."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child, args=(send, str(path), data, password, complete, ocr),
        name="rapidqa-pdf-reader", daemon=True,
    )  # fmt: skip
    proc.start()
    send.close()  # the child holds the only sending end: EOF when it dies
    try:
        while True:
            if cancelled is not None and cancelled():
                raise Cancelled()
            if not receive.poll(POLL_S):
                continue
            try:
                kind, value = receive.recv()
            except EOFError:
                proc.join(JOIN_S)
                raise DocumentError(
                    f"{path} made the PDF reader stop (exit code {proc.exitcode}): the file "
                    "is probably damaged. Open it in a PDF viewer and export or print it to "
                    "a new PDF, then add that."
                ) from None
            if kind == "page":
                yield value
            elif kind == "end":
                title, notes = value
                return str(title), list(notes)
            elif kind == "password":
                message, wrong = value
                raise PasswordRequired(message, wrong_password=bool(wrong))
            else:
                raise DocumentError(str(value))
    finally:
        receive.close()
        if proc.is_alive():
            proc.terminate()
        proc.join(JOIN_S)
