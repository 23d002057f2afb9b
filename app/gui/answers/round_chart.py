"""A small live chart of decoding rounds, drawn with QPainter.

Bars are the tokens each round emitted, split into the accepted draft (below) and the
target's own token (on top, coloured by kind); a line is decode tokens/s over a
rolling window of recent rounds, on the right-hand axis. The newest `CAPACITY`
rounds are shown, so the chart scrolls as an answer streams.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QWidget

from app.gui.theme import REDDISH_PURPLE, TOKEN_STYLES
from core.events import DraftStep

CAPACITY = 120  # rounds shown
WINDOW = 8  # rounds in the rolling tokens/s
EMPTY_TEXT = "Rounds appear here while an answer streams"
LINE_COLOR = REDDISH_PURPLE
_AXIS = QColor("#8A8F98")
_GRID = QColor("#E6E8EC")
_LEFT, _RIGHT, _TOP, _BOTTOM = 26.0, 34.0, 20.0, 16.0


@dataclass(frozen=True)
class ChartData:
    """What the chart shows, oldest round first."""

    rounds: tuple[int, ...]
    accepted: tuple[int, ...]  # accepted draft tokens per round
    own: tuple[str | None, ...]  # kind of the target's own token (None: ended at EOS)
    tok_s: tuple[float, ...]  # rolling decode tokens/s after each round


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above `value` (an axis maximum)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * power >= value - 1e-12:
            return step * power
    return 10.0 * power


def _label(value: float) -> str:
    return f"{value:g}" if value < 1000 else f"{value / 1000:g}k"


class RoundChart(QWidget):
    """Per-round bars (accepted + own token) and a rolling tokens/s line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(100)
        self.setToolTip(
            f"Bars: tokens each round emitted (accepted drafts + the target's own token).\n"
            f"Line: decode tokens/s over the last {WINDOW} rounds (right axis)."
        )
        self.reset()

    def sizeHint(self) -> QSize:
        return QSize(320, 130)

    def reset(self) -> None:
        self._rounds: deque[int] = deque(maxlen=CAPACITY)
        self._accepted: deque[int] = deque(maxlen=CAPACITY)
        self._own: deque[str | None] = deque(maxlen=CAPACITY)
        self._tok_s: deque[float] = deque(maxlen=CAPACITY)
        self._recent: deque[tuple[int, float]] = deque(maxlen=WINDOW)  # (tokens, seconds)
        self.update()

    def add_steps(self, steps: Sequence[DraftStep]) -> None:
        for step in steps:
            self._rounds.append(step.round)
            self._accepted.append(step.accepted)
            self._own.append(None if step.token_id is None else step.token_kind)
            self._recent.append((len(step.emitted_ids), step.draft_s + step.verify_s))
            seconds = sum(s for _, s in self._recent)
            self._tok_s.append(sum(n for n, _ in self._recent) / seconds if seconds > 0 else 0.0)
        if steps:
            self.update()

    def data(self) -> ChartData:
        return ChartData(tuple(self._rounds), tuple(self._accepted), tuple(self._own),
                         tuple(self._tok_s))  # fmt: skip

    # -- painting ----------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(self.font())
        font.setPointSizeF(max(6.5, font.pointSizeF() * 0.8))
        painter.setFont(font)
        if not self._rounds:
            painter.setPen(_AXIS)
            painter.drawText(QRectF(self.rect()), Qt.AlignmentFlag.AlignCenter, EMPTY_TEXT)
            painter.end()
            return
        plot = QRectF(_LEFT, _TOP, self.width() - _LEFT - _RIGHT, self.height() - _TOP - _BOTTOM)
        heights = [a + (o is not None) for a, o in zip(self._accepted, self._own, strict=True)]
        y_max = nice_ceiling(max(max(heights), 1))
        rate_max = nice_ceiling(max(self._tok_s))
        self._draw_axes(painter, plot, y_max, rate_max)
        self._draw_bars(painter, plot, y_max)
        self._draw_line(painter, plot, rate_max)
        self._draw_legend(painter, plot)
        painter.end()

    def _draw_axes(self, painter: QPainter, plot: QRectF, y_max: float, rate_max: float) -> None:
        metrics = painter.fontMetrics()
        for frac in (0.0, 0.5, 1.0):
            y = plot.bottom() - frac * plot.height()
            painter.setPen(QPen(_GRID, 1))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(_AXIS)
            left = _label(frac * y_max)
            painter.drawText(
                QPointF(plot.left() - 4 - metrics.horizontalAdvance(left), y + 4), left
            )
            painter.setPen(LINE_COLOR)
            painter.drawText(QPointF(plot.right() + 4, y + 4), _label(frac * rate_max))
        painter.setPen(_AXIS)
        first, last = str(self._rounds[0]), str(self._rounds[-1])
        base = plot.bottom() + metrics.ascent() + 2
        painter.drawText(QPointF(plot.left(), base), first)
        last_x = plot.left() + self._bar_width(plot) * len(self._rounds)
        last_x = min(last_x, plot.right()) - metrics.horizontalAdvance(last)
        if len(self._rounds) > 1 and last_x > plot.left() + metrics.horizontalAdvance(first) + 6:
            painter.drawText(QPointF(last_x, base), last)

    def _bar_width(self, plot: QRectF) -> float:
        return plot.width() / CAPACITY

    def _draw_bars(self, painter: QPainter, plot: QRectF, y_max: float) -> None:
        width = self._bar_width(plot)
        unit = plot.height() / y_max
        gap = 0.15 * width if width > 3 else 0.0
        painter.setPen(Qt.PenStyle.NoPen)
        accepted_color = QColor(TOKEN_STYLES["accepted"].foreground)
        for i, (accepted, own) in enumerate(zip(self._accepted, self._own, strict=True)):
            x = plot.left() + i * width + gap / 2
            top = plot.bottom() - accepted * unit
            if accepted:
                painter.fillRect(QRectF(x, top, width - gap, accepted * unit), accepted_color)
            if own is not None:
                color = QColor(TOKEN_STYLES[own].foreground)
                painter.fillRect(QRectF(x, top - unit, width - gap, unit), color)

    def _draw_line(self, painter: QPainter, plot: QRectF, rate_max: float) -> None:
        width = self._bar_width(plot)
        points = QPolygonF(
            [QPointF(plot.left() + (i + 0.5) * width, plot.bottom() - r / rate_max * plot.height())
             for i, r in enumerate(self._tok_s)]
        )  # fmt: skip
        painter.setPen(QPen(QColor(LINE_COLOR), 1.6))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPolyline(points)

    def _draw_legend(self, painter: QPainter, plot: QRectF) -> None:
        metrics = painter.fontMetrics()
        x, y = plot.left(), 2.0
        for kind in ("accepted", "correction", "bonus"):
            painter.fillRect(QRectF(x, y + 3, 8, 8), QColor(TOKEN_STYLES[kind].foreground))
            painter.setPen(_AXIS)
            painter.drawText(QPointF(x + 11, y + metrics.ascent()), kind)
            x += 11 + metrics.horizontalAdvance(kind) + 10
        painter.setPen(QPen(QColor(LINE_COLOR), 1.6))
        painter.drawLine(QPointF(x, y + 7), QPointF(x + 12, y + 7))
        painter.setPen(_AXIS)
        painter.drawText(QPointF(x + 15, y + metrics.ascent()), "tokens/s")
