"""The engine worker thread with a scripted fake engine: signal order, batching of
decoding rounds, cancel, errors and a bounded shutdown (pytest-qt, offscreen)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.gui.worker import NICE, EngineWorker
from core.errors import Cancelled, DocumentError
from core.events import DraftStep, Finished, Status

pytestmark = pytest.mark.gui


def _step(n: int) -> DraftStep:
    return DraftStep(
        round=n, drafted_ids=(1, 2), drafted_texts=("a", "b"), accepted=1, token_id=3,
        token_text="c", token_kind="correction", source="lookup", p_target=(0.9, 0.1),
        p_draft=(1.0, 1.0), p_hat=(0.9, 0.1), token_p_target=0.8, token_p_hat=0.8,
        draft_s=0.0, verify_s=0.001, context_tokens=100 + n,
    )  # fmt: skip


def _finished(reason: str = "eos") -> Finished:
    return Finished(
        answer="ok", mode="rapid", stop_reason=reason, new_tokens=3, rounds=1, drafted=2,  # type: ignore[arg-type]
        accepted=1, target_prefill_s=0.1, drafter_prefill_s=0.0, decode_s=0.1,
        end_to_end_s=0.3, baseline_step_s=0.05,
    )  # fmt: skip


class FakeEngine:
    """Yields scripted events; honours cancel like the real engine (between rounds)."""

    def __init__(self, rounds: int = 200, delay_s: float = 0.001) -> None:
        self.rounds = rounds
        self.delay_s = delay_s
        self._cancel = threading.Event()
        self.thread: threading.Thread | None = None
        self.closed = False

    def cancel(self) -> None:
        self._cancel.set()

    def close(self) -> None:
        self.closed = True

    def ask(self, question: str) -> Iterator[Any]:
        self._cancel.clear()
        self.thread = threading.current_thread()
        yield Status(f"answering {question}")
        for n in range(1, self.rounds + 1):
            if self._cancel.is_set():
                yield _finished("cancelled")
                return
            time.sleep(self.delay_s)
            yield _step(n)
        yield _finished()

    def add(self, path: str) -> Iterator[Any]:
        yield Status(f"reading {path}")
        raise DocumentError(f"{path} is not a PDF file. Choose a PDF document.")


@pytest.fixture
def worker(qtbot: Any) -> Iterator[tuple[EngineWorker, FakeEngine]]:
    engine = FakeEngine()
    worker = EngineWorker(lambda: engine)
    yield worker, engine
    assert worker.shutdown(5.0)


def _record(worker: EngineWorker) -> list[tuple[str, Any]]:
    log: list[tuple[str, Any]] = []
    worker.started.connect(lambda job, kind: log.append(("started", job)))
    worker.engine_event.connect(lambda job, ev: log.append(("event", ev)))
    worker.steps.connect(lambda job, steps: log.append(("steps", steps)))
    worker.finished.connect(lambda job, value: log.append(("finished", job)))
    worker.failed.connect(lambda job, message: log.append(("failed", message)))
    worker.cancelled.connect(lambda job: log.append(("cancelled", job)))
    return log


def test_events_arrive_in_order_and_rounds_are_batched(
    qtbot: Any, worker: tuple[EngineWorker, FakeEngine]
) -> None:
    w, engine = worker
    log = _record(w)
    with qtbot.waitSignal(w.finished, timeout=10_000):
        job = w.submit("ask", lambda e: e.ask("why?"))
    assert engine.thread is not None and engine.thread is not threading.main_thread()
    kinds = [k for k, _ in log]
    assert kinds[0] == "started" and kinds[-1] == "finished" and log[0][1] == job
    assert isinstance(log[1][1], Status) and isinstance(log[-2][1], Finished)
    batches = [v for k, v in log if k == "steps"]
    rounds = [s.round for batch in batches for s in batch]
    assert rounds == list(range(1, 201))  # every round, once, in order
    assert len(batches) < 200 / 3  # ~30 Hz batches, not one signal per round


def test_cancel_a_running_answer_then_ask_again(
    qtbot: Any, worker: tuple[EngineWorker, FakeEngine]
) -> None:
    w, engine = worker
    engine.delay_s = 0.01
    log = _record(w)
    with qtbot.waitSignal(w.steps, timeout=10_000):
        job = w.submit("ask", lambda e: e.ask("slow"))
    with qtbot.waitSignal(w.cancelled, timeout=10_000) as blocker:
        w.cancel(job)
    assert blocker.args == [job]
    assert ("finished", job) not in log
    engine.delay_s = 0.0
    with qtbot.waitSignal(w.finished, timeout=10_000) as done:
        again = w.submit("ask", lambda e: e.ask("again"))
    assert done.args[0] == again


def test_errors_are_reported_once_and_the_worker_lives_on(
    qtbot: Any, worker: tuple[EngineWorker, FakeEngine]
) -> None:
    w, _ = worker
    log = _record(w)
    with qtbot.waitSignal(w.failed, timeout=10_000) as failed:
        w.submit("add", lambda e: e.add("notes.txt"))
    assert "not a PDF" in failed.args[1]
    with qtbot.waitSignal(w.failed, timeout=10_000) as bug:
        w.submit("ask", lambda e: 1 / 0)
    assert bug.args[1].startswith("Internal error: ZeroDivisionError") and "bug" in bug.args[1]
    with qtbot.waitSignal(w.cancelled, timeout=10_000):
        w.submit("ask", lambda e: (_ for _ in ()).throw(Cancelled()))
    with qtbot.waitSignal(w.finished, timeout=10_000) as plain:
        w.submit("count", lambda e: 42)
    assert plain.args[1] == 42
    assert [k for k, _ in log].count("failed") == 2


def test_queued_jobs_are_dropped_by_cancel_all(
    qtbot: Any, worker: tuple[EngineWorker, FakeEngine]
) -> None:
    w, engine = worker
    engine.delay_s = 0.01
    log = _record(w)
    with qtbot.waitSignal(w.started, timeout=10_000):
        first = w.submit("ask", lambda e: e.ask("one"))
    second = w.submit("ask", lambda e: e.ask("two"))
    with qtbot.waitSignal(w.idle, timeout=10_000):
        w.cancel()
    assert ("cancelled", second) in log and ("cancelled", first) in log
    assert ("started", second) not in log


def test_shutdown_while_answering_is_bounded(qtbot: Any) -> None:
    engine = FakeEngine(rounds=100_000, delay_s=0.001)
    w = EngineWorker(lambda: engine)
    with qtbot.waitSignal(w.steps, timeout=10_000):
        w.submit("ask", lambda e: e.ask("long"))
    started = time.monotonic()
    assert w.shutdown(5.0)
    assert time.monotonic() - started < 2.0 and engine.closed


def test_the_real_engine_on_its_thread(
    qtbot: Any, tmp_path: Any, make_pdf: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Add a real PDF and answer with a tiny real model, all on the worker thread."""
    api = pytest.importorskip("core.api")
    from core.config import DecodeConfig, IndexConfig, ModelConfig
    from tests.tiny_models import tiny_llama

    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path / "cache"))
    loaded = tiny_llama(seed=0)
    loaded.model.save_pretrained(tmp_path / "tiny")
    loaded.tokenizer.save_pretrained(tmp_path / "tiny")
    pdf = make_pdf(["The keeper lit the lamp at dusk every day. " * 30] * 2, name="lamp.pdf")
    w = EngineWorker(lambda: api.Engine(ModelConfig(target=str(tmp_path / "tiny"), drafter="same"),
                                        IndexConfig(library=tmp_path / "lib")))  # fmt: skip
    events: list[Any] = []
    w.engine_event.connect(lambda job, ev: events.append(ev))
    with qtbot.waitSignal(w.finished, timeout=120_000) as added:
        w.submit("add", lambda e: e.add(pdf))
    assert added.args[1].title == "lamp" and added.args[1].pages == 2
    steps: list[DraftStep] = []
    w.steps.connect(lambda job, batch: steps.extend(batch))
    with qtbot.waitSignal(w.finished, timeout=120_000):
        w.submit("ask", lambda e: e.ask("When is the lamp lit?", (),
                                        DecodeConfig(mode="sd", max_new_tokens=6)))  # fmt: skip
    finished = [ev for ev in events if isinstance(ev, Finished)]
    assert len(finished) == 1 and finished[0].new_tokens >= 1 and steps
    assert sum(len(s.emitted_ids) for s in steps) == finished[0].new_tokens
    assert w.shutdown(10.0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority: Linux")
def test_the_engine_runs_below_the_window_priority(
    qtbot: Any, worker: tuple[EngineWorker, FakeEngine]
) -> None:
    w, _engine = worker

    def nice(_engine: Any) -> tuple[int, int]:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), os.getpid()

    with qtbot.waitSignal(w.finished, timeout=10_000) as done:
        w.submit("nice", nice)
    engine_nice, _pid = done.args[1]
    window_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert engine_nice >= min(window_nice + NICE, 19)
