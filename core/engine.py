"""The Engine: what `app/` and `bench/` call, through `core.api`, as `EngineAPI`
(`core/protocol.py`). Every method that works yields typed events.

The engine composes three pieces, each with one job: the library and its retriever
(`core/library/`), the model runtime (`core/models/runtime.py`: the loaded pair,
prefills, KV caches) and the answer session (`core/session.py`: one question, from
the context plan of `core/plan.py` to the decoding loop). It is not thread-safe: one
worker thread drives it; only `cancel()` may be called from another thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

from core.config import MAX_GAMMA, DecodeConfig, IndexConfig, ModelConfig
from core.errors import ConfigError, QuestionError
from core.events import BeyondRun, ChunkRef, DocumentRead, Event, Notice, Status
from core.evidence import locate_evidence
from core.gc_quiet import quiet
from core.library.embed import Embedder
from core.library.retrieve import Hit, Retriever
from core.library.schema import Chunking, DocumentInfo, default_library_dir, tokenizer_id
from core.library.store import Library
from core.models.kvstore import KVStore
from core.models.loading import LoadedModel, counting_tokenizer, load_tokenizer
from core.models.prompts import Prompt, build_prompt
from core.models.runtime import ModelRuntime, streamed
from core.pdf.extract import Document
from core.session import AnswerSession, TokenSpans, join_documents

MAX_QUESTION_CHARS = 4000


class Engine:
    """Loads models and documents; answers questions as a stream of events."""

    def __init__(self, models: ModelConfig | None = None, index: IndexConfig | None = None) -> None:
        self.models_cfg = models or ModelConfig()
        self.index_cfg = index or IndexConfig()
        self._cancel = threading.Event()
        self.runtime = ModelRuntime(self.models_cfg, self._cancel)
        self._doc_tokens: dict[str, list[int]] = {}
        # Char spans of the target prefix's tokens, per document set (KV-select drafter).
        self._token_spans: dict[tuple[str, ...], TokenSpans] = {}
        self._library: Library | None = None
        self._retriever: Retriever | None = None
        self._chunking_cache: tuple[Chunking, Any] | None = None

    # ----------------------------------------------------------------- control
    def cancel(self) -> None:
        """Ask the running job to stop at the next round or prefill chunk."""
        self._cancel.set()

    def clear_kv_cache(self, memory: bool = True, disk: bool = False) -> None:
        """Forget the documents' KV caches (in memory, on disk or both)."""
        self.runtime.clear_kv_cache(memory, disk)

    # ------------------------------------------------------------------ models
    @property
    def target(self) -> LoadedModel | None:
        """The long-context target model, once loaded."""
        return self.runtime.target

    @property
    def drafter(self) -> LoadedModel | None:
        """The drafter model (the target itself for self-speculation), once loaded."""
        return self.runtime.drafter

    @property
    def kv(self) -> KVStore:
        """The document-prefix KV store."""
        return self.runtime.kv

    @quiet
    def load_models(self) -> Iterator[Event]:
        """Load target and drafter once (idempotent), with progress as it happens."""
        yield from self.runtime.load_models()

    # ----------------------------------------------------------------- library
    @property
    def library(self) -> Library:
        """The on-disk library (opened on first use; see `IndexConfig.library`)."""
        if self._library is None:
            cfg = self.index_cfg
            root = cfg.library or default_library_dir()
            self._library = Library(
                root, Embedder(cfg.embedder), exact_limit=cfg.exact_limit,
                read_in_child=cfg.read_in_child,
            )  # fmt: skip
        return self._library

    @property
    def retriever(self) -> Retriever:
        if self._retriever is None or self._retriever.library is not self.library:
            self._retriever = Retriever(
                self.library, hybrid=self.index_cfg.hybrid, min_score=self.index_cfg.min_score
            )
        return self._retriever

    def close(self) -> None:
        """Save the library's search cache and close it."""
        if self._library is not None:
            self._library.close()
            self._library = None
            self._retriever = None

    @property
    def library_root(self) -> Path:
        """The library's folder."""
        return self.library.root

    def documents(self) -> list[DocumentInfo]:
        """The library's documents, in the order they were added."""
        return self.library.documents()

    def document(self, ref: str) -> DocumentInfo:
        """A library document by id or unique id prefix."""
        return self.library.info(ref)

    def locate(self, ref: str, folders: Sequence[Path] = ()) -> Path | None:
        """Where a document's PDF is now (found again by its bytes if it moved)."""
        return self.library.locate(ref, folders)

    def remove(self, ref: str) -> DocumentInfo:
        """Remove a document from the library by id (or a unique id prefix)."""
        return self.library.remove(ref)

    def search(self, query: str, k: int = 10, doc_ids: Sequence[str] | None = None) -> list[Hit]:
        """The `k` best passages of the library for `query` (no LLM involved)."""
        return self.retriever.search(query, k, doc_ids)

    def _chunking(self) -> Generator[Event, None, tuple[Chunking, Any]]:
        """The chunking settings and the target's counting tokenizer (no weights
        are loaded when the models are not; a first use converts the model's GGUF,
        with progress events)."""
        if self._chunking_cache is None:
            spec = self.models_cfg.target
            if self.target is not None:
                tok = self.target.tokenizer
            else:
                tok = yield from streamed(
                    lambda status, progress: load_tokenizer(spec, status, progress)
                )
            counter = counting_tokenizer(tok)
            cfg = self.index_cfg
            chunking = Chunking(
                tokenizer_id(counter), cfg.chunk_tokens, cfg.chunk_overlap, cfg.unit_word_pieces
            )
            self._chunking_cache = (chunking, counter)
        return self._chunking_cache

    def add(
        self, path: Path | str, password: str | None = None, ocr: bool | None = None
    ) -> Generator[Event, None, DocumentInfo]:
        """Add a PDF to the library (no-op when its bytes are there); yields progress
        and notes, returns its entry. Cancel with `cancel()`."""
        self._cancel.clear()
        chunking, counter = yield from self._chunking()
        info = yield from self.library.adding(
            path, password, chunking=chunking, count_tokens=counter, ocr=ocr,
            cancelled=self._cancel.is_set,
        )  # fmt: skip
        for note in info.notes:
            yield Notice(f"{info.title}: {note}", "warning")
        return info

    def reindex(self) -> Iterator[Event]:
        """Re-cut and re-embed documents cut with other chunking settings."""
        chunking, counter = yield from self._chunking()
        if self.library.stale(chunking):
            yield Status("The chunking settings changed: re-indexing the library ...")
            yield from self.library.reindexing(chunking, counter, self._cancel.is_set)

    def _read(self, doc_ids: Sequence[str]) -> Generator[Event, None, list[Document]]:
        """The library documents `doc_ids`, in the order given and once each, tokenized
        for the target (cached); one `DocumentRead` each."""
        assert self.target is not None
        docs = []
        for doc_id in dict.fromkeys(doc_ids):
            doc = self.library.document(doc_id)
            if doc.doc_id not in self._doc_tokens:
                self._doc_tokens[doc.doc_id] = self.target.tokenizer.encode(
                    doc.text, add_special_tokens=False
                )
            tokens = len(self._doc_tokens[doc.doc_id])
            yield DocumentRead(doc.doc_id, doc.title, len(doc.pages), tokens)
            docs.append(doc)
        return docs

    @quiet
    def ask(
        self,
        question: str,
        documents: Sequence[Path | str] = (),
        decode_cfg: DecodeConfig | None = None,
        password: str | None = None,
    ) -> Iterator[Event]:
        """Answer `question` about `documents`: PDF paths (added to the library
        first) or library document ids; none = the whole library. Ends with one
        `Finished` event."""
        cfg = decode_cfg or DecodeConfig()
        question = _check_question(question)
        _check_config(cfg)
        self._cancel.clear()
        t_start = time.perf_counter()
        paths = [Path(d) for d in documents if _is_path(d)]
        refs = [self.library.info(str(d)).doc_id for d in documents if not _is_path(d)]
        if not documents:
            refs = [info.doc_id for info in self.library.documents()]
            if not refs:
                raise QuestionError(
                    f"The library at {self.library.root} is empty: there is nothing to ask "
                    "about. Add a PDF first (`rapidqa index add FILE.pdf`, or give the PDF)."
                )
        # A broken or locked PDF fails before any model loads: add them first.
        for path in paths:
            info = yield from self.add(path, password)
            refs.append(info.doc_id)
        yield from self.load_models()
        yield from self.reindex()
        docs = yield from self._read(refs)
        yield from self._session().ask(question, docs, cfg, t_start)

    @quiet
    def evidence(
        self,
        question: str,
        doc_ids: Sequence[str],
        answer_ids: Sequence[int],
        run: BeyondRun,
        passages: Sequence[ChunkRef] = (),
        decode_cfg: DecodeConfig | None = None,
    ) -> Iterator[Event]:
        """Where the target looked while writing `run` of an answer (core/evidence.py);
        ends with one `Evidence`. The answer's question, documents and settings must be
        those it was asked with, for the target to read what it read then."""
        cfg = decode_cfg or DecodeConfig()
        question = _check_question(question)
        _check_config(cfg)
        self._cancel.clear()
        yield from self.load_models()
        refs = doc_ids or [i.doc_id for i in self.library.documents()]
        docs = yield from self._read([self.library.info(d).doc_id for d in refs])
        yield from locate_evidence(self._session(), question, docs, answer_ids, run, passages, cfg)

    def _session(self) -> AnswerSession:
        return AnswerSession(
            self.runtime, self.retriever, self._doc_tokens, self._token_spans, self._cancel
        )

    # -------------------------------------------------------------- prompts
    def full_prompt(
        self, question: str, documents: Sequence[Path], password: str | None = None
    ) -> Generator[Event, None, Prompt]:
        """The target's prompt of the whole `documents` (added first when new) and
        `question`, with the models loaded: what a peer decoder (bench/peers.py) runs."""
        question = _check_question(question)
        self._cancel.clear()
        infos = []
        for path in documents:
            infos.append((yield from self.add(path, password)))
        yield from self.load_models()
        assert self.target is not None
        docs = yield from self._read([info.doc_id for info in infos])
        text, _ = join_documents(docs)
        return build_prompt(self.target.tokenizer, text, question)


