"""Reading a PDF in a child process: the same document as in this process, the same
errors, cancel and a dying reader handled (core/pdf/child.py)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import Cancelled, DocumentError, PasswordRequired
from core.events import drain
from core.pdf.reader import read_pdf, reading_pdf


def _no_children() -> bool:
    return not multiprocessing.active_children()


def test_the_child_reads_the_same_document(make_pdf: Callable[..., Path]) -> None:
    pdf = make_pdf(["First page.\nSecond line.", "", "Third page, after a blank one."],
                   name="three.pdf", title="Three pages")  # fmt: skip
    here = read_pdf(pdf, ocr=False)
    there = drain(reading_pdf(pdf, ocr=False, isolated=True))
    assert there == here
    assert there.title == "Three pages" and len(there.pages) == 3
    assert _no_children()


def test_a_real_manual_reads_the_same(real_manual: Path) -> None:
    progress: list[tuple[int, int]] = []
    there = drain(reading_pdf(real_manual, ocr=False, isolated=True), progress.append)
    assert there == read_pdf(real_manual, ocr=False)
    assert progress[-1] == (len(there.pages), len(there.pages))


def test_errors_come_back_as_the_same_errors(make_pdf: Callable[..., Path],
                                             tmp_path: Path) -> None:  # fmt: skip
    locked = make_pdf(["secret"], name="locked.pdf", password="pw")
    with pytest.raises(PasswordRequired) as none:
        drain(reading_pdf(locked, isolated=True))
    assert not none.value.wrong_password
    with pytest.raises(PasswordRequired) as wrong:
        drain(reading_pdf(locked, "nope", isolated=True))
    assert wrong.value.wrong_password
    assert drain(reading_pdf(locked, "pw", ocr=False, isolated=True)).pages[0].text == "secret"
    whole = make_pdf(["some text " * 50] * 4, name="whole.pdf").read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DocumentError) as here:
        read_pdf(cut)
    with pytest.raises(DocumentError) as there:
        drain(reading_pdf(cut, isolated=True))
    assert str(there.value) == str(here.value)
    assert _no_children()


def test_cancel_stops_the_child(real_manual: Path) -> None:
    seen = [0]

    def cancelled() -> bool:
        return seen[0] >= 2

    with pytest.raises(Cancelled):
        drain(reading_pdf(real_manual, ocr=False, cancelled=cancelled, isolated=True),
              lambda _p: seen.__setitem__(0, seen[0] + 1))  # fmt: skip
    assert _no_children()


def test_a_reader_that_dies_is_a_clear_error(long_manual: Path) -> None:
    reader = reading_pdf(long_manual, ocr=False, isolated=True)
    next(reader)  # the child is reading (2,415 pages: far from done)
    for child in multiprocessing.active_children():
        child.kill()
    with pytest.raises(DocumentError, match="made the PDF reader stop"):
        drain(reader)
    assert _no_children()
