"""The bodies of the jobs the window gives the engine worker: each is `body(engine)`
returning an event generator or a value. Kept here, apart from the widgets, so that
what runs on the engine's thread is in one short file and touches nothing of Qt; the
callbacks that take their results on the GUI thread travel with them (app/gui/ops.py)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from core.api import DocumentInfo, EngineAPI
from core.config import DecodeConfig
from core.errors import PasswordRequired
from core.events import BeyondRun, ChunkRef, Event


@dataclass(frozen=True)
class NeedsPassword:
    """An add that stopped at an encrypted PDF: ask the user, then add again."""

    path: Path
    wrong_password: bool
    message: str


AddResult = Generator[Event, None, DocumentInfo | NeedsPassword]
Answering = Generator[Event, None, None]


def list_documents() -> Callable[[EngineAPI], list[DocumentInfo]]:
    def body(engine: EngineAPI) -> list[DocumentInfo]:
        return list(engine.documents())

    return body


def load_models() -> Callable[[EngineAPI], Generator[Event, None, None]]:
    def body(engine: EngineAPI) -> Generator[Event, None, None]:
        yield from engine.load_models()

    return body


def add_document(path: Path, password: str | None = None) -> Callable[[EngineAPI], AddResult]:
    def body(engine: EngineAPI) -> AddResult:
        try:
            info: DocumentInfo = yield from engine.add(path, password)
        except PasswordRequired as err:
            return NeedsPassword(path, err.wrong_password, str(err))
        return info

    return body


def remove_documents(doc_ids: Sequence[str]) -> Callable[[EngineAPI], list[DocumentInfo]]:
    def body(engine: EngineAPI) -> list[DocumentInfo]:
        return [engine.remove(doc_id) for doc_id in doc_ids]

    return body


def ask(
    question: str, doc_ids: Sequence[str], cfg: DecodeConfig
) -> Callable[[EngineAPI], Answering]:
    """Answer about `doc_ids` (none = the whole library)."""

    def body(engine: EngineAPI) -> Answering:
        yield from engine.ask(question, tuple(doc_ids), cfg)

    return body


def compare_with_target(
    question: str, doc_ids: Sequence[str], cfg: DecodeConfig
) -> Callable[[EngineAPI], Answering]:
    """The same question with the target alone: the measured baseline."""
    return ask(question, doc_ids, replace(cfg, mode="target"))


def evidence(
    question: str,
    doc_ids: Sequence[str],
    answer_ids: Sequence[int],
    run: BeyondRun,
    passages: Sequence[ChunkRef],
    cfg: DecodeConfig,
) -> Callable[[EngineAPI], Answering]:
    """Where the target looked while writing `run` of an answer (ends with `Evidence`)."""

    def body(engine: EngineAPI) -> Answering:
        yield from engine.evidence(
            question, tuple(doc_ids), tuple(answer_ids), run, tuple(passages), cfg
        )

    return body
