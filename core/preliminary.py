"""The preliminary answer: while the target has a long document still to read (minutes
on a CPU), the drafter answers from the retrieved passages alone, so that the user
reads something at once (docs/architecture.md, "Preliminary answer").

It is plain greedy decoding of the drafter on its own prompt (the passages and the
question): the RAG answer of the paper's baselines. The drafter's sequence is the one
the speculative answer drafts from afterwards (`ModelRuntime.drafter_sequence` keeps
it live and crops it back to the passages), so the passages are read once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

import torch

from core.config import DecodeConfig
from core.decoding.loop import Detokenizer
from core.events import ChunkRef, Event, PreliminaryAnswer, PreliminaryToken
from core.models.loading import LoadedModel
from core.models.prompts import Prompt
from core.models.runtime import ModelRuntime


def wants_preliminary(
    runtime: ModelRuntime, target: LoadedModel, target_prompt: Prompt, cfg: DecodeConfig
) -> bool:
    """Whether this question gets a preliminary answer: a speculative mode, on a CPU,
    with at least `cfg.preliminary_min_tokens` of the document not yet in the target's
    KV cache."""
    if not (cfg.preliminary and cfg.speculative) or target.device.type != "cpu":
        return False
    return runtime.uncached_prefix(target, target_prompt) >= cfg.preliminary_min_tokens


def preliminary_answer(
    runtime: ModelRuntime,
    drafter: LoadedModel,
    prompt: Prompt,
    cfg: DecodeConfig,
    cancelled: Callable[[], bool],
    t_start: float,
    chunks: tuple[ChunkRef, ...],
) -> Generator[Event, None, str | None]:
    """Stream the drafter's greedy answer to `prompt` as `PreliminaryToken`s, then one
    `PreliminaryAnswer`; returns its text, or None when cancelled."""
    ids = list(prompt.ids)
    seq = yield from runtime.drafter_sequence(drafter, ids, cfg.max_new_tokens + 8, cfg)
    if seq is None:
        return None
    tok = drafter.tokenizer
    detok = Detokenizer(lambda t: str(tok.decode(t, skip_special_tokens=True)))
    eos = frozenset(drafter.eos_ids)
    vocab = len(tok)
    device = drafter.device
    token = ids[-1]
    for _ in range(cfg.max_new_tokens):
        if cancelled():
            return None
        logits = seq.forward(torch.tensor([token], device=device), "last")
        token = int(logits[0, :vocab].argmax())
        if token in eos:
            break
        (delta,) = detok.preview([token])  # the loop's rule for a token's text in context
        detok.commit([token])
        if delta:
            yield PreliminaryToken(delta)
    answer = detok.text.strip()
    seconds = time.perf_counter() - t_start
    yield PreliminaryAnswer(answer, len(detok.ids), seconds, chunks)
    return answer
