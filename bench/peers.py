"""Peer decoders for the speed benchmark: transformers' `generate` on the same target
prompt the engine builds, greedy, in three kinds:

- `hf-generate`: plain generation, one token per forward;
- `hf-lookup`: prompt lookup decoding (`prompt_lookup_num_tokens`);
- `hf-assisted`: assisted generation with the drafter model (it reads the same full
  prompt; transformers' default draft-length schedule).

A drafter that is the target itself is passed as the same model object: transformers
accepts that (each `generate` builds its own caches), and greedy assisted generation
gives the plain greedy answer. Decode time comes from a streamer's pushes
(`streamer_timing`), so that tok/s means the same as for the engine's modes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from core.errors import ConfigError
from core.events import Event, Finished

HFKind = Literal["hf-generate", "hf-lookup", "hf-assisted"]
HF_MODES: tuple[HFKind, ...] = ("hf-generate", "hf-lookup", "hf-assisted")
LOOKUP_TOKENS = 10  # prompt_lookup_num_tokens: transformers' documented example value


def hf_baseline(
    engine: Any,
    question: str,
    documents: Sequence[Path],
    kind: HFKind,
    max_new_tokens: int,
    password: str | None = None,
) -> Iterator[Event]:
    """Events of one `kind` run on `engine`'s loaded models (a core.api.Engine): the
    engine's own load and read events, then one `Finished` with mode `kind`."""
    import torch  # here: the benchmark tables import this module without torch

    t_start = time.perf_counter()
    prompt = yield from engine.full_prompt(question, documents, password)
    target = engine.target
    for m in (target, engine.drafter if kind == "hf-assisted" else None):
        if m is not None and m.weights != "dense":
            raise ConfigError(
                f"transformers' generate runs dense weights, and {m.name} is loaded with "
                f"{m.weights} weights: rerun with --precision bfloat16 to compare with it."
            )
    if len(prompt) + max_new_tokens > target.context_window:
        raise ConfigError("The document does not fit the target's window for HF generate.")
    extra: dict[str, Any] = {}
    if kind == "hf-lookup":
        extra["prompt_lookup_num_tokens"] = LOOKUP_TOKENS
    elif kind == "hf-assisted":
        drafter = engine.drafter
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
        out = target.model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
            do_sample=False, streamer=_Clock(), eos_token_id=list(target.eos_ids),
            pad_token_id=target.eos_ids[0], **extra,
        )  # fmt: skip
    new = out[0, ids.shape[1] :].tolist()
    first, decode_s = streamer_timing(stamps, len(new))
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


def streamer_timing(stamps: Sequence[tuple[float, int]], new_tokens: int) -> tuple[float, float]:
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
