"""The context plan of one question: what the target reads and how much the drafter
reads, from token counts alone (no model, no tokenizer, no retrieval), so that the
rules are tested by themselves (tests/core/test_plan.py).

The rules (docs/architecture.md, "Step 1: contexts" and "The retrieval budget"):

- the target reads the whole document when it and the documents' title headers fit
  the room its window leaves after the chat template, the question and the answer;
  otherwise it reads the best-matching sections that fill that room;
- the drafter reads `budget` tokens of retrieved passages: the setting, or
  `max(L/24, min(4096, L/4))` of what the target reads (L), at least one retrieval
  unit (`MIN_DRAFTER_BUDGET`); in `rag` mode never more than the target's room (the
  target itself reads the drafter's passages there).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Mode, default_budget
from core.errors import ConfigError
from core.models.prompts import DOCUMENT_HEADER_TOKENS

MIN_DRAFTER_BUDGET = 256  # at least one retrieval unit, even for a short document
MIN_TARGET_ROOM = 64  # below this the window holds no useful part of a document


@dataclass(frozen=True)
class ContextPlan:
    """What one question's target and drafter read, in tokens."""

    target_room: int  # context tokens the target's window holds for this question
    target_reads_all: bool  # True: the whole document; False: retrieved sections
    drafter_budget: int  # tokens of retrieved passages the drafter reads


def plan_context(
    document_tokens: int,
    documents: int,
    target_room: int,
    *,
    window: int,
    max_new_tokens: int,
    mode: Mode,
    budget: int | None = None,
) -> ContextPlan:
    """The plan for `documents` of `document_tokens` tokens together, when the target's
    `window` leaves `target_room` tokens for context. `budget` is the user's drafter
    budget (None: the rule above). ConfigError when the window has no room."""
    if target_room < MIN_TARGET_ROOM:
        raise ConfigError(
            f"The target's window ({window} tokens) leaves no room for the document with "
            f"{max_new_tokens} new tokens. Lower --max-new-tokens."
        )
    # L in the budget rule is the context the target reads: the whole document, or what
    # of it fits the window. A drafter reading as much as the target would cost as much
    # per step.
    target_reads = min(document_tokens, target_room)
    drafter_budget = budget or max(default_budget(target_reads), MIN_DRAFTER_BUDGET)
    if mode == "rag":
        drafter_budget = min(drafter_budget, target_room)
    fits = document_tokens + documents * DOCUMENT_HEADER_TOKENS <= target_room
    return ContextPlan(target_room, fits, drafter_budget)
