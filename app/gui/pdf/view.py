"""The in-app PDF viewer: continuous pages, zoom, search, the retrieved passages, and
(`overlay`, app/gui/pdf/overlay.py) the spot a citation points to and where the
target looked.

`PdfView` shows one PDF at a time in a scroll area over a painted `PdfCanvas`. Pages
are drawn on the renderer thread (`RenderThread`): only the pages in view and one
either side, at zoom × device pixel ratio so they are sharp on HiDPI screens. Opening
is asynchronous: `document_opened` says when the layout is there, and calls made
before (`go_to_page`, `show_passage`) wait for it.

Keys: PgUp/PgDn scroll by a screen, Home/End go to the first/last page, Ctrl+F finds,
Ctrl+= / Ctrl+- zoom (Ctrl+0 fits the width), Ctrl+wheel zooms at the cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QPointF, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QImage, QKeySequence, QResizeEvent, QShortcut
from PySide6.QtWidgets import QLabel, QScrollArea, QStackedWidget, QVBoxLayout, QWidget

from app.gui.pdf.canvas import MARGIN, PX_PER_PT, Passage, PdfCanvas
from app.gui.pdf.overlay import PdfOverlay
from app.gui.pdf.render_thread import SEARCH_LIMIT, PageRect, RenderThread
from app.gui.pdf.toolbar import PdfToolbar
from core.api import PdfLayout
from core.errors import PasswordRequired, RapidQAError

__all__ = ["Passage", "PdfView"]

NO_DOCUMENT = "No document open.\n\nChoose a document in the library to see its pages here."


class PdfView(QWidget):
    """The PDF viewer widget. Call `shutdown()` before it goes (closeEvent does)."""

    page_changed = Signal(int)  # the current page, 1-based
    password_needed = Signal(object, bool)  # path, True if the given password was wrong
    error = Signal(str)  # an unexpected failure (a bug), for the app's error banner
    document_opened = Signal(object)  # the PdfLayout

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._path: Path | None = None
        self._layout: PdfLayout | None = None
        self._doc_gen = 0
        self._zoom_gen = 0
        self._fit_width = True
        self._zoom = 1.0
        self._ratio = 1.0  # device pixels per logical pixel the pages were drawn for
        self._current = 0
        self._wanted: frozenset[int] = frozenset()
        self._after_open: list[Callable[[], None]] = []
        self._scrolling = False  # a scroll made here: the current page is set, not guessed
        self._search_id = 0
        self._search_text = ""
        self._matches: list[PageRect] = []
        self._match_index = -1
        self._backwards = False
        self._closed = False

        self.toolbar = PdfToolbar(self)
        self.canvas = PdfCanvas()
        self._scroll = QScrollArea()
        self._scroll.setWidget(self.canvas)
        self._scroll.setWidgetResizable(False)
        self._scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self._scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self._scroll.viewport().installEventFilter(self)
        self.setFocusProxy(self._scroll)  # keys reach the view's shortcuts once it has focus
        self._message = QLabel()
        self._message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._message.setWordWrap(True)
        self._message.setMargin(32)
        self._message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._stack = QStackedWidget()
        self._stack.addWidget(self._message)
        self._stack.addWidget(self._scroll)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self._stack, 1)
        self.overlay = PdfOverlay(self)

        self._update_timer = QTimer(self)
        self._update_timer.setSingleShot(True)
        self._update_timer.setInterval(0)
        self._update_timer.timeout.connect(self._update_visible)
        self._thread = RenderThread(self)
        self._thread.opened.connect(self._opened)
        self._thread.open_failed.connect(self._open_failed)
        self._thread.rendered.connect(self._rendered)
        self._thread.render_failed.connect(self._render_failed)
        self._thread.searched.connect(self._searched)
        self._scroll.verticalScrollBar().valueChanged.connect(self._scrolled)
        self._scroll.horizontalScrollBar().valueChanged.connect(self._schedule_update)
        self.canvas.wheel_zoom.connect(self._wheel_zoom)
        self.canvas.ratio_changed.connect(self._schedule_update)
        self._connect_toolbar()
        self._show_message(NO_DOCUMENT)

    def _connect_toolbar(self) -> None:
        bar = self.toolbar
        bar.previous.clicked.connect(lambda: self.go_to_page(self._current - 1))
        bar.next.clicked.connect(lambda: self.go_to_page(self._current + 1))
        bar.page_requested.connect(self.go_to_page)
        bar.zoom_in.clicked.connect(self.zoom_in)
        bar.zoom_out.clicked.connect(self.zoom_out)
        bar.zoom_chosen.connect(self.set_zoom)
        bar.find_requested.connect(self.find_text)
        keys: list[tuple[QKeySequence | QKeySequence.StandardKey | str, Callable[[], None]]] = [
            (QKeySequence(Qt.Key.Key_PageDown), lambda: self._scroll_screens(1)),
            (QKeySequence(Qt.Key.Key_PageUp), lambda: self._scroll_screens(-1)),
            (QKeySequence(Qt.Key.Key_Home), lambda: self.go_to_page(1)),
            (QKeySequence(Qt.Key.Key_End), lambda: self.go_to_page(self.page_count)),
            (QKeySequence.StandardKey.Find, bar.focus_search),
            (QKeySequence.StandardKey.ZoomIn, self.zoom_in),
            ("Ctrl+=", self.zoom_in),
            (QKeySequence.StandardKey.ZoomOut, self.zoom_out),
            ("Ctrl+0", lambda: self.set_zoom(None)),
        ]
        for key, slot in keys:
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

    # ------------------------------------------------------------------ public
    @property
    def document_path(self) -> Path | None:
        """The PDF last asked for (shown, opening, or failed to open); None if none."""
        return self._path

    @property
    def layout_info(self) -> PdfLayout | None:
        return self._layout

    @property
    def page_count(self) -> int:
        return 0 if self._layout is None else self._layout.page_count

    @property
    def current_page(self) -> int:
        """The page being read (1-based); 0 without a document."""
        return self._current

    @property
    def zoom(self) -> float:
        """The zoom in use (1.0 = printed size), fitted to the width or chosen."""
        return self._zoom

    @property
    def fit_width(self) -> bool:
        return self._fit_width

    @property
    def message(self) -> str:
        """The message shown instead of pages ("" while pages are shown)."""
        return self._message.text() if self._stack.currentIndex() == 0 else ""

    @property
    def search_status(self) -> str:
        return self.toolbar.search_status.text()

    def page_image(self, page: int) -> QImage | None:
        """The image of `page` drawn for the current zoom, once it arrived; else None."""
        if self.canvas.cache.is_fresh(page, self._zoom_gen):
            return self.canvas.cache.get(page)
        return None

    def open_document(self, path: Path | None, password: str | None = None) -> None:
        """Show the PDF at `path` (None: the empty state). Asynchronous: see the signals."""
        self._doc_gen += 1
        self._path = None if path is None else Path(path)
        self._layout = None
        self._after_open.clear()
        self._matches, self._match_index, self._search_text = [], -1, ""
        self.canvas.set_pages(())
        self.toolbar.set_layout(None)
        self.toolbar.set_search_status("")
        self._set_current(0)
        if self._path is None:
            self._show_message(NO_DOCUMENT)
        elif not self._path.exists():
            self._show_message(_missing(self._path))
        elif not self._closed:
            self._show_message(f"Opening {self._path.name}…")
            self._thread.open(self._doc_gen, self._path, password)

    def go_to_page(self, page: int) -> None:
        """Scroll so `page` (1-based, clamped) starts at the top of the view."""
        if self._layout is None:
            self._after_open.append(lambda: self.go_to_page(page))
            return
        page = min(max(page, 1), self.page_count)
        top = 0 if page == 1 else self.canvas.page_rect(page).top() - MARGIN // 2
        self._scroll_to(None, top)
        self._set_current(page)

    def set_zoom(self, zoom: float | None, anchor: QPointF | None = None) -> None:
        """Zoom to `zoom` (1.0 = 100%), or fit the page width with None; the document
        point under `anchor` (viewport pixels; default the centre) stays put."""
        self._fit_width = zoom is None
        self._apply_zoom(self._fit_zoom() if zoom is None else min(max(zoom, 0.25), 4.0), anchor)
        self.toolbar.show_zoom(None if self._fit_width else self._zoom)

    def zoom_in(self) -> None:
        self.set_zoom(self.toolbar.step_zoom(self._zoom, +1))

    def zoom_out(self) -> None:
        self.set_zoom(self.toolbar.step_zoom(self._zoom, -1))

    def find_text(self, text: str, backwards: bool = False) -> None:
        """Go to the next (or previous) match of `text`, searching first if it is new."""
        text = " ".join(text.split())
        if not text or self._layout is None:
            self._search_text, self._matches = "", []
            self.canvas.set_matches([])
            self.toolbar.set_search_status("")
            return
        if text != self._search_text:
            self._search_text, self._matches, self._backwards = text, [], backwards
            self._search_id += 1
            self.canvas.set_matches([])
            self.toolbar.set_search_status("Searching…")
            self._thread.search(self._doc_gen, self._search_id, text)
        elif self._matches:
            step = -1 if backwards else 1
            self._show_match((self._match_index + step) % len(self._matches))

    def set_highlights(self, passages: Sequence[Passage]) -> None:
        """Draw `passages` as translucent highlights, each labelled in the margin."""
        self.canvas.set_passages(passages)

    def clear_highlights(self) -> None:
        self.canvas.set_passages(())

    def show_passage(self, passage: Passage) -> None:
        """Centre the passage's first line in the view and flash its lines."""
        if not passage.rects:
            return
        if self._layout is None:
            self._after_open.append(lambda: self.show_passage(passage))
            return
        rects = tuple(r for r in passage.rects if 1 <= r[0] <= self.page_count)
        if not rects:
            return
        if passage not in self.canvas.passages:
            self.canvas.set_passages((*self.canvas.passages, passage))
        self.centre_on(rects[0])
        self.canvas.flash(rects)

    def when_open(self, action: Callable[[], None]) -> bool:
        """While the document is opening: queue `action` for when it is open, True."""
        if self._layout is None:
            self._after_open.append(action)
            return True
        return False

    def pages_area(self) -> QRect:
        """Where the pages show, in this widget's coordinates, less the scroll bar."""
        area = self._stack.geometry()
        return area.adjusted(0, 0, -self._scroll.verticalScrollBar().width(), 0)

    def shutdown(self, timeout_s: float = 2.0) -> bool:
        """Stop the renderer thread; True if it ended within `timeout_s`."""
        self._closed = True
        self._update_timer.stop()
        return self._thread.shutdown(timeout_s)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)

    # ------------------------------------------------------- renderer signals
    def _opened(self, doc_gen: int, layout: PdfLayout) -> None:
        if doc_gen != self._doc_gen:
            return
        self._layout = layout
        self.canvas.set_pages(layout.page_sizes)
        self._stack.setCurrentIndex(1)
        self.toolbar.set_layout(layout)
        self._apply_zoom(self._fit_zoom() if self._fit_width else self._zoom, None)
        self._scroll_to(0, 0)
        self._set_current(1)
        self.document_opened.emit(layout)
        pending, self._after_open = self._after_open, []
        for action in pending:
            action()

    def _open_failed(self, doc_gen: int, err: Exception) -> None:
        if doc_gen != self._doc_gen or self._path is None:
            return
        if isinstance(err, PasswordRequired):
            again = " The password given was wrong." if err.wrong_password else ""
            self._show_message(f"This PDF is protected by a password.{again}\n\n"
                               "Enter its password to see its pages.")  # fmt: skip
            self.password_needed.emit(self._path, err.wrong_password)
        elif not self._path.exists():
            self._show_message(_missing(self._path))
        elif isinstance(err, RapidQAError):
            self._show_message(f"The pages of this PDF cannot be shown.\n\n{err}")
        else:
            self._show_message("The pages of this PDF cannot be shown because of an "
                               "internal error.")  # fmt: skip
            self.error.emit(f"Internal error while opening {self._path}: "
                            f"{type(err).__name__}: {err}. This is a bug in RapidQA; "
                            "please report it with what you were doing.")  # fmt: skip

    def _rendered(self, doc_gen: int, zoom_gen: int, page: int, image: QImage) -> None:
        if doc_gen != self._doc_gen or not 1 <= page <= self.page_count:
            return
        if zoom_gen == self._zoom_gen:
            self._thread.delivered(page)
        elif self.canvas.cache.get(page) is not None:
            return  # an old zoom's image: keep the one there
        self.canvas.set_image(page, zoom_gen, image, self._wanted)

    def _render_failed(self, doc_gen: int, page: int, message: str) -> None:
        if doc_gen == self._doc_gen and 1 <= page <= self.page_count:
            self.canvas.set_failed(page, message)

    def _searched(self, doc_gen: int, search_id: int, hits: list[PageRect]) -> None:
        if doc_gen != self._doc_gen or search_id != self._search_id:
            return
        self._matches = hits
        if not hits:
            self.canvas.set_matches([])
            self.toolbar.set_search_status("No matches")
            return
        current = max(self._current, 1)
        if self._backwards:
            before = [i for i, h in enumerate(hits) if h[0] <= current]
            self._show_match(before[-1] if before else len(hits) - 1)
        else:
            after = [i for i, h in enumerate(hits) if h[0] >= current]
            self._show_match(after[0] if after else 0)

    def _show_match(self, index: int) -> None:
        self._match_index = index
        self.canvas.set_matches(self._matches, index)
        more = "+" if len(self._matches) >= SEARCH_LIMIT else ""
        self.toolbar.set_search_status(f"{index + 1} of {len(self._matches)}{more}")
        self.centre_on(self._matches[index])

    # ---------------------------------------------------------- view updates
    def _fit_zoom(self) -> float:
        if self._layout is None:
            return self._zoom
        widest = max(w for w, _ in self._layout.page_sizes)
        room = self._scroll.viewport().width() - 2 * MARGIN - 1  # no sideways scroll
        return min(max(room / (widest * PX_PER_PT), 0.1), 4.0)

    def _apply_zoom(self, zoom: float, anchor: QPointF | None) -> None:
        viewport = self._scroll.viewport()
        if anchor is None:
            anchor = QPointF(viewport.width() / 2, viewport.height() / 2)
        at = None
        if self._layout is not None and self.canvas.page_count:
            origin = QPointF(self._hbar_value(), self._vbar_value())
            at = self.canvas.to_page(origin + anchor)
        changed = abs(zoom - self._zoom) > 1e-6 or self.canvas.zoom != zoom
        self._zoom = zoom
        if changed:
            self._zoom_gen += 1
        self.canvas.relayout(zoom, viewport.width())
        if at is not None:
            point = self.canvas.to_canvas(*at)
            self._scroll_to(point.x() - anchor.x(), point.y() - anchor.y())
        self._schedule_update()

    def _wheel_zoom(self, steps: int, position: QPointF) -> None:
        zoom = self._zoom
        for _ in range(abs(steps)):
            zoom = self.toolbar.step_zoom(zoom, 1 if steps > 0 else -1)
        viewport_pos = position - QPointF(self._hbar_value(), self._vbar_value())
        self.set_zoom(zoom, viewport_pos)

    def centre_on(self, rect: PageRect) -> None:
        """Scroll so that `rect` is in the middle of the view."""
        box = self.canvas.rect_on_canvas(rect)
        viewport = self._scroll.viewport()
        self._scroll_to(box.center().x() - viewport.width() / 2,
                        box.center().y() - viewport.height() / 2)  # fmt: skip
        self._set_current(rect[0])

    def _scroll_to(self, x: float | None, y: float) -> None:
        """Scroll to canvas point (x, y) at the top left; the caller sets the current page."""
        self._scrolling = True
        try:
            if x is not None:
                self._scroll.horizontalScrollBar().setValue(round(x))
            self._scroll.verticalScrollBar().setValue(round(y))
        finally:
            self._scrolling = False
        self._schedule_update()

    def _scroll_screens(self, direction: int) -> None:
        bar = self._scroll.verticalScrollBar()
        bar.setValue(bar.value() + direction * round(self._scroll.viewport().height() * 0.9))

    def _hbar_value(self) -> int:
        return self._scroll.horizontalScrollBar().value()

    def _vbar_value(self) -> int:
        return self._scroll.verticalScrollBar().value()

    def _scrolled(self) -> None:
        if not self._scrolling and self._layout is not None:
            reading_line = self._vbar_value() + self._scroll.viewport().height() / 4
            self._set_current(self.canvas.page_at(reading_line))
        self._schedule_update()

    def _set_current(self, page: int) -> None:
        if page != self._current:
            self._current = page
            self.toolbar.show_page(page)
            self.page_changed.emit(page)

    def _schedule_update(self) -> None:
        if not self._closed:
            self._update_timer.start()

    def _update_visible(self) -> None:
        """Ask for the pages in view (and one either side) not drawn at this zoom."""
        if self._layout is None or self._closed:
            return
        top = self._vbar_value()
        visible = self.canvas.pages_between(top, top + self._scroll.viewport().height())
        if not visible:
            return
        ahead = [p for p in (visible[-1] + 1, visible[0] - 1) if 1 <= p <= self.page_count]
        ratio = self.canvas.devicePixelRatioF()
        if ratio != self._ratio:  # moved to a screen of another density: draw pages again
            self._ratio, self._zoom_gen = ratio, self._zoom_gen + 1
        self._wanted = self._thread.request_pages(
            (self._doc_gen, self._zoom_gen), visible + ahead, self._layout.page_sizes,
            self._zoom * PX_PER_PT, ratio,
            lambda page: self.canvas.cache.is_fresh(page, self._zoom_gen),
        )  # fmt: skip

    def _show_message(self, text: str) -> None:
        self._message.setText(text)
        self._stack.setCurrentIndex(0)

    # ------------------------------------------------------------------ events
    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.overlay.place_legend()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._scroll.viewport() and event.type() == QEvent.Type.Resize:
            if self._layout is not None:
                zoom = self._fit_zoom() if self._fit_width else self._zoom
                self._apply_zoom(zoom, QPointF(0, 0))
        return super().eventFilter(watched, event)


def _missing(path: Path) -> str:
    return (
        f"The PDF is no longer at {path}: it was moved or deleted.\n\nAnswers still work "
        "from the library's copy of its text; add the file again from its new place to "
        "see its pages here."
    )
