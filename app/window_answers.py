"""The main window's answer routes: ask, cancel, the prefill progress, a finished
answer into the history, compare with the target alone, showing a past answer and
exporting it. A mixin of `MainWindow`, which owns the widgets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog

from app import jobs
from app.history import AnswerRecord, Comparison, to_json, to_markdown, write_atomically
from app.jobs import Run
from app.settings import Settings
from core.events import Finished, PrefillProgress

if TYPE_CHECKING:
    from app.main_window import MainWindow


class AnswerRoutes:
    """From a question to a kept, comparable, exportable answer."""

    def ask_question(self: MainWindow, question: str) -> None:
        if self._answer_job is not None:
            return
        doc_ids = tuple(self.library.selected_ids())
        cfg = self.settings.decode_config()
        self.banner.dismiss()
        self.answer.begin(question)
        self.stats.reset()
        self.pdf.clear_highlights()
        self._last = None
        job = self.submit(
            "ask",
            jobs.ask(question, doc_ids, cfg),
            question=question,
            doc_ids=doc_ids,
            settings=self.settings,
        )
        self._answer_job = job
        self.ask.set_busy(True)
        self._update_actions()

    def cancel_answer(self: MainWindow) -> None:
        if self._answer_job is not None:
            self.worker.cancel(self._answer_job)
            self.ask.show_progress("Cancelling…", None)

    def _prefill(self: MainWindow, run: Run, event: PrefillProgress) -> None:
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
        self.ask.show_progress(text, fraction)
        if run.kind == "ask":
            self.answer.show_status(text)

    def _answer_finished(self: MainWindow, run: Run, finished: Finished) -> None:
        self.answer.finish(finished)
        self.stats.finish(finished)
        run.chunks = finished.chunks or run.chunks
        self._highlight(run.chunks)
        self._last = run
        if finished.stop_reason == "cancelled" or run.settings is None:
            return
        s = run.settings
        record = AnswerRecord(
            question=run.question,
            doc_ids=run.doc_ids,
            titles=tuple(self._docs[i].title for i in run.doc_ids if i in self._docs),
            finished=finished,
            settings=s.summary(),
            tokens=tuple(self.answer.tokens()),
        )
        try:
            self.history.add(record)
        except OSError as err:
            self.banner.show_message(
                f"The answer could not be saved to the history ({err}). "
                "Free some disk space; the answer stays on screen.",
                "warning",
            )
        run.record = record
        self._refresh_history()

    def compare_with_target(self: MainWindow) -> None:
        last = self._last
        if last is None or last.finished is None or self._answer_job is not None:
            return
        if last.finished.mode == "target":
            self.banner.show_message("This answer already comes from the target alone.", "info")
            return
        assert last.settings is not None
        cfg = last.settings.decode_config()
        job = self.submit(
            "compare",
            jobs.compare_with_target(last.question, last.doc_ids, cfg),
            question=last.question,
            doc_ids=last.doc_ids,
            settings=last.settings,
            of=last,
        )
        self._answer_job = job
        self.ask.set_busy(True)
        self.stats.set_comparing(True)
        self._update_actions()

    def _compare_finished(self: MainWindow, run: Run, baseline: Finished) -> None:
        of = run.of
        self.stats.set_comparing(False)
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
                of.record = self.history.update(of.record, comparison=comparison)
            except OSError:
                pass
            self._refresh_history()

    def _show_comparison(self: MainWindow, c: Comparison) -> None:
        self.stats.show_comparison(c.speedup, c.identical, c.target_tokens_per_s, c.tokens_per_s)

    def _refresh_history(self: MainWindow) -> None:
        """The history list: the answers about the selected documents."""
        self.history_list.set_records(self.history.about(self.library.selected_ids()))

    def show_record(self: MainWindow, record: AnswerRecord) -> None:
        """Show a past answer again (its tokens keep their colours)."""
        if self._answer_job is not None:
            return
        self.answer.restore(record.question, list(record.tokens), record.finished)
        self.stats.reset()
        self.stats.finish(record.finished)
        if record.comparison is not None:
            self._show_comparison(record.comparison)
        self.ask.set_question(record.question)
        settings = Settings.from_summary(record.settings, self.settings)
        self._last = Run(
            "ask",
            question=record.question,
            doc_ids=record.doc_ids,
            settings=settings,
            finished=record.finished,
            chunks=record.finished.chunks,
            record=record,
        )
        first = next((c.doc_id for c in record.finished.chunks), None)
        if first is not None and first != self._shown_doc_id():
            self.show_document(first)
        self._highlight(self._last.chunks)
        self._update_actions()

    def export_answer(self: MainWindow, fmt: str) -> None:
        if self._last is None or self._last.record is None:
            self.statusBar().showMessage("There is no finished answer to export yet.", 5000)
            return
        self._export_record(self._last.record, fmt)

    def _export_record(self: MainWindow, record: AnswerRecord, fmt: str) -> None:
        suffix = ".md" if fmt == "md" else ".json"
        name = "".join(ch if ch.isalnum() else "-" for ch in record.question[:40]).strip("-")
        folder = str(self.store.value("export_folder", str(Path.home())))
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export answer",
            str(Path(folder) / f"{name or 'answer'}{suffix}"),
            "Markdown (*.md)" if fmt == "md" else "JSON (*.json)",
        )
        if path:
            self.write_export(record, Path(path), fmt)

    def write_export(self: MainWindow, record: AnswerRecord, path: Path, fmt: str) -> bool:
        text = to_markdown(record) if fmt == "md" else to_json(record)
        try:
            write_atomically(path, lambda out: out.write(text))
        except OSError as err:
            self.banner.show_message(
                f"Could not write {path} ({err.strerror or err}). Choose "
                "another folder or free some disk space.",
                "error",
            )
            return False
        self.store.setValue("export_folder", str(path.parent))
        self.statusBar().showMessage(f"Exported to {path}", 6000)
        return True

    def _delete_record(self: MainWindow, record: AnswerRecord) -> None:
        try:
            self.history.remove(record)
        except OSError as err:
            self.banner.show_message(f"The history could not be saved ({err}).", "warning")
        self._refresh_history()
