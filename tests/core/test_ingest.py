"""Tests for core.pdf.extract: real PDFs made with PyMuPDF, real manuals, every error."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pymupdf
import pytest

from core.errors import Cancelled, DocumentError, PasswordRequired
from core.pdf.extract import PAGE_SEPARATOR, Document
from core.pdf.reader import ocr_available, read_pdf
from core.pdf.text import normalise_text

MakePdf = Callable[..., Path]  # the `make_pdf` fixture (tests/conftest.py)


def test_pages_text_and_offsets(make_pdf: MakePdf) -> None:
    path = make_pdf(
        ["First page alpha.", "Second page beta.\nIts second line.", "Third page gamma."],
        name="three.pdf",
    )
    doc = read_pdf(path)
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert [p.label for p in doc.pages] == ["1", "2", "3"]  # no labels: the numbers
    assert [p.text for p in doc.pages] == [
        "First page alpha.",
        "Second page beta.\nIts second line.",
        "Third page gamma.",
    ]
    assert doc.text == PAGE_SEPARATOR.join(p.text for p in doc.pages)
    for page in doc.pages:
        assert doc.text[page.start_char : page.end_char] == page.text
    assert doc.doc_id == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert doc.title == "three"  # no metadata title: the file name
    assert doc.path == path


def test_metadata_title_and_page_labels(make_pdf: MakePdf, tmp_path: Path) -> None:
    made = make_pdf(["Preface.", "Contents.", "Chapter one."], title="  A Manual\n")
    pdf = pymupdf.open(made)
    pdf.set_page_labels(
        [
            {"startpage": 0, "prefix": "", "style": "r", "firstpagenum": 1},
            {"startpage": 2, "prefix": "", "style": "D", "firstpagenum": 1},
        ]
    )
    labelled = tmp_path / "labelled.pdf"
    pdf.save(labelled)
    doc = read_pdf(labelled)
    assert doc.title == "A Manual"
    assert [(p.number, p.label) for p in doc.pages] == [(1, "i"), (2, "ii"), (3, "1")]


def test_two_columns_read_column_by_column(tmp_path: Path) -> None:
    """Blocks keep the content-stream order: a sort by position would interleave
    the columns (left 1, right 1, left 2, right 2)."""
    pdf = pymupdf.open()
    page = pdf.new_page()
    boxes = {
        "Left one.": (50, 50, 290, 100),
        "Left two.": (50, 300, 290, 350),
        "Right one.": (310, 50, 550, 100),
        "Right two.": (310, 300, 550, 350),
    }
    for text, box in boxes.items():
        assert page.insert_textbox(pymupdf.Rect(box), text, fontsize=11) >= 0
    pdf.save(tmp_path / "columns.pdf")
    text = read_pdf(tmp_path / "columns.pdf").text
    assert text == "Left one.\n\nLeft two.\n\nRight one.\n\nRight two."


def test_dehyphenation_keeps_real_hyphens(make_pdf: MakePdf) -> None:
    path = make_pdf(
        [
            "An exam-\nple of long-context retrieval, writ-\nten by Smith-\nJones in\n"
            "COVID-\n19 times."
        ]
    )
    text = read_pdf(path).text
    assert "An example of long-context retrieval, written by Smith-\nJones" in text
    assert "COVID-\n19 times." in text


def test_normalise_text() -> None:
    raw = (
        "  Tabs\tand  many   spaces\x00 and\x07 controls\u00a0here \r\n"
        "line two\u200b\x0c\n\n\n\nnext   paragraph\n\n\n"
    )
    assert normalise_text(raw) == (
        "Tabs and many spaces and controls here\nline two\n\nnext paragraph"
    )
    assert normalise_text("re-\nport, Smith-\nJones, re-\n\nport") == (
        "report, Smith-\nJones, re-\n\nport"
    )


def test_pages_for_span(make_pdf: MakePdf) -> None:
    doc = read_pdf(make_pdf(["aaaa", "", "cccc", "dddd"], image_pages={2}))
    one, _, three, four = (p.start_char for p in doc.pages)
    assert doc.pages[1].text == ""  # a page without text is fine when others have some
    assert doc.pages_for_span(one, one + 4) == (1,)
    assert doc.pages_for_span(one + 4, one + 5) == (1,)  # the separator: page before
    assert doc.pages_for_span(one + 2, three + 1) == (1, 2, 3)
    assert doc.pages_for_span(four, four + 4) == (4,)
    assert doc.pages_for_span(three, three) == ()


def test_real_manual(real_manual: Path) -> None:
    doc = read_pdf(real_manual)
    assert len(doc.pages) > 30
    assert sum(bool(p.text) for p in doc.pages) > 0.9 * len(doc.pages)
    assert "\x00" not in doc.text and "  " not in doc.text and "\n\n\n" not in doc.text
    assert "\ufb01" not in doc.text  # the "fi" ligature comes out as two letters
    for page in doc.pages:
        assert doc.text[page.start_char : page.end_char] == page.text


def test_threads_take_turns(make_pdf: MakePdf) -> None:
    path = make_pdf([f"Page {i} of a document read from four threads." for i in range(20)])
    with ThreadPoolExecutor(4) as pool:
        docs = list(pool.map(read_pdf, [path] * 8))
    assert all(doc == docs[0] for doc in docs)


# -- errors: each a DocumentError whose message says what to do ---------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"does not exist. Check the path"):
        read_pdf(tmp_path / "nowhere.pdf")


def test_folder(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"is a folder, not a PDF file. Choose"):
        read_pdf(tmp_path)


@pytest.mark.parametrize("content", [b"", b"Just some notes, saved as .pdf.\n" * 50])
def test_not_a_pdf(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.pdf"
    path.write_bytes(content)
    with pytest.raises(DocumentError, match=r"is not a PDF file.*convert other formats"):
        read_pdf(path)


def test_truncated_generated_pdf(
    make_pdf: MakePdf, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """MuPDF repairs this into six pages, the last three silently empty: refused."""
    data = make_pdf([f"Page {i}. " * 200 for i in range(1, 7)]).read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DocumentError, match=r"is incomplete .* Download or copy it again"):
        read_pdf(cut)
    assert "MuPDF" not in capfd.readouterr().err  # its messages stay off stderr


def test_truncated_real_manual(
    real_manual: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = real_manual.read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DocumentError, match=r"is incomplete"):
        read_pdf(cut)
    assert "MuPDF" not in capfd.readouterr().err  # reported once, as the error


def test_damaged_body(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pdf"
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n")
    with pytest.raises(DocumentError, match=r"is damaged or incomplete.*export it again"):
        read_pdf(path)


def test_zero_pages(tmp_path: Path) -> None:
    path = tmp_path / "empty.pdf"
    path.write_bytes(_pdf_without_pages())
    with pytest.raises(DocumentError, match=r"has no pages. Choose a PDF with content"):
        read_pdf(path)


def test_image_only_pdf_suggests_ocr(make_pdf: MakePdf) -> None:
    path = make_pdf(["", ""], image_pages={1, 2})
    with pytest.raises(DocumentError, match=r"no extractable text.*Install Tesseract") as caught:
        read_pdf(path, ocr=False)
    assert not isinstance(caught.value, PasswordRequired)


def test_drawings_only_pdf_is_not_sent_to_ocr(tmp_path: Path) -> None:
    pdf = pymupdf.open()
    pdf.new_page().draw_rect(pymupdf.Rect(50, 50, 300, 300), color=(0, 0, 0))
    path = tmp_path / "drawing.pdf"
    pdf.save(path)
    with pytest.raises(DocumentError, match="blank or hold only drawings"):
        read_pdf(path, ocr=True)


def test_scanned_pages_are_noted_and_the_rest_is_read(make_pdf: MakePdf) -> None:
    path = make_pdf(["Page one has text.", "", "Page three has text."], image_pages={2})
    doc = read_pdf(path, ocr=False)
    assert [p.text for p in doc.pages] == ["Page one has text.", "", "Page three has text."]
    assert len(doc.notes) == 1 and "Page 2 is a scanned image" in doc.notes[0]
    assert "Tesseract" in doc.notes[0]


def _scanned_pdf(tmp_path: Path, text: str) -> Path:
    """A PDF whose only page is a picture of `text` (rendered, then embedded)."""
    source = pymupdf.open()
    page = source.new_page(width=400, height=200)
    page.insert_text((30, 100), text, fontsize=24)
    picture = page.get_pixmap(dpi=200)
    scan = pymupdf.open()
    scan.new_page(width=400, height=200).insert_image(pymupdf.Rect(0, 0, 400, 200), pixmap=picture)
    path = tmp_path / "scan.pdf"
    scan.save(path)
    return path


@pytest.mark.skipif(not ocr_available(), reason="Tesseract is not installed")
def test_ocr_reads_a_scanned_page(tmp_path: Path) -> None:
    doc = read_pdf(_scanned_pdf(tmp_path, "Lighthouse keepers log"), ocr=True)
    assert "lighthouse keepers log" in doc.text.lower()
    assert doc.pages[0].ocr and "read with OCR" in doc.notes[0]
    assert len(doc.pages[0].line_rects) >= 1


def test_line_rectangles_cover_their_text(make_pdf: MakePdf) -> None:
    path = make_pdf(["Alpha beta gamma.\nSecond line here.\n\nA new block."], name="boxes.pdf")
    doc = read_pdf(path)
    page = doc.pages[0]
    pdf = pymupdf.open(path)
    assert len(page.line_spans) == len(page.line_rects) == 3
    for (start, end), rect in zip(page.line_spans, page.line_rects, strict=True):
        line = page.text[start:end]
        found = pdf[0].search_for(line)
        assert found, line
        assert pymupdf.Rect(*rect).intersects(found[0])
        assert 0 <= rect[0] < rect[2] <= page.width and 0 <= rect[1] < rect[3] <= page.height
    start = doc.text.index("Second")
    rects = doc.rects_for_span(start, start + 6)
    assert len(rects) == 1 and rects[0][0] == 1


def test_rotated_page_rectangles_are_in_display_coordinates(tmp_path: Path) -> None:
    pdf = pymupdf.open()
    page = pdf.new_page(width=595, height=842)
    page.insert_text((72, 100), "Rotated page text", fontsize=12)
    page.set_rotation(90)
    path = tmp_path / "rotated.pdf"
    pdf.save(path)
    doc = read_pdf(path)
    got = doc.pages[0]
    assert got.text == "Rotated page text"
    assert (got.width, got.height) == (842, 595)  # as displayed
    x0, y0, x1, y1 = got.line_rects[0]
    shown = pymupdf.open(path)[0]
    expected = shown.search_for("Rotated")[0] * shown.rotation_matrix
    assert abs(x0 - expected.x0) < 2 and abs(y0 - expected.y0) < 2
    assert 0 <= x0 < x1 <= 842 and 0 <= y0 < y1 <= 595


def test_identifiers_broken_after_underscore_are_joined(make_pdf: MakePdf) -> None:
    doc = read_pdf(make_pdf(["Set LD_LIBRARY_\nPATH and R_\nNilValue, keep a_\n b."]))
    assert "LD_LIBRARY_PATH and R_NilValue" in doc.text


def test_progress_and_cancel(make_pdf: MakePdf, cancel_after: Callable[[int], Any]) -> None:
    path = make_pdf([f"Page {i}." for i in range(1, 6)])
    seen: list[tuple[int, int]] = []
    read_pdf(path, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 5) for i in range(1, 6)]
    with pytest.raises(Cancelled):
        read_pdf(path, cancelled=cancel_after(2))


def test_encrypted_without_password(make_pdf: MakePdf) -> None:
    path = make_pdf(["Secret plans."], password="s3cret")
    with pytest.raises(PasswordRequired, match=r"password-protected.*--password") as caught:
        read_pdf(path)
    assert not caught.value.wrong_password


def test_encrypted_wrong_password(make_pdf: MakePdf) -> None:
    path = make_pdf(["Secret plans."], password="s3cret")
    with pytest.raises(PasswordRequired, match=r"password .* is wrong. Check it") as caught:
        read_pdf(path, password="S3CRET")
    assert caught.value.wrong_password


def test_encrypted_right_password(make_pdf: MakePdf) -> None:
    path = make_pdf(["Secret plans."], password="s3cret")
    for password in ("s3cret", "s3cret-owner"):  # the owner password opens it too
        assert read_pdf(path, password=password).text == "Secret plans."


def test_permissions_only_encryption_needs_no_password(make_pdf: MakePdf) -> None:
    path = make_pdf(["Open to read, locked to edit."], password="")
    assert read_pdf(path).text == "Open to read, locked to edit."


def test_unreadable_file(make_pdf: MakePdf) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = make_pdf(["Locked."])
    path.chmod(0)
    with pytest.raises(DocumentError, match=r"could not be read"):
        read_pdf(path)


def test_document_is_plain_data() -> None:
    doc = Document("0" * 16, Path("x.pdf"), "x", (), "")
    assert doc.pages_for_span(0, 10) == ()


def _pdf_without_pages() -> bytes:
    """A valid PDF whose page tree is empty (PyMuPDF refuses to save one)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
