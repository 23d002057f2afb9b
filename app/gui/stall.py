"""Measures how long the GUI thread's event loop goes without running (a stall).

A zero-interval-ish timer ticks every `interval_ms`; the gap between two ticks beyond
the interval is time the loop was busy elsewhere. The longest gap is what a user
feels as a frozen window."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Qt, QTimer


class StallMeter(QObject):
    """Start it, do the work, read `max_stall_ms` (and `percentile(p)`)."""

    def __init__(self, interval_ms: int = 5, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.gaps_ms: list[float] = []
        self._last = 0.0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.gaps_ms.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps_ms.append(max(0.0, (now - self._last) * 1000 - self.interval_ms))
        self._last = now

    @property
    def max_stall_ms(self) -> float:
        return max(self.gaps_ms, default=0.0)

    def percentile(self, p: float) -> float:
        if not self.gaps_ms:
            return 0.0
        ordered = sorted(self.gaps_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]