def _is_path(ref: Path | str) -> bool:
    """A PDF path (vs a library document id): a Path, or a string naming a file or
    ending in .pdf."""
    if isinstance(ref, Path):
        return True
    return ref.lower().endswith(".pdf") or "/" in ref or "\\" in ref or Path(ref).exists()


def _check_question(question: str) -> str:
    q = " ".join((question or "").split())
    if not q:
        raise QuestionError("The question is empty. Type a question about the document.")
    if len(q) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"The question is {len(q)} characters long; keep it under {MAX_QUESTION_CHARS}."
        )
    return q


def _check_config(cfg: DecodeConfig) -> None:
    problems = []
    if not 1 <= cfg.gamma <= MAX_GAMMA:
        problems.append(f"gamma must be between 1 and {MAX_GAMMA} (got {cfg.gamma})")
    if cfg.eta < 0:
        problems.append(f"eta must be >= 0 (got {cfg.eta})")
    if not 0 < cfg.alpha <= 1:
        problems.append(f"alpha must be in (0, 1] (got {cfg.alpha})")
    if cfg.temperature < 0:
        problems.append(f"temperature must be >= 0 (got {cfg.temperature})")
    if cfg.max_new_tokens < 1:
        problems.append(f"max new tokens must be >= 1 (got {cfg.max_new_tokens})")
    if cfg.budget is not None and cfg.budget < 1:
        problems.append(f"the retrieval budget must be >= 1 token (got {cfg.budget})")
    if cfg.prefill_chunk < 1:
        problems.append(f"the prefill chunk must be >= 1 token (got {cfg.prefill_chunk})")
    if problems:
        raise ConfigError("Invalid settings: " + "; ".join(problems) + ".")
