"""The library side of the window: adding, removing and showing documents, the first
start with the sample, passwords, and what the answer shows in the PDF view: its
passages highlighted, the lines a citation points to, where the target looked (the
heat overlay). It owns the documents and their passwords; the answers side reaches it
only by its signals and slots (`scope_changed`; `set_answer_passages`, `highlight`,
`reveal`, `show_source`, `show_spot`, `show_evidence`)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QInputDialog, QLineEdit, QWidget

from app.gui import jobs
from app.gui.banner import MessageBanner
from app.gui.library.panel import LibraryPanel
from app.gui.ops import Op, OpRunner
from app.gui.pdf.heat import HeatSpot
from app.gui.pdf.view import Passage, PdfView
from core.api import DocumentInfo
from core.events import ChunkRef, Event, Evidence, IngestProgress, Notice

TITLE = "RapidQA"


class LibraryController(QObject):
    """Documents in, documents out, and what the PDF view shows."""

    scope_changed = Signal(list)  # list[str]: the documents questions are about
    first_start = Signal()  # the sample is being added: suggest its question
    title_changed = Signal(str)  # the window's title (the shown document's)

    def __init__(
        self,
        ops: OpRunner,
        library: LibraryPanel,
        pdf: PdfView,
        banner: MessageBanner,
        store: QSettings,
        sample: Path | None,
        window: QWidget,
    ) -> None:
        super().__init__(window)
        self._ops, self._library, self._pdf = ops, library, pdf
        self._banner, self._store, self._sample = banner, store, sample
        self._window = window  # the dialogs' parent
        self._docs: dict[str, DocumentInfo] = {}
        self._passwords: dict[Path, str] = {}
        self._adds: dict[str, int] = {}  # a pending row's key -> its add's job
        self._keys = itertools.count(1)
        self._answer_chunks: tuple[ChunkRef, ...] = ()  # the answer on screen
        self._pending_passage: Passage | None = None
        self._pending_spot: Passage | None = None
        self._evidence: Evidence | None = None  # the heat overlay's
        library.add_requested.connect(self.add_documents)
        library.remove_requested.connect(self.remove_documents)
        library.cancel_requested.connect(self.cancel_add)
        library.document_activated.connect(self.show_document)
        library.selection_changed.connect(self._scope_changed)
        pdf.password_needed.connect(self._viewer_password)
        pdf.document_opened.connect(self._viewer_opened)

    # ------------------------------------------------------------- documents
    def load_documents(self) -> None:
        """List the library (at start), then add the sample on a first start."""

        def done(docs: list[DocumentInfo]) -> None:
            self._set_documents(docs)
            self._first_start()

        self._ops.submit(
            Op(
                "list",
                jobs.list_documents(),
                on_event=self._notice,
                on_done=done,
                on_failed=self._error,
            )
        )

    def _set_documents(self, docs: Sequence[DocumentInfo]) -> None:
        self._docs = {d.doc_id: d for d in docs}
        self._library.set_documents(list(docs))
        self._scope_changed(self._library.selected_ids())
        if self._pdf.document_path is None and docs:
            self.show_document(docs[-1].doc_id)

    def add_documents(self, paths: Sequence[Path], password: str | None = None) -> None:
        for path in paths:
            self._add(Path(path), password)

    def _add(self, path: Path, password: str | None) -> None:
        key = f"add-{next(self._keys)}"  # its pending row

        def on_event(event: Event) -> None:
            if isinstance(event, IngestProgress):
                self._library.set_progress(key, event)
            else:
                self._notice(event)

        def on_done(result: object) -> None:
            self._adds.pop(key, None)
            self._add_done(key, path, result)

        def on_failed(message: str) -> None:
            self._adds.pop(key, None)
            self._library.set_failed(key, message)  # in its row

        def on_cancelled() -> None:
            self._adds.pop(key, None)
            self._library.set_cancelled(key)

        op = Op(
            "add",
            jobs.add_document(path, password),
            on_event=on_event,
            on_done=on_done,
            on_failed=on_failed,
            on_cancelled=on_cancelled,
        )
        self._adds[key] = self._ops.submit(op)
        self._library.add_pending(key, path)

    def open_pdf(self, path: Path) -> None:
        """Add `path` (a no-op when its bytes are already there), then show it."""
        self.add_documents([path])

    def _add_done(self, key: str, path: Path, result: object) -> None:
        if isinstance(result, jobs.NeedsPassword):
            self._library.set_cancelled(key)
            password = self._ask_password(result.path, result.wrong_password)
            if password is None:
                self._library.add_pending(key, result.path)
                self._library.set_failed(key, result.message)
            else:
                self._passwords[result.path] = password
                self.add_documents([result.path], password)
            return
        assert isinstance(result, DocumentInfo)
        self._docs[result.doc_id] = result
        self._library.set_done(key, result)  # its row, selected: the scope follows
        if path == self._sample:
            self._store.setValue("first_start_done", True)
        self.show_document(result.doc_id)

    def adding(self) -> list[str]:
        """The keys of the pending rows whose add is still queued or running."""
        return list(self._adds)

    def cancel_add(self, key: str) -> None:
        job = self._adds.get(key)
        if job is not None:
            self._ops.cancel(job)

    def remove_documents(self, doc_ids: Sequence[str]) -> None:
        if self._pdf.document_path is not None:
            shown = {d.path for i, d in self._docs.items() if i in doc_ids}
            if self._pdf.document_path in shown:
                self._pdf.open_document(None)

        def done(removed: list[DocumentInfo]) -> None:
            for info in removed:
                self._docs.pop(info.doc_id, None)
            self._set_documents(list(self._docs.values()))

        op = Op(
            "remove",
            jobs.remove_documents(list(doc_ids)),
            on_event=self._notice,
            on_done=done,
            on_failed=self._error,
        )
        self._ops.submit(op)

    def _first_start(self) -> None:
        sample = self._sample
        if sample is None or self._store.value("first_start_done", False, type=bool):
            return
        self.add_documents([sample])  # a no-op add when its bytes are there already
        self.first_start.emit()

    def _notice(self, event: Event) -> None:
        if isinstance(event, Notice):
            self._banner.show_message(event.message, "warning")

    def _error(self, message: str) -> None:
        self._banner.show_message(message, "error")  # the one place, not twice

    # ------------------------------------------------------------- the viewer
    def show_document(self, doc_id: str) -> None:
        info = self._docs.get(doc_id)
        if info is None:
            return
        path = info.path if info.source_present else None
        if path is None:
            self._pdf.open_document(info.path)  # the view says the file is missing
        elif path != self._pdf.document_path:
            self._pdf.open_document(path, self._passwords.get(path))
        self.title_changed.emit(f"{info.title} — {TITLE}")
        self.highlight(self._answer_chunks)
        self._apply_heat()

    def reveal(self, doc_id: str) -> None:
        """Show `doc_id` unless it is the document on screen already."""
        if doc_id != self._shown_doc_id():
            self.show_document(doc_id)

    def _shown_doc_id(self) -> str | None:
        path = self._pdf.document_path
        for doc_id, info in self._docs.items():
            if info.path == path:
                return doc_id
        return None

    def _scope_changed(self, doc_ids: Sequence[str]) -> None:
        self.scope_changed.emit(list(doc_ids))
        if len(doc_ids) == 1:
            self.show_document(doc_ids[0])

    def set_answer_passages(self, chunks: Sequence[ChunkRef]) -> None:
        """The passages of the answer on screen: highlighted, and again in each
        document shown later."""
        self._answer_chunks = tuple(chunks)
        self.highlight(self._answer_chunks)
        self._pdf.overlay.clear_spot()

    def highlight(self, chunks: Sequence[ChunkRef]) -> None:
        """Highlight those of `chunks` that lie in the shown document."""
        shown = self._shown_doc_id()
        passages = [
            Passage(f"[{n}]", c.rects)
            for n, c in enumerate(chunks, start=1)
            if c.doc_id == shown and c.rects
        ]
        self._pdf.set_highlights(passages)

    def show_source(self, index: int, chunk: ChunkRef) -> None:
        """A citation clicked in the answer: its passage, in its document."""
        passage = Passage(f"[{index + 1}]", chunk.rects)
        if chunk.doc_id != self._shown_doc_id():
            self._pending_passage = passage
            self.show_document(chunk.doc_id)
            return
        self._pdf.show_passage(passage)

    def show_spot(self, label: str, spot: ChunkRef) -> None:
        """A sentence's mark clicked: exactly the lines it cites, in their document,
        outlined (the passage they are in stays highlighted)."""
        passage = Passage(label, spot.rects)
        if spot.doc_id != self._shown_doc_id():
            self._pending_spot = passage
            self.show_document(spot.doc_id)
            return
        self._pdf.overlay.show_spot(passage)

    def show_evidence(self, evidence: Evidence | None) -> None:
        """Where the target looked (None: clear it): a heat overlay on the shown
        document, a legend, and the view on the strongest spot (its document shown)."""
        self._evidence = evidence
        if evidence is None or not evidence.spots:
            self._pdf.overlay.clear_heat()
            return
        strongest = evidence.spots[0].ref
        if strongest.doc_id != self._shown_doc_id():
            self.show_document(strongest.doc_id)  # opening: the heat follows when open
        else:
            self._apply_heat()
        self._pdf.overlay.focus(strongest.rects)

    def _apply_heat(self) -> None:
        """The heat overlay of the evidence on screen, for the shown document."""
        ev = self._evidence
        if ev is None or not ev.spots:
            self._pdf.overlay.clear_heat()
            return
        shown = self._shown_doc_id()
        top = max(s.weight for s in ev.spots) or 1.0
        spots = [
            HeatSpot(s.ref.rects, s.weight / top, s.retrieved, f"{s.weight:.0%}" if i < 3 else "")
            for i, s in enumerate(ev.spots)
            if s.ref.doc_id == shown and s.ref.rects
        ]
        self._pdf.overlay.set_heat(spots, heat_summary(ev, shown))

    def _viewer_opened(self, _layout: object) -> None:
        self.highlight(self._answer_chunks)
        self._apply_heat()
        if self._pending_passage is not None:
            passage, self._pending_passage = self._pending_passage, None
            self._pdf.show_passage(passage)
        if self._pending_spot is not None:
            spot, self._pending_spot = self._pending_spot, None
            self._pdf.overlay.show_spot(spot)

    def _viewer_password(self, path: object, wrong: bool) -> None:
        pdf = Path(str(path))
        password = self._ask_password(pdf, wrong)
        if password is not None:
            self._passwords[pdf] = password
            self._pdf.open_document(pdf, password)

    def _ask_password(self, path: Path, wrong: bool) -> str | None:
        prompt = (
            "That password is not right. Try again:"
            if wrong
            else f"“{path.name}” is protected by a password. Enter it to open the document:"
        )
        text, ok = QInputDialog.getText(
            self._window, "Password needed", prompt, QLineEdit.EchoMode.Password
        )
        return text if ok and text else None


def heat_summary(evidence: Evidence, shown: str | None) -> str:
    """The legend's line: the strongest spot, and how many spots on how many pages."""
    top = evidence.spots[0]
    where = "outside" if not top.retrieved else "inside"
    pages = {(s.ref.doc_id, p) for s in evidence.spots for p in s.ref.pages[:1]}
    other = "" if top.ref.doc_id == shown else f" of {top.ref.title}"
    return (
        f"Strongest: {top.ref.page_text or top.ref.title}{other}, {top.weight:.0%} of the "
        f"attention, {where} the retrieved passages. {len(evidence.spots)} spots on "
        f"{len(pages)} pages; found in {evidence.seconds:.1f} s."
    )
