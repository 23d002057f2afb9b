"""The question bar: the question box, Ask / Cancel, the run's settings in brief, and
the progress of reading a long document (prefill), which can be cancelled."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent, QResizeEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

PLACEHOLDER = "Ask a question about the selected documents…"


class QuestionBox(QLineEdit):
    """Enter asks, Esc cancels."""

    submitted = Signal()
    escape = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.submitted.emit()
            return
        if event.key() == Qt.Key.Key_Escape:
            self.escape.emit()
            return
        super().keyPressEvent(event)


class ElidedLabel(QLabel):
    """One line cut with "…" to the width it is given, whole in its tooltip: a long
    progress line never widens the column (squeezing the PDF view beside it)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def setText(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def text(self) -> str:
        """The whole text (what is shown may be cut)."""
        return self._full

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, self.width())
        super().setText(shown)


class AskPanel(QWidget):
    """Emits `ask_requested(question)` and `cancel_requested()`; shows busy state."""

    ask_requested = Signal(str)
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.box = QuestionBox()
        self.box.setPlaceholderText(PLACEHOLDER)
        self.box.setClearButtonEnabled(True)
        self.box.setMinimumHeight(32)
        self.ask_button = QPushButton("Ask")
        self.ask_button.setObjectName("primary")
        self.ask_button.setToolTip("Ask the question (Enter)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the answer (Esc)")
        self.cancel_button.hide()
        self.mode_label = QLabel()
        self.mode_label.setObjectName("statName")
        self.mode_label.setToolTip("The decoding settings of the next answer (Settings… to change)")
        self.progress = QProgressBar()
        self.progress.setMaximumHeight(8)
        self.progress.setTextVisible(False)
        self.progress_label = ElidedLabel()
        self.progress_label.setObjectName("statName")

        row = QHBoxLayout()
        row.addWidget(self.box, 1)
        row.addWidget(self.ask_button)
        row.addWidget(self.cancel_button)
        info = QHBoxLayout()
        info.addWidget(self.progress_label, 1)
        info.addWidget(self.mode_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addLayout(info)
        self.hide_progress()

        self.box.submitted.connect(self._submit)
        self.box.escape.connect(self.cancel_requested)
        self.ask_button.clicked.connect(self._submit)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.box.textChanged.connect(self._update_enabled)
        self._busy = False
        self._update_enabled()

    def question(self) -> str:
        return self.box.text().strip()

    def set_question(self, text: str) -> None:
        self.box.setText(text)

    def set_mode_text(self, text: str) -> None:
        self.mode_label.setText(text)

    def set_busy(self, busy: bool) -> None:
        """While an answer runs: Cancel replaces Ask; the box stays editable."""
        self._busy = busy
        self.ask_button.setVisible(not busy)
        self.cancel_button.setVisible(busy)
        if not busy:
            self.hide_progress()
        self._update_enabled()

    @property
    def busy(self) -> bool:
        return self._busy

    def show_progress(self, text: str, fraction: float | None) -> None:
        """A progress line (fraction None = busy indicator without a known end)."""
        self.progress.setVisible(True)
        if fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * max(0.0, min(1.0, fraction))))
        self.progress_label.setText(text)

    def hide_progress(self) -> None:
        self.progress.setVisible(False)
        self.progress_label.setText("")

    def _update_enabled(self) -> None:
        self.ask_button.setEnabled(bool(self.question()) and not self._busy)

    def _submit(self) -> None:
        if self._busy:
            return
        question = self.question()
        if question:
            self.ask_requested.emit(question)
