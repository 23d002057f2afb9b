"""A scripted engine for the window tests: the real engine's methods and event types,
with answers, their provenance (sentence citations, "read beyond the passages" runs,
a preliminary answer), the evidence for a run, and ingest progress played from a
script (no models, no library)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.api import DocumentInfo, Hit
from core.config import DecodeConfig, IndexConfig, ModelConfig
from core.errors import Cancelled, DocumentError, PasswordRequired, QuestionError
from core.events import (
    BeyondRun,
    Calibrated,
    ChunkRef,
    DraftStep,
    Event,
    Evidence,
    EvidenceSpot,
    Finished,
    IngestProgress,
    LoadProgress,
    ModelLoaded,
    PrefillProgress,
    PreliminaryAnswer,
    PreliminaryToken,
    Retrieved,
    SentenceCitation,
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
    # Provenance: every `sentence_rounds`-th round's target token ends a sentence ("t4.");
    # sentence k cites passages CITED[k % 3] (() = unsupported); rounds 5-6 are a run
    # the target wrote beyond the passages (with `rounds` >= 6).
    sentence_rounds: int = 4
    # A preliminary answer, streamed word by word before the target's read (when set);
    # `hold_read`, when given, keeps the read going until it is set (or a cancel).
    preliminary: str = ""
    preliminary_delay_s: float = 0.0
    read_steps: int = 2
    read_delay_s: float = 0.0
    hold_read: threading.Event | None = None
    # The evidence for a run: `evidence_steps` progress steps of `evidence_delay_s`; the
    # strongest spot outside the retrieved passages (page 3) or inside them.
    document_citation: bool = False  # the unsupported sentence cites a found passage
    evidence_steps: int = 3
    evidence_delay_s: float = 0.0
    evidence_outside: bool = True
    evidence_asked: list[tuple[str, tuple[str, ...], tuple[int, ...], BeyondRun,
                               tuple[ChunkRef, ...]]] = field(default_factory=list)  # fmt: skip


CITED: tuple[tuple[int, ...], ...] = ((0,), (0, 1), ())  # passages of sentence k % 3
OUTSIDE_RECTS = ((3, 60.0, 300.0, 420.0, 314.0), (3, 60.0, 316.0, 400.0, 330.0))


def spot_of(chunk: ChunkRef) -> ChunkRef:
    """The narrowed spot of a passage: its second line only."""
    return replace(chunk, text=f"{chunk.text} (line 2)", rects=chunk.rects[1:2])


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
        # As the engine: a cancel before the first round ends the stream with a
        # cancelled `Finished` (keeping the preliminary answer streamed so far).
        preliminary = self.script.preliminary if cfg.speculative else ""
        streamed = ""
        if preliminary:
            words = preliminary.split(" ")
            for i, word in enumerate(words):
                if self._cancel.is_set():
                    yield self._finished(cfg, "cancelled", [], chunks, streamed)
                    return
                time.sleep(self.script.preliminary_delay_s)
                streamed += word if i == 0 else " " + word
                yield PreliminaryToken(word if i == 0 else " " + word)
            yield PreliminaryAnswer(preliminary, len(words), 0.4, chunks)
        steps = max(self.script.read_steps, 1)
        for i in range(1, steps + 1):
            if self._cancel.is_set():
                yield self._finished(cfg, "cancelled", [], chunks, preliminary)
                return
            time.sleep(self.script.read_delay_s)
            yield PrefillProgress("target", 1024 * i // steps, 1024, i / steps)
        hold = self.script.hold_read
        while hold is not None and not hold.wait(0.01):
            if self._cancel.is_set():
                yield self._finished(cfg, "cancelled", [], chunks, preliminary)
                return
        yield Calibrated(1024, 0.1)
        done: list[DraftStep] = []
        rounds = self.script.rounds
        for n in range(1, rounds + 1):
            if self._cancel.is_set():
                yield self._finished(cfg, "cancelled", done, chunks, preliminary)
                return
            time.sleep(self.script.round_delay_s)
            s = step(n, 1 if n % 3 else 3) if cfg.speculative else step(n, 0, 0, "target")
            if self.script.sentence_rounds and n % self.script.sentence_rounds == 0:
                s = replace(s, token_text=s.token_text + ".")
            done.append(s)
            yield s
        yield self._finished(cfg, "eos", done, chunks, preliminary)

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()

    def _finished(
        self, cfg: DecodeConfig, reason: str, steps: Sequence[DraftStep],
        chunks: tuple[ChunkRef, ...], preliminary: str,
    ) -> Finished:  # fmt: skip
        rounds = len(steps)
        decode_s = 0.011 * max(rounds, 1) * (1.0 if cfg.speculative else 1.5)
        texts = [t for s in steps for t in s.emitted_texts]
        raw = "".join(texts)
        answer = raw.strip()
        chunks = chunks if cfg.speculative else ()
        citations, beyond = provenance(steps, chunks, len(raw) - len(raw.lstrip()), answer)
        if self.script.document_citation and chunks and len(citations) >= 3:
            # as the engine's cite_document: the unsupported sentence cites a passage
            # found in the rest of the document, appended to the chunks
            found = replace(self.chunk(chunks[0].doc_id, 4), origin="document")
            citations = (*citations[:2], replace(citations[2], passages=(len(chunks),),
                         spots=(spot_of(found),)), *citations[3:])  # fmt: skip
            chunks = (*chunks, found)
        return Finished(
            answer=answer, mode=cfg.mode, stop_reason=reason,  # type: ignore[arg-type]
            new_tokens=len(texts), rounds=rounds, drafted=sum(len(s.drafted_ids) for s in steps),
            accepted=sum(s.accepted for s in steps), target_prefill_s=1.0,
            drafter_prefill_s=0.0, decode_s=decode_s, end_to_end_s=1.5, baseline_step_s=0.1,
            chunks=chunks, citations=citations, beyond=beyond,
            answer_ids=tuple(i for s in steps for i in s.emitted_ids), preliminary=preliminary,
        )  # fmt: skip

    def evidence(
        self,
        question: str,
        doc_ids: Sequence[str],
        answer_ids: Sequence[int],
        run: BeyondRun,
        passages: Sequence[ChunkRef] = (),
        decode_cfg: DecodeConfig | None = None,
    ) -> Iterator[Event]:
        self._cancel.clear()
        self.script.evidence_asked.append(
            (question, tuple(doc_ids), tuple(answer_ids), run, tuple(passages))
        )
        yield Status("Reading the document again to see where the target looked")
        steps = max(self.script.evidence_steps, 1)
        for i in range(1, steps + 1):
            self._check_cancel()
            time.sleep(self.script.evidence_delay_s)
            yield PrefillProgress("target", 1024 * i // steps, 1024, 0.1 * i)
        self._check_cancel()
        doc = (list(doc_ids) or [c.doc_id for c in passages] or list(self.docs))[0]
        title = self.docs[doc].title if doc in self.docs else doc
        outside = ChunkRef(doc, title, (3,), 0.0, "the keeper's journal on page 3", 30,
                           rects=OUTSIDE_RECTS, labels=("3",))  # fmt: skip
        spots = [EvidenceSpot(outside, 0.5 if self.script.evidence_outside else 0.2, False)]
        if passages:
            inside = EvidenceSpot(spot_of(passages[0]), 0.25, True)
            spots.insert(1 if self.script.evidence_outside else 0, inside)
        yield Evidence(run, tuple(sorted(spots, key=lambda s: -s.weight)), 0.3)


def provenance(
    steps: Sequence[DraftStep], chunks: Sequence[ChunkRef], lead: int, answer: str
) -> tuple[tuple[SentenceCitation, ...], tuple[BeyondRun, ...]]:
    """The fake's citations and beyond runs: a sentence ends with each target token
    that ends in "." (and at the answer's end); rounds 5-6 are a run beyond the passages."""
    spans: list[tuple[int, int, bool]] = []  # each emitted token: answer chars, drafted
    pos = -lead
    for s in steps:
        for i, text in enumerate(s.emitted_texts):
            spans.append((max(pos, 0), max(pos + len(text), 0), i < s.accepted))
            pos += len(text)
    ends = [e for (_s, e, drafted), t in zip(spans, _texts(steps), strict=True)
            if not drafted and t.endswith(".")]  # fmt: skip
    if not ends or ends[-1] < len(answer):
        ends.append(len(answer))
    citations, start = [], 0
    for k, end in enumerate(ends):
        while start < end and answer[start].isspace():
            start += 1
        inside = [d for a, b, d in spans if a < end and b > start]
        passages = tuple(p for p in CITED[k % 3] if p < len(chunks))
        share = sum(inside) / len(inside) if inside else 0.0
        spots = tuple(spot_of(chunks[p]) for p in passages)
        citations.append(SentenceCitation(start, end, passages, spots, share))
        start = end
    beyond: tuple[BeyondRun, ...] = ()
    if len(steps) >= 6 and chunks:
        first = sum(len(s.emitted_ids) for s in steps[:4])
        last = first + sum(len(s.emitted_ids) for s in steps[4:6])
        beyond = (BeyondRun(first, last, spans[first][0], spans[last - 1][1], 2),)
    return tuple(citations), beyond


def _texts(steps: Sequence[DraftStep]) -> list[str]:
    return [t for s in steps for t in s.emitted_texts]
