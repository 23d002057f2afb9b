"""The library sidebar: the documents, PDFs being added, and which documents a question
is about (the selection; none selected = the whole library)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QPoint, QSize, Qt, QUrl, Signal
from PySide6.QtGui import (
    QDesktopServices,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeyEvent,
    QMouseEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QStackedLayout,
    QVBoxLayout,
    QWidget,
)

from app.gui import theme
from app.gui.library.rows import DocumentRow, ElidedLabel, PendingRow, scan_drop
from core.events import IngestProgress

if TYPE_CHECKING:
    from core.api import DocumentInfo

EMPTY_TEXT = "Drop PDFs here or click Add PDFs…"
SCOPE_TIP = (
    "Select documents to ask about only those (Ctrl/Shift-click for several); "
    "click empty space to ask about the whole library."
)
STYLE = f"""
QLabel#muted {{ color: #5F6670; }}
QLabel#missing {{ color: {theme.VERMILION}; font-style: italic; }}
QLabel#error {{ color: #A33A00; }}
QLabel#empty {{ color: #8A8F98; font-size: 11pt; }}
QWidget#pendingRow[failed="true"] {{
    background: #FBE6D8; border-left: 3px solid {theme.VERMILION};
}}
QListWidget#libraryList {{ border: none; background: white; }}
QListWidget#libraryList::item {{ border-bottom: 1px solid #EEF0F3; }}
QListWidget#libraryList::item:selected {{ background: #D6E4F3; color: #1F1F1F; }}
QProgressBar {{ border: none; background: #E6E9ED; border-radius: 3px; }}
QProgressBar::chunk {{ background: {theme.ACCENT}; border-radius: 3px; }}
QFrame#dropArea {{ border: 1px solid #DDE1E6; border-radius: 6px; background: white; }}
QFrame#dropArea[dropping="true"] {{ border: 2px dashed {theme.ACCENT}; background: #EAF2FB; }}
"""
ROLE_DOC = Qt.ItemDataRole.UserRole + 1  # doc id of a document row
ROLE_KEY = Qt.ItemDataRole.UserRole + 2  # key of a pending (or failed) add


def _fit(item: QListWidgetItem, row: QWidget) -> None:
    """The row's height; its width follows the list (a narrow hint lets the list give
    every row the viewport's width, so long titles elide instead of overflowing)."""
    item.setSizeHint(QSize(1, row.sizeHint().height()))


def _ask_user(parent: QWidget, text: str) -> bool:
    answer = QMessageBox.question(parent, "Remove from library", text)
    return answer == QMessageBox.StandardButton.Yes


class LibraryPanel(QWidget):
    """The library: a document list with drop-to-add, indexing rows and a selection."""

    add_requested = Signal(list)  # list[Path]: PDFs to add
    remove_requested = Signal(list)  # list[str]: doc ids, confirmed by the user
    cancel_requested = Signal(str)  # key of a pending add
    dismissed = Signal(str)  # key of a failed add whose row was dismissed
    selection_changed = Signal(list)  # list[str]: selected doc ids ([] = all)
    document_activated = Signal(str)  # doc id to show
    message = Signal(str)  # something to tell the user (e.g. skipped files)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(STYLE)
        self.setAcceptDrops(True)
        # Overridable seams (tests, or a main window with its own dialogs).
        self.confirm: Callable[[str], bool] = lambda text: _ask_user(self, text)
        self.pick_files: Callable[[], list[Path]] = self._pick_files
        self.open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl
        self._docs: dict[str, DocumentInfo] = {}
        self._doc_items: dict[str, QListWidgetItem] = {}
        self._pending: dict[str, tuple[QListWidgetItem, PendingRow]] = {}
        self._last_ids: list[str] = []
        self._updating = False

        heading = QLabel("Library")
        heading.setObjectName("heading")
        self.add_button = QPushButton("Add PDFs…")
        self.add_button.setToolTip("Add PDF files to the library (or drop them here)")
        self.add_button.clicked.connect(self.choose_files)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected documents from the library")
        self.remove_button.setEnabled(False)
        self.remove_button.clicked.connect(self.remove_selected)
        header = QHBoxLayout()
        header.addWidget(heading)
        header.addStretch(1)
        header.addWidget(self.add_button)
        header.addWidget(self.remove_button)

        self.list = QListWidget()
        self.list.setObjectName("libraryList")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)  # rows follow the list's width
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.itemSelectionChanged.connect(self._selection_changed)
        self.list.itemActivated.connect(self._activated)
        self.list.installEventFilter(self)
        self.list.viewport().installEventFilter(self)
        self.empty = QLabel(EMPTY_TEXT)
        self.empty.setObjectName("empty")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.drop_area = QFrame()
        self.drop_area.setObjectName("dropArea")
        self._stack = QStackedLayout(self.drop_area)
        self._stack.addWidget(self.list)
        self._stack.addWidget(self.empty)
        self.scope = ElidedLabel()
        self.scope.setObjectName("muted")
        self.scope.setToolTip(SCOPE_TIP)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(header)
        layout.addWidget(self.drop_area, 1)
        layout.addWidget(self.scope)
        self._refresh()

    # ---------------------------------------------------------------- documents
    def set_documents(self, docs: Sequence[DocumentInfo]) -> None:
        """Show these documents (in order, above any adds in progress), keeping the
        selection of those still there."""
        keep = set(self.selected_ids())
        self._updating = True
        for item in self._doc_items.values():
            self.list.takeItem(self.list.row(item))
        self._docs = {info.doc_id: info for info in docs}
        self._doc_items = {}
        for at, info in enumerate(self._docs.values()):
            self._insert_doc(at, info).setSelected(info.doc_id in keep)
        self._updating = False
        self._selection_changed()
        self._refresh()

    def documents(self) -> list[DocumentInfo]:
        return list(self._docs.values())

    def _insert_doc(self, at: int, info: DocumentInfo) -> QListWidgetItem:
        item = QListWidgetItem()
        item.setData(ROLE_DOC, info.doc_id)
        row = DocumentRow(info)
        _fit(item, row)
        self.list.insertItem(at, item)
        self.list.setItemWidget(item, row)
        self._doc_items[info.doc_id] = item
        return item

    def row_widget(self, doc_id: str) -> DocumentRow:
        widget = self.list.itemWidget(self._doc_items[doc_id])
        assert isinstance(widget, DocumentRow)
        return widget

    # ---------------------------------------------------------------- selection
    def selected_ids(self) -> list[str]:
        """The selected documents, in list order; [] = the whole library."""
        items = self._doc_items.items()
        chosen = sorted((self.list.row(item), i) for i, item in items if item.isSelected())
        return [doc_id for _, doc_id in chosen]

    def select(self, doc_ids: Sequence[str]) -> None:
        """Select exactly these documents (unknown ids are ignored)."""
        wanted = set(doc_ids)
        self._updating = True
        self.list.clearSelection()
        for doc_id, item in self._doc_items.items():
            item.setSelected(doc_id in wanted)
        self._updating = False
        current = next((self._doc_items[i] for i in doc_ids if i in self._doc_items), None)
        if current is not None:
            self.list.scrollToItem(current)
        self._selection_changed()

    def _selection_changed(self) -> None:
        if self._updating:
            return
        ids = self.selected_ids()
        self.remove_button.setEnabled(bool(ids))
        self._refresh_scope()
        if ids == self._last_ids:
            return
        self._last_ids = ids
        self.selection_changed.emit(ids)
        if len(ids) == 1:
            self.document_activated.emit(ids[0])

    def _activated(self, item: QListWidgetItem) -> None:
        doc_id = item.data(ROLE_DOC)
        if doc_id is not None:
            self.document_activated.emit(doc_id)

    def _refresh_scope(self) -> None:
        ids, n = self.selected_ids(), len(self._docs)
        if len(ids) == 1 or (n == 1 and not ids):
            only = self._docs[ids[0] if ids else next(iter(self._docs))]
            self.scope.setText(f"Asking about: {only.title or only.path.name}")
        elif ids:
            self.scope.setText(f"Asking about: {len(ids)} selected")
        else:
            self.scope.setText(f"Asking about: all {n} documents")
        self.scope.setVisible(n > 0)

    def _refresh(self) -> None:
        empty = not self._docs and not self._pending
        self._stack.setCurrentWidget(self.empty if empty else self.list)
        self.remove_button.setEnabled(bool(self.selected_ids()))
        self._refresh_scope()

    # ---------------------------------------------------------------- adding
    def choose_files(self) -> None:
        """The Add PDFs… button: pick files, then ask for them to be added."""
        paths = self.pick_files()
        if paths:
            self.add_paths(paths)

    def _pick_files(self) -> list[Path]:
        names, _ = QFileDialog.getOpenFileNames(
            self, "Add PDFs to the library", "", "PDF files (*.pdf)"
        )
        return [Path(name) for name in names]

    def add_paths(self, paths: Sequence[Path]) -> None:
        """Files and folders (their PDFs, recursively) -> `add_requested`; whatever is
        not a PDF is skipped and named in a `message`."""
        scan = scan_drop(paths)
        if scan.pdfs:
            self.add_requested.emit(scan.pdfs)
        note = scan.message()
        if note:
            self.message.emit(note)

    def add_pending(self, key: str, path: Path) -> None:
        """A queued add: a "Waiting…" row at the end of the list."""
        if key in self._pending:
            return
        item = QListWidgetItem()
        item.setData(ROLE_KEY, key)
        item.setFlags(Qt.ItemFlag.ItemIsEnabled)  # not selectable: not a document yet
        row = PendingRow(path.name)
        row.setToolTip(str(path))
        row.cancel_clicked.connect(lambda: self.cancel_requested.emit(key))
        row.dismiss_clicked.connect(lambda: self._dismiss(key))
        _fit(item, row)
        self.list.addItem(item)
        self.list.setItemWidget(item, row)
        self._pending[key] = (item, row)
        self._refresh()

    def pending_row(self, key: str) -> PendingRow | None:
        entry = self._pending.get(key)
        return None if entry is None else entry[1]

    def set_progress(self, key: str, p: IngestProgress) -> None:
        if key not in self._pending:
            self.add_pending(key, Path(p.title or "PDF"))
        item, row = self._pending[key]
        row.show_progress(p)
        _fit(item, row)

    def set_done(self, key: str, info: DocumentInfo) -> None:
        """The add finished: its row becomes the document's row, selected."""
        entry = self._pending.pop(key, None)
        at = self.list.count() if entry is None else self.list.row(entry[0])
        if entry is not None:
            self.list.takeItem(at)
        old = self._doc_items.pop(info.doc_id, None)
        if old is not None:  # already in the library (the same PDF added again)
            at = self.list.row(old)
            self.list.takeItem(at)
        self._docs[info.doc_id] = info
        self._insert_doc(at, info)
        self._refresh()
        self.select([info.doc_id])

    def set_failed(self, key: str, message: str) -> None:
        if key not in self._pending:
            self.add_pending(key, Path("PDF"))
        item, row = self._pending[key]
        row.show_failed(message)
        _fit(item, row)

    def set_cancelled(self, key: str) -> None:
        self._drop_pending(key)

    def _dismiss(self, key: str) -> None:
        if self._drop_pending(key):
            self.dismissed.emit(key)

    def _drop_pending(self, key: str) -> bool:
        entry = self._pending.pop(key, None)
        if entry is not None:
            self.list.takeItem(self.list.row(entry[0]))
            self._refresh()
        return entry is not None

    # ---------------------------------------------------------------- removing
    def remove_selected(self) -> None:
        """Ask, then request removal of the selected documents."""
        ids = self.selected_ids()
        if not ids:
            return
        if len(ids) == 1:
            info = self._docs[ids[0]]
            text = (
                f"Remove '{info.title or info.path.name}' from the library? "
                "The PDF file itself is not touched."
            )
        else:
            text = (
                f"Remove {len(ids)} documents from the library? "
                "The PDF files themselves are not touched."
            )
        if self.confirm(text):
            self.remove_requested.emit(ids)

    # ---------------------------------------------------------------- menu
    def context_menu(self, doc_id: str) -> QMenu:
        """The menu of a document: Open, Show in folder, Remove (the selection)."""
        info = self._docs[doc_id]
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.document_activated.emit(doc_id))
        folder = menu.addAction("Show in folder", lambda: self.show_in_folder(doc_id))
        folder.setEnabled(info.source_present)
        if not info.source_present:
            folder.setToolTip("The PDF is no longer where it was added from.")
        menu.addSeparator()
        menu.addAction("Remove…", self.remove_selected)
        return menu

    def show_in_folder(self, doc_id: str) -> None:
        self.open_url(QUrl.fromLocalFile(str(self._docs[doc_id].path.parent)))

    def _context_menu(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        doc_id = None if item is None else item.data(ROLE_DOC)
        if item is None or doc_id is None:
            return
        if not item.isSelected():
            self.select([doc_id])
        self.context_menu(doc_id).exec(self.list.viewport().mapToGlobal(pos))

    # ---------------------------------------------------------------- events
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.list and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.selected_ids():
                self.remove_selected()
                return True
        if watched is self.list.viewport() and event.type() == QEvent.Type.MouseButtonPress:
            assert isinstance(event, QMouseEvent)
            if self.list.itemAt(event.position().toPoint()) is None:
                self.list.clearSelection()  # empty space: ask about the whole library
        return super().eventFilter(watched, event)

    @property
    def drop_highlighted(self) -> bool:
        return bool(self.drop_area.property("dropping"))

    def _highlight(self, on: bool) -> None:
        self.drop_area.setProperty("dropping", on)
        self.drop_area.style().unpolish(self.drop_area)
        self.drop_area.style().polish(self.drop_area)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()
            self._highlight(True)
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        event.acceptProposedAction()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self._highlight(False)
        event.accept()

    def dropEvent(self, event: QDropEvent) -> None:
        self._highlight(False)
        urls = event.mimeData().urls()
        paths = [Path(url.toLocalFile()) for url in urls if url.isLocalFile()]
        others = len(urls) - len(paths)
        event.acceptProposedAction()
        if paths:
            self.add_paths(paths)
        if others:
            self.message.emit(
                f"Skipped {others} dropped item(s) that are not files on this computer; "
                "download them first, then add the PDFs."
            )
