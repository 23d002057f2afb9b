"""The PDF viewer's toolbar: page navigation, zoom and find.

It holds no document state: `PdfView` tells it what to show (`set_layout`,
`show_page`, `show_zoom`, `set_search_status`) and listens to what the user asks for
(`page_requested`, `zoom_chosen`, `find_requested`). Pages are entered by number or by
printed label ("iv"); a PDF whose labels differ from the numbers shows both,
"iv (4 of 120)".
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent, QValidator
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QStyle,
    QToolBar,
    QToolButton,
    QWidget,
)

from core.api import PdfLayout

ZOOM_STEPS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0)
FIT_WIDTH = "Fit width"


class PageSpinBox(QSpinBox):
    """A page number box that also shows and accepts printed page labels."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._labels: tuple[str, ...] = ()  # empty when the labels are just the numbers
        self.setKeyboardTracking(False)  # typing "12" goes to 12, not to 1 first
        self.setAlignment(Qt.AlignmentFlag.AlignRight)

    def set_labels(self, labels: tuple[str, ...]) -> None:
        plain = all(label == str(i) for i, label in enumerate(labels, start=1))
        self._labels = () if plain else labels
        self.setRange(1, max(len(labels), 1))
        digits = max((len(label) for label in labels), default=1)
        self.setMinimumWidth(self.fontMetrics().horizontalAdvance("M" * max(digits, 3)) + 28)

    @property
    def labelled(self) -> bool:
        return bool(self._labels)

    def textFromValue(self, value: int) -> str:
        if self._labels and 1 <= value <= len(self._labels):
            return self._labels[value - 1]
        return str(value)

    def valueFromText(self, text: str) -> int:
        page = self._page_of(text)
        return self.value() if page is None else page

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        if self._page_of(text) is not None:
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos

    def _page_of(self, text: str) -> int | None:
        wanted = text.strip()
        for i, label in enumerate(self._labels, start=1):
            if label == wanted:
                return i
        for i, label in enumerate(self._labels, start=1):
            if label.casefold() == wanted.casefold():
                return i
        if wanted.isdigit() and self.minimum() <= int(wanted) <= self.maximum():
            return int(wanted)
        return None


class PdfToolbar(QToolBar):
    """Previous/next, page box, zoom out/in, zoom choice, find box and match count."""

    page_requested = Signal(int)
    zoom_chosen = Signal(object)  # a zoom (1.0 = 100%), or None to fit the width
    find_requested = Signal(str, bool)  # text, backwards

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMovable(False)
        style = self.style()
        self.previous = self._button(style.standardIcon(QStyle.StandardPixmap.SP_ArrowUp),
                                     "Previous page (Page Up scrolls)")  # fmt: skip
        self.next = self._button(style.standardIcon(QStyle.StandardPixmap.SP_ArrowDown),
                                 "Next page (Page Down scrolls)")  # fmt: skip
        self.page_spin = PageSpinBox()
        self.page_spin.setToolTip("Page: type a number or a printed page label, then Enter")
        self.page_spin.valueChanged.connect(self._page_entered)
        self.page_total = QLabel()
        self.addWidget(self.page_spin)
        self.addWidget(self.page_total)
        self.addSeparator()
        self.zoom_out = self._button(None, "Zoom out (Ctrl+-)", "−")
        self.zoom_combo = QComboBox()
        self.zoom_combo.setToolTip("Zoom (Ctrl+wheel; Ctrl+0 fits the width)")
        self.zoom_combo.addItem(FIT_WIDTH, None)
        for zoom in ZOOM_STEPS:
            self.zoom_combo.addItem(f"{round(zoom * 100)}%", zoom)
        self.zoom_combo.activated.connect(
            lambda index: self.zoom_chosen.emit(self.zoom_combo.itemData(index))
        )
        self.addWidget(self.zoom_combo)
        self.zoom_in = self._button(None, "Zoom in (Ctrl+=)", "+")
        self.addSeparator()
        self.search = QLineEdit()
        self.search.setPlaceholderText("Find in document")
        self.search.setToolTip("Enter: next match; Shift+Enter: previous match (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setMaximumWidth(240)
        self.search.installEventFilter(self)
        self.search.textChanged.connect(self._search_edited)
        self.addWidget(self.search)
        self.search_status = QLabel()
        self.search_status.setMinimumWidth(self.fontMetrics().horizontalAdvance("999 of 999+") + 8)
        self.addWidget(self.search_status)
        self.set_layout(None)

    def _button(self, icon: object, tip: str, text: str = "") -> QToolButton:
        button = QToolButton()
        if icon is not None:
            button.setIcon(icon)  # type: ignore[arg-type]
        button.setText(text)
        button.setToolTip(tip)
        button.setAccessibleName(tip.split(" (")[0])
        self.addWidget(button)
        return button

    # --------------------------------------------------------------- showing
    def set_layout(self, layout: PdfLayout | None) -> None:
        """Enable the controls for `layout` (None: no document, all disabled)."""
        self._count = 0 if layout is None else layout.page_count
        for widget in (self.previous, self.next, self.page_spin, self.zoom_in, self.zoom_out,
                       self.zoom_combo, self.search):  # fmt: skip
            widget.setEnabled(layout is not None)
        self.page_spin.blockSignals(True)
        self.page_spin.set_labels(() if layout is None else layout.labels)
        self.page_spin.blockSignals(False)
        self.show_page(1 if layout is not None else 0)

    def show_page(self, page: int) -> None:
        """Show `page` as current (1-based; 0 without a document)."""
        self.page_spin.blockSignals(True)
        self.page_spin.setValue(max(page, 1))
        self.page_spin.blockSignals(False)
        if not self._count:
            self.page_total.setText(" of 0 ")
        elif self.page_spin.labelled:
            self.page_total.setText(f" ({page} of {self._count}) ")
        else:
            self.page_total.setText(f" of {self._count} ")
        self.previous.setEnabled(page > 1)
        self.next.setEnabled(0 < page < self._count)

    def show_zoom(self, zoom: float | None) -> None:
        """Show `zoom` in the combo (None: fitting the width)."""
        if zoom is None:
            index = 0
        else:  # the step nearest to `zoom`
            index = 1 + min(range(len(ZOOM_STEPS)), key=lambda i: abs(ZOOM_STEPS[i] - zoom))
        self.zoom_combo.setCurrentIndex(index)

    def set_search_status(self, text: str) -> None:
        self.search_status.setText(text)

    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    @staticmethod
    def step_zoom(zoom: float, direction: int) -> float:
        """The next zoom step above (direction > 0) or below `zoom`."""
        if direction > 0:
            return next((z for z in ZOOM_STEPS if z > zoom * 1.01), ZOOM_STEPS[-1])
        return next((z for z in reversed(ZOOM_STEPS) if z < zoom * 0.99), ZOOM_STEPS[0])

    # ----------------------------------------------------------------- input
    def _search_edited(self, text: str) -> None:
        if not text:
            self.find_requested.emit("", False)  # cleared: the matches go

    def _page_entered(self, page: int) -> None:
        self.page_requested.emit(page)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.search and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                backwards = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
                self.find_requested.emit(self.search.text(), backwards)
                return True
            if event.key() == Qt.Key.Key_Escape and self.search.text():
                self.search.clear()
                return True
        return super().eventFilter(watched, event)
