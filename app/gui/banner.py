"""The one place the window shows errors: a banner above the answer.

Every error a user can hit arrives here once, as the message the engine wrote (what
happened and what to do). The banner does not block the window, keeps the last
message until dismissed, and says when the same error repeats instead of stacking.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from app.gui.theme import VERMILION

_STYLES = {
    "error": ("#FBE6D8", VERMILION, "Error"),
    "warning": ("#FFF4D6", "#8A6100", "Note"),
    "info": ("#E3EFF8", "#0B4F7C", "Info"),
}


class MessageBanner(QFrame):
    """A dismissable line of text with a level (error, warning, info)."""

    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self._label = QLabel()
        self._label.setWordWrap(True)
        self._label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.dismiss)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 6, 6)
        row.addWidget(self._label, 1)
        row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self._message = ""
        self._repeats = 0
        self.level = ""
        self.hide()

    @property
    def message(self) -> str:
        return self._message if self.isVisibleTo(self.parentWidget()) else ""

    def show_message(self, message: str, level: str = "error") -> None:
        if message == self._message and not self.isHidden():
            self._repeats += 1
        else:
            self._repeats = 0
        self._message = message
        self.level = level
        background, foreground, title = _STYLES.get(level, _STYLES["error"])
        self.setStyleSheet(
            f"QFrame#banner {{ background: {background}; border: 1px solid {foreground}; "
            f"border-radius: 5px; }} QLabel {{ color: #1F1F1F; }}"
        )
        again = f" (again, ×{self._repeats + 1})" if self._repeats else ""
        self._label.setText(f"<b style='color:{foreground}'>{title}{again}:</b> {_escape(message)}")
        self.show()

    def dismiss(self) -> None:
        self._message = ""
        self._repeats = 0
        self.hide()
        self.dismissed.emit()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
