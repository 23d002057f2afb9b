"""The engine's worker thread: one long-lived thread owns the engine and runs jobs.

Widgets never touch models. They submit jobs (add a PDF, answer a question, remove a
document, any callable on the engine) to an `EngineWorker`; its thread runs them one
at a time and turns every core event into a Qt signal, delivered on the GUI thread.
Decoding rounds (`DraftStep`) are batched: at most one `steps` signal per
`batch_interval_s` (30 Hz by default), so fast decoding cannot flood the event loop.

Cancel reaches the running job through `engine.cancel()` (the engine checks it
between pages, embedding batches, prefill chunks and rounds) and drops queued jobs.
`shutdown` cancels, waits a bounded time for the thread and reports whether it ended.
"""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, cast

from PySide6.QtCore import QObject, Signal

from core.api import EngineAPI
from core.errors import Cancelled, RapidQAError
from core.events import DraftStep

BATCH_INTERVAL_S = 1 / 30
NICE = 10  # how much lower the engine thread's CPU priority is than the window's (Linux)
INTERNAL_HINT = "This is a bug in RapidQA; please report it with what you were doing."

# `body(engine)` returns an event iterator (a generator's return value is the job's
# result) or a plain result.
JobBody = Callable[[EngineAPI], Iterator[Any] | Generator[Any, None, Any] | Any]


@dataclass(frozen=True)
class Job:
    """A unit of work: `body(engine)` returns an event iterator (or a plain result)."""

    job_id: int
    kind: str  # "add", "ask", "remove" ... (for the views; the worker does not care)
    body: JobBody


class EngineWorker(QObject):
    """Owns the engine on a thread of its own; all signals arrive on the GUI thread.

    Signals, in order for one job: `started`, any number of `engine_event` and `steps`,
    then exactly one of `finished` (with the job's return value), `failed` (a message
    a user can act on) or `cancelled`.
    """

    started = Signal(int, str)  # job id, kind
    engine_event = Signal(int, object)  # job id, a core event (not DraftStep)
    steps = Signal(int, list)  # job id, DraftSteps since the last batch, in order
    finished = Signal(int, object)  # job id, the job's return value
    failed = Signal(int, str)  # job id, message
    cancelled = Signal(int)  # job id
    idle = Signal()  # the queue is empty and no job runs

    def __init__(
        self,
        make_engine: Callable[[], EngineAPI],
        batch_interval_s: float = BATCH_INTERVAL_S,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._make_engine = make_engine
        self._engine: EngineAPI | None = None
        self._batch_interval_s = batch_interval_s
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._current: int | None = None
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rapidqa-engine", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ GUI thread
    def submit(self, kind: str, body: JobBody) -> int:
        """Queue `body(engine)`; returns the job id used by every signal of the job."""
        job = Job(next(self._ids), kind, body)
        self._jobs.put(job)
        return job.job_id

    def cancel(self, job_id: int | None = None) -> None:
        """Cancel one job (queued or running), or with no id every job."""
        with self._lock:
            if job_id is None:
                while True:
                    try:
                        queued = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if queued is not None:
                        self._cancelled.add(queued.job_id)
                        self.cancelled.emit(queued.job_id)
                    else:
                        self._jobs.put(None)  # keep a pending shutdown
                        break
                running = self._current
                if running is not None:
                    self._cancelled.add(running)
            else:
                self._cancelled.add(job_id)
                running = job_id if job_id == self._current else None
        if running is not None and self._engine is not None:
            self._engine.cancel()

    def reconfigure(self, make_engine: Callable[[], EngineAPI]) -> int:
        """Queue a job that closes the engine; the next job builds one with
        `make_engine` (new models or library settings). Returns the job id."""

        def body(_engine: EngineAPI) -> None:
            self._close_engine()
            self._engine = None
            self._make_engine = make_engine

        return self.submit("configure", body)

    @property
    def busy(self) -> bool:
        return self._current is not None or not self._jobs.empty()

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Cancel everything, stop the thread; True if it ended within `timeout_s`."""
        self.cancel()
        self._jobs.put(None)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # --------------------------------------------------------- worker thread
    def _run(self) -> None:
        _lower_priority()
        while True:
            job = self._jobs.get()
            if job is None:
                self._close_engine()
                return
            with self._lock:
                if job.job_id in self._cancelled:
                    self._cancelled.discard(job.job_id)
                    continue
                self._current = job.job_id
            try:
                self._run_job(job)
            finally:
                with self._lock:
                    self._current = None
                    self._cancelled.discard(job.job_id)
                if self._jobs.empty():
                    self.idle.emit()

    def _run_job(self, job: Job) -> None:
        self.started.emit(job.job_id, job.kind)
        pending: list[DraftStep] = []
        last_flush = time.monotonic()

        def flush() -> None:
            nonlocal last_flush
            if pending:
                self.steps.emit(job.job_id, list(pending))
                pending.clear()
            last_flush = time.monotonic()

        try:
            if self._engine is None and job.kind != "configure":
                self._engine = self._make_engine()
            result = job.body(cast(EngineAPI, self._engine))  # None: a configure job
            if isinstance(result, Iterator):
                while True:
                    if job.job_id in self._cancelled and self._engine is not None:
                        self._engine.cancel()
                    try:
                        item = next(result)
                    except StopIteration as stop:
                        result = stop.value
                        break
                    if isinstance(item, DraftStep):
                        pending.append(item)
                        if time.monotonic() - last_flush >= self._batch_interval_s:
                            flush()
                    else:
                        flush()
                        self.engine_event.emit(job.job_id, item)
            flush()
        except Cancelled:
            flush()
            self.cancelled.emit(job.job_id)
            return
        except RapidQAError as err:
            flush()
            self.failed.emit(job.job_id, str(err))
            return
        except Exception as err:  # a bug: shown once, the worker lives on
            flush()
            self.failed.emit(job.job_id, f"Internal error: {type(err).__name__}: {err}. "
                             f"{INTERNAL_HINT}")  # fmt: skip
            return
        if job.job_id in self._cancelled and _was_cancelled(result):
            self.cancelled.emit(job.job_id)
        else:
            self.finished.emit(job.job_id, result)

    def _close_engine(self) -> None:
        close = getattr(self._engine, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # closing on quit: nothing left to tell
                pass


def _lower_priority() -> None:
    """Run the engine (and the threads and processes it starts) at a lower CPU
    priority than the window, where the OS allows it per thread (Linux): on a machine
    with few cores the window then gets a core at once when it needs one, at almost
    no cost to the engine, which has the CPU whenever the window is idle."""
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + NICE, 19))
    except OSError:  # not permitted here: run at the normal priority
        pass


def _was_cancelled(result: Any) -> bool:
    """A job that ran to its end although cancelled (the engine reports it in-band)."""
    return getattr(result, "stop_reason", "cancelled") == "cancelled" or result is None
