"""Jobs that carry their own callbacks (the pattern of Anki's `CollectionOp`: an
operation with its `success=` / `failure=` handlers).

A controller builds an `Op`: the body to run on the engine's thread (app/gui/jobs.py)
and what to do, on the GUI thread, when it starts, streams an event or a batch of
decoding rounds, and when it ends, exactly one of done (with the body's return value),
failed (a message a user can act on) or cancelled. `OpRunner` submits it to the
`EngineWorker` and calls those callbacks as the worker's signals arrive, so nothing
switches on what kind of job ended.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.gui.worker import EngineWorker, JobBody
from core.events import DraftStep, Event


@dataclass(frozen=True)
class Op:
    """One job for the engine and its callbacks (each optional, run on the GUI thread)."""

    label: str  # "add", "ask" ... (the worker's logs and `started` signal)
    body: JobBody
    on_started: Callable[[], None] | None = None
    on_event: Callable[[Event], None] | None = None
    on_steps: Callable[[list[DraftStep]], None] | None = None
    on_done: Callable[[Any], None] | None = None
    on_failed: Callable[[str], None] | None = None
    on_cancelled: Callable[[], None] | None = None


class OpRunner(QObject):
    """Submits `Op`s to the worker and routes each job's signals to its own callbacks.

    Besides, for the window's shared parts (the status bar, the model loading bar):
    `any_event` carries every engine event of every op, before the op's own callback;
    `cancelled` and `over` (after done, failed or cancelled) follow the op's own.
    """

    any_event = Signal(object)  # a core event of any op
    cancelled = Signal()  # an op was cancelled
    over = Signal()  # an op ended (its own callback has run)

    def __init__(self, worker: EngineWorker, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self._ops: dict[int, Op] = {}
        worker.started.connect(self._on_started)
        worker.engine_event.connect(self._on_event)
        worker.steps.connect(self._on_steps)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)

    def submit(self, op: Op) -> int:
        """Queue `op`; returns its job id (for `cancel`)."""
        job = self.worker.submit(op.label, op.body)
        self._ops[job] = op
        return job

    def cancel(self, job: int) -> None:
        """Cancel one job, queued or running: its `on_cancelled` follows."""
        self.worker.cancel(job)

    @property
    def in_flight(self) -> bool:
        """Whether an op submitted here has not ended yet."""
        return bool(self._ops)

    # ---------------------------------------------------- the worker's signals
    def _on_started(self, job: int, _label: str) -> None:
        op = self._ops.get(job)
        if op is not None and op.on_started is not None:
            op.on_started()

    def _on_event(self, job: int, event: Event) -> None:
        op = self._ops.get(job)
        if op is None:
            return
        self.any_event.emit(event)
        if op.on_event is not None:
            op.on_event(event)

    def _on_steps(self, job: int, steps: list[DraftStep]) -> None:
        op = self._ops.get(job)
        if op is not None and op.on_steps is not None:
            op.on_steps(steps)

    def _on_finished(self, job: int, result: object) -> None:
        op = self._ops.pop(job, None)
        if op is None:
            return
        if op.on_done is not None:
            op.on_done(result)
        self.over.emit()

    def _on_failed(self, job: int, message: str) -> None:
        op = self._ops.pop(job, None)
        if op is None:
            return
        if op.on_failed is not None:
            op.on_failed(message)
        self.over.emit()

    def _on_cancelled(self, job: int) -> None:
        op = self._ops.pop(job, None)
        if op is None:
            return
        if op.on_cancelled is not None:
            op.on_cancelled()
        self.cancelled.emit()
        self.over.emit()
