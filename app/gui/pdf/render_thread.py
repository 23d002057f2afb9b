"""The PDF viewer's renderer thread: the only thread that touches the shown PDF.

One `threading.Thread` owns a `PageRenderer` and takes requests from a queue: open a
document, render a page, search. Each request carries the document generation (and,
for pages, the zoom generation) it was made for; when the view has moved on (another
document, another zoom, the page scrolled out of view, a newer search), the thread
drops it unread. Results reach the GUI thread as Qt signals (queued across threads):
page images as `QImage`s that own their pixels, so PyMuPDF never runs on the GUI thread.

A search runs a few pages at a time between page renders, so scrolling stays live
while a long document is searched.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from core.api import PageRenderer
from core.errors import RapidQAError

SEARCH_PAGES_PER_STEP = 8  # pages searched between two looks at the queue
SEARCH_LIMIT = 1000
MAX_PIXELS = 24_000_000  # per page image (72 MB): deep zoom on HiDPI renders a bit softer

PageRect = tuple[int, float, float, float, float]


@dataclass(frozen=True)
class _Open:
    doc_gen: int
    path: Path
    password: str | None


@dataclass(frozen=True)
class _Render:
    doc_gen: int
    zoom_gen: int
    page: int  # 1-based
    scale: float  # pixels per point
    pixel_ratio: float  # device pixels per logical pixel, set on the image


@dataclass(frozen=True)
class _Search:
    doc_gen: int
    search_id: int
    text: str


@dataclass
class _SearchJob:
    request: _Search
    next_page: int = 1
    hits: list[PageRect] = field(default_factory=list)


class RenderThread(QObject):
    """Opens, renders and searches on a thread of its own; signals arrive on the GUI thread.

    Signals carry the generation they answer, so the view can ignore late arrivals.
    """

    opened = Signal(int, object)  # doc generation, PdfLayout
    open_failed = Signal(int, object)  # doc generation, the exception
    rendered = Signal(int, int, int, QImage)  # doc generation, zoom generation, page, image
    render_failed = Signal(int, int, str)  # doc generation, page, message
    searched = Signal(int, int, list)  # doc generation, search id, [(page, x0, y0, x1, y1)]

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: queue.Queue[_Open | _Render | _Search | None] = queue.Queue()
        # What the view wants now, replaced whole by the GUI thread (one atomic store).
        self._wanted: tuple[int, int, frozenset[int]] = (0, 0, frozenset())
        self._search_id = 0
        self._doc_gen = 0
        self._search: _SearchJob | None = None
        self._asked: set[int] = set()  # pages queued for `_asked_for` (GUI thread only)
        self._asked_for = (0, 0)
        self._thread = threading.Thread(target=self._run, name="rapidqa-pdf-render", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ GUI thread
    def open(self, doc_gen: int, path: Path, password: str | None) -> None:
        """Open `path` as document generation `doc_gen` (newer than any before)."""
        self._doc_gen = doc_gen
        self._wanted = (doc_gen, self._wanted[1], frozenset())
        self._queue.put(_Open(doc_gen, path, password))

    def want(self, doc_gen: int, zoom_gen: int, pages: frozenset[int]) -> None:
        """The pages worth rendering now; queued renders of any other are dropped."""
        self._wanted = (doc_gen, zoom_gen, pages)

    def render(
        self, doc_gen: int, zoom_gen: int, page: int, scale: float, pixel_ratio: float
    ) -> None:
        self._queue.put(_Render(doc_gen, zoom_gen, page, scale, pixel_ratio))

    def request_pages(
        self,
        gens: tuple[int, int],
        pages: Sequence[int],
        sizes: Sequence[tuple[float, float]],
        px_per_pt: float,
        ratio: float,
        have: Callable[[int], bool],
    ) -> frozenset[int]:
        """Want `pages` (most urgent first) of document and zoom generations `gens`, drawn
        at `px_per_pt` logical pixels per point on a screen of `ratio` device pixels per
        logical pixel; queue those not `have(page)` nor queued already. Returns the
        wanted set (any other page's queued render is dropped)."""
        wanted = frozenset(pages)
        if gens != self._asked_for:
            self._asked, self._asked_for = set(), gens
        self._asked &= wanted  # the others are dropped by the thread: ask again later
        self.want(*gens, wanted)
        for page in pages:
            if page in self._asked or have(page):
                continue
            w, h = sizes[page - 1]
            scale = min(px_per_pt * ratio, (MAX_PIXELS / max(w * h, 1.0)) ** 0.5)
            self._asked.add(page)
            self.render(*gens, page, scale, scale / px_per_pt)
        return wanted

    def delivered(self, page: int) -> None:
        """`page` arrived for the current generations: it may be asked for again."""
        self._asked.discard(page)

    def search(self, doc_gen: int, search_id: int, text: str) -> None:
        """Search for `text`; cancels any search with a smaller id."""
        self._search_id = search_id
        self._queue.put(_Search(doc_gen, search_id, text))

    def cancel_search(self, search_id: int) -> None:
        self._search_id = search_id

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def shutdown(self, timeout_s: float = 2.0) -> bool:
        """Stop the thread (after the page it is drawing); True if it ended in time."""
        self._doc_gen = -1  # everything queued is now stale
        self._search_id = -1
        self._queue.put(None)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # --------------------------------------------------------- render thread
    def _run(self) -> None:
        renderer = PageRenderer()
        try:
            while True:
                try:
                    request = self._queue.get(block=self._search is None)
                except queue.Empty:
                    self._step_search(renderer)
                    continue
                if request is None:
                    return
                self._handle(renderer, request)
        finally:
            try:
                renderer.close()
            except Exception:  # closing on quit: nothing left to tell
                pass

    def _handle(self, renderer: PageRenderer, request: _Open | _Render | _Search) -> None:
        if request.doc_gen != self._doc_gen:
            return  # another document was asked for since
        if isinstance(request, _Open):
            self._search = None
            try:
                layout = renderer.open(request.path, request.password)
            except Exception as err:  # RapidQAError for the user; anything else is a bug
                renderer.close()
                self._emit(self.open_failed, request.doc_gen, err)
                return
            self._emit(self.opened, request.doc_gen, layout)
        elif isinstance(request, _Render):
            doc_gen, zoom_gen, pages = self._wanted
            if (doc_gen, zoom_gen) != (request.doc_gen, request.zoom_gen):
                return
            if request.page not in pages:
                return  # scrolled away before its turn
            self._render(renderer, request)
        else:
            self._search = _SearchJob(request)

    def _render(self, renderer: PageRenderer, request: _Render) -> None:
        try:
            page = renderer.render(request.page, request.scale)
        except (RapidQAError, ValueError, RuntimeError) as err:
            message = f"This page could not be drawn ({err})."
            self._emit(self.render_failed, request.doc_gen, request.page, message)
            return
        fmt = QImage.Format.Format_RGB888
        # .copy(): the QImage owns its pixels, independent of the `samples` buffer.
        image = QImage(page.samples, page.width, page.height, page.stride, fmt).copy()
        image.setDevicePixelRatio(request.pixel_ratio)
        self._emit(self.rendered, request.doc_gen, request.zoom_gen, request.page, image)

    def _step_search(self, renderer: PageRenderer) -> None:
        job = self._search
        assert job is not None
        request = job.request
        if request.search_id != self._search_id or request.doc_gen != self._doc_gen:
            self._search = None  # a newer search, or another document
            return
        layout = renderer.layout
        count = 0 if layout is None else layout.page_count
        stop = min(job.next_page + SEARCH_PAGES_PER_STEP, count + 1)
        for page in range(job.next_page, stop):
            try:
                job.hits.extend(renderer.search_page(page, request.text))
            except (RapidQAError, ValueError, RuntimeError):
                continue  # a damaged page: search the others
        job.next_page = stop
        if job.next_page > count or len(job.hits) >= SEARCH_LIMIT:
            self._search = None
            self._emit(self.searched, request.doc_gen, request.search_id, job.hits[:SEARCH_LIMIT])

    def _emit(self, signal: Any, *args: Any) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the view was deleted while this ran: nobody to tell
            pass
