"""The list of past answers for the documents in view: choose one to show it again,
export it (Markdown or JSON) or delete it."""

from __future__ import annotations

import time
from collections.abc import Sequence

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QMenu, QWidget

from app.gui.history import AnswerRecord

ROLE_RECORD = Qt.ItemDataRole.UserRole + 1


class HistoryPanel(QListWidget):
    """Newest first; one line per question with its mode, speed and time."""

    record_chosen = Signal(object)  # AnswerRecord
    export_requested = Signal(object, str)  # AnswerRecord, "md" | "json"
    delete_requested = Signal(object)  # AnswerRecord

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAlternatingRowColors(True)
        self.setWordWrap(True)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.itemActivated.connect(self._chosen)
        self.itemClicked.connect(self._chosen)
        self.setToolTip(
            "Past answers about these documents. Click to show one again; "
            "right-click to export or delete it."
        )

    def set_records(self, records: Sequence[AnswerRecord]) -> None:
        self.clear()
        for record in records:
            f = record.finished
            when = time.strftime("%d %b %H:%M", time.localtime(record.asked_at))
            speed = f" · {f.tokens_per_s:.1f} tok/s" if f.tokens_per_s else ""
            item = QListWidgetItem(f"{record.question}\n{when} · {f.mode}{speed}")
            item.setData(ROLE_RECORD, record)
            item.setToolTip(record.answer[:500] or "(no answer)")
            self.addItem(item)
        if not records:
            empty = QListWidgetItem("Answers you get appear here.")
            empty.setFlags(Qt.ItemFlag.NoItemFlags)
            self.addItem(empty)

    def records(self) -> list[AnswerRecord]:
        out = []
        for i in range(self.count()):
            record = self.item(i).data(ROLE_RECORD)
            if record is not None:
                out.append(record)
        return out

    def _chosen(self, item: QListWidgetItem) -> None:
        record = item.data(ROLE_RECORD)
        if record is not None:
            self.record_chosen.emit(record)

    def _menu(self, pos: QPoint) -> None:
        item = self.itemAt(pos)
        record = None if item is None else item.data(ROLE_RECORD)
        if record is None:
            return
        menu = QMenu(self)
        menu.addAction("Show", lambda: self.record_chosen.emit(record))
        menu.addAction("Export as Markdown…", lambda: self.export_requested.emit(record, "md"))
        menu.addAction("Export as JSON…", lambda: self.export_requested.emit(record, "json"))
        menu.addSeparator()
        menu.addAction("Delete", lambda: self.delete_requested.emit(record))
        menu.exec(self.mapToGlobal(pos))
