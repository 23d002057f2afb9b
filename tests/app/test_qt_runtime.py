"""The installed Qt binding keeps Python's reference counts straight.

PySide6 6.12.0 drops a reference to None on every void Qt call (and to True/False on
every signal emit); before Python 3.12 that aborts the app after a few long answers.
pyproject.toml excludes it; this test fails if such a build is installed again."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel

pytestmark = pytest.mark.gui


class _Emitter(QObject):
    flag = Signal(bool)


def test_void_calls_and_emits_keep_none_true_false_alive(qtbot: Any) -> None:
    label = QLabel()
    qtbot.addWidget(label)
    emitter = _Emitter()
    seen = [0]

    def count(_flag: bool) -> None:
        seen[0] += 1

    emitter.flag.connect(count)
    before = (sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False))
    for n in range(2000):
        label.setText(str(n % 7))
        emitter.flag.emit(n % 2 == 0)
    after = (sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False))
    assert seen[0] == 2000
    # A few references may come and go with caches; a leak of one per call may not.
    assert all(abs(a - b) < 200 for a, b in zip(after, before, strict=True)), (before, after)
