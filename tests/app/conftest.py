"""The main window's fixtures for the window tests: a fresh settings file, the fake
engine's script and the window built on it (the real worker thread, the real sample
PDF added on the first start), and waiting for the window to be idle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings

from app.gui.launch import build
from app.gui.main_window import MainWindow
from tests.app.fake_engine import FakeEngine, Script


@pytest.fixture
def store(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def window(
    qtbot: Any, tmp_path: Path, store: QSettings, script: Script
) -> Iterator[tuple[MainWindow, FakeEngine]]:
    engine = FakeEngine(script)
    win, worker = build(store, library=tmp_path / "lib", make_engine=lambda _s: lambda: engine)
    qtbot.addWidget(win)
    win.show()
    yield win, engine
    win.close()
    assert worker.shutdown(2.0)


def wait_idle(qtbot: Any, win: MainWindow, timeout: int = 10_000) -> None:
    """Until no job is queued, running, or waiting for its callbacks."""
    qtbot.waitUntil(lambda: not win.worker.busy and not win.jobs.in_flight, timeout=timeout)
