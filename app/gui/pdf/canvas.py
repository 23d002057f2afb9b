"""The PDF viewer's painted canvas: pages stacked top to bottom, and what lies on them.

The canvas knows where every page sits at the current zoom and draws, for the pages in
view: a shadowed sheet (the rendered image, or a light-grey placeholder while it is
drawn), the retrieved passages as translucent highlights with their labels in the
margin, the lines a citation mark points to (the spot: tinted and outlined in the
accent colour), where the target looked (the heat overlay of app/gui/pdf/heat.py),
the search matches as outlines, and a passage being flashed. It never renders a page
itself: `PdfView` feeds it images from the renderer thread.

Coordinates: PDF points on the page as displayed (`ChunkRef.rects`) map to logical
pixels at `zoom * PX_PER_PT` per point (so 100% is the printed size on a 96-dpi screen).
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QEasingCurve, QPointF, QRect, QRectF, Qt, QVariantAnimation, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from app.gui import theme
from app.gui.pdf.heat import HeatSpot, paint_spot

PX_PER_PT = 96 / 72
GAP = 12  # between pages, logical pixels
MARGIN = 16  # around the stack of pages
BACKGROUND = QColor("#8C9096")
PLACEHOLDER = QColor("#E4E6E9")
SHADOW = QColor(0, 0, 0, 55)
BORDER = QColor(0, 0, 0, 70)
MATCH = QColor(theme.ACCENT)
FLASH_MS = 1200
FLASH_PULSES = 3
CACHE_BYTES = 256 * 1024 * 1024  # page images kept, beyond the pages in view

PageRect = tuple[int, float, float, float, float]  # (page 1-based, x0, y0, x1, y1) in points


@dataclass(frozen=True)
class Passage:
    """A retrieved passage to highlight: its label ("[1]") and its lines' rectangles
    in `ChunkRef.rects` form (page 1-based, x0, y0, x1, y1 in points)."""

    label: str
    rects: tuple[PageRect, ...]


class ImageCache:
    """Page images, least recently used first out, within a byte budget.

    An image remembers the zoom generation it was drawn for; an older one is still
    shown (scaled) until the sharp one arrives.
    """

    def __init__(self, budget_bytes: int = CACHE_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self._images: OrderedDict[int, tuple[int, QImage]] = OrderedDict()

    def get(self, page: int) -> QImage | None:
        entry = self._images.get(page)
        return None if entry is None else entry[1]

    def is_fresh(self, page: int, zoom_gen: int) -> bool:
        entry = self._images.get(page)
        return entry is not None and entry[0] == zoom_gen

    def put(self, page: int, zoom_gen: int, image: QImage, keep: Collection[int]) -> None:
        """Store `image`; evict the least recently used pages not in `keep` to fit."""
        self._images[page] = (zoom_gen, image)
        self._images.move_to_end(page)
        used = sum(img.sizeInBytes() for _, img in self._images.values())
        for old in list(self._images):
            if used <= self.budget_bytes:
                break
            if old not in keep and old != page:
                used -= self._images.pop(old)[1].sizeInBytes()

    def clear(self) -> None:
        self._images.clear()

    def __len__(self) -> int:
        return len(self._images)


class PdfCanvas(QWidget):
    """Draws the pages of one document; lives inside a `QScrollArea`."""

    wheel_zoom = Signal(int, QPointF)  # steps (+ in, - out), cursor position on the canvas
    ratio_changed = Signal()  # painted on a screen of another pixel density

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.cache = ImageCache()
        self._sizes: tuple[tuple[float, float], ...] = ()
        self._zoom = 1.0
        self._tops: list[int] = []
        self._rects: list[QRect] = []
        self._failed: dict[int, str] = {}
        self._passages: tuple[Passage, ...] = ()
        self._matches: list[PageRect] = []
        self._current_match = -1
        self._flash_rects: tuple[PageRect, ...] = ()
        self._flash_level = 0.0
        self._spot: Passage | None = None
        self._heat: tuple[HeatSpot, ...] = ()
        self._wheel_rest = 0
        self._ratio = 0.0  # the device pixel ratio of the last paint
        self._flash = QVariantAnimation(self)
        self._flash.setStartValue(0.0)
        self._flash.setEndValue(1.0)
        self._flash.setDuration(FLASH_MS)
        self._flash.setEasingCurve(QEasingCurve.Type.Linear)
        self._flash.valueChanged.connect(self._flash_step)
        self._flash.finished.connect(self._flash_done)

    # --------------------------------------------------------------- geometry
    def set_pages(self, sizes: Sequence[tuple[float, float]]) -> None:
        """A new document's page sizes (points); forgets images, marks and failures."""
        self._sizes = tuple(sizes)
        self.cache.clear()
        self._failed.clear()
        self._passages, self._matches, self._current_match = (), [], -1
        self._spot, self._heat = None, ()
        self._flash.stop()
        self._flash_rects = ()
        self.relayout(self._zoom, self.width())

    def relayout(self, zoom: float, min_width: int) -> None:
        """Place the pages at `zoom`, centred in at least `min_width` pixels."""
        self._zoom = zoom
        scale = zoom * PX_PER_PT
        widths = [round(w * scale) for w, _ in self._sizes]
        content_w = (max(widths) if widths else 0) + 2 * MARGIN
        total_w = max(content_w, min_width)
        self._tops, self._rects = [], []
        y = MARGIN
        for (_, h), w in zip(self._sizes, widths, strict=True):
            self._tops.append(y)
            height = round(h * scale)
            self._rects.append(QRect((total_w - w) // 2, y, w, height))
            y += height + GAP
        total_h = y - GAP + MARGIN if self._sizes else 0
        self.resize(total_w, total_h)
        self.update()

    @property
    def zoom(self) -> float:
        return self._zoom

    @property
    def page_count(self) -> int:
        return len(self._sizes)

    def page_rect(self, page: int) -> QRect:
        """Where `page` (1-based) is drawn, in canvas pixels."""
        return QRect(self._rects[page - 1])

    def page_at(self, y: float) -> int:
        """The page at canvas height `y` (in a gap: the page below; 0 without pages)."""
        if not self._tops:
            return 0
        index = bisect.bisect_right(self._tops, y) - 1
        if index >= 0 and y > self._rects[index].bottom() and index + 1 < len(self._tops):
            index += 1
        return min(max(index, 0), len(self._tops) - 1) + 1

    def pages_between(self, y0: float, y1: float) -> list[int]:
        """Pages that show between canvas heights y0 and y1, top to bottom."""
        if not self._tops:
            return []
        first = max(bisect.bisect_right(self._tops, y0) - 1, 0)
        last = max(bisect.bisect_right(self._tops, y1) - 1, first)
        return [p for p in range(first + 1, last + 2) if self._rects[p - 1].bottom() >= y0]

    def to_canvas(self, page: int, x: float, y: float) -> QPointF:
        """Point (x, y) in points on `page` -> canvas pixels."""
        r = self._rects[page - 1]
        scale = self._zoom * PX_PER_PT
        return QPointF(r.left() + x * scale, r.top() + y * scale)

    def to_page(self, point: QPointF) -> tuple[int, float, float]:
        """Canvas pixels -> (page, x, y) in points (outside a page: clamped onto it)."""
        page = self.page_at(point.y())
        r = self._rects[page - 1]
        scale = self._zoom * PX_PER_PT
        return page, (point.x() - r.left()) / scale, (point.y() - r.top()) / scale

    def rect_on_canvas(self, rect: PageRect) -> QRectF:
        page, x0, y0, x1, y1 = rect
        return QRectF(self.to_canvas(page, x0, y0), self.to_canvas(page, x1, y1))

    # ------------------------------------------------------------------ marks
    def set_image(self, page: int, zoom_gen: int, image: QImage, keep: Collection[int]) -> None:
        self.cache.put(page, zoom_gen, image, keep)
        self._failed.pop(page, None)
        self.update(self.page_rect(page))

    def set_failed(self, page: int, message: str) -> None:
        self._failed[page] = message
        self.update(self.page_rect(page))

    def set_passages(self, passages: Sequence[Passage]) -> None:
        self._passages = tuple(passages)
        self.update()

    @property
    def passages(self) -> tuple[Passage, ...]:
        return self._passages

    def set_spot(self, spot: Passage | None) -> None:
        """The lines a citation mark points to (None: none)."""
        self._spot = spot
        self.update()

    @property
    def spot(self) -> Passage | None:
        return self._spot

    def set_heat(self, spots: Sequence[HeatSpot]) -> None:
        """Where the target looked, on this document's pages (empty: clear)."""
        self._heat = tuple(spots)
        self.update()

    @property
    def heat(self) -> tuple[HeatSpot, ...]:
        return self._heat

    def set_matches(self, matches: Sequence[PageRect], current: int = -1) -> None:
        self._matches, self._current_match = list(matches), current
        self.update()

    def flash(self, rects: Sequence[PageRect]) -> None:
        """Pulse `rects` in the flash colour a few times over `FLASH_MS`."""
        self._flash.stop()
        self._flash_rects = tuple(r for r in rects if 1 <= r[0] <= len(self._sizes))
        self._flash.start()

    @property
    def flashing(self) -> bool:
        return self._flash.state() == QVariantAnimation.State.Running

    def _flash_step(self, value: object) -> None:
        t = float(value)  # type: ignore[arg-type]
        self._flash_level = abs(math.sin(math.pi * FLASH_PULSES * t))
        self.update()

    def _flash_done(self) -> None:
        self._flash_rects, self._flash_level = (), 0.0
        self.update()

    # ------------------------------------------------------------------ input
    def wheelEvent(self, event: QWheelEvent) -> None:
        if not event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            event.ignore()  # the scroll area scrolls
            return
        self._wheel_rest += event.angleDelta().y()
        steps = int(self._wheel_rest / 120)
        if steps:
            self._wheel_rest -= steps * 120
            self.wheel_zoom.emit(steps, event.position())
        event.accept()

    # -------------------------------------------------------------- painting
    def paintEvent(self, event: QPaintEvent) -> None:
        if self.devicePixelRatioF() != self._ratio:
            if self._ratio:
                self.ratio_changed.emit()
            self._ratio = self.devicePixelRatioF()
        p = QPainter(self)
        area = event.rect()
        p.fillRect(area, BACKGROUND)
        pages = self.pages_between(area.top() - 4, area.bottom() + 4)
        for page in pages:
            self._paint_sheet(p, page)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        for page in pages:
            self._paint_marks(p, page)
        p.end()

    def _paint_sheet(self, p: QPainter, page: int) -> None:
        r = self._rects[page - 1]
        p.fillRect(r.translated(2, 3), SHADOW)
        image = self.cache.get(page)
        if image is None:
            p.fillRect(r, PLACEHOLDER)
        else:
            p.drawImage(QRectF(r), image)
        p.setPen(QPen(BORDER, 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(r.adjusted(0, 0, -1, -1))
        if page in self._failed:
            p.setPen(QColor("#5F6670"))
            flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
            p.drawText(r.adjusted(24, 24, -24, -24), flags, self._failed[page])

    def _paint_marks(self, p: QPainter, page: int) -> None:
        tags: list[tuple[str, QRectF]] = []
        # Multiply, like a highlighter pen: paper turns yellow, the text stays dark.
        p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Multiply)
        for passage in self._passages:
            boxes = [self.rect_on_canvas(r) for r in passage.rects if r[0] == page]
            if not boxes:
                continue
            area = QPainterPath()  # one path: overlapping line boxes are not painted twice
            for box in boxes:
                area.addRect(box)
            p.fillPath(area.simplified(), theme.HIGHLIGHT)
            if passage.label:
                tags.append((passage.label, boxes[0]))
        heat_tags: list[tuple[str, QRectF]] = []
        for spot in self._heat:
            boxes = [self.rect_on_canvas(r) for r in spot.rects if r[0] == page]
            if boxes:
                paint_spot(p, boxes, spot)
                if spot.label:
                    heat_tags.append((spot.label, boxes[0]))
        p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Multiply)
        if self._spot is not None:
            area = QPainterPath()
            for rect in self._spot.rects:
                if rect[0] == page:
                    area.addRect(self.rect_on_canvas(rect).adjusted(-2, -2, 2, 2))
            if not area.isEmpty():
                area = area.simplified()
                p.fillPath(area, theme.SPOT)
                p.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceOver)
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.setPen(QPen(QColor(theme.ACCENT), 2))
                p.drawPath(area)
                p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Multiply)
        if self._flash_rects and self._flash_level > 0:
            fill = QColor(theme.FLASH)
            fill.setAlphaF(theme.FLASH.alphaF() * self._flash_level)
            area = QPainterPath()
            for rect in self._flash_rects:
                if rect[0] == page:
                    area.addRect(self.rect_on_canvas(rect).adjusted(-2, -2, 2, 2))
            p.fillPath(area.simplified(), fill)
        p.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceOver)
        for i, rect in enumerate(self._matches):
            if rect[0] != page:
                continue
            box = self.rect_on_canvas(rect).adjusted(-1.5, -1.5, 1.5, 1.5)
            current = i == self._current_match
            fill = QColor(MATCH)
            fill.setAlpha(70 if current else 0)
            p.setBrush(fill)
            p.setPen(QPen(MATCH, 2.5 if current else 1.2))
            p.drawRoundedRect(box, 2, 2)
        for label, box in tags:
            self._paint_tag(p, page, label, box)
        for label, box in heat_tags:
            self._paint_tag(p, page, label, box, heat=True)

    def _paint_tag(
        self, p: QPainter, page: int, label: str, box: QRectF, heat: bool = False
    ) -> None:
        """`label` in a small tag left of `box`, kept on the page's sheet (in the heat
        colours for a spot of the heat overlay)."""
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.8))
        font.setBold(True)
        p.setFont(font)
        text_w = p.fontMetrics().horizontalAdvance(label)
        h = p.fontMetrics().height() + 2
        w = text_w + 8
        left = max(box.left() - 4 - w, self._rects[page - 1].left() + 2)
        tag = QRectF(
            left, box.top() + (box.height() - h) / 2 if box.height() < 2 * h else box.top(), w, h
        )
        back = QColor("#FCE3D2" if heat else theme.HIGHLIGHT)
        back.setAlpha(235)
        p.setPen(QPen(theme.HEAT_OUTLINE if heat else QColor(theme.ORANGE), 1))
        p.setBrush(back)
        p.drawRoundedRect(tag, 3, 3)
        p.setPen(QColor("#4A1A00" if heat else "#3A2A00"))
        p.drawText(tag, Qt.AlignmentFlag.AlignCenter, label)
