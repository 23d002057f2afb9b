"""The main window: lays out the widgets, builds the menus and composes the two
controllers, answers (app/gui/answers/controller.py) and library
(app/gui/library/controller.py), wiring their signals to each other; it keeps the
settings, the status bar and the model loading bar. No model, tensor or PDF is
touched here."""

from __future__ import annotations

import gc
from collections.abc import Callable
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

from app.gui import jobs
from app.gui.answers.ask_panel import AskPanel
from app.gui.answers.controller import AnswersController
from app.gui.answers.history_panel import HistoryPanel
from app.gui.answers.stats_panel import StatsPanel
from app.gui.answers.view import AnswerView
from app.gui.banner import MessageBanner
from app.gui.history import HistoryStore
from app.gui.library.controller import LibraryController
from app.gui.library.panel import LibraryPanel
from app.gui.ops import Op, OpRunner
from app.gui.pdf.view import PdfView
from app.gui.settings import Settings, SettingsDialog
from app.gui.theme import app_icon
from app.gui.worker import EngineWorker
from core.api import EngineAPI
from core.events import DocumentRead, Event, LoadProgress, ModelLoaded, Notice, Status

TITLE = "RapidQA"
SHUTDOWN_WAIT_S = 5.0


class MainWindow(QMainWindow):
    """Library | PDF | question, answer, statistics and history."""

    def __init__(
        self,
        worker: EngineWorker,
        store: QSettings,
        history: HistoryStore,
        sample: Path | None = None,
        sample_question: str = "",
        make_engine: Callable[[Settings], EngineAPI] | None = None,
    ) -> None:
        super().__init__()
        self.worker = worker
        self.store = store
        self.history = history
        self.settings = Settings.load(store)
        self._make_engine = make_engine  # Settings -> engine factory (for reconfigure)
        self._sample_question = sample_question
        self._target_text = ""
        self._closing = False

        self.setWindowTitle(TITLE)
        self.setWindowIcon(app_icon())
        self._build()
        self.jobs = OpRunner(worker, self)
        self.library_ctl = LibraryController(
            self.jobs, self.library, self.pdf, self.banner, store, sample, self
        )
        widgets = (self.ask, self.answer, self.stats, self.history_list, self.library)
        self.answer_ctl = AnswersController(
            self.jobs, widgets, self.banner, history, store, self.settings, self
        )
        self._menus()
        self._connect()
        self._apply_settings()
        self._restore_geometry()
        self.library_ctl.load_documents()
        self._load_models()
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
            file,
            "Export answer as &Markdown…",
            lambda: self.answer_ctl.export_answer("md"),
            "Ctrl+E",
        )
        self.export_json = self._action(
            file,
            "Export answer as &JSON…",
            lambda: self.answer_ctl.export_answer("json"),
            "Ctrl+Shift+E",
        )
        file.addSeparator()
        self._action(file, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        edit = bar.addMenu("&Edit")
        self._action(edit, "&Copy answer", self.answer.copy_answer, "Ctrl+Shift+C")
        edit.addSeparator()
        self._action(edit, "&Settings…", self.open_settings, QKeySequence.StandardKey.Preferences)
        answer = bar.addMenu("&Answer")
        self._action(answer, "&Ask", lambda: self.ask._submit())
        self.cancel_action = self._action(answer, "&Cancel", self.answer_ctl.cancel_answer)
        self.compare_action = self._action(
            answer, "Compare with &target only", self.answer_ctl.compare_with_target, "Ctrl+T"
        )
        answer.addSeparator()
        self.rejected_action = self._action(
            answer, "Show &rejected drafts", self._toggle_rejected, "Ctrl+R"
        )
        self.rejected_action.setCheckable(True)
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&How RapidQA answers", self._explain)
        self._action(help_menu, "&About RapidQA", self._about)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.answer_ctl.cancel_answer)

    def _action(self, menu: Any, text: str, slot: Any, keys: Any = None) -> QAction:
        action = QAction(text, self)
        if keys is not None:
            action.setShortcut(QKeySequence(keys))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _connect(self) -> None:
        answers, library = self.answer_ctl, self.library_ctl
        self.jobs.any_event.connect(self._on_event)
        self.jobs.cancelled.connect(lambda: self.statusBar().showMessage("Cancelled.", 4000))
        self.jobs.over.connect(self._job_over)
        answers.answer_passages.connect(library.set_answer_passages)
        answers.passages_retrieved.connect(library.highlight)
        answers.document_wanted.connect(library.reveal)
        answers.spot_wanted.connect(library.show_spot)
        answers.evidence_changed.connect(library.show_evidence)
        answers.message.connect(self.statusBar().showMessage)
        answers.changed.connect(self._update_actions)
        library.scope_changed.connect(lambda _ids: answers.refresh_history())
        library.first_start.connect(self._suggest_sample_question)
        library.title_changed.connect(self.setWindowTitle)
        self.library.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.answer.source_clicked.connect(library.show_source)
        self.answer.show_rejected_changed.connect(self._rejected_changed)
        self.pdf.error.connect(lambda m: self.banner.show_message(m, "error"))
        self.pdf.overlay.heat_cleared.connect(lambda: library.show_evidence(None))
        self._update_actions()

    # ------------------------------------------------------------- the models
    def _load_models(self) -> None:
        def started() -> None:
            self.statusBar().showMessage("Loading the models…")
            self.model_label.setText("Loading the models…")
            self.loading.show()

        def done(_result: object) -> None:
            self.statusBar().showMessage("Models ready.", 4000)
            # Everything loaded so far lives as long as the app: keep it out of the
            # full garbage collections, which hold the GIL (and so the window).
            gc.freeze()

        op = Op(
            "load",
            jobs.load_models(),
            on_started=started,
            on_event=self._notice,
            on_done=done,
            on_failed=lambda message: self.banner.show_message(message, "error"),
        )
        self.jobs.submit(op)

    def _on_event(self, event: Event) -> None:
        """What any job's events show in the status bar and the model loading bar."""
        if isinstance(event, ModelLoaded):
            self._model_loaded(event)
        elif isinstance(event, LoadProgress):
            self._load_progress(event)
        elif isinstance(event, Status):
            self.statusBar().showMessage(event.message, 10000)
        elif isinstance(event, DocumentRead):
            self.statusBar().showMessage(
                f"{event.title}: {event.pages} pages, {event.tokens:,} tokens", 5000
            )

    def _notice(self, event: Event) -> None:
        if isinstance(event, Notice):
            self.banner.show_message(event.message, "warning")

    def _job_over(self) -> None:
        self.loading.hide()  # shown by a load, or by a first use's conversion in any job
        self.loading.setRange(0, 0)  # busy again for the next load
        if self.model_label.text().startswith("Loading"):
            self.model_label.setText("Models not loaded")
        self._update_actions()

    def _suggest_sample_question(self) -> None:
        if not self.ask.question():
            self.ask.set_question(self._sample_question)

    # --------------------------------------------------------------- settings
    def open_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.apply_settings(dialog.settings())

    def apply_settings(self, new: Settings) -> None:
        old, self.settings = self.settings, new
        new.save(self.store)
        if (new.models_changed(old) or new.chunking_changed(old)) and self._make_engine:
            make = self._make_engine
            self.worker.reconfigure(lambda: make(new))
            self._load_models()
        self._apply_settings()

    def _apply_settings(self) -> None:
        s = self.settings
        self.answer_ctl.set_settings(s)
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
            self.answer_ctl.set_settings(self.settings)

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
        answering = self.answer_ctl.answering
        can_compare = self.answer_ctl.has_answer and not answering
        self.compare_action.setEnabled(can_compare)
        self.stats.set_compare_enabled(can_compare)
        self.cancel_action.setEnabled(answering)
        for action in (self.export_md, self.export_json):
            action.setEnabled(self.answer_ctl.has_record)

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
plausible (eta); in <b>sd</b> mode the answer is exactly the target's own.</p>
<p><b>Where it came from.</b> After each sentence, its marks (<span
style="color:#2F6FB3"><sup>[1]</sup></span>) name the retrieved passages it comes from;
click one to see exactly those lines in the PDF. A grey <sup>[?]</sup> means no passage
supports the sentence. Text underlined in dotted <span style="color:#E69F00">orange</span>
is where the target wrote against the drafter: the passages were not enough. Click it to
see where in the whole document the target looked (a heat overlay on the PDF).</p>
<p>While the target reads a long document for the first time, the drafter may give a
<i>preliminary answer</i> from the passages alone; the real answer replaces it.</p>"""
