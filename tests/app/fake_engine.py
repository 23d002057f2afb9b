"""A scripted engine for the window tests: the real engine's methods and event types,
with answers and ingest progress played from a script (no models, no library)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.api import DocumentInfo, Hit
from core.config import DecodeConfig, IndexConfig, ModelConfig
from core.errors import Cancelled, DocumentError, PasswordRequired, QuestionError
from core.events import (
    Calibrated,
    ChunkRef,
    DraftStep,
    Event,
    Finished,
    IngestProgress,
    LoadProgress,
    ModelLoaded,
    PrefillProgress,
    Retrieved,
    Status,
)


def step(n: int, accepted: int = 2, drafted: int = 3, kind: str = "correction") -> DraftStep:
    """Round `n`: `drafted` draft tokens ("d<n>.<i>"), the first `accepted` kept, then the
    target's token ("t<n>") of `kind`."""
    texts = tuple(f" d{n}.{i}" for i in range(drafted))
    return DraftStep(
        round=n, drafted_ids=tuple(range(100, 100 + drafted)), drafted_texts=texts,
        accepted=accepted, token_id=7, token_text=f" t{n}", token_kind=kind,  # type: ignore[arg-type]
        source="lookup" if drafted else "none", p_target=(0.9,) * drafted,
        p_draft=(0.8,) * drafted, p_hat=(0.95,) * drafted, token_p_target=0.6,
        token_p_hat=0.7, draft_s=0.001, verify_s=0.01, context_tokens=1000 + n,
    )  # fmt: skip


@dataclass
class Script:
    """What the fake engine does: rounds per answer, delays, failures."""

    rounds: int = 12
    round_delay_s: float = 0.0
    ingest_pages: int = 5
    page_delay_s: float = 0.0
    fail_ask: str = ""  # a message: ask raises QuestionError with it
    password: str = ""  # PDFs named "locked*.pdf" need it
    load_delay_s: float = 0.0
    asked: list[tuple[str, tuple[str, ...], DecodeConfig]] = field(default_factory=list)


