"""The jobs the window gives the engine worker: each is `body(engine)` returning an
event generator or a value. Kept here, apart from the widgets, so that what runs on
the engine's thread is in one short file and touches nothing of Qt."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.api import DocumentInfo
from core.config import DecodeConfig
from core.errors import PasswordRequired
from core.events import ChunkRef, Event, Finished

if TYPE_CHECKING:
    from app.history import AnswerRecord
    from app.settings import Settings

Engine = Any  # core.api.Engine, or a test's scripted engine with the same methods


@dataclass(frozen=True)
class NeedsPassword:
    """An add that stopped at an encrypted PDF: ask the user, then add again."""

    path: Path
    wrong_password: bool
    message: str


def list_documents() -> Any:
    def body(engine: Engine) -> list[DocumentInfo]:
        return list(engine.documents())

    return body


def load_models() -> Any:
    def body(engine: Engine) -> Generator[Event, None, None]:
        yield from engine.load_models()

    return body


def add_document(path: Path, password: str | None = None) -> Any:
    def body(engine: Engine) -> Generator[Event, None, DocumentInfo | NeedsPassword]:
        try:
            info: DocumentInfo = yield from engine.add(path, password)
        except PasswordRequired as err:
            return NeedsPassword(path, err.wrong_password, str(err))
        return info

    return body


def remove_documents(doc_ids: Sequence[str]) -> Any:
    def body(engine: Engine) -> list[DocumentInfo]:
        return [engine.remove(doc_id) for doc_id in doc_ids]

    return body


def ask(question: str, doc_ids: Sequence[str], cfg: DecodeConfig) -> Any:
    """Answer about `doc_ids` (none = the whole library)."""

    def body(engine: Engine) -> Generator[Event, None, None]:
        yield from engine.ask(question, tuple(doc_ids), cfg)

    return body


def compare_with_target(question: str, doc_ids: Sequence[str], cfg: DecodeConfig) -> Any:
    """The same question with the target alone: the measured baseline."""
    return ask(question, doc_ids, replace(cfg, mode="target"))


@dataclass
class Run:
    """What the window remembers about one job it submitted (kept on the GUI thread)."""

    kind: str
    key: str = ""
    path: Path | None = None
    question: str = ""
    doc_ids: tuple[str, ...] = ()
    settings: Settings | None = None
    finished: Finished | None = None
    chunks: tuple[ChunkRef, ...] = ()
    record: AnswerRecord | None = None
    of: Run | None = None  # a comparison: the answer it measures
