"""The context plan (core/plan.py) against its rules, computed by hand: what the
target reads, and the drafter's retrieval budget max(L/24, min(4096, L/4))."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.models.prompts import DOCUMENT_HEADER_TOKENS
from core.plan import MIN_DRAFTER_BUDGET, ContextPlan, plan_context


def plan(tokens: int, room: int, docs: int = 1, **kw: object) -> ContextPlan:
    args: dict[str, object] = {"window": 32_768, "max_new_tokens": 256, "mode": "sd"}
    args.update(kw)
    return plan_context(tokens, docs, room, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tokens", "budget"),
    [
        (7_000, 1_750),  # L/4 under 4096 and above L/24
        (20_000, 4_096),  # min(4096, L/4) = 4096 > L/24 = 833
        (30_000, 4_096),
        (500, MIN_DRAFTER_BUDGET),  # L/4 = 125: at least one retrieval unit
    ],
)
def test_the_budget_rule_on_a_document_that_fits(tokens: int, budget: int) -> None:
    p = plan(tokens, room=32_000)
    assert p == ContextPlan(32_000, True, budget)


def test_a_long_document_reads_the_room_and_budgets_on_it() -> None:
    # L is what the target reads: the room (120,000 // 24 = 5,000 > 4,096)
    p = plan(500_000, room=120_000, window=131_072)
    assert (p.target_reads_all, p.drafter_budget) == (False, 5_000)
    p = plan(40_000, room=30_000)
    assert (p.target_reads_all, p.drafter_budget) == (False, 4_096)


def test_the_headers_count_against_the_room() -> None:
    room = 10_000
    exact = room - 2 * DOCUMENT_HEADER_TOKENS
    assert plan(exact, room, docs=2).target_reads_all
    assert not plan(exact + 1, room, docs=2).target_reads_all


def test_a_set_budget_wins_but_rag_never_exceeds_the_room() -> None:
    assert plan(7_000, room=32_000, budget=900).drafter_budget == 900
    assert plan(7_000, room=2_000, budget=9_000, mode="rag").drafter_budget == 2_000
    assert plan(7_000, room=2_000, budget=9_000, mode="sd").drafter_budget == 9_000


def test_no_room_in_the_window_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="Lower --max-new-tokens"):
        plan(1_000, room=63, window=2_048, max_new_tokens=2_000)
    assert plan(1_000, room=64).target_room == 64
