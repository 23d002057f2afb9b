"""The Engine: what `app/` calls, through `core.api`. Every method yields typed events.

An `Engine` owns the models, the documents read so far, the retriever and the
document-prefix KV store. It is not thread-safe: one worker thread drives it; only
`cancel()` may be called from another thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch

from core.bench import HFKind
from core.config import MAX_GAMMA, DecodeConfig, IndexConfig, ModelConfig, default_budget
from core.decoding.fastlm import FastSequence
from core.decoding.lm import Sequence as LMSequence
from core.decoding.lm import SequenceFactory
from core.decoding.lookup import LookupDrafter
from core.decoding.loop import Detokenizer, LoopResult, decode
from core.decoding.proposers import ModelDrafter, trimmed_head_ids
from core.embed import Embedder
from core.errors import ConfigError, QuestionError
from core.events import (
    ChunkRef,
    DocumentRead,
    Event,
    Finished,
    LoadProgress,
    ModelLoaded,
    Notice,
    PrefillProgress,
    Retrieved,
    Status,
)
from core.gc_quiet import quiet
from core.index import Chunking, DocumentInfo, Library, default_library_dir, tokenizer_id
from core.ingest import Document
from core.kvstore import KVStore, prefix_key
from core.models import (
    LoadedModel,
    ProgressFn,
    StatusFn,
    cache_dir,
    counting_tokenizer,
    cpu_has_bf16,
    load_pair,
    load_tokenizer,
)
from core.prompts import (
    DOCUMENT_HEADER_TOKENS,
    Prompt,
    build_prompt,
    context_room,
    context_token_spans,
)
from core.retrieve import Hit, Retriever, join_chunks

MAX_QUESTION_CHARS = 4000
MIN_DRAFTER_BUDGET = 256  # at least one retrieval unit, even for a short document


@dataclass
class _Live:
    """The target sequence of the last question, reusable when the prefix matches."""

    key: str
    seq: LMSequence
    prefix_len: int


class Engine:
    """Loads models and documents; answers questions as a stream of events."""

    def __init__(self, models: ModelConfig | None = None, index: IndexConfig | None = None) -> None:
        self.models_cfg = models or ModelConfig()
        self.index_cfg = index or IndexConfig()
        self.target: LoadedModel | None = None
        self.drafter: LoadedModel | None = None
        self._factories: dict[int, SequenceFactory] = {}
        self._doc_tokens: dict[str, list[int]] = {}
        self._library: Library | None = None
        self._retriever: Retriever | None = None
        self._chunking_cache: tuple[Chunking, Any] | None = None
        self._cancel = threading.Event()
        self._live: _Live | None = None
        self._live_drafter: _Live | None = None  # the drafter's sequence, likewise
        # Learned verify-cost curves (n tokens -> ratio to a one-token step), per target
        # model, precision and context bucket, so each question starts from what earlier
        # ones measured (int4's curve is steep, bf16's flat: docs/benchmarks.md).
        self._verify_costs: dict[tuple[str, str, int], dict[int, float]] = {}
        # Char spans of the target prefix's tokens, per document set (KV-select drafter).
        self._token_spans: dict[tuple[str, ...], tuple[int, list[tuple[int, int]]]] = {}
        self.kv = KVStore(cache_dir() / "kv")

    # ----------------------------------------------------------------- control
    def cancel(self) -> None:
        """Ask the running job to stop at the next round or prefill chunk."""
        self._cancel.set()

    def clear_kv_cache(self, memory: bool = True, disk: bool = False) -> None:
        self.kv.clear(memory, disk)
        self._live = self._live_drafter = None

    # ------------------------------------------------------------------ models
    @quiet
    def load_models(self) -> Iterator[Event]:
        """Load target and drafter once (idempotent), with progress as it happens."""
        if self.target is not None:
            return
        cfg = self.models_cfg
        target, drafter = yield from _streamed(
            lambda status, progress: load_pair(cfg, status, progress)
        )
        self.target, self.drafter = target, drafter
        shared = drafter is target
        for role, m in (("target", target), ("drafter", drafter)):
            yield ModelLoaded(
                role, m.name, str(m.device), m.precision,  # type: ignore[arg-type]
                m.parameters, m.context_window,
                m.load_seconds if not (shared and role == "drafter") else 0.0,
                shared_with_target=shared and role == "drafter",
            )  # fmt: skip

    def _factory(self, m: LoadedModel) -> SequenceFactory:
        key = id(m.model)
        if key not in self._factories:
            f = SequenceFactory(m.model)
            if f.fast is not None and _fast_prefill(self.models_cfg.fast_prefill, m):
                f.fast.use_fast_prefill(torch.bfloat16)
            self._factories[key] = f
        return self._factories[key]

    def _prefill_tag(self, m: LoadedModel) -> str:
        f = self._factory(m)
        return "" if f.fast is None else f"{f.fast.kind}{f.fast.prefill_dtype}"

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

    def documents(self) -> list[DocumentInfo]:
        """The library's documents, in the order they were added."""
        return self.library.documents()

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
                tok = yield from _streamed(
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

    def _loaded(self, doc_id: str) -> Generator[Event, None, Document]:
        doc = self.library.document(doc_id)
        assert self.target is not None
        if doc.doc_id not in self._doc_tokens:
            self._doc_tokens[doc.doc_id] = self.target.tokenizer.encode(
                doc.text, add_special_tokens=False
            )
        yield DocumentRead(doc.doc_id, doc.title, len(doc.pages), len(self._doc_tokens[doc.doc_id]))
        return doc

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            from core.errors import Cancelled

            raise Cancelled()

    # ----------------------------------------------------------------- answers
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
        target, drafter = self.target, self.drafter
        assert target is not None and drafter is not None
        yield from self.reindex()
        docs: list[Document] = []
        for doc_id in dict.fromkeys(refs):  # in the order given, once each
            docs.append((yield from self._loaded(doc_id)))
        tok = target.tokenizer
        count = _counter(tok)
        doc_ids = [d.doc_id for d in docs]
        full_text, doc_starts = _join_documents(docs)
        doc_tokens = sum(len(self._doc_tokens[d.doc_id]) for d in docs)
        retriever = self.retriever

        # Target context: the whole document when it fits the window, else the
        # best-matching sections that do (retrieval with the target's budget).
        target_room = context_room(tok, target.context_window, question, cfg.max_new_tokens)
        if target_room < 64:
            raise ConfigError(
                f"The target's window ({target.context_window} tokens) leaves no room for the "
                f"document with {cfg.max_new_tokens} new tokens. Lower --max-new-tokens."
            )
        # L in the budget rule (docs/architecture.md, "The retrieval budget") is the context
        # the target reads: the whole document, or what of it fits the window. A drafter
        # reading as much as the target would cost as much per step.
        target_reads = min(doc_tokens, target_room)
        budget = cfg.budget or max(default_budget(target_reads), MIN_DRAFTER_BUDGET)
        if cfg.mode == "rag":
            budget = min(budget, target_room)
        target_chunks: tuple[ChunkRef, ...] = ()
        if doc_tokens + len(docs) * DOCUMENT_HEADER_TOKENS <= target_room:
            target_text = full_text
        else:
            target_chunks = tuple(retriever.select(question, target_room, count, doc_ids))
            target_text = join_chunks(target_chunks)
            yield Notice(
                f"The document has {doc_tokens} tokens; the target's window holds "
                f"{target.context_window}. The target reads the {len(target_chunks)} "
                f"best-matching sections ({count(target_text)} tokens).",
                "warning",
            )
            yield Retrieved("target", target_chunks, target_room, count(target_text))

        drafter_chunks: tuple[ChunkRef, ...] = ()
        drafter_prompt: Prompt | None = None
        if cfg.mode in ("rag", "sd", "rapid"):
            d_room = context_room(tok, drafter.context_window, question, cfg.max_new_tokens)
            drafter_chunks = tuple(
                retriever.select(question, max(0, min(budget, d_room)), count, doc_ids)
            )
            d_text = join_chunks(drafter_chunks)
            drafter_prompt = build_prompt(drafter.tokenizer, d_text, question)
            yield Retrieved("drafter", drafter_chunks, budget, count(d_text))

        # Prefill the target (`rag`: the target reads the drafter's context instead).
        if cfg.mode == "rag":
            assert drafter_prompt is not None
            target_prompt = build_prompt(tok, join_chunks(drafter_chunks), question)
        else:
            target_prompt = build_prompt(tok, target_text, question)
        t_prefill = time.perf_counter()
        seq = yield from self._target_sequence(target, target_prompt, cfg)
        if seq is None:
            yield self._cancelled(cfg, t_start)
            return
        target_prefill_s = time.perf_counter() - t_prefill

        # Drafter: its own sequence on the retrieved context (shared weights if self).
        model_drafter: ModelDrafter | None = None
        lookup: LookupDrafter | None = None
        drafter_prefill_s = 0.0
        if cfg.speculative and drafter_prompt is not None:
            t_d = time.perf_counter()
            f = self._factory(drafter)
            extra = cfg.max_new_tokens + 2 * cfg.gamma + 8
            select = (
                cfg.drafter_kv == "select" and drafter is target and not target_chunks
                and isinstance(seq, FastSequence)
            )  # fmt: skip
            if select:
                # Self-speculation: the drafter reads the retrieved passages straight
                # from the target's prefilled KV cache (no prefill of its own).
                assert isinstance(seq, FastSequence)
                spans_key = tuple(d.doc_id for d in docs)
                if spans_key not in self._token_spans:  # once per document set
                    self._token_spans[spans_key] = context_token_spans(tok, full_text)
                positions = _passage_positions(
                    self._token_spans[spans_key], doc_starts, drafter_chunks, seq.length,
                    len(target_prompt.prefix),
                )  # fmt: skip
                dseq: LMSequence = FastSequence.select_from(seq, positions, extra)
                prompt_ids = target_prompt.ids
                d_ids = [prompt_ids[i] for i in positions.tolist()] + [prompt_ids[-1]]
                yield PrefillProgress("drafter", len(d_ids), len(d_ids),
                                      time.perf_counter() - t_d, len(d_ids))  # fmt: skip
            else:
                d_ids = drafter_prompt.ids
                reused = yield from self._drafter_sequence(drafter, d_ids, extra, cfg)
                if reused is None:
                    yield self._cancelled(cfg, t_start)
                    return
                dseq = reused
            head_ids = trimmed_head_ids(d_ids, f.vocab_size) if f.fast is not None else None
            model_drafter = ModelDrafter(dseq, f.lm_head, target.model.config.vocab_size, head_ids)
            model_drafter.pending = [d_ids[-1]]
            drafter_prefill_s = time.perf_counter() - t_d
            if cfg.lookup:
                doc_ids_all = [t for d in docs for t in self._doc_tokens[d.doc_id]]
                if cfg.effective_eta == 0:
                    sources = [list(target_prompt.suffix), d_ids, doc_ids_all]
                else:
                    # Under eta answers began by restating the question ("Question:
                    # ...", 28 of 48 in the quality benchmark): look up in the passages
                    # only. (The KV-select drafter's own token list holds the question
                    # too, so the passages come from its prompt in both contexts.)
                    passages = drafter_prompt.ids[: len(drafter_prompt.prefix)]
                    sources = [passages, doc_ids_all]
                lookup = LookupDrafter(
                    sources, search_answer=cfg.effective_eta == 0, tail=target_prompt.ids
                )

        # Decode.
        detok = Detokenizer(lambda ids: str(tok.decode(ids, skip_special_tokens=True)))
        result = LoopResult(tokens=[])
        prompt_ids = target_prompt.ids
        cost_key = (target.key, target.precision, len(prompt_ids) // 2048)
        first_token_at = 0.0
        for ev in decode(
            seq, prompt_ids[-1], cfg,
            vocab=int(target.model.config.vocab_size), eos_ids=frozenset(target.eos_ids),
            detok=detok, drafter=model_drafter, lookup=lookup,
            cancelled=self._cancel.is_set, result=result,
            cost_prior=self._verify_costs.get(cost_key),
        ):  # fmt: skip
            if not first_token_at and result.tokens:
                first_token_at = time.perf_counter()
            yield ev
        self._verify_costs[cost_key] = result.verify_costs
        chunks = drafter_chunks or target_chunks
        yield Finished(
            answer=detok.text.strip(),
            mode=cfg.mode,
            stop_reason=result.stop_reason,  # type: ignore[arg-type]
            new_tokens=len(result.tokens),
            rounds=result.rounds,
            drafted=result.drafted,
            accepted=result.accepted,
            target_prefill_s=target_prefill_s,
            drafter_prefill_s=drafter_prefill_s,
            decode_s=result.decode_s,
            end_to_end_s=time.perf_counter() - t_start,
            baseline_step_s=result.baseline_step_s,
            chunks=chunks,
            time_to_first_token_s=(first_token_at or time.perf_counter()) - t_start,
        )

    def _drafter_sequence(
        self, drafter: LoadedModel, d_ids: list[int], extra: int, cfg: DecodeConfig
    ) -> Generator[Event, None, LMSequence | None]:
        """A drafter sequence holding d_ids[:-1]: the last question's when its drafter
        context was the same (another mode or setting on the same question), else
        prefilled. None when cancelled."""
        key = prefix_key(drafter.key + self._prefill_tag(drafter), drafter.dtype, d_ids)
        live, self._live_drafter = self._live_drafter, None
        cached = 0
        if live is not None and live.key == key:
            seq, cached = live.seq, live.prefix_len
            seq.crop(cached)
            seq.reserve(len(d_ids) + extra)
        else:
            seq = self._factory(drafter).new(len(d_ids) + extra)
        ok = yield from self._prefill(seq, d_ids[cached:-1], "drafter", cfg.prefill_chunk, cached)
        if not ok:
            return None
        self._live_drafter = _Live(key, seq, len(d_ids) - 1)
        return seq

    def _cancelled(self, cfg: DecodeConfig, t_start: float) -> Finished:
        return Finished(
            answer="", mode=cfg.mode, stop_reason="cancelled", new_tokens=0, rounds=0,
            drafted=0, accepted=0, target_prefill_s=0.0, drafter_prefill_s=0.0, decode_s=0.0,
            end_to_end_s=time.perf_counter() - t_start, baseline_step_s=0.0,
        )  # fmt: skip

    def _prefill(
        self,
        seq: LMSequence,
        ids: list[int],
        role: Literal["target", "drafter"],
        chunk: int,
        cached: int,
    ) -> Generator[Event, None, bool]:
        """Feed `ids` in chunks with progress; False if cancelled (sequence then invalid)."""
        total = cached + len(ids)
        device = self._device()
        t0 = time.perf_counter()
        seq.reserve(seq.length + len(ids) + 64)
        if isinstance(seq, FastSequence) and seq.w.compact and ids:
            # Compact weights: layer by layer, each layer dequantized once (fastlm.py).
            for fraction in seq.prefill(torch.tensor(ids, device=device), chunk):
                if self._cancel.is_set():
                    return False
                done = cached + round(len(ids) * fraction)
                yield PrefillProgress(role, done, total, time.perf_counter() - t0, cached)
            return True
        for start in range(0, len(ids), chunk):
            if self._cancel.is_set():
                return False
            part = torch.tensor(ids[start : start + chunk], device=device)
            seq.forward(part, "none")
            done = cached + min(start + chunk, len(ids))
            yield PrefillProgress(role, done, total, time.perf_counter() - t0, cached)
        if not ids:
            yield PrefillProgress(role, total, total, 0.0, cached)
        return True

    def _device(self) -> torch.device:
        assert self.target is not None
        return self.target.device

    def _target_sequence(
        self, target: LoadedModel, prompt: Prompt, cfg: DecodeConfig
    ) -> Generator[Event, None, LMSequence | None]:
        """A target sequence holding prompt[:-1]: the prefix from the live sequence or
        the KV store when possible, else prefilled (and stored)."""
        f = self._factory(target)
        key = prefix_key(target.key + self._prefill_tag(target), target.dtype, prompt.prefix)
        need = len(prompt) + cfg.max_new_tokens + cfg.gamma + 8
        live = self._live
        self._live = None  # invalid until this question's prefill completes
        cached = 0
        if live is not None and live.key == key:
            seq = live.seq
            seq.crop(live.prefix_len)
            cached = live.prefix_len
        else:
            seq = f.new(need)
            kv = self.kv.get(key, target.device)
            if kv is not None:
                seq.restore(*kv)
                cached = seq.length
        if not cached:
            ok = yield from self._prefill(seq, list(prompt.prefix), "target", cfg.prefill_chunk, 0)
            if not ok:
                return None
            self.kv.put(key, seq.snapshot())
        seq.reserve(need)
        ok = yield from self._prefill(
            seq, list(prompt.suffix[:-1]), "target", cfg.prefill_chunk, cached
        )
        if not ok:
            return None
        self._live = _Live(key, seq, len(prompt.prefix))
        return seq

    # -------------------------------------------------------------- baselines
    def hf_baseline(
        self,
        question: str,
        documents: Sequence[Path],
        kind: HFKind,
        max_new_tokens: int,
        password: str | None = None,
    ) -> Iterator[Event]:
        """transformers `generate` on the same target prompt, greedy: plain
        (`hf-generate`), prompt lookup (`hf-lookup`) or assisted by the drafter model
        (`hf-assisted`; the drafter reads the same full prompt, transformers' default
        draft-length schedule). A drafter that is the target itself is passed as the
        same model object: transformers accepts that (each `generate` builds its own
        caches), and greedy assisted generation gives the plain greedy answer."""
        question = _check_question(question)
        self._cancel.clear()
        t_start = time.perf_counter()
        infos = []
        for path in documents:
            infos.append((yield from self.add(path, password)))
        yield from self.load_models()
        target = self.target
        assert target is not None
        for m in (target, self.drafter if kind == "hf-assisted" else None):
            if m is not None and m.weights != "dense":
                raise ConfigError(
                    f"transformers' generate runs dense weights, and {m.name} is loaded with "
                    f"{m.weights} weights: rerun with --precision bfloat16 to compare with it."
                )
        docs = []
        for info in infos:
            docs.append((yield from self._loaded(info.doc_id)))
        text, _ = _join_documents(docs)
        prompt = build_prompt(target.tokenizer, text, question)
        if len(prompt) + max_new_tokens > target.context_window:
            raise ConfigError("The document does not fit the target's window for HF generate.")
        extra: dict[str, Any] = {}
        if kind == "hf-lookup":
            extra["prompt_lookup_num_tokens"] = 10
        elif kind == "hf-assisted":
            drafter = self.drafter
            assert drafter is not None
            if len(prompt) + max_new_tokens > drafter.context_window:
                raise ConfigError(
                    "The document does not fit the drafter's window for HF assisted generate."
                )
            extra["assistant_model"] = drafter.model
        stamps: list[tuple[float, int]] = []  # (time, tokens) of each streamer push

        class _Clock:
            def put(self, value: Any) -> None:
                stamps.append((time.perf_counter(), int(value.numel())))

            def end(self) -> None:
                stamps.append((time.perf_counter(), 0))

        ids = torch.tensor([prompt.ids], device=target.device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            model: Any = target.model
            out = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                do_sample=False, streamer=_Clock(), eos_token_id=list(target.eos_ids),
                pad_token_id=target.eos_ids[0], **extra,
            )  # fmt: skip
        new = out[0, ids.shape[1] :].tolist()
        first, decode_s = _streamer_timing(stamps, len(new))
        # rounds: the pushes of new tokens, one per target forward (an assisted round
        # pushes all the tokens it accepted at once)
        yield Finished(
            answer=str(target.tokenizer.decode(new, skip_special_tokens=True)).strip(),
            mode=kind, stop_reason="eos" if new and new[-1] in target.eos_ids else "max_tokens",
            new_tokens=len(new), rounds=max(len(stamps) - 2, 0), drafted=0, accepted=0,
            target_prefill_s=first - t0, drafter_prefill_s=0.0, decode_s=decode_s,
            end_to_end_s=time.perf_counter() - t_start, baseline_step_s=0.0,
            time_to_first_token_s=first - t_start,
        )  # fmt: skip


_T = TypeVar("_T")


def _streamed(work: Callable[[StatusFn, ProgressFn], _T]) -> Generator[Event, None, _T]:
    """Run `work(on_status, on_progress)` on a helper thread, yielding its messages and
    progress as events while it runs (a model's first-use conversion takes a minute,
    and the window shows how far it is); returns its result or raises its error."""
    events: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
    result: list[_T] = []
    failure: list[BaseException] = []
    stage_start: dict[tuple[str, str], float] = {}
    last: dict[tuple[str, str], float] = {}

    def progress(name: str, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        key = (name, stage)
        start = stage_start.setdefault(key, now)
        if done < total and now - last.get(key, 0.0) < 0.2:
            return  # at most five updates a second per stage
        last[key] = now
        events.put(LoadProgress(name, stage, done, total, now - start))

    def run() -> None:
        try:
            result.append(work(lambda m: events.put(Status(m)), progress))
        except BaseException as err:  # re-raised on the caller's thread
            failure.append(err)
        finally:
            events.put(None)

    worker = threading.Thread(target=run, name="rapidqa-model-load", daemon=True)
    worker.start()
    while (event := events.get()) is not None:
        yield event
    worker.join()
    if failure:
        raise failure[0]
    return result[0]


def _streamer_timing(stamps: Sequence[tuple[float, int]], new_tokens: int) -> tuple[float, float]:
    """When the first new tokens came, and the decode seconds, from a streamer's
    (time, tokens) pushes: [0] the prompt, [1] the first new token(s) (prefill + one
    step, or + one assisted round, which may emit several), ..., [-1] the end.

    Decode speed is measured after the first push and scaled to all new tokens, so
    that tok/s = tokens after the first push / their seconds, as for one-token steps."""
    if len(stamps) < 3:
        now = time.perf_counter()
        return now, 0.0
    first, first_tokens = stamps[1]
    end = stamps[-1][0]
    later = max(new_tokens - first_tokens, 1)
    return first, (end - first) * new_tokens / later


def _passage_positions(
    token_spans: tuple[int, list[tuple[int, int]]], doc_starts: dict[str, int],
    chunks: Sequence[ChunkRef], cached: int, prefix_len: int,
) -> torch.Tensor:  # fmt: skip
    """Target-cache positions a KV-select drafter reads: the template head, the tokens
    of the retrieved passages, and the question (everything after the prefix).

    `token_spans` is `context_token_spans` of the joined text, `doc_starts` where each
    document starts in it (`_join_documents`)."""
    shift, offsets = token_spans
    spans = sorted((doc_starts[c.doc_id] + c.start_char, doc_starts[c.doc_id] + c.end_char)
                   for c in chunks)  # fmt: skip
    keep = list(range(shift))
    j = 0
    for i, (s, e) in enumerate(offsets):
        if s < 0:  # template head
            keep.append(shift + i)
            continue
        while j < len(spans) and spans[j][1] <= s:
            j += 1
        if j < len(spans) and spans[j][0] < e:
            keep.append(shift + i)
    keep.extend(range(prefix_len, cached))
    return torch.tensor(keep, dtype=torch.long)


def _fast_prefill(setting: bool | None, m: LoadedModel) -> bool:
    """bf16 prefill: as set, or (auto) for an fp32 model on a CPU with native bf16."""
    if setting is not None:
        return setting and m.dtype == torch.float32
    if m.device.type != "cpu" or m.dtype != torch.float32:
        return False
    return cpu_has_bf16()


def _counter(tok: Any) -> Any:
    def count(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False))

    return count


def _join_documents(docs: Sequence[Document]) -> tuple[str, dict[str, int]]:
    """The target's context text of `docs`, and where each document's text starts in it."""
    parts: list[str] = []
    starts: dict[str, int] = {}
    pos = 0
    for i, d in enumerate(docs):
        if i:
            parts.append("\n\n")
            pos += 2
        header = _doc_header(d, len(docs))
        starts[d.doc_id] = pos + len(header)
        parts.append(header + d.text)
        pos += len(header) + len(d.text)
    return "".join(parts), starts


def _doc_header(doc: Document, n_docs: int) -> str:
    return f"# {doc.title}\n\n" if n_docs > 1 else ""


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
