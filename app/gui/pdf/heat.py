"""Where the target looked, drawn over the PDF: a heat overlay and its legend.

Each `HeatSpot` is a span of the page (its lines' rects) with a level 0-1 (its share
of the target's attention over the strongest spot's). The canvas fills it with a warm
colour whose opacity grows with the level; a solid outline marks spots outside the
retrieved passages, a dashed one spots inside them. `HeatLegend` explains that, in a
small card over the PDF view, with the strongest spot and a close button.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QLinearGradient,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
)
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui import theme

PageRect = tuple[int, float, float, float, float]  # (page 1-based, x0, y0, x1, y1) in points
MIN_ALPHA = 45  # the faintest spot still shows on white paper
MAX_ALPHA = 200


@dataclass(frozen=True)
class HeatSpot:
    """A place the target looked: its lines, its level (0-1, of the strongest spot's
    weight), whether it is inside the retrieved passages, and its label ("42%")."""

    rects: tuple[PageRect, ...]
    level: float
    retrieved: bool
    label: str = ""


def heat_color(level: float) -> QColor:
    """The fill for `level` (0-1): the heat colour, more opaque the more attention."""
    color = QColor(theme.HEAT)
    color.setAlpha(round(MIN_ALPHA + (MAX_ALPHA - MIN_ALPHA) * max(0.0, min(1.0, level))))
    return color


def outline_pen(retrieved: bool, width: float = 1.6) -> QPen:
    """Solid outside the retrieved passages, dashed inside them."""
    pen = QPen(theme.HEAT_OUTLINE, width)
    if retrieved:
        pen.setStyle(Qt.PenStyle.DashLine)
    return pen


def paint_spot(p: QPainter, boxes: Sequence[QRectF], spot: HeatSpot) -> None:
    """Fill `boxes` (a spot's rects on one page, canvas pixels) and outline them."""
    area = QPainterPath()
    for box in boxes:
        area.addRect(box.adjusted(-1, -1, 1, 1))
    area = area.simplified()
    p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Multiply)
    p.fillPath(area, heat_color(spot.level))
    p.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceOver)
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.setPen(outline_pen(spot.retrieved))
    p.drawPath(area)


class GradientBar(QWidget):
    """The heat scale, from faint (less attention) to strong (more)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(120, 12)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        box = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        gradient = QLinearGradient(box.topLeft(), box.topRight())
        for stop in (0.0, 0.5, 1.0):
            paper = QColor("#FFFFFF")
            fill = heat_color(stop)
            a = fill.alphaF()  # the fill multiplied onto white paper
            paper.setRgbF(1 - a * (1 - fill.redF()), 1 - a * (1 - fill.greenF()),
                          1 - a * (1 - fill.blueF()))  # fmt: skip
            gradient.setColorAt(stop, paper)
        p.fillRect(box, gradient)
        p.setPen(QPen(QColor("#B9BEC5"), 1))
        p.drawRect(box)
        p.end()


class OutlineSample(QWidget):
    """A small box drawn with a spot's outline (solid or dashed)."""

    def __init__(self, retrieved: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.retrieved = retrieved
        self.setFixedSize(22, 12)

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        box = QRectF(self.rect()).adjusted(1.5, 1.5, -1.5, -1.5)
        p.fillRect(box, heat_color(0.5))
        p.setPen(outline_pen(self.retrieved))
        p.drawRect(box)
        p.end()


class HeatLegend(QFrame):
    """A card over the PDF view: what the heat overlay means, the strongest spot, and
    a close button (`closed`: the user cleared the overlay)."""

    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("heatLegend")
        self.setStyleSheet(
            "QFrame#heatLegend { background: rgba(255, 255, 255, 240); border: 1px solid "
            "#C9CED6; border-radius: 6px; } QLabel { color: #3A3F47; }"
        )
        title = QLabel("<b>Where the target looked</b>")
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Clear the evidence overlay")
        self.close_button.clicked.connect(self.closed)
        head = QHBoxLayout()
        head.addWidget(title, 1)
        head.addWidget(self.close_button)
        self.bar = GradientBar()
        scale = QHBoxLayout()
        scale.addWidget(QLabel("less"))
        scale.addWidget(self.bar, 1)
        scale.addWidget(QLabel("more attention"))
        samples = QGridLayout()
        samples.addWidget(OutlineSample(False), 0, 0)
        samples.addWidget(QLabel("outside the retrieved passages"), 0, 1)
        samples.addWidget(OutlineSample(True), 1, 0)
        samples.addWidget(QLabel("inside the retrieved passages"), 1, 1)
        samples.setColumnStretch(1, 1)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setObjectName("statName")
        column = QVBoxLayout(self)
        column.setContentsMargins(10, 6, 6, 8)
        column.setSpacing(4)
        column.addLayout(head)
        column.addLayout(scale)
        column.addLayout(samples)
        column.addWidget(self.summary)
        self.setFixedWidth(300)
        self.hide()

    def show_summary(self, text: str) -> None:
        """Show the card with `text` (the strongest spot, how many) under the key."""
        self.summary.setText(text)
        self.summary.setVisible(bool(text))
        self.adjustSize()
        self.show()
        self.raise_()
