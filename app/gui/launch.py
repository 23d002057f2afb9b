"""Starts the app: the Qt application, the engine worker and the main window."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from app.gui import theme
from app.gui.history import HISTORY_FILE, HistoryStore
from app.gui.main_window import MainWindow
from app.gui.settings import Settings
from app.gui.worker import EngineWorker
from core.api import EngineAPI, default_library_dir

SAMPLE_PDF = theme.RESOURCES / "sample" / "harrow-point-handbook.pdf"
SAMPLE_QUESTIONS = theme.RESOURCES / "sample" / "questions.txt"
SETTINGS_ENV = "RAPIDQA_SETTINGS"
STARTUP_PROBE_ENV = "RAPIDQA_STARTUP_PROBE"  # print the time the window is shown (benchmark)


def sample_question() -> str:
    """The first question of the bundled sample's question list."""
    try:
        first = SAMPLE_QUESTIONS.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError):
        return ""
    return first.split("\t")[0].strip()


EngineFactory = Callable[[Settings], Callable[[], EngineAPI]]


def engine_factory(library: Path | None) -> EngineFactory:
    """Settings -> a function building the engine (run on the worker thread)."""

    def for_settings(settings: Settings) -> Callable[[], EngineAPI]:
        def make() -> EngineAPI:
            from core.api import Engine  # torch loads here, on the worker thread

            engine = Engine(settings.model_config(), settings.index_config(library))
            gc.freeze()  # torch and transformers' objects: never scanned by full collections
            return engine

        return make

    return for_settings


def settings_store() -> QSettings:
    """The app's settings: RAPIDQA_SETTINGS (an .ini file) if set, else the platform's
    place (registry, plist or ~/.config)."""
    path = os.environ.get(SETTINGS_ENV, "").strip()
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings("RapidQA", "RapidQA")


def build(
    store: QSettings,
    library: Path | None = None,
    make_engine: EngineFactory | None = None,
    pdf: Path | None = None,
) -> tuple[MainWindow, EngineWorker]:
    """The window and its worker (not shown); `make_engine` defaults to the real one."""
    factory = make_engine or engine_factory(library)
    settings = Settings.load(store)
    worker = EngineWorker(lambda: factory(settings)())
    history = HistoryStore((library or default_library_dir()) / HISTORY_FILE)
    window = MainWindow(
        worker,
        store,
        history,
        sample=SAMPLE_PDF if SAMPLE_PDF.is_file() else None,
        sample_question=sample_question(),
        make_engine=lambda s: factory(s)(),
    )
    if pdf is not None:
        window.library_ctl.open_pdf(pdf)
    return window, worker


def run_gui(
    pdf: Path | None = None, quit_after: float | None = None, library: Path | None = None
) -> int:
    """Show the main window and run the event loop; `quit_after` seconds closes it.

    If the engine is still busy in something it cannot leave (loading a model) after
    the bounded wait on quit, the process ends without waiting for it: the library is
    only ever changed by atomic swaps, so nothing is left half-written."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("RapidQA")
    app.setOrganizationName("RapidQA")
    app.setDesktopFileName("rapidqa")  # the installed rapidqa.desktop: taskbar icon, Wayland
    theme.apply(app)
    window, worker = build(settings_store(), library=library, pdf=pdf)
    gc.freeze()  # Qt and the window: never scanned by full collections (GIL)
    window.show()
    if os.environ.get(STARTUP_PROBE_ENV):  # bench/startup.py: when the window is up
        QTimer.singleShot(0, lambda: print(f"window shown at {time.time():.3f}", file=sys.stderr))
    if quit_after is not None:
        QTimer.singleShot(int(quit_after * 1000), window.close)
    code = int(app.exec())
    if not worker.shutdown(1.0):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
