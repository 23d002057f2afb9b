"""One question, from its documents to its answer: the context plan applied
(retrieval for the target when the document does not fit, passages for the
drafter), the prefills through the model runtime (reusing KV caches), the proposers
(the drafter model; the KV-select self-drafter; n-gram lookup), the decoding loop,
and the closing `Finished` (docs/architecture.md, "How a question flows").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from core.citations import answer_tokens, beyond_runs, cite, cite_document
from core.config import DecodeConfig
from core.decoding.fastlm import FastSequence
from core.decoding.lm import Sequence as LMSequence
from core.decoding.lookup import LookupDrafter
from core.decoding.loop import Detokenizer, LoopResult, decode
from core.decoding.proposers import ModelDrafter, trimmed_head_ids
from core.events import (
    ChunkRef,
    DraftStep,
    Event,
    Finished,
    Notice,
    PrefillProgress,
    Retrieved,
)
from core.library.retrieve import Retriever, join_chunks
from core.models.prompts import Prompt, build_prompt, context_room, context_token_spans
from core.models.runtime import ModelRuntime
from core.pdf.extract import Document
from core.plan import ContextPlan, plan_context
from core.preliminary import preliminary_answer, wants_preliminary

TokenSpans = tuple[int, list[tuple[int, int]]]  # `context_token_spans` of a document set


class AnswerSession:
    """Answers questions about documents the engine has read: `ask` runs one.

    `doc_tokens` (document id -> its target tokens) and `token_spans` (document set ->
    its prefix token spans, for the KV-select drafter) are the engine's caches,
    shared across questions."""

    def __init__(
        self,
        runtime: ModelRuntime,
        retriever: Retriever,
        doc_tokens: dict[str, list[int]],
        token_spans: dict[tuple[str, ...], TokenSpans],
        cancel: threading.Event,
    ) -> None:
        self.runtime = runtime
        self.retriever = retriever
        self._doc_tokens = doc_tokens
        self._token_spans = token_spans
        self.cancelled = cancel.is_set  # whether the user cancelled the running job

    def ask(
        self, question: str, docs: Sequence[Document], cfg: DecodeConfig, t_start: float
    ) -> Iterator[Event]:
        """Answer `question` (checked) about `docs` (read, in order); ends with one
        `Finished` event. `t_start` is when the user asked (end-to-end timing)."""
        target, drafter = self.runtime.loaded()
        doc_ids = [d.doc_id for d in docs]
        retriever = self.retriever
        tok = target.tokenizer
        count = token_counter(tok)
        ctx = self.target_context(question, docs, cfg)
        target_text, target_chunks, doc_starts = ctx.text, ctx.chunks, ctx.doc_starts
        budget = ctx.plan.drafter_budget
        if target_chunks:
            yield Notice(
                f"The document has {ctx.doc_tokens} tokens; the target's window holds "
                f"{target.context_window}. The target reads the {len(target_chunks)} "
                f"best-matching sections ({count(target_text)} tokens).",
                "warning",
            )
            yield Retrieved("target", target_chunks, ctx.plan.target_room, count(target_text))

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
        preliminary = ""
        if drafter_prompt is not None and wants_preliminary(
            self.runtime, target, target_prompt, cfg
        ):
            early = yield from preliminary_answer(
                self.runtime, drafter, drafter_prompt, cfg, self.cancelled, t_start,
                drafter_chunks,
            )  # fmt: skip
            if early is None:
                yield cancelled_answer(cfg, t_start, drafter_chunks)
                return
            preliminary = early
        t_prefill = time.perf_counter()
        seq = yield from self.runtime.target_sequence(target, target_prompt, cfg)
        if seq is None:  # cancelled while the target read
            yield cancelled_answer(cfg, t_start, drafter_chunks, preliminary)
            return
        target_prefill_s = time.perf_counter() - t_prefill

        # Drafter: its own sequence on the retrieved context (shared weights if self).
        model_drafter: ModelDrafter | None = None
        lookup: LookupDrafter | None = None
        drafter_prefill_s = 0.0
        if cfg.speculative and drafter_prompt is not None:
            t_d = time.perf_counter()
            f = self.runtime.factory(drafter)
            extra = cfg.max_new_tokens + 2 * cfg.gamma + 8
            select = (
                cfg.drafter_kv == "select" and drafter is target and not target_chunks
                and isinstance(seq, FastSequence)
            )  # fmt: skip
            if select:
                # Self-speculation: the drafter reads the retrieved passages straight
                # from the target's prefilled KV cache (no prefill of its own).
                assert isinstance(seq, FastSequence)
                positions = passage_positions(
                    self.token_spans(docs, target_text), doc_starts, drafter_chunks, seq.length,
                    len(target_prompt.prefix),
                )  # fmt: skip
                dseq: LMSequence = FastSequence.select_from(seq, positions, extra)
                prompt_ids = target_prompt.ids
                d_ids = [prompt_ids[i] for i in positions.tolist()] + [prompt_ids[-1]]
                yield PrefillProgress("drafter", len(d_ids), len(d_ids),
                                      time.perf_counter() - t_d, len(d_ids))  # fmt: skip
            else:
                d_ids = drafter_prompt.ids
                reused = yield from self.runtime.drafter_sequence(drafter, d_ids, extra, cfg)
                if reused is None:
                    yield cancelled_answer(cfg, t_start, drafter_chunks, preliminary)
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
        steps: list[DraftStep] = []
        for ev in decode(
            seq, prompt_ids[-1], cfg,
            vocab=int(target.model.config.vocab_size), eos_ids=frozenset(target.eos_ids),
            detok=detok, drafter=model_drafter, lookup=lookup,
            cancelled=self.cancelled, result=result,
            cost_prior=self.runtime.verify_costs.get(cost_key),
        ):  # fmt: skip
            if not first_token_at and result.tokens:
                first_token_at = time.perf_counter()
            if isinstance(ev, DraftStep):
                steps.append(ev)
            yield ev
        self.runtime.verify_costs[cost_key] = result.verify_costs
        chunks = drafter_chunks or target_chunks
        answer = detok.text.strip()
        tokens = answer_tokens(steps)
        # Spans are measured on the tokens' texts; where they differ from the decoded
        # answer (a character split across tokens), no spans rather than wrong ones.
        spans_ok = "".join(t.text for t in tokens).strip() == answer
        citations = cite(answer, tokens, chunks, self._narrow) if chunks and spans_ok else ()
        if citations:
            citations, found = cite_document(
                answer, citations, chunks, lambda s: self._search(s, doc_ids), self._narrow
            )
            chunks = chunks + found
        yield Finished(
            answer=answer,
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
            citations=citations,
            beyond=beyond_runs(steps) if drafter_chunks and spans_ok else (),
            answer_ids=tuple(result.tokens),
            preliminary=preliminary,
        )

    def target_context(
        self, question: str, docs: Sequence[Document], cfg: DecodeConfig
    ) -> TargetContext:
        """What the target reads for `question`: the whole documents when they fit its
        window, else the best-matching sections that do (retrieval with its budget)."""
        target, _ = self.runtime.loaded()
        tok = target.tokenizer
        full_text, doc_starts = join_documents(docs)
        doc_tokens = sum(len(self._doc_tokens[d.doc_id]) for d in docs)
        room = context_room(tok, target.context_window, question, cfg.max_new_tokens)
        plan = plan_context(
            doc_tokens, len(docs), room, window=target.context_window,
            max_new_tokens=cfg.max_new_tokens, mode=cfg.mode, budget=cfg.budget,
        )  # fmt: skip
        if plan.target_reads_all:
            return TargetContext(full_text, (), doc_starts, plan, doc_tokens)
        ids = [d.doc_id for d in docs]
        chunks = tuple(self.retriever.select(question, plan.target_room, token_counter(tok), ids))
        return TargetContext(join_chunks(chunks), chunks, doc_starts, plan, doc_tokens)

    def token_spans(self, docs: Sequence[Document], text: str) -> TokenSpans:
        """`context_token_spans` of the whole `docs` (`text`), once per document set."""
        key = tuple(d.doc_id for d in docs)
        if key not in self._token_spans:
            target, _ = self.runtime.loaded()
            self._token_spans[key] = context_token_spans(target.tokenizer, text)
        return self._token_spans[key]

    def _search(self, sentence: str, doc_ids: Sequence[str]) -> list[ChunkRef]:
        """Passages of the documents that match `sentence` (for `cite_document`)."""
        return [h.ref for h in self.retriever.search(sentence, 3, doc_ids)]

    def _narrow(self, chunk: ChunkRef, start: int, end: int) -> ChunkRef:
        """`chunk` cut to chunk.text[start:end], with that span's pages and lines."""
        return self.retriever.ref(
            chunk.doc_id, chunk.start_char + start, chunk.start_char + end, chunk.score,
        )  # fmt: skip


