"""The main window's library and viewer routes: adding, removing and showing
documents, the first start with the sample, passwords, and the retrieved passages
highlighted in the PDF view. A mixin of `MainWindow`, which owns the widgets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QInputDialog, QLineEdit

from app import jobs
from app.jobs import Run
from app.pdf_view import Passage
from core.api import DocumentInfo
from core.events import ChunkRef

if TYPE_CHECKING:
    from app.main_window import MainWindow

TITLE = "RapidQA"


class LibraryRoutes:
    """Documents in, documents out, and what the PDF view shows."""

    def _set_documents(self: MainWindow, docs: Sequence[DocumentInfo]) -> None:
        self._docs = {d.doc_id: d for d in docs}
        self.library.set_documents(list(docs))
        self._scope_changed(self.library.selected_ids())
        if self.pdf.document_path is None and docs:
            self.show_document(docs[-1].doc_id)

    def add_documents(self: MainWindow, paths: Sequence[Path], password: str | None = None) -> None:
        for path in paths:
            job = self.worker.submit("add", jobs.add_document(Path(path), password))
            key = f"add-{job}"
            self._runs[job] = Run("add", key=key, path=Path(path))
            self.library.add_pending(key, Path(path))

    def open_pdf(self: MainWindow, path: Path) -> None:
        """Add `path` (a no-op when its bytes are already there), then show it."""
        self.add_documents([path])

    def _add_done(self: MainWindow, run: Run, result: object) -> None:
        if isinstance(result, jobs.NeedsPassword):
            self.library.set_cancelled(run.key)
            password = self._ask_password(result.path, result.wrong_password)
            if password is None:
                self.library.add_pending(run.key, result.path)
                self.library.set_failed(run.key, result.message)
            else:
                self._passwords[result.path] = password
                self.add_documents([result.path], password)
            return
        assert isinstance(result, DocumentInfo)
        self._docs[result.doc_id] = result
        self.library.set_done(run.key, result)  # its row, selected: the scope follows
        if run.path == self._sample:
            self.store.setValue("first_start_done", True)
        self.show_document(result.doc_id)

    def remove_documents(self: MainWindow, doc_ids: Sequence[str]) -> None:
        if self.pdf.document_path is not None:
            shown = {d.path for i, d in self._docs.items() if i in doc_ids}
            if self.pdf.document_path in shown:
                self.pdf.open_document(None)
        self.submit("remove", jobs.remove_documents(list(doc_ids)))

    def _cancel_add(self: MainWindow, key: str) -> None:
        for job, run in self._runs.items():
            if run.kind == "add" and run.key == key:
                self.worker.cancel(job)

    def _first_start(self: MainWindow) -> None:
        sample = self._sample
        if sample is None or self.store.value("first_start_done", False, type=bool):
            return
        self.add_documents([sample])  # a no-op add when its bytes are there already
        if not self.ask.question():
            self.ask.set_question(self._sample_question)

    def show_document(self: MainWindow, doc_id: str) -> None:
        info = self._docs.get(doc_id)
        if info is None:
            return
        path = info.path if info.source_present else None
        if path is None:
            self.pdf.open_document(info.path)  # the view says the file is missing
        elif path != self.pdf.document_path:
            self.pdf.open_document(path, self._passwords.get(path))
        self.setWindowTitle(f"{info.title} — {TITLE}")
        self._highlight(self._last.chunks if self._last else ())

    def _shown_doc_id(self: MainWindow) -> str | None:
        path = self.pdf.document_path
        for doc_id, info in self._docs.items():
            if info.path == path:
                return doc_id
        return None

    def _scope_changed(self: MainWindow, doc_ids: Sequence[str]) -> None:
        self._refresh_history()
        if len(doc_ids) == 1:
            self.show_document(doc_ids[0])

    def _highlight(self: MainWindow, chunks: Sequence[ChunkRef]) -> None:
        shown = self._shown_doc_id()
        passages = [
            Passage(f"[{n}]", c.rects)
            for n, c in enumerate(chunks, start=1)
            if c.doc_id == shown and c.rects
        ]
        self.pdf.set_highlights(passages)

    def _source_clicked(self: MainWindow, index: int, chunk: ChunkRef) -> None:
        passage = Passage(f"[{index + 1}]", chunk.rects)
        if chunk.doc_id != self._shown_doc_id():
            self._pending_passage = passage
            self.show_document(chunk.doc_id)
            return
        self.pdf.show_passage(passage)

    def _viewer_opened(self: MainWindow, _layout: object) -> None:
        self._highlight(self._last.chunks if self._last else ())
        if self._pending_passage is not None:
            passage, self._pending_passage = self._pending_passage, None
            self.pdf.show_passage(passage)

    def _viewer_password(self: MainWindow, path: object, wrong: bool) -> None:
        pdf = Path(str(path))
        password = self._ask_password(pdf, wrong)
        if password is not None:
            self._passwords[pdf] = password
            self.pdf.open_document(pdf, password)

    def _ask_password(self: MainWindow, path: Path, wrong: bool) -> str | None:
        prompt = (
            "That password is not right. Try again:"
            if wrong
            else f"“{path.name}” is protected by a password. Enter it to open the document:"
        )
        text, ok = QInputDialog.getText(
            self, "Password needed", prompt, QLineEdit.EchoMode.Password
        )
        return text if ok and text else None