class FakeEngine:
    """`core.protocol.EngineAPI` (mypy checks it: tests/engine_types.py), with the
    engine's event types."""

    def __init__(self, script: Script | None = None) -> None:
        self.models_cfg = ModelConfig(target="fake-target", device="cpu")
        self.index_cfg = IndexConfig(library=Path("fake-library"))
        self.script = script or Script()
        self.docs: dict[str, DocumentInfo] = {}
        self._cancel = threading.Event()
        self.closed = False
        self.thread: threading.Thread | None = None

    def cancel(self) -> None:
        self._cancel.set()

    def close(self) -> None:
        self.closed = True

    @property
    def library_root(self) -> Path:
        return Path(self.index_cfg.library or "fake-library")

    def documents(self) -> list[DocumentInfo]:
        self.thread = threading.current_thread()
        return list(self.docs.values())

    def document(self, ref: str) -> DocumentInfo:
        found = [d for d in self.docs.values() if d.doc_id.startswith(ref)]
        if len(found) != 1:
            raise DocumentError(f"No single document {ref!r} in the library.")
        return found[0]

    def locate(self, ref: str, folders: Sequence[Path] = ()) -> Path | None:
        return self.document(ref).path

    def search(self, query: str, k: int = 10, doc_ids: Sequence[str] | None = None) -> list[Hit]:
        return []  # the window tests never search

    def clear_kv_cache(self, memory: bool = True, disk: bool = False) -> None:
        pass

    def load_models(self) -> Iterator[Event]:
        time.sleep(self.script.load_delay_s)
        yield Status("Loading fake models")
        for done in (1, 2):  # a first use's conversion, then the weights
            yield LoadProgress("fake-target", "reading the tokenizer", done, 2, 0.1 * done)
            time.sleep(self.script.load_delay_s)
        yield ModelLoaded("target", "fake-target", "cpu", "float32", 1000, 8192, 0.1)
        yield ModelLoaded("drafter", "fake-target", "cpu", "float32", 1000, 8192, 0.0, True)

    def add(
        self, path: Path | str, password: str | None = None, ocr: bool | None = None
    ) -> Generator[Event, None, DocumentInfo]:
        self._cancel.clear()
        path = Path(path)
        if not path.is_file():
            raise DocumentError(f"No such file: {path}. Check the path and try again.")
        if path.name.startswith("locked") and password != self.script.password:
            raise PasswordRequired("The PDF is encrypted.", wrong_password=password is not None)
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        doc_id = sha[:12]
        if doc_id in self.docs:
            return self.docs[doc_id]
        total = self.script.ingest_pages
        for done in range(1, total + 1):
            if self._cancel.is_set():
                raise Cancelled()
            time.sleep(self.script.page_delay_s)
            yield IngestProgress(path.stem, "read", done, total, eta_s=float(total - done))
        yield IngestProgress(path.stem, "embed", 10, 10, eta_s=0.0)
        info = DocumentInfo(
            doc_id=doc_id, sha256=sha, path=path, title=path.stem, pages=total,
            tokens=1000 * total, chars=4000 * total, size=len(data), added=time.time(),
            notes=(), chunking="fake", chunks=total, units=2 * total,
        )  # fmt: skip
        self.docs[doc_id] = info
        return info

    def remove(self, ref: str) -> DocumentInfo:
        return self.docs.pop(ref)

    def chunk(self, doc_id: str, page: int) -> ChunkRef:
        title = self.docs[doc_id].title if doc_id in self.docs else doc_id
        return ChunkRef(
            doc_id=doc_id, title=title, pages=(page,), score=0.8, text=f"passage on {page}",
            tokens=40, rects=((page, 50.0, 50.0, 400.0, 64.0), (page, 50.0, 66.0, 380.0, 80.0)),
            labels=(str(page),),
        )  # fmt: skip

    def ask(
        self,
        question: str,
        documents: Sequence[Path | str] = (),
        decode_cfg: DecodeConfig | None = None,
        password: str | None = None,
    ) -> Iterator[Event]:
        cfg = decode_cfg or DecodeConfig()
        self._cancel.clear()
        self.script.asked.append((question, tuple(str(d) for d in documents), cfg))
        if self.script.fail_ask:
            raise QuestionError(self.script.fail_ask)
        docs = [str(d) for d in documents] or list(self.docs)
        if not docs:
            raise QuestionError("The library is empty: add a PDF first.")
        yield from self.load_models()
        chunks = tuple(self.chunk(d, p) for d in docs for p in (1, 2))
        if cfg.speculative:
            yield Retrieved("drafter", chunks, 512, 160)
        for done in (512, 1024):
            yield PrefillProgress("target", done, 1024, done / 1000)
        yield Calibrated(1024, 0.1)
        new = drafted = accepted = 0
        rounds = self.script.rounds
        for n in range(1, rounds + 1):
            if self._cancel.is_set():
                yield self._finished(cfg, "cancelled", new, n - 1, drafted, accepted, chunks)
                return
            time.sleep(self.script.round_delay_s)
            s = step(n, 1 if n % 3 else 3) if cfg.speculative else step(n, 0, 0, "target")
            new += len(s.emitted_ids)
            drafted += len(s.drafted_ids)
            accepted += s.accepted
            yield s
        yield self._finished(cfg, "eos", new, rounds, drafted, accepted, chunks)

    def _finished(
        self, cfg: DecodeConfig, reason: str, new: int, rounds: int, drafted: int,
        accepted: int, chunks: tuple[ChunkRef, ...],
    ) -> Finished:  # fmt: skip
        decode_s = 0.011 * max(rounds, 1) * (1.0 if cfg.speculative else 1.5)
        return Finished(
            answer=f"answer in {cfg.mode} mode", mode=cfg.mode, stop_reason=reason,  # type: ignore[arg-type]
            new_tokens=new, rounds=rounds, drafted=drafted, accepted=accepted,
            target_prefill_s=1.0, drafter_prefill_s=0.0, decode_s=decode_s,
            end_to_end_s=1.5, baseline_step_s=0.1, chunks=chunks if cfg.speculative else (),
        )  # fmt: skip
