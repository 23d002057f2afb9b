"""No automatic full garbage collection while an ingest job runs, and the settings
come back afterwards, also when jobs overlap on two threads."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

from core.gc_quiet import no_full_collections


def test_full_collections_pause_and_resume() -> None:
    before = gc.get_threshold()
    with no_full_collections():
        young, middle, full = gc.get_threshold()
        assert (young, middle) == before[:2] and full > 10**8
        with no_full_collections():  # nested
            assert gc.get_threshold()[2] == full
        assert gc.get_threshold()[2] == full
    assert gc.get_threshold() == before


def test_overlapping_jobs_restore_only_when_both_end() -> None:
    before = gc.get_threshold()
    entered, release = threading.Event(), threading.Event()

    def other_job() -> None:
        with no_full_collections():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=other_job)
    with no_full_collections():
        thread.start()
        assert entered.wait(5)
    assert gc.get_threshold()[2] > 10**8  # the other job still runs
    release.set()
    thread.join(5)
    assert gc.get_threshold() == before


def test_restored_after_an_error() -> None:
    before = gc.get_threshold()
    try:
        with no_full_collections():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.get_threshold() == before


def test_a_quiet_generator_pauses_only_while_it_runs() -> None:
    from core.gc_quiet import quiet

    before = gc.get_threshold()
    seen: list[int] = []

    @quiet
    def job(n: int) -> Iterator[int]:
        for i in range(n):
            seen.append(gc.get_threshold()[2])
            yield i

    stream = job(2)
    assert gc.get_threshold() == before  # not started yet
    assert list(stream) == [0, 1]
    assert all(full > 10**8 for full in seen)
    assert gc.get_threshold() == before
