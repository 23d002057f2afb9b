"""A minimal window standing in for the app until the GUI issue lands."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

TITLE = "RapidQA"
MESSAGE = "RapidQA \u2014 the full window arrives with the GUI issue"


def build_window(pdf: Path | None = None) -> QMainWindow:
    """The placeholder main window (a centred label naming the PDF, if any)."""
    window = QMainWindow()
    window.setWindowTitle(TITLE if pdf is None else f"{TITLE} \u2014 {pdf.name}")
    text = MESSAGE if pdf is None else f"{MESSAGE}\n\n{pdf.name}"
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setObjectName("placeholder")
    window.setCentralWidget(label)
    window.resize(640, 360)
    return window


def run_placeholder(pdf: Path | None = None, quit_after: float | None = None) -> int:
    """Show the window and run the event loop; `quit_after` seconds closes it."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = build_window(pdf)
    window.show()
    if quit_after is not None:
        QTimer.singleShot(int(quit_after * 1000), app.quit)
    return int(app.exec())
