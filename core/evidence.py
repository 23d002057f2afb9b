"""Where the target looked: the document spans that drew the most attention while the
target wrote a run of the answer against the drafter (docs/architecture.md,
"Citations and evidence").

The target's prompt is served from its KV cache (live or on disk, as for a question),
the answer up to the run is appended, and the run's tokens are appended once more with
an attention probe (`FastSequence.forward(probe=...)`): each token's attention weights
over the cache rows, averaged over heads and summed over layers. The weights on the
document's tokens are summed per sentence of the document (blank lines and sentence
ends split it; each has its page lines) and normalised over the document: a spot's
weight is its share of the run's attention to the document. The template head and the
question are left out (they draw attention on every token whatever the document says).
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Generator, Mapping, Sequence

import torch

from core.citations import split_sentences
from core.config import DecodeConfig
from core.decoding.fastlm import FastSequence
from core.errors import Cancelled, ModelError
from core.events import BeyondRun, ChunkRef, Event, Evidence, EvidenceSpot, Status
from core.library.retrieve import chunk_starts
from core.models.prompts import build_prompt, context_token_spans
from core.pdf.extract import Document
from core.session import AnswerSession

MAX_RUN_TOKENS = 64  # longer runs are probed on their first tokens
_FEED = 256  # answer tokens per forward before the run


def attention_to_context(
    seq: FastSequence,
    lead: Sequence[int],
    run: Sequence[int],
    cancelled: Callable[[], bool] = lambda: False,
) -> torch.Tensor:
    """Append `lead` then `run` to `seq`; the attention mass each cache row received
    from the run's tokens ([rows before the run], float32: summed over the run's
    tokens and the layers, averaged over heads)."""
    device = seq.cache.k.device
    seq.reserve(seq.length + len(lead) + len(run) + 8)
    for i in range(0, len(lead), _FEED):
        if cancelled():
            raise Cancelled()
        seq.forward(torch.tensor(list(lead[i : i + _FEED]), device=device), "none")
    before = seq.length
    probe = torch.zeros(len(run), before + len(run), device=device)
    seq.forward(torch.tensor(list(run), device=device), "none", probe=probe)
    return probe.sum(0)[:before].cpu()


def sentence_mass(
    mass: torch.Tensor,
    shift: int,
    offsets: Sequence[tuple[int, int]],
    locate: Callable[[int], tuple[str, int] | None],
    texts: Mapping[str, str],
) -> dict[tuple[str, int, int], float]:
    """Attention mass per (document id, sentence start, sentence end): row `shift + i`
    holds the context token whose characters are `offsets[i]`; `locate(char)` maps a
    context character to (document id, character in `texts[document id]`), None
    outside the documents."""
    sentences: dict[str, tuple[list[int], list[tuple[int, int]]]] = {}
    out: dict[tuple[str, int, int], float] = defaultdict(float)
    values = mass.tolist()
    for i, (s, e) in enumerate(offsets):
        row = shift + i
        if s < 0 or e <= s or row >= len(values):
            continue  # template head, or beyond the rows probed
        where = locate(s)
        if where is None:
            continue
        doc_id, char = where
        if doc_id not in sentences:
            spans = split_sentences(texts[doc_id], lines=False)
            sentences[doc_id] = ([a for a, _ in spans], spans)
        starts, spans = sentences[doc_id]
        j = bisect_right(starts, char) - 1
        if j >= 0:
            out[(doc_id, *spans[j])] += values[row]
    return dict(out)


def locate_evidence(
    session: AnswerSession,
    question: str,
    docs: Sequence[Document],
    answer_ids: Sequence[int],
    run: BeyondRun,
    passages: Sequence[ChunkRef],
    cfg: DecodeConfig,
    top: int = 8,
) -> Generator[Event, None, None]:
    """Yield the target's prefill progress (when its KV is not cached), then one
    `Evidence` for `run` of the answer `answer_ids`."""
    t0 = time.perf_counter()
    target, _ = session.runtime.loaded()
    tok = target.tokenizer
    ctx = session.target_context(question, docs, cfg)
    prompt = build_prompt(tok, ctx.text, question)
    yield Status("Reading the answer again with the target's attention…")
    seq = yield from session.runtime.target_sequence(target, prompt, cfg)
    if seq is None:
        raise Cancelled()
    if not isinstance(seq, FastSequence):
        raise ModelError(
            f"Attention evidence needs a model the fast decoding path runs ({target.name} "
            "runs through transformers' own forward). Choose one of the offline models."
        )
    first, last = max(0, run.first), min(len(answer_ids), run.last, run.first + MAX_RUN_TOKENS)
    if last <= first:
        raise ValueError(f"The run [{run.first}, {run.last}) holds none of the answer's tokens.")
    lead = [prompt.ids[-1], *answer_ids[:first]]
    mass = attention_to_context(seq, lead, answer_ids[first:last], session.cancelled)
    if ctx.chunks:
        shift, offsets = context_token_spans(tok, ctx.text)
        locate = _in_chunks(ctx.chunks)
    else:
        shift, offsets = session.token_spans(docs, ctx.text)
        locate = _in_documents(docs, ctx.doc_starts)
    texts = {d.doc_id: d.text for d in docs}
    per_span = sentence_mass(mass[: len(prompt.prefix)], shift, offsets, locate, texts)
    total = sum(per_span.values()) or 1.0
    spots = []
    for (doc_id, start, end), m in sorted(per_span.items(), key=lambda kv: -kv[1])[:top]:
        ref = session.retriever.ref(doc_id, start, end, m / total)
        inside = any(
            p.doc_id == doc_id and p.start_char < end and start < p.end_char for p in passages
        )
        spots.append(EvidenceSpot(ref, m / total, inside))
    yield Evidence(run, tuple(spots), time.perf_counter() - t0)


def _in_documents(
    docs: Sequence[Document], starts: dict[str, int]
) -> Callable[[int], tuple[str, int] | None]:
    """Context character -> (document, character) for the whole documents' text."""
    bounds = sorted((starts[d.doc_id], d.doc_id, len(d.text)) for d in docs)
    keys = [b[0] for b in bounds]

    def locate(char: int) -> tuple[str, int] | None:
        i = bisect_right(keys, char) - 1
        if i < 0:
            return None
        start, doc_id, size = bounds[i]
        return (doc_id, char - start) if char - start < size else None

    return locate


def _in_chunks(chunks: Sequence[ChunkRef]) -> Callable[[int], tuple[str, int] | None]:
    """Context character -> (document, character) for `join_chunks(chunks)`."""
    starts = chunk_starts(chunks)

    def locate(char: int) -> tuple[str, int] | None:
        i = bisect_right(starts, char) - 1
        if i < 0 or char - starts[i] >= len(chunks[i].text):
            return None  # a separator
        return chunks[i].doc_id, chunks[i].start_char + char - starts[i]

    return locate
