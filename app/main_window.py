"""The main window: lays out the widgets, builds the menus and routes the engine
worker's signals to the widgets. No model, tensor or PDF is touched here."""

from __future__ import annotations

import gc
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app import jobs
from app.answer_view import AnswerView
from app.ask_panel import AskPanel
from app.errors import MessageBanner
from app.history import HistoryStore
from app.history_panel import HistoryPanel
from app.jobs import Run
from app.library_panel import LibraryPanel
from app.pdf_view import Passage, PdfView
from app.settings import Settings, SettingsDialog
from app.stats_panel import StatsPanel
from app.theme import app_icon
from app.window_answers import AnswerRoutes
from app.window_library import LibraryRoutes
from app.worker import EngineWorker
from core.api import DocumentInfo
from core.events import (
    Calibrated,
    DocumentRead,
    Finished,
    IngestProgress,
    LoadProgress,
    ModelLoaded,
    Notice,
    PrefillProgress,
    Retrieved,
    Status,
)

TITLE = "RapidQA"
SHUTDOWN_WAIT_S = 5.0


class MainWindow(LibraryRoutes, AnswerRoutes, QMainWindow):
    """Library | PDF | question, answer, statistics and history."""

    def __init__(
        self,
        worker: EngineWorker,
        store: QSettings,
        history: HistoryStore,
        sample: Path | None = None,
        sample_question: str = "",
        make_engine: Any = None,
    ) -> None:
        super().__init__()
        self.worker = worker
        self.store = store
        self.history = history
        self.settings = Settings.load(store)
        self._make_engine = make_engine  # Settings -> engine factory (for reconfigure)
        self._sample, self._sample_question = sample, sample_question
        self._runs: dict[int, Run] = {}
        self._docs: dict[str, DocumentInfo] = {}
        self._passwords: dict[Path, str] = {}
        self._answer_job: int | None = None
        self._last: Run | None = None  # the answer on screen (for compare / export)
        self._pending_passage: Passage | None = None
        self._closing = False

        self.setWindowTitle(TITLE)
        self.setWindowIcon(app_icon())
        self._build()
        self._menus()
        self._connect()
        self._apply_settings()
        self._restore_geometry()
        self.submit("list", jobs.list_documents())
        self.submit("load", jobs.load_models())
        if history.problem:
            self.banner.show_message(history.problem, "warning")

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.library = LibraryPanel()
        self.pdf = PdfView()
        self.ask = AskPanel()
        self.banner = MessageBanner()
        self.answer = AnswerView()
        self.stats = StatsPanel()
        self.history_list = HistoryPanel()
        tabs = QTabWidget()
        tabs.addTab(self.stats, "Statistics")
        tabs.addTab(self.history_list, "History")
        self.tabs = tabs
        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(8, 8, 8, 8)
        column.setSpacing(6)
        column.addWidget(self.ask)
        column.addWidget(self.banner)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.answer)
        split.addWidget(tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        column.addWidget(split, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.library)
        self.splitter.addWidget(self.pdf)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setStretchFactor(2, 2)
        self.splitter.setSizes([250, 650, 620])
        self.setCentralWidget(self.splitter)
        self.model_label = QLabel("Models not loaded yet")
        self.model_label.setObjectName("statName")
        self.loading = QProgressBar()  # a busy bar while the models load
        self.loading.setRange(0, 0)
        self.loading.setMaximumSize(120, 12)
        self.loading.hide()
        self.statusBar().addPermanentWidget(self.loading)
        self.statusBar().addPermanentWidget(self.model_label)
        self.resize(1520, 920)

    def _menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self._action(file, "&Add PDFs…", self.library.choose_files, QKeySequence.StandardKey.Open)
        file.addSeparator()
        self.export_md = self._action(
            file, "Export answer as &Markdown…", lambda: self.export_answer("md"), "Ctrl+E"
        )
        self.export_json = self._action(
            file, "Export answer as &JSON…", lambda: self.export_answer("json"), "Ctrl+Shift+E"
        )
        file.addSeparator()
        self._action(file, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        edit = bar.addMenu("&Edit")
        self._action(edit, "&Copy answer", self.answer.copy_answer, "Ctrl+Shift+C")
        edit.addSeparator()
        self._action(edit, "&Settings…", self.open_settings, QKeySequence.StandardKey.Preferences)
        answer = bar.addMenu("&Answer")
        self._action(answer, "&Ask", lambda: self.ask._submit())
        self.cancel_action = self._action(answer, "&Cancel", self.cancel_answer)
        self.compare_action = self._action(
            answer, "Compare with &target only", self.compare_with_target, "Ctrl+T"
        )
        answer.addSeparator()
        self.rejected_action = self._action(
            answer, "Show &rejected drafts", self._toggle_rejected, "Ctrl+R"
        )
        self.rejected_action.setCheckable(True)
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&How RapidQA answers", self._explain)
        self._action(help_menu, "&About RapidQA", self._about)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.cancel_answer)

    def _action(self, menu: Any, text: str, slot: Any, keys: Any = None) -> QAction:
        action = QAction(text, self)
        if keys is not None:
            action.setShortcut(QKeySequence(keys))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _connect(self) -> None:
        w = self.worker
        w.started.connect(self._on_started)
        w.engine_event.connect(self._on_event)
        w.steps.connect(self._on_steps)
        w.finished.connect(self._on_finished)
        w.failed.connect(self._on_failed)
        w.cancelled.connect(self._on_cancelled)
        lib = self.library
        lib.add_requested.connect(self.add_documents)
        lib.remove_requested.connect(self.remove_documents)
        lib.cancel_requested.connect(self._cancel_add)
        lib.document_activated.connect(self.show_document)
        lib.selection_changed.connect(self._scope_changed)
        lib.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.ask.ask_requested.connect(self.ask_question)
        self.ask.cancel_requested.connect(self.cancel_answer)
        self.answer.source_clicked.connect(self._source_clicked)
        self.answer.show_rejected_changed.connect(self._rejected_changed)
        self.stats.compare_requested.connect(self.compare_with_target)
        self.history_list.record_chosen.connect(self.show_record)
        self.history_list.export_requested.connect(self._export_record)
        self.history_list.delete_requested.connect(self._delete_record)
        self.pdf.password_needed.connect(self._viewer_password)
        self.pdf.document_opened.connect(self._viewer_opened)
        self.pdf.error.connect(lambda m: self.banner.show_message(m, "error"))
        self._update_actions()

    # -------------------------------------------------------------- job plumbing
    def submit(self, kind: str, body: Any, **run: Any) -> int:
        job = self.worker.submit(kind, body)
        self._runs[job] = Run(kind, **run)
        return job

    def _on_started(self, job: int, kind: str) -> None:
        run = self._runs.get(job)
        if run is None:
            return
        if kind == "load":
            self.statusBar().showMessage("Loading the models…")
            self.model_label.setText("Loading the models…")
            self.loading.show()
        elif kind in ("ask", "compare"):
            self.ask.show_progress("Preparing…", None)

    def _on_event(self, job: int, event: object) -> None:
        run = self._runs.get(job)
        if run is None:
            return
        if isinstance(event, IngestProgress):
            self.library.set_progress(run.key, event)
        elif isinstance(event, ModelLoaded):
            self._model_loaded(event)
        elif isinstance(event, LoadProgress):
            self._load_progress(event)
        elif isinstance(event, Status):
            self.statusBar().showMessage(event.message, 10000)
            if run.kind == "ask":
                self.answer.show_status(event.message)
        elif isinstance(event, Notice):
            if run.kind == "ask":
                self.answer.show_notice(event.message, event.level)
            elif run.kind != "compare":
                self.banner.show_message(event.message, "warning")
        elif isinstance(event, DocumentRead):
            self.statusBar().showMessage(
                f"{event.title}: {event.pages} pages, {event.tokens:,} tokens", 5000
            )
        elif isinstance(event, Retrieved):
            if run.kind == "ask" and (event.role == "drafter" or not run.chunks):
                run.chunks = event.chunks
                self._highlight(run.chunks)
        elif isinstance(event, PrefillProgress):
            self._prefill(run, event)
        elif isinstance(event, Calibrated):
            if run.kind == "ask":
                self.stats.set_baseline(event.step_s)
        elif isinstance(event, Finished):
            run.finished = event
            if run.kind == "ask":
                self._answer_finished(run, event)
            elif run.kind == "compare":
                self._compare_finished(run, event)

    def _on_steps(self, job: int, steps: list[Any]) -> None:
        run = self._runs.get(job)
        if run is None or run.kind != "ask":
            return
        if self.ask.progress.isVisible():
            self.ask.hide_progress()
        self.answer.add_steps(steps)
        self.stats.add_steps(steps)

    def _on_finished(self, job: int, result: object) -> None:
        run = self._runs.pop(job, None)
        if run is None:
            return
        if run.kind == "list":
            self._set_documents(result)  # type: ignore[arg-type]
            self._first_start()
        elif run.kind == "add":
            self._add_done(run, result)
        elif run.kind == "remove":
            for info in result:  # type: ignore[attr-defined]
                self._docs.pop(info.doc_id, None)
            self._set_documents(list(self._docs.values()))
        elif run.kind == "load":
            self.statusBar().showMessage("Models ready.", 4000)
            # Everything loaded so far lives as long as the app: keep it out of the
            # full garbage collections, which hold the GIL (and so the window).
            gc.freeze()
        self._job_over(job, run)

    def _on_failed(self, job: int, message: str) -> None:
        run = self._runs.pop(job, None)
        if run is None:
            return
        if run.kind == "add":
            self.library.set_failed(run.key, message)  # in its row
        else:
            self.banner.show_message(message, "error")  # the one place, not twice
        self._job_over(job, run)

    def _on_cancelled(self, job: int) -> None:
        run = self._runs.pop(job, None)
        if run is None:
            return
        if run.kind == "add":
            self.library.set_cancelled(run.key)
        elif run.kind == "ask" and run.finished is None:
            self.answer.show_notice("Cancelled before the answer began.", "info")
        self.statusBar().showMessage("Cancelled.", 4000)
        self._job_over(job, run)

    def _job_over(self, job: int, run: Run) -> None:
        self.loading.hide()  # shown by a load, or by a first use's conversion in any job
        self.loading.setRange(0, 0)  # busy again for the next load
        if self.model_label.text().startswith("Loading"):
            self.model_label.setText("Models not loaded")
        if job == self._answer_job:
            self._answer_job = None
            self.ask.set_busy(False)
            if run.kind == "compare":
                self.stats.set_comparing(False)
        self._update_actions()

    # --------------------------------------------------------------- settings
    def open_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.apply_settings(dialog.settings())

    def apply_settings(self, new: Settings) -> None:
        old, self.settings = self.settings, new
        new.save(self.store)
        if (new.models_changed(old) or new.chunking_changed(old)) and self._make_engine:
            self.worker.reconfigure(lambda: self._make_engine(new))
            self.submit("load", jobs.load_models())
        self._apply_settings()

    def _apply_settings(self) -> None:
        s = self.settings
        self.ask.set_mode_text(s.describe())
        self.answer.set_show_rejected(s.show_rejected)
        self.rejected_action.setChecked(s.show_rejected)

    def _toggle_rejected(self) -> None:
        self.answer.set_show_rejected(self.rejected_action.isChecked())

    def _rejected_changed(self, shown: bool) -> None:
        self.rejected_action.setChecked(shown)
        if shown != self.settings.show_rejected:
            self.settings = replace(self.settings, show_rejected=shown)
            self.settings.save(self.store)

    def _load_progress(self, event: LoadProgress) -> None:
        """A model being checked, converted (first use) or loaded: its stage and how far."""
        self.loading.setRange(0, 1000)
        self.loading.setValue(round(1000 * event.fraction))
        self.loading.show()
        self.model_label.setText(f"Loading {event.name}…")
        self.statusBar().showMessage(event.describe(), 10000)

    def _model_loaded(self, event: ModelLoaded) -> None:
        if event.role == "target":
            self._target_text = f"{event.name} · {event.device} · {event.dtype}"
            self.model_label.setText(f"Target: {self._target_text}")
        else:
            drafter = "self-speculation" if event.shared_with_target else event.name
            self.model_label.setText(f"Target: {self._target_text} · drafter: {drafter}")

    def _update_actions(self) -> None:
        answering = self._answer_job is not None
        has_answer = self._last is not None and self._last.finished is not None
        self.compare_action.setEnabled(has_answer and not answering)
        self.stats.set_compare_enabled(has_answer and not answering)
        self.cancel_action.setEnabled(answering)
        for action in (self.export_md, self.export_json):
            action.setEnabled(self._last is not None and self._last.record is not None)

    # ------------------------------------------------------------------- help
    def _explain(self) -> None:
        QMessageBox.information(self, "How RapidQA answers", EXPLANATION)

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About RapidQA",
            "<b>RapidQA</b><br>Local question answering "
            "over long PDFs with retrieval-augmented speculative decoding "
            "(RAPID, arXiv 2502.20330).",
        )

    # ------------------------------------------------------------------ close
    def _restore_geometry(self) -> None:
        geometry = self.store.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        sizes = self.store.value("window/splitter")
        if isinstance(sizes, QByteArray):
            self.splitter.restoreState(sizes)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Cancel what runs, wait a bounded time for the engine, then close."""
        if self._closing:
            event.accept()
            return
        self._closing = True
        self.store.setValue("window/geometry", self.saveGeometry())
        self.store.setValue("window/splitter", self.splitter.saveState())
        self.store.sync()
        if self.worker.busy:
            self.statusBar().showMessage("Stopping the running job…")
        self.stopped_cleanly = self.worker.shutdown(SHUTDOWN_WAIT_S)
        self.pdf.shutdown()
        event.accept()


EXPLANATION = """<p><b>Two models answer together.</b> A <i>drafter</i> reads only the
passages retrieved for your question and proposes a few tokens at a time. The
<i>target</i> reads the whole document and checks all of them in one step: the
tokens it agrees with are kept (<span style="color:#0072B2"><u>underlined blue</u></span>),
and where it disagrees it writes its own token (a <i>correction</i>, wavy
<span style="color:#D55E00">vermilion</span>). When every draft is accepted the
target adds one more for free (a <i>bonus</i>, dashed
<span style="color:#009E73">green</span>).</p>
<p>Because one target step checks several tokens, answers come faster than with the
target alone. The speedup shown while an answer streams is the engine's estimate;
<b>Answer ▸ Compare with target only</b> measures it.</p>
<p>In <b>RAPID</b> mode the target leans towards the drafter's tokens where they are
plausible (eta); in <b>sd</b> mode the answer is exactly the target's own.</p>"""
