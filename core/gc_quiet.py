"""Keeps Python's full garbage collections out of long ingest jobs.

A full (generation 2) collection walks every tracked object while it holds the GIL.
Reading and cutting a 2,400-page book makes millions of objects, so one such pass
takes 0.2 s or more and freezes every other thread of the process, the app's window
included. Young collections stay on (they are cheap); full ones wait until the job
ends. The objects of a job are freed by reference counting, not by the collector,
so memory does not grow because of this.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

_LOCK = threading.Lock()
_DEPTH = 0
_SAVED: tuple[int, int, int] | None = None
_NEVER = 1 << 30  # a generation-2 threshold no job reaches
_P = ParamSpec("_P")
_Y = TypeVar("_Y")


@contextmanager
def no_full_collections() -> Iterator[None]:
    """While active (in any thread; nesting is fine), no automatic full collection."""
    global _DEPTH, _SAVED
    with _LOCK:
        if _DEPTH == 0:
            _SAVED = gc.get_threshold()
            gc.set_threshold(_SAVED[0], _SAVED[1], _NEVER)
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0 and _SAVED is not None:
                gc.set_threshold(*_SAVED)
                _SAVED = None


def quiet(stream: Callable[_P, Iterator[_Y]]) -> Callable[_P, Iterator[_Y]]:
    """Decorates an event generator (an engine job): no full collections while it runs."""

    @functools.wraps(stream)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> Iterator[_Y]:
        with no_full_collections():
            yield from stream(*args, **kwargs)

    return run
