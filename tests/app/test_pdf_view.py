"""The PDF viewer on real PDFs: pages drawn on its thread, zoom, search, highlights,
passages, missing and encrypted files, and a bounded shutdown (pytest-qt, offscreen)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor

from app.gui.pdf.canvas import PX_PER_PT
from app.gui.pdf.heat import HeatSpot
from app.gui.pdf.render_thread import RenderThread
from app.gui.pdf.view import Passage, PdfView

pytestmark = pytest.mark.gui

MakePdf = Callable[..., Path]
WAIT_MS = 10_000
PAGES = [
    "First page: an introduction.",
    "Second page mentions the narwhal once.",
    "Third page is about something else.",
    "Fourth page mentions the narwhal again.",
    "Fifth and last page.",
]


@pytest.fixture
def view(qtbot) -> Iterator[PdfView]:  # type: ignore[no-untyped-def]
    widget = PdfView()
    qtbot.addWidget(widget)
    widget.resize(700, 900)
    widget.show()
    widget.activateWindow()
    qtbot.waitActive(widget)  # shortcuts work in the active window only
    yield widget
    assert widget.shutdown()
    assert not any(t.name == "rapidqa-pdf-render" and t.is_alive() for t in threading.enumerate())


@pytest.fixture(scope="module")
def five_pages(make_pdf: MakePdf) -> Path:
    return make_pdf(PAGES, name="five.pdf")


def _open(qtbot, view: PdfView, path: Path, password: str | None = None) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(view.document_opened, timeout=WAIT_MS):
        view.open_document(path, password)
    qtbot.waitUntil(lambda: view.page_image(view.current_page) is not None, timeout=WAIT_MS)
    view.setFocus()  # shortcuts work with the focus inside the view (a click on a page)


def _pixel(view: PdfView, page: int, x: float, y: float) -> QColor:
    """The colour drawn at point (x, y) of `page`, from a grab of the canvas."""
    point = view.canvas.to_canvas(page, x, y).toPoint()
    return view.canvas.grab().toImage().pixelColor(point)


def test_empty_state(view: PdfView) -> None:
    assert view.message.startswith("No document open")
    assert (view.document_path, view.page_count, view.current_page) == (None, 0, 0)
    assert not view.toolbar.search.isEnabled()


def test_opens_and_draws_the_first_page(qtbot, view: PdfView, five_pages: Path) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(view.document_opened, timeout=WAIT_MS) as opened:
        view.open_document(five_pages)
    layout = opened.args[0]
    assert layout.page_count == 5 and layout.path == five_pages
    assert (view.document_path, view.page_count, view.current_page) == (five_pages, 5, 1)
    assert view.message == ""
    assert view.fit_width
    qtbot.waitUntil(lambda: view.page_image(1) is not None, timeout=WAIT_MS)
    image = view.page_image(1)
    assert image is not None
    # Drawn at the fitted zoom: as wide as the page's place on the canvas.
    assert abs(image.width() / image.devicePixelRatio() - view.canvas.page_rect(1).width()) <= 2
    assert view.toolbar.page_total.text().strip() == "of 5"
    assert view.page_image(5) is None  # far out of view: not drawn


def test_go_to_page(qtbot, view: PdfView, five_pages: Path) -> None:  # type: ignore[no-untyped-def]
    _open(qtbot, view, five_pages)
    with qtbot.waitSignal(view.page_changed, timeout=WAIT_MS) as changed:
        view.go_to_page(4)
    assert changed.args == [4]
    assert view.current_page == 4
    assert view.toolbar.page_spin.value() == 4
    qtbot.waitUntil(lambda: view.page_image(4) is not None, timeout=WAIT_MS)
    view.go_to_page(99)  # clamped
    assert view.current_page == 5
    qtbot.keyClick(view.canvas, Qt.Key.Key_Home)
    assert view.current_page == 1


def test_zoom_draws_bigger_pages(qtbot, view: PdfView, five_pages: Path) -> None:  # type: ignore[no-untyped-def]
    _open(qtbot, view, five_pages)
    view.set_zoom(1.0)
    qtbot.waitUntil(lambda: view.page_image(1) is not None, timeout=WAIT_MS)
    small = view.page_image(1)
    assert small is not None
    assert small.width() == pytest.approx(595 * PX_PER_PT * small.devicePixelRatio(), abs=2)
    view.zoom_in()
    assert view.zoom == 1.25 and not view.fit_width
    assert view.toolbar.zoom_combo.currentText() == "125%"
    qtbot.waitUntil(lambda: view.page_image(view.current_page) is not None, timeout=WAIT_MS)
    view.set_zoom(2.0)
    qtbot.waitUntil(lambda: view.page_image(view.current_page) is not None, timeout=WAIT_MS)
    big = view.page_image(view.current_page)
    assert big is not None
    assert big.width() > 1.9 * small.width()
    view.set_zoom(None)
    assert view.fit_width and view.toolbar.zoom_combo.currentText() == "Fit width"


def test_ctrl_wheel_zooms(qtbot, view: PdfView, five_pages: Path) -> None:  # type: ignore[no-untyped-def]
    _open(qtbot, view, five_pages)
    view.set_zoom(1.0)
    view.canvas.wheel_zoom.emit(1, QPointF(100, 100))
    assert view.zoom == 1.25
    qtbot.keyClick(view.canvas, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert view.zoom == 1.0


def test_search_finds_and_steps(qtbot, view: PdfView, five_pages: Path) -> None:  # type: ignore[no-untyped-def]
    _open(qtbot, view, five_pages)
    search = view.toolbar.search
    qtbot.keyClick(view.canvas, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert search.hasFocus()
    qtbot.keyClicks(search, "narwhal")
    qtbot.keyClick(search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: view.search_status == "1 of 2", timeout=WAIT_MS)
    assert view.current_page == 2
    qtbot.keyClick(search, Qt.Key.Key_Return)
    assert (view.search_status, view.current_page) == ("2 of 2", 4)
    qtbot.keyClick(search, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert (view.search_status, view.current_page) == ("1 of 2", 2)
    qtbot.keyClick(search, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert (view.search_status, view.current_page) == ("2 of 2", 4)  # wraps around
    view.find_text("walrus")
    qtbot.waitUntil(lambda: view.search_status == "No matches", timeout=WAIT_MS)


def test_highlights_are_drawn(qtbot, view: PdfView, five_pages: Path) -> None:  # type: ignore[no-untyped-def]
    _open(qtbot, view, five_pages)
    inside, outside = (300.0, 400.0), (300.0, 600.0)  # blank paper on page 1
    white = _pixel(view, 1, *inside)
    assert (white.red(), white.green(), white.blue()) == (255, 255, 255)
    view.set_highlights([Passage("[1]", ((1, 200.0, 380.0, 400.0, 420.0),))])
    yellow = _pixel(view, 1, *inside)
    assert yellow.red() > 240 and yellow.green() > 200 and yellow.blue() < yellow.green() - 20
    paper = _pixel(view, 1, *outside)
    assert (paper.red(), paper.green(), paper.blue()) == (255, 255, 255)
    tag = _pixel(view, 1, 185.0, 388.0)  # the "[1]" tag in the margin left of the rect
    assert (tag.red(), tag.green(), tag.blue()) != (255, 255, 255)
    view.clear_highlights()
    cleared = _pixel(view, 1, *inside)
    assert (cleared.red(), cleared.green(), cleared.blue()) == (255, 255, 255)


def test_show_passage_scrolls_and_flashes(qtbot, view: PdfView, five_pages: Path) -> None:  # type: ignore[no-untyped-def]
    _open(qtbot, view, five_pages)
    passage = Passage("[2]", ((4, 50.0, 50.0, 300.0, 65.0), (4, 50.0, 66.0, 300.0, 81.0)))
    with qtbot.waitSignal(view.page_changed, timeout=WAIT_MS) as changed:
        view.show_passage(passage)
    assert changed.args == [4]
    assert view.canvas.flashing
    viewport = view._scroll.viewport()
    centre = view.canvas.to_canvas(4, 175.0, 57.5).toPoint() - QPoint(
        view._scroll.horizontalScrollBar().value(), view._scroll.verticalScrollBar().value()
    )
    assert abs(centre.y() - viewport.height() / 2) < 3  # the first line is centred
    assert passage in view.canvas.passages  # stays highlighted after the flash
    qtbot.waitUntil(lambda: not view.canvas.flashing, timeout=WAIT_MS)


def test_show_passage_before_the_document_is_open(qtbot, view: PdfView, five_pages: Path) -> None:  # type: ignore[no-untyped-def]
    view.open_document(five_pages)
    view.show_passage(Passage("[1]", ((3, 50.0, 50.0, 300.0, 65.0),)))
    qtbot.waitUntil(lambda: view.current_page == 3, timeout=WAIT_MS)


def test_missing_file(qtbot, view: PdfView, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gone = tmp_path / "gone.pdf"
    with qtbot.assertNotEmitted(view.error, wait=200):
        view.open_document(gone)
    assert view.document_path == gone
    assert view.message.startswith(f"The PDF is no longer at {gone}: it was moved or deleted.")
    assert "add the file again" in view.message


def test_not_a_pdf_says_so(qtbot, view: PdfView, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "notes.pdf"
    path.write_text("Just notes.\n" * 40)
    with qtbot.assertNotEmitted(view.error, wait=200):
        view.open_document(path)
        qtbot.waitUntil(lambda: "is not a PDF file" in view.message, timeout=WAIT_MS)
    assert view.page_count == 0


def test_encrypted_pdf_asks_for_the_password(qtbot, view: PdfView, make_pdf: MakePdf) -> None:  # type: ignore[no-untyped-def]
    path = make_pdf(["A locked page about the narwhal."], name="locked.pdf", password="s3cret")
    with qtbot.waitSignal(view.password_needed, timeout=WAIT_MS) as asked:
        view.open_document(path)
    assert asked.args == [path, False]
    assert view.message.startswith("This PDF is protected by a password")
    with qtbot.waitSignal(view.password_needed, timeout=WAIT_MS) as wrong:
        view.open_document(path, "nope")
    assert wrong.args == [path, True]
    _open(qtbot, view, path, "s3cret")
    assert view.page_count == 1 and view.message == ""


def test_a_newer_document_wins(qtbot, view: PdfView, five_pages: Path, make_pdf: MakePdf) -> None:  # type: ignore[no-untyped-def]
    other = make_pdf(["Just one page."], name="one.pdf")
    with qtbot.waitSignal(view.document_opened, timeout=WAIT_MS) as opened:
        view.open_document(five_pages)
        view.open_document(other)
    assert opened.args[0].path == other
    qtbot.wait(100)
    assert view.page_count == 1


def test_printed_labels_show_in_the_page_box(
    qtbot, view: PdfView, tmp_path: Path, make_pdf: MakePdf
) -> None:  # type: ignore[no-untyped-def]
    import pymupdf

    pdf = pymupdf.open(make_pdf(["Preface.", "Contents.", "Chapter one.", "Chapter two."]))
    pdf.set_page_labels(
        [
            {"startpage": 0, "prefix": "", "style": "r", "firstpagenum": 1},
            {"startpage": 2, "prefix": "", "style": "D", "firstpagenum": 1},
        ]
    )
    path = tmp_path / "labelled.pdf"
    pdf.save(path)
    _open(qtbot, view, path)
    view.go_to_page(2)
    assert view.toolbar.page_spin.text() == "ii"
    assert view.toolbar.page_total.text().strip() == "(2 of 4)"
    spin = view.toolbar.page_spin
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, "1")  # the printed "1" is page 3
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    assert view.current_page == 3


def test_shutdown_stops_the_thread(view: PdfView) -> None:
    assert view.shutdown(timeout_s=2.0)
    assert view.shutdown()  # twice is fine


def test_page_down_scrolls_a_screen(qtbot, view: PdfView, five_pages: Path) -> None:  # type: ignore[no-untyped-def]
    _open(qtbot, view, five_pages)
    bar = view._scroll.verticalScrollBar()
    qtbot.keyClick(view.canvas, Qt.Key.Key_PageDown)
    assert bar.value() == round(view._scroll.viewport().height() * 0.9)
    qtbot.keyClick(view.canvas, Qt.Key.Key_End)
    assert view.current_page == 5
    qtbot.keyClick(view.canvas, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert not view.fit_width


def test_render_thread_drops_stale_requests(qtbot, five_pages: Path) -> None:  # type: ignore[no-untyped-def]
    thread = RenderThread()
    try:
        with qtbot.waitSignal(thread.opened, timeout=WAIT_MS):
            thread.open(1, five_pages, None)
        drawn: list[tuple[int, int, int]] = []
        thread.rendered.connect(lambda doc, zoom, page, _image: drawn.append((doc, zoom, page)))
        thread.want(1, 2, frozenset({3}))
        thread.render(1, 1, 3, 1.0, 1.0)  # an old zoom
        thread.render(1, 2, 4, 1.0, 1.0)  # a page out of view
        thread.render(0, 2, 3, 1.0, 1.0)  # an old document
        with qtbot.waitSignal(thread.rendered, timeout=WAIT_MS) as last:
            thread.render(1, 2, 3, 2.0, 2.0)
        image = last.args[3]
        assert (image.width(), image.height(), image.devicePixelRatio()) == (1190, 1684, 2.0)
        qtbot.wait(100)
        assert drawn == [(1, 2, 3)]
        with qtbot.waitSignal(thread.searched, timeout=WAIT_MS) as found:
            thread.search(1, 7, "narwhal")
        assert found.args[:2] == [1, 7]
        assert [hit[0] for hit in found.args[2]] == [2, 4]
    finally:
        assert thread.shutdown()


def test_heat_overlay_scales_with_attention_and_has_a_legend(
    qtbot, view: PdfView, five_pages: Path
) -> None:  # type: ignore[no-untyped-def]
    _open(qtbot, view, five_pages)
    strong = HeatSpot(((1, 200.0, 380.0, 400.0, 420.0),), 1.0, False, "60%")
    weak = HeatSpot(((1, 200.0, 600.0, 400.0, 640.0),), 0.2, True, "12%")
    view.overlay.set_heat([strong, weak], "Strongest: p. 1, 60% of the attention")
    assert view.overlay.heat == (strong, weak)
    hot, mild = _pixel(view, 1, 300.0, 400.0), _pixel(view, 1, 300.0, 620.0)
    assert hot.red() > 200 and hot.blue() < 100  # vermilion on white paper
    assert mild.red() > 240 and hot.blue() < mild.blue() - 60 and mild.blue() < 240
    paper = _pixel(view, 1, 300.0, 500.0)
    assert (paper.red(), paper.green(), paper.blue()) == (255, 255, 255)
    legend = view.overlay.legend
    assert legend.isVisible() and "60% of the attention" in legend.summary.text()
    area = view.pages_area()
    assert area.contains(legend.geometry()) and legend.geometry().right() > area.center().x()
    with qtbot.waitSignal(view.overlay.heat_cleared):
        legend.close_button.click()
    assert view.overlay.heat == () and not legend.isVisible()
    cleared = _pixel(view, 1, 300.0, 400.0)
    assert (cleared.red(), cleared.green(), cleared.blue()) == (255, 255, 255)


def test_a_spot_is_outlined_until_another_document(
    qtbot, view: PdfView, five_pages: Path, make_pdf: MakePdf
) -> None:  # type: ignore[no-untyped-def]
    view.open_document(five_pages)
    spot = Passage("[2]", ((3, 50.0, 66.0, 300.0, 81.0),))
    view.overlay.show_spot(spot)  # waits for the document to open
    qtbot.waitUntil(lambda: view.current_page == 3, timeout=WAIT_MS)
    assert view.overlay.spot == spot and view.canvas.flashing
    qtbot.waitUntil(lambda: not view.canvas.flashing, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: view.page_image(3) is not None, timeout=WAIT_MS)
    inside = _pixel(view, 3, 290.0, 73.0)  # blank paper inside the spot: tinted blue
    assert inside.blue() > inside.red() + 10
    view.open_document(make_pdf(["other"], name="other.pdf"))
    assert view.overlay.spot is None
