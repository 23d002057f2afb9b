"""The library sidebar: document rows, indexing rows, drop-to-add, removal, context
menu and the selection that says which documents a question is about (pytest-qt)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.gui.library.panel import EMPTY_TEXT, LibraryPanel
from app.gui.library.rows import eta_text, scan_drop, stage_text
from core.api import DocumentInfo
from core.events import IngestProgress
from tests.conftest import MakePdf

pytestmark = pytest.mark.gui


def _info(
    doc_id: str, title: str, path: Path, pages: int = 120, tokens: int = 48_200
) -> DocumentInfo:
    return DocumentInfo(
        doc_id=doc_id, sha256=doc_id * 4, path=path, title=title, pages=pages, tokens=tokens,
        chars=tokens * 4, size=1000, added=0.0, notes=(), chunking="x", chunks=3, units=9,
    )  # fmt: skip


@pytest.fixture
def pdfs(make_pdf: MakePdf) -> list[Path]:
    return [make_pdf(["one"], name="a.pdf"), make_pdf(["two"], name="b.pdf")]


@pytest.fixture
def docs(pdfs: list[Path], tmp_path: Path) -> list[DocumentInfo]:
    return [
        _info("d1", "R Data Import/Export", pdfs[0]),
        _info("d2", "An Introduction to R", pdfs[1], pages=1, tokens=2_415),
        _info("d3", "Gone", tmp_path / "deleted.pdf"),
    ]


@pytest.fixture
def panel(qtbot, docs: list[DocumentInfo]) -> LibraryPanel:  # type: ignore[no-untyped-def]
    widget = LibraryPanel()
    qtbot.addWidget(widget)
    widget.resize(360, 500)
    widget.set_documents(docs)
    widget.show()
    return widget


def _progress(stage: str, done: int, total: int, eta: float | None = None) -> IngestProgress:
    return IngestProgress("Big manual", stage, done, total, eta)  # type: ignore[arg-type]


def test_rows_show_titles_pages_and_missing_marker(panel: LibraryPanel) -> None:
    assert panel.list.count() == 3
    row = panel.row_widget("d1")
    assert row.title.full_text() == "R Data Import/Export"
    assert row.title.font().bold()
    assert row.meta.text() == "120 pages · 48,200 tokens"
    assert panel.row_widget("d2").meta.text() == "1 page · 2,415 tokens"
    assert row.missing.isHidden()
    gone = panel.row_widget("d3").missing
    assert gone.isVisible() and gone.text() == "file missing"
    assert "library's copy" in gone.toolTip()
    assert panel.drop_area.isVisible() and not panel.empty.isVisible()


def test_empty_state(qtbot) -> None:  # type: ignore[no-untyped-def]
    widget = LibraryPanel()
    qtbot.addWidget(widget)
    widget.show()
    assert widget.empty.isVisible() and widget.empty.text() == EMPTY_TEXT
    assert not widget.scope.isVisible()
    assert not widget.remove_button.isEnabled()
    widget.add_pending("k", Path("/x/new.pdf"))
    assert not widget.empty.isVisible() and widget.list.isVisible()


def test_pending_progress_done_flow(qtbot, panel: LibraryPanel, pdfs: list[Path]) -> None:  # type: ignore[no-untyped-def]
    panel.add_pending("job1", Path("/books/manual.pdf"))
    row = panel.pending_row("job1")
    assert row is not None
    assert row.name.full_text() == "manual.pdf" and row.stage.full_text() == "Waiting…"
    assert row.bar.isHidden()
    assert panel.list.count() == 4

    panel.set_progress("job1", _progress("read", 120, 2415, eta=130))
    assert row.bar.isVisible()
    assert row.bar.value() == round((0.10 * 120 / 2415) * row.bar.maximum())
    assert row.stage.full_text() == "Reading pages 120 of 2,415"
    assert row.eta.text() == "about 2 min left"
    assert row.name.full_text() == "Big manual"
    panel.set_progress("job1", _progress("embed", 300, 4000))
    assert row.stage.full_text() == "Embedding passages 300 of 4,000"
    assert row.bar.value() == round((0.15 + 0.80 * 300 / 4000) * row.bar.maximum())
    assert row.eta.text() == ""

    new = _info("d4", "Big manual", pdfs[0])
    with qtbot.waitSignal(panel.selection_changed) as sel:
        panel.set_done("job1", new)
    assert sel.args == [["d4"]]
    assert panel.pending_row("job1") is None
    assert panel.list.count() == 4
    assert panel.row_widget("d4").title.full_text() == "Big manual"
    assert panel.selected_ids() == ["d4"]


def test_stage_and_eta_wording() -> None:
    assert stage_text(_progress("split", 0, 1)) == "Cutting into passages"
    assert stage_text(_progress("save", 0, 1)) == "Saving"
    assert eta_text(None) == ""
    assert eta_text(20) == "less than a minute left"
    assert eta_text(150) == "about 2 min left"
    assert eta_text(3 * 3600) == "about 3.0 h left"


def test_failed_row_and_dismiss(qtbot, panel: LibraryPanel) -> None:  # type: ignore[no-untyped-def]
    panel.add_pending("k", Path("/books/locked.pdf"))
    reason = "The PDF is encrypted. Open it with its password and save a copy without one."
    panel.set_failed("k", reason)
    row = panel.pending_row("k")
    assert row is not None and row.failed
    assert row.name.full_text() == "locked.pdf"
    assert row.reason.full_text() == reason and row.reason.toolTip() == reason
    assert row.dismiss.isVisible() and row.cancel.isHidden() and row.bar.isHidden()
    with qtbot.waitSignal(panel.dismissed) as dismissed:
        qtbot.mouseClick(row.dismiss, Qt.MouseButton.LeftButton)
    assert dismissed.args == ["k"]
    assert panel.pending_row("k") is None and panel.list.count() == 3


def test_cancel_button_and_cancelled(qtbot, panel: LibraryPanel) -> None:  # type: ignore[no-untyped-def]
    panel.add_pending("k", Path("/books/slow.pdf"))
    row = panel.pending_row("k")
    assert row is not None
    with qtbot.waitSignal(panel.cancel_requested) as cancel:
        qtbot.mouseClick(row.cancel, Qt.MouseButton.LeftButton)
    assert cancel.args == ["k"]
    panel.set_cancelled("k")
    assert panel.pending_row("k") is None and panel.list.count() == 3


def test_set_documents_keeps_pending_rows_and_selection(
    panel: LibraryPanel, docs: list[DocumentInfo]
) -> None:
    panel.add_pending("k", Path("/books/slow.pdf"))
    panel.select(["d1", "d2"])
    panel.set_documents([docs[1], docs[2]])
    assert panel.selected_ids() == ["d2"]
    assert panel.pending_row("k") is not None
    assert panel.list.count() == 3
    assert panel.list.item(2).data(Qt.ItemDataRole.UserRole + 2) == "k"  # pending stays last


def _drop(panel: LibraryPanel, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    target = panel.list.viewport()  # a child: the event goes up to the panel
    with warnings.catch_warnings():  # PySide6 marks the QPoint overload deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(
            QPoint(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )  # fmt: skip
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted() and panel.drop_highlighted
    drop = QDropEvent(
        QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    QApplication.sendEvent(target, drop)
    assert drop.isAccepted()
    assert not panel.drop_highlighted


def test_drop_pdfs_folder_and_text_file(
    qtbot,
    panel: LibraryPanel,
    tmp_path: Path,
    make_pdf: MakePdf,  # type: ignore[no-untyped-def]
) -> None:
    single = make_pdf(["x"], name="single.pdf")
    folder = tmp_path / "papers"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.pdf", "A.PDF", "sub/c.pdf", "notes.md"):
        (folder / name).write_bytes(b"%PDF-1.7\n")
    text = tmp_path / "readme.txt"
    text.write_text("hi")
    added: list[list[Path]] = []
    messages: list[str] = []
    panel.add_requested.connect(added.append)
    panel.message.connect(messages.append)
    _drop(panel, [single, folder, text])
    assert added == [[single, folder / "A.PDF", folder / "b.pdf", folder / "sub" / "c.pdf"]]
    assert len(messages) == 1
    assert "readme.txt" in messages[0] and "not a PDF" in messages[0]
    assert "notes.md" not in messages[0]


def test_drop_of_nothing_usable_only_reports(panel: LibraryPanel, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for name in ("a.txt", "b.png"):
        (tmp_path / name).write_text("x")
    scan = scan_drop([tmp_path / "a.txt", tmp_path / "b.png", tmp_path / "empty"])
    assert scan.pdfs == []
    assert scan.message().startswith("Skipped 2 files that are not PDFs: a.txt, b.png")
    assert "No PDFs found in empty" in scan.message()
    added: list[list[Path]] = []
    panel.add_requested.connect(added.append)
    panel.add_paths([tmp_path / "a.txt"])
    assert added == []


def test_add_button_uses_file_picker(panel: LibraryPanel, pdfs: list[Path]) -> None:
    added: list[list[Path]] = []
    panel.add_requested.connect(added.append)
    panel.pick_files = lambda: [pdfs[1]]
    panel.add_button.click()
    panel.pick_files = lambda: []
    panel.add_button.click()
    assert added == [[pdfs[1]]]


@pytest.mark.parametrize("answer", [True, False])
def test_remove_asks_first(qtbot, panel: LibraryPanel, answer: bool) -> None:  # type: ignore[no-untyped-def]
    asked: list[str] = []

    def confirm(text: str) -> bool:
        asked.append(text)
        return answer

    panel.confirm = confirm
    removed: list[list[str]] = []
    panel.remove_requested.connect(removed.append)
    assert not panel.remove_button.isEnabled()
    panel.select(["d2"])
    assert panel.remove_button.isEnabled()
    panel.remove_button.click()
    assert asked == [
        "Remove 'An Introduction to R' from the library? The PDF file itself is not touched."
    ]
    assert removed == ([["d2"]] if answer else [])
    panel.select(["d1", "d3"])
    qtbot.keyClick(panel.list, Qt.Key.Key_Delete)
    assert asked[1].startswith("Remove 2 documents from the library?")
    assert removed == ([["d2"], ["d1", "d3"]] if answer else [])


def test_selection_signals_and_scope_line(qtbot, panel: LibraryPanel) -> None:  # type: ignore[no-untyped-def]
    assert panel.selected_ids() == []
    assert panel.scope.full_text() == "Asking about: all 3 documents"
    with qtbot.waitSignal(panel.selection_changed) as sel:
        panel.select(["d3", "d1"])
    assert sel.args == [["d1", "d3"]]
    assert panel.scope.full_text() == "Asking about: 2 selected"

    activated: list[str] = []
    panel.document_activated.connect(activated.append)
    rect = panel.list.visualItemRect(panel.list.item(1))
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert panel.selected_ids() == ["d2"]
    assert activated == ["d2"]
    assert panel.scope.full_text() == "Asking about: An Introduction to R"

    empty = QPoint(10, panel.list.viewport().height() - 5)
    assert panel.list.itemAt(empty) is None
    with qtbot.waitSignal(panel.selection_changed) as sel:
        qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=empty)
    assert sel.args == [[]]
    assert panel.scope.full_text() == "Asking about: all 3 documents"


def test_double_click_opens(qtbot, panel: LibraryPanel) -> None:  # type: ignore[no-untyped-def]
    rect = panel.list.visualItemRect(panel.list.item(0))
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with qtbot.waitSignal(panel.document_activated) as opened:  # QTest sends no 2nd press
        qtbot.mouseDClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert opened.args == ["d1"]


def test_context_menu_actions(qtbot, panel: LibraryPanel, pdfs: list[Path]) -> None:  # type: ignore[no-untyped-def]
    opened: list[QUrl] = []
    panel.open_url = lambda url: opened.append(url) or True
    panel.confirm = lambda text: True
    menu = panel.context_menu("d1")
    actions = {a.text(): a for a in menu.actions() if a.text()}
    assert list(actions) == ["Open", "Show in folder", "Remove…"]
    with qtbot.waitSignal(panel.document_activated) as act:
        actions["Open"].trigger()
    assert act.args == ["d1"]
    actions["Show in folder"].trigger()
    assert [Path(u.toLocalFile()) for u in opened] == [pdfs[0].parent]
    panel.select(["d1"])
    with qtbot.waitSignal(panel.remove_requested) as removed:
        actions["Remove…"].trigger()
    assert removed.args == [["d1"]]
    missing = {a.text(): a for a in panel.context_menu("d3").actions() if a.text()}
    assert not missing["Show in folder"].isEnabled()


def test_drag_without_files_is_refused(panel: LibraryPanel) -> None:
    mime = QMimeData()
    mime.setText("just text")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(
            QPoint(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )  # fmt: skip
    QApplication.sendEvent(panel, enter)
    assert not enter.isAccepted() and not panel.drop_highlighted


def test_adding_a_document_already_there_keeps_one_row(panel: LibraryPanel, docs) -> None:  # type: ignore[no-untyped-def]
    panel.set_progress("again", _progress("read", 1, 1))  # progress before add_pending
    assert panel.pending_row("again") is not None and panel.list.count() == 4
    panel.set_done("again", docs[1])
    assert panel.list.count() == 3
    assert panel.selected_ids() == ["d2"]


def test_long_title_is_elided_with_full_text_kept(panel: LibraryPanel, pdfs: list[Path]) -> None:
    title = "A very long manual title " * 8
    panel.set_documents([_info("long", title, pdfs[0])])
    panel.resize(240, 400)
    QApplication.processEvents()
    label = panel.row_widget("long").title
    assert label.full_text() == title
    assert label.text().endswith("…") and len(label.text()) < len(title)
    assert panel.scope.full_text() == f"Asking about: {title}"
