"""Prompts as [context prefix][question suffix] in the model's chat template.

The context (whole document for the target, retrieved passages for the drafter)
comes first so that its KV cache serves every later question. Prefix and suffix are
tokenized separately: BPE merges across the boundary would change the prefix's
tokens with each question and invalidate the cached prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import MAX_GAMMA

SYSTEM = (
    "You answer questions about a document. Use only the document. "
    "Answer in one or two short sentences."
)
_CTX = "\x00CTX\x00"
_Q = "\x00Q\x00"


@dataclass(frozen=True)
class Prompt:
    """Token ids of a prompt, split at the question."""

    prefix: tuple[int, ...]  # template head + context
    suffix: tuple[int, ...]  # question + template tail (ends where the answer starts)

    @property
    def ids(self) -> list[int]:
        return [*self.prefix, *self.suffix]

    def __len__(self) -> int:
        return len(self.prefix) + len(self.suffix)


def _template_parts(tokenizer: Any) -> tuple[str, str, str]:
    """(head, middle, tail) text around the context and the question."""
    user = f"Document:\n{_CTX}\n\nQuestion: {_Q}"
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
        try:
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        except Exception:  # templates without a system role (e.g. Gemma)
            messages = [{"role": "user", "content": f"{SYSTEM}\n\n{user}"}]
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
    else:
        text = f"{SYSTEM}\n\n{user}\nAnswer:"
    head, rest = text.split(_CTX)
    middle, tail = rest.split(_Q)
    return head, middle, tail


def template_overhead(tokenizer: Any) -> int:
    """Tokens the template adds around an empty context and question."""
    head, middle, tail = _template_parts(tokenizer)
    return sum(len(tokenizer.encode(t, add_special_tokens=False)) for t in (head, middle + tail))


DOCUMENT_HEADER_TOKENS = 16  # room kept per document for its header in a joined context


def context_room(tokenizer: Any, window: int, question: str, max_new_tokens: int) -> int:
    """Tokens of context a model with `window` can read beside the template, `question`,
    `max_new_tokens` of answer and the most draft tokens a round may verify (the reserve
    does not depend on gamma, so that a context is the same, and its KV reusable,
    whatever gamma a question is asked with)."""
    question_tokens = len(tokenizer.encode(question, add_special_tokens=False))
    overhead = template_overhead(tokenizer) + question_tokens + 8
    return window - (overhead + max_new_tokens + MAX_GAMMA + 1)


def context_token_spans(tokenizer: Any, context: str) -> tuple[int, list[tuple[int, int]]]:
    """(first context token's position, char span in `context` of each prefix token
    from there on), for the prefix `build_prompt` makes of `context`."""
    head, _, _ = _template_parts(tokenizer)
    enc = tokenizer(head + context, add_special_tokens=False, return_offsets_mapping=True)
    shift = len(build_prompt(tokenizer, "", "").prefix) - len(
        tokenizer.encode(head, add_special_tokens=False)
    )  # a BOS token the template does not write
    offsets = [(s - len(head), e - len(head)) for s, e in enc["offset_mapping"]]
    return shift, offsets


def build_prompt(tokenizer: Any, context: str, question: str) -> Prompt:
    """Tokenize `context` into the cacheable prefix and `question` into the suffix."""
    head, middle, tail = _template_parts(tokenizer)
    bos: list[int] = []
    if getattr(tokenizer, "add_bos_token", False) and tokenizer.bos_token_id is not None:
        if not head.startswith(tokenizer.bos_token or "\x00"):
            bos = [tokenizer.bos_token_id]
    prefix = bos + tokenizer.encode(head + context, add_special_tokens=False)
    suffix = tokenizer.encode(middle + question + tail, add_special_tokens=False)
    return Prompt(tuple(prefix), tuple(suffix))
