"""Tests for core.pdf.render: layout, pixels and search of real PDFs, and every error."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pymupdf
import pytest

from core.errors import DocumentError, PasswordRequired
from core.pdf.reader import read_pdf
from core.pdf.render import PageRenderer, RenderedPage

MakePdf = Callable[..., Path]  # the `make_pdf` fixture (tests/conftest.py)
A4 = (595.0, 842.0)


@pytest.fixture
def renderer() -> Iterator[PageRenderer]:
    r = PageRenderer()
    yield r
    r.close()


def _pixels(page: RenderedPage) -> np.ndarray:
    """The page as a (height, width, 3) array (rows cut to their pixels, stride dropped)."""
    rows = np.frombuffer(page.samples, dtype=np.uint8).reshape(page.height, page.stride)
    return rows[:, : page.width * 3].reshape(page.height, page.width, 3)


def _ink(page: RenderedPage, rect: tuple[float, float, float, float]) -> int:
    """How many dark pixels the rendered page has inside `rect` (points)."""
    x0, y0, x1, y1 = (round(v * page.scale) for v in rect)
    return int((_pixels(page)[y0:y1, x0:x1].min(axis=2) < 128).sum())


def _rotated(make_pdf: MakePdf, tmp_path: Path) -> Path:
    made = make_pdf(["Upright page.", "A turned page with the word zebra on it."])
    pdf = pymupdf.open(made)
    pdf[1].set_rotation(90)
    path = tmp_path / "rotated.pdf"
    pdf.save(path)
    pdf.close()
    return path


def test_layout(make_pdf: MakePdf, tmp_path: Path, renderer: PageRenderer) -> None:
    made = make_pdf(["Preface.", "Contents.", "Chapter one."], title="  A Manual\n")
    pdf = pymupdf.open(made)
    pdf.set_page_labels(
        [
            {"startpage": 0, "prefix": "", "style": "r", "firstpagenum": 1},
            {"startpage": 2, "prefix": "", "style": "D", "firstpagenum": 1},
        ]
    )
    path = tmp_path / "labelled.pdf"
    pdf.save(path)
    layout = renderer.open(path)
    assert layout.path == path
    assert layout.page_count == 3
    assert layout.page_sizes == (A4, A4, A4)
    assert layout.labels == ("i", "ii", "1")
    assert layout.title == "A Manual"
    assert renderer.layout == layout


def test_plain_labels_and_title_from_file_name(make_pdf: MakePdf, renderer: PageRenderer) -> None:
    layout = renderer.open(make_pdf(["One.", "Two."], name="field-guide.pdf"))
    assert layout.labels == ("1", "2")
    assert layout.title == "field-guide"


def test_render_at_scale_two(make_pdf: MakePdf, renderer: PageRenderer) -> None:
    renderer.open(make_pdf(["Some words.", "More words."]))
    page = renderer.render(2, 2.0)
    assert (page.page, page.scale) == (2, 2.0)
    assert (page.width, page.height) == (1190, 1684)
    assert page.stride >= page.width * 3
    assert len(page.samples) == page.stride * page.height
    pixels = _pixels(page)
    assert pixels[-50:, :].min() == 255  # the bottom margin is white paper
    assert pixels[100:140, 100:200].min() < 128  # the first line's text is inked


def test_search_matches_pymupdf_and_is_inked(make_pdf: MakePdf, renderer: PageRenderer) -> None:
    path = make_pdf(["Nothing here.", "Here is the giraffe.\nAnd a second giraffe."])
    renderer.open(path)
    hits = renderer.search("giraffe")
    with pymupdf.open(path) as pdf:
        own = [(2, *tuple(r)) for r in pdf[1].search_for("giraffe")]
    assert len(hits) == len(own)
    for hit, expected in zip(hits, own, strict=True):
        assert hit == pytest.approx(expected)
    assert len(hits) == 2 and hits[0][2] < hits[1][2]  # in reading order
    page = renderer.render(2, 2.0)
    for _, x0, y0, x1, y1 in hits:
        assert 0 <= x0 < x1 <= A4[0] and 0 <= y0 < y1 <= A4[1]
        assert _ink(page, (x0, y0, x1, y1)) > 20  # the word is drawn where it was found
    assert renderer.search("giraffe", limit=1) == hits[:1]
    assert renderer.search("okapi") == []
    assert renderer.search("   ") == []


def test_rotated_page(make_pdf: MakePdf, tmp_path: Path, renderer: PageRenderer) -> None:
    path = _rotated(make_pdf, tmp_path)
    layout = renderer.open(path)
    assert layout.page_sizes == (A4, (A4[1], A4[0]))  # width and height swapped
    page = renderer.render(2, 1.0)
    assert (page.width, page.height) == (842, 595)
    [(number, x0, y0, x1, y1)] = renderer.search("zebra")
    assert number == 2
    assert 0 <= x0 < x1 <= A4[1] and 0 <= y0 < y1 <= A4[0]
    assert y1 - y0 > x1 - x0  # a word written down the turned page is tall, not wide
    assert _ink(page, (x0, y0, x1, y1)) > 10
    # The same frame as the engine's line rectangles (`ChunkRef.rects`).
    line = read_pdf(path).pages[1].line_rects[0]
    assert line[0] <= x0 + 0.01 and x1 <= line[2] + 0.01
    assert line[1] <= y0 + 0.01 and y1 <= line[3] + 0.01


def test_open_replaces_the_previous_document(make_pdf: MakePdf, renderer: PageRenderer) -> None:
    renderer.open(make_pdf(["A.", "B.", "C."]))
    layout = renderer.open(make_pdf(["Only one page with a heron."]))
    assert layout.page_count == 1
    assert renderer.search("heron")[0][0] == 1
    with pytest.raises(ValueError, match=r"not in 1\.\.1"):
        renderer.render(2, 1.0)


def test_closed_renderer(make_pdf: MakePdf, renderer: PageRenderer) -> None:
    renderer.open(make_pdf(["A."]))
    renderer.close()
    renderer.close()  # twice is fine
    assert renderer.layout is None
    with pytest.raises(DocumentError, match="No PDF is open"):
        renderer.render(1, 1.0)
    with pytest.raises(DocumentError, match="Open a PDF first"):
        renderer.search("A")


def test_missing_file(tmp_path: Path, renderer: PageRenderer) -> None:
    with pytest.raises(DocumentError, match=r"does not exist. Check the path"):
        renderer.open(tmp_path / "gone.pdf")


def test_text_file_renamed_pdf(tmp_path: Path, renderer: PageRenderer) -> None:
    path = tmp_path / "notes.pdf"
    path.write_text("Just some notes, saved as .pdf.\n" * 50)
    with pytest.raises(DocumentError, match=r"is not a PDF file.*convert other formats"):
        renderer.open(path)


def test_truncated_pdf(
    make_pdf: MakePdf, tmp_path: Path, renderer: PageRenderer, capfd: pytest.CaptureFixture[str]
) -> None:
    data = make_pdf([f"Page {i}. " * 200 for i in range(1, 7)]).read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DocumentError, match=r"is incomplete .* Download or copy it again"):
        renderer.open(cut)
    assert "MuPDF" not in capfd.readouterr().err


def test_damaged_pdf(tmp_path: Path, renderer: PageRenderer) -> None:
    path = tmp_path / "garbage.pdf"
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n")
    with pytest.raises(DocumentError, match=r"is damaged.*export it again"):
        renderer.open(path)
    assert renderer.layout is None


def test_encrypted(make_pdf: MakePdf, renderer: PageRenderer) -> None:
    path = make_pdf(["Secret plans for a pelican."], password="s3cret")
    with pytest.raises(PasswordRequired, match=r"password-protected") as no:
        renderer.open(path)
    assert not no.value.wrong_password
    with pytest.raises(PasswordRequired, match=r"password .* is wrong. Check it") as wrong:
        renderer.open(path, password="S3CRET")
    assert wrong.value.wrong_password
    assert renderer.layout is None
    layout = renderer.open(path, password="s3cret")
    assert layout.page_count == 1
    assert renderer.search("pelican")[0][0] == 1
    assert _ink(renderer.render(1, 1.0), renderer.search("pelican")[0][1:]) > 5


def test_real_manual(real_manual: Path, renderer: PageRenderer) -> None:
    layout = renderer.open(real_manual)
    assert layout.page_count > 10
    assert len(layout.labels) == layout.page_count
    hits = renderer.search("R", limit=5)
    assert len(hits) == 5
    for number, x0, y0, x1, y1 in hits:
        w, h = layout.page_sizes[number - 1]
        assert 0 <= x0 < x1 <= w + 1 and 0 <= y0 < y1 <= h + 1
