"""The answers side of the window: ask, cancel, the prefill progress (and a
preliminary answer while the target reads), a finished answer into the history,
compare with the target alone, a citation's lines and where the target looked for a
run beyond the passages (app/gui/answers/provenance.py), showing a past answer and
exporting it. It owns the answer on screen and the job running for it; the library
side hears of the answer's passages, spots and evidence only through its signals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from app.gui import jobs
from app.gui.answers.ask_panel import AskPanel
from app.gui.answers.history_panel import HistoryPanel
from app.gui.answers.provenance import Answer, EvidenceFinder
from app.gui.answers.stats_panel import StatsPanel
from app.gui.answers.view import AnswerView
from app.gui.banner import MessageBanner
from app.gui.export import to_json, to_markdown
from app.gui.history import AnswerRecord, Comparison, HistoryStore, write_atomically
from app.gui.library.panel import LibraryPanel
from app.gui.ops import Op, OpRunner
from app.gui.settings import Settings
from core.events import (
    BeyondRun,
    Calibrated,
    DraftStep,
    Event,
    Finished,
    Notice,
    PrefillProgress,
    PreliminaryAnswer,
    PreliminaryToken,
    Retrieved,
    Status,
)

__all__ = ["Answer", "AnswersController"]


class AnswersController(QObject):
    """From a question to a kept, comparable, exportable answer."""

    answer_passages = Signal(tuple)  # tuple[ChunkRef]: the passages of the answer shown
    passages_retrieved = Signal(tuple)  # tuple[ChunkRef]: found for the answer streaming
    document_wanted = Signal(str)  # doc id: the document a past answer cites first
    spot_wanted = Signal(str, object)  # a mark's label ("[2]") and the lines it cites
    evidence_changed = Signal(object)  # Evidence or None: where the target looked
    message = Signal(str, int)  # a status bar message and how long it shows (ms)
    changed = Signal()  # answering, or the answer on screen, changed (the actions)

    def __init__(
        self,
        ops: OpRunner,
        widgets: tuple[AskPanel, AnswerView, StatsPanel, HistoryPanel, LibraryPanel],
        banner: MessageBanner,
        history: HistoryStore,
        store: QSettings,
        settings: Settings,
        window: QWidget,
    ) -> None:
        super().__init__(window)
        self._ops = ops
        self._ask, self._answer, self._stats, self._history_list, self._library = widgets
        self._banner, self._history, self._store = banner, history, store
        self._settings = settings
        self._window = window  # the dialogs' parent
        self._job: int | None = None  # the answer or comparison running
        self._last: Answer | None = None  # the answer on screen (for compare / export)
        self._ask.ask_requested.connect(self.ask_question)
        self._ask.cancel_requested.connect(self.cancel_answer)
        self._stats.compare_requested.connect(self.compare_with_target)
        self._history_list.record_chosen.connect(self.show_record)
        self._history_list.export_requested.connect(self.export_record)
        self._history_list.delete_requested.connect(self._delete_record)
        self._evidence = EvidenceFinder(ops, self._answer, self._ask, banner, history, self)
        self._evidence.evidence_changed.connect(self.evidence_changed)
        self._evidence.message.connect(self.message)
        self._evidence.history_changed.connect(self.refresh_history)
        self._answer.citation_clicked.connect(self.spot_wanted)
        self._answer.beyond_clicked.connect(self.show_evidence)
        self._answer.cite_evidence_requested.connect(self.cite_evidence)

    # ------------------------------------------------------------------ state
    @property
    def answering(self) -> bool:
        """Whether an answer or a comparison is running."""
        return self._job is not None

    @property
    def has_answer(self) -> bool:
        """Whether a finished answer is on screen (it can be compared)."""
        return self._last is not None and self._last.finished is not None

    @property
    def has_record(self) -> bool:
        """Whether the answer on screen is kept in the history (it can be exported)."""
        return self._last is not None and self._last.record is not None

    @property
    def finished(self) -> Finished | None:
        """The finished answer on screen (None while answering or before any)."""
        return None if self._last is None else self._last.finished

    def set_settings(self, settings: Settings) -> None:
        """The settings the next question is answered with."""
        self._settings = settings

    # -------------------------------------------------------------------- ask
    def ask_question(self, question: str) -> None:
        if self._job is not None:
            return
        doc_ids = tuple(self._library.selected_ids())
        run = Answer(question, doc_ids, self._settings)
        self._banner.dismiss()
        self._answer.begin(question)
        self._stats.reset()
        self._last = None
        self.answer_passages.emit(())
        self._evidence.clear()

        def on_event(event: Event) -> None:
            if isinstance(event, Status):
                self._answer.show_status(event.message)
            elif isinstance(event, PreliminaryToken):
                self._answer.add_preliminary(event.text)
            elif isinstance(event, PreliminaryAnswer):
                self._answer.preliminary_done(event.answer)
                self.message.emit(f"Preliminary answer in {event.seconds:.1f} s; the target "
                                  "is still reading the document.", 8000)  # fmt: skip
            elif isinstance(event, Notice):
                self._answer.show_notice(event.message, event.level)
            elif isinstance(event, Retrieved):
                if event.role == "drafter" or not run.chunks:
                    run.chunks = event.chunks
                    self.passages_retrieved.emit(run.chunks)
            elif isinstance(event, PrefillProgress):
                self._answer.show_status(self._prefill(event))
            elif isinstance(event, Calibrated):
                self._stats.set_baseline(event.step_s)
            elif isinstance(event, Finished):
                self._answer_finished(run, event)

        def on_cancelled() -> None:
            if run.finished is None and self._answer.cancel_preliminary():
                self._answer.show_notice(CANCELLED_READING, "info")
            elif run.finished is None:
                self._answer.show_notice("Cancelled before the answer began.", "info")
            self._job_over()

        op = Op(
            "ask",
            jobs.ask(question, doc_ids, run.settings.decode_config()),
            on_started=self._preparing,
            on_event=on_event,
            on_steps=self._steps,
            on_done=lambda _result: self._job_over(),
            on_failed=self._failed,
            on_cancelled=on_cancelled,
        )
        self._job = self._ops.submit(op)
        self._ask.set_busy(True)
        self.changed.emit()

    def cancel_answer(self) -> None:
        if self._job is not None:
            self._ops.cancel(self._job)
            self._ask.show_progress("Cancelling…", None)

    def _preparing(self) -> None:
        self._ask.show_progress("Preparing…", None)

    def _prefill(self, event: PrefillProgress) -> str:
        """Show how far the prefill is in the ask panel; returns the text shown."""
        who = "the document" if event.role == "target" else "the retrieved passages"
        if event.cached_tokens and event.done_tokens <= event.cached_tokens:
            text = f"Reading {who}: {event.cached_tokens:,} tokens from the cache"
        else:
            eta = event.eta_s
            left = f" · about {eta:.0f} s left" if eta is not None else ""
            text = (
                f"Reading {who}: {event.done_tokens:,} of {event.total_tokens:,} tokens"
                f" · {event.seconds:.0f} s{left} · Esc cancels"
            )
        fraction = event.done_tokens / event.total_tokens if event.total_tokens else 1.0
        self._ask.show_progress(text, fraction)
        return text

    def _steps(self, steps: list[DraftStep]) -> None:
        if self._ask.progress.isVisible():
            self._ask.hide_progress()
        self._answer.add_steps(steps)
        self._stats.add_steps(steps)

    def _failed(self, message: str) -> None:
        self._banner.show_message(message, "error")  # the one place, not twice
        self._job_over()

    def _job_over(self) -> None:
        self._job = None
        self._ask.set_busy(False)
        self.changed.emit()

    def _answer_finished(self, run: Answer, finished: Finished) -> None:
        if finished.stop_reason == "cancelled" and self._answer.cancel_preliminary():
            self._answer.show_notice(CANCELLED_READING, "info")
        self._answer.finish(finished)
        if not finished.preliminary and self._answer.preliminary_text():
            finished = replace(finished, preliminary=self._answer.preliminary_text())
        run.finished = finished
        self._stats.finish(finished)
        run.chunks = finished.chunks or run.chunks
        self._last = run
        self.answer_passages.emit(run.chunks)
        if finished.stop_reason == "cancelled":
            return
        titles = {d.doc_id: d.title for d in self._library.documents()}
        record = AnswerRecord(
            question=run.question,
            doc_ids=run.doc_ids,
            titles=tuple(titles[i] for i in run.doc_ids if i in titles),
            finished=finished,
            settings=run.settings.summary(),
            tokens=tuple(self._answer.tokens()),
        )
        try:
            self._history.add(record)
        except OSError as err:
            self._banner.show_message(
                f"The answer could not be saved to the history ({err}). "
                "Free some disk space; the answer stays on screen.",
                "warning",
            )
        run.record = record
        self.refresh_history()

    # ------------------------------------------------------------- provenance
    def show_evidence(self, run: BeyondRun) -> None:
        """Where the target looked while writing `run` of the answer on screen: a job
        on the engine's thread (Esc cancels), then a heat overlay on the PDF."""
        last = self._last
        if self._job is not None:
            self.message.emit("Wait for the running job to end (or cancel it) first.", 5000)
            return
        if last is None or last.finished is None:
            return
        job = self._evidence.find(last, run, self._job_over)
        if job is not None:
            self._job = job
            self._ask.set_busy(True)
            self.changed.emit()

    def cite_evidence(self) -> None:
        """ "Cite it": the evidence outside the passages becomes a numbered mark."""
        if self._last is not None:
            self._evidence.cite(self._last)

    # ---------------------------------------------------------------- compare
    def compare_with_target(self) -> None:
        last = self._last
        if last is None or last.finished is None or self._job is not None:
            return
        if last.finished.mode == "target":
            self._banner.show_message("This answer already comes from the target alone.", "info")
            return
        run = Answer(last.question, last.doc_ids, last.settings, of=last)
        cfg = last.settings.decode_config()

        def on_event(event: Event) -> None:
            if isinstance(event, PrefillProgress):
                self._prefill(event)
            elif isinstance(event, Finished):
                run.finished = event
                self._compare_finished(run, event)

        def over(*_result: object) -> None:
            self._stats.set_comparing(False)
            self._job_over()

        def failed(message: str) -> None:
            self._banner.show_message(message, "error")
            over()

        op = Op(
            "compare",
            jobs.compare_with_target(last.question, last.doc_ids, cfg),
            on_started=self._preparing,
            on_event=on_event,
            on_done=over,
            on_failed=failed,
            on_cancelled=over,
        )
        self._job = self._ops.submit(op)
        self._ask.set_busy(True)
        self._stats.set_comparing(True)
        self.changed.emit()

    def _compare_finished(self, run: Answer, baseline: Finished) -> None:
        of = run.of
        self._stats.set_comparing(False)
        if baseline.stop_reason == "cancelled" or of is None or of.finished is None:
            return
        fin = of.finished
        comparison = Comparison(
            baseline.tokens_per_s,
            fin.tokens_per_s,
            baseline.answer.strip() == fin.answer.strip(),
            baseline.answer,
        )
        self._show_comparison(comparison)
        if of.record is not None:
            try:
                of.record = self._history.update(of.record, comparison=comparison)
            except OSError:
                pass
            self.refresh_history()

    def _show_comparison(self, c: Comparison) -> None:
        self._stats.show_comparison(c.speedup, c.identical, c.target_tokens_per_s, c.tokens_per_s)

    # ---------------------------------------------------------------- history
    def refresh_history(self) -> None:
        """The history list: the answers about the selected documents."""
        self._history_list.set_records(self._history.about(self._library.selected_ids()))

    def show_record(self, record: AnswerRecord) -> None:
        """Show a past answer again (its tokens keep their colours)."""
        if self._job is not None:
            return
        self._evidence.clear()
        self._answer.restore(record.question, list(record.tokens), record.finished, record.added)
        self._stats.reset()
        self._stats.finish(record.finished)
        if record.comparison is not None:
            self._show_comparison(record.comparison)
        self._ask.set_question(record.question)
        settings = Settings.from_summary(record.settings, self._settings)
        self._last = Answer(
            record.question,
            record.doc_ids,
            settings,
            finished=record.finished,
            chunks=record.finished.chunks,
            record=record,
            added=record.added,
        )
        self.answer_passages.emit(self._last.chunks)
        first = next((c.doc_id for c in record.finished.chunks), None)
        if first is not None:
            self.document_wanted.emit(first)
        self.changed.emit()

    def export_answer(self, fmt: str) -> None:
        if self._last is None or self._last.record is None:
            self.message.emit("There is no finished answer to export yet.", 5000)
            return
        self.export_record(self._last.record, fmt)

    def export_record(self, record: AnswerRecord, fmt: str) -> None:
        suffix = ".md" if fmt == "md" else ".json"
        name = "".join(ch if ch.isalnum() else "-" for ch in record.question[:40]).strip("-")
        folder = str(self._store.value("export_folder", str(Path.home())))
        path, _ = QFileDialog.getSaveFileName(
            self._window,
            "Export answer",
            str(Path(folder) / f"{name or 'answer'}{suffix}"),
            "Markdown (*.md)" if fmt == "md" else "JSON (*.json)",
        )
        if path:
            self.write_export(record, Path(path), fmt)

    def write_export(self, record: AnswerRecord, path: Path, fmt: str) -> bool:
        text = to_markdown(record) if fmt == "md" else to_json(record)
        try:
            write_atomically(path, lambda out: out.write(text))
        except OSError as err:
            self._banner.show_message(
                f"Could not write {path} ({err.strerror or err}). Choose "
                "another folder or free some disk space.",
                "error",
            )
            return False
        self._store.setValue("export_folder", str(path.parent))
        self.message.emit(f"Exported to {path}", 6000)
        return True

    def _delete_record(self, record: AnswerRecord) -> None:
        try:
            self._history.remove(record)
        except OSError as err:
            self._banner.show_message(f"The history could not be saved ({err}).", "warning")
        self.refresh_history()


CANCELLED_READING = (
    "Cancelled while the target was reading the document: only the preliminary answer "
    "(the drafter on the retrieved passages) is shown."
)