@dataclass(frozen=True)
class TargetContext:
    """The target's context for a question (`AnswerSession.target_context`): its
    text, the sections it holds when the documents do not fit (else empty), where each
    document starts in the whole documents' text, and the plan."""

    text: str
    chunks: tuple[ChunkRef, ...]
    doc_starts: dict[str, int]
    plan: ContextPlan
    doc_tokens: int


def cancelled_answer(
    cfg: DecodeConfig, t_start: float, chunks: tuple[ChunkRef, ...] = (), preliminary: str = ""
) -> Finished:
    """The `Finished` of a question cancelled before its first token: the passages
    retrieved and the preliminary answer so far are kept."""
    return Finished(
        answer="", mode=cfg.mode, stop_reason="cancelled", new_tokens=0, rounds=0,
        drafted=0, accepted=0, target_prefill_s=0.0, drafter_prefill_s=0.0, decode_s=0.0,
        end_to_end_s=time.perf_counter() - t_start, baseline_step_s=0.0, chunks=chunks,
        preliminary=preliminary,
    )  # fmt: skip


def passage_positions(
    token_spans: tuple[int, list[tuple[int, int]]], doc_starts: dict[str, int],
    chunks: Sequence[ChunkRef], cached: int, prefix_len: int,
) -> torch.Tensor:  # fmt: skip
    """Target-cache positions a KV-select drafter reads: the template head, the tokens
    of the retrieved passages, and the question (everything after the prefix).

    `token_spans` is `context_token_spans` of the joined text, `doc_starts` where each
    document starts in it (`join_documents`)."""
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


def token_counter(tok: Any) -> Any:
    def count(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False))

    return count


def join_documents(docs: Sequence[Document]) -> tuple[str, dict[str, int]]:
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
