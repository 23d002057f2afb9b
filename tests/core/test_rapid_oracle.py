"""The decoding loop against a step-by-step reference of RAPID (tests/core/rapid_reference.py).

No model: target and drafter are hand-built logit functions, so every rule of the loop
(p_hat at every position with the drafter model's q, accept, residual, bonus, the EOS
rule, the proposers' cache bookkeeping) is checked token for token, in every drafting
configuration: fixed and adaptive draft lengths (early drafter stops), lookup drafts
and model drafts, eta 0 and eta > 0, greedy and sampled.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import torch

from core.config import DecodeConfig
from core.decoding.lookup import LookupDrafter
from core.decoding.loop import Detokenizer, LoopResult, decode
from core.decoding.proposers import ModelDrafter
from core.decoding.qlinear import DenseWeight
from core.events import DraftStep
from tests.core.rapid_reference import (
    HashLM,
    Logits,
    greedy_rapid,
    hashed_logits,
    mixed,
    p_hat,
    sampled_round,
    softmax,
)

V = 24
EOS = frozenset({0})
PROMPT = [5, 9, 3, 7, 11, 2]
TARGET = hashed_logits(V, seed=1, scale=2.5)
DRAFTER = mixed(TARGET, hashed_logits(V, seed=2, scale=2.5), 0.8)


def _lookup_text(eta: float) -> list[int]:
    """A 'document' that continues like the target's answer, with some tokens changed:
    lookup drafts are accepted in part."""
    ref = greedy_rapid(TARGET, DRAFTER, 40, eta, 0.1, frozenset())
    return [t if i % 5 != 3 else (t + 1) % V for i, t in enumerate(ref)]


def run_engine(
    cfg: DecodeConfig, drafter: Logits | None, lookup_text: list[int] | None,
    target: Logits = TARGET,
) -> tuple[list[int], list[DraftStep]]:  # fmt: skip
    seq = HashLM(target, PROMPT)
    md = None
    if drafter is not None:
        dseq = HashLM(drafter, PROMPT[2:])  # another context, same answer function
        md = ModelDrafter(dseq, DenseWeight(torch.zeros(V, 1)), V, None)  # type: ignore[arg-type]
        md.pending = [PROMPT[-1]]
    lookup = LookupDrafter([PROMPT, lookup_text], tail=PROMPT) if lookup_text is not None else None
    res = LoopResult(tokens=[])
    steps = [
        ev for ev in decode(
            seq, PROMPT[-1], cfg, vocab=V, eos_ids=EOS, detok=Detokenizer(str),  # type: ignore[arg-type]
            drafter=md, lookup=lookup, result=res,
        ) if isinstance(ev, DraftStep)
    ]  # fmt: skip
    return res.tokens, steps


CONFIGS = list(itertools.product([0.0, 5.0, 20.0], [1, 3, 6], [False, True], [False, True]))


@pytest.mark.parametrize(("eta", "gamma", "adaptive", "lookup"), CONFIGS)
def test_greedy_tokens_equal_the_reference(
    eta: float, gamma: int, adaptive: bool, lookup: bool
) -> None:
    cfg = DecodeConfig(
        mode="rapid" if eta else "sd", eta=eta, gamma=gamma, adaptive_gamma=adaptive,
        max_new_tokens=30,
    )  # fmt: skip
    tokens, steps = run_engine(cfg, DRAFTER, _lookup_text(eta) if lookup else None)
    assert tokens == greedy_rapid(TARGET, DRAFTER, 30, eta, cfg.alpha, EOS)
    assert sum(s.accepted for s in steps) > 0  # drafts were accepted...
    if gamma > 1 and eta < 20:  # (eta 20 makes p_hat follow the drafter nearly always)
        assert any(s.accepted < len(s.drafted_ids) for s in steps)  # ...and rejected
    if adaptive and gamma > 1:  # the drafter stopped early on low confidence at least once
        model_rounds = [len(s.drafted_ids) for s in steps if s.source == "model"]
        assert any(0 < k < min(gamma, 29) for k in model_rounds), model_rounds
    if lookup and len(tokens) >= 10:
        assert any(s.source == "lookup" for s in steps)


def test_without_drafter_greedy_is_the_target_argmax() -> None:
    tokens, steps = run_engine(DecodeConfig(mode="target", max_new_tokens=20), None, None)
    assert tokens == greedy_rapid(TARGET, None, 20, 0.0, 0.1, EOS)
    assert all(not s.drafted_ids for s in steps)


SAMPLED = [(0.0, False, False), (5.0, False, False), (5.0, True, True), (20.0, True, False)]


@pytest.mark.parametrize(("eta", "lookup", "adaptive"), SAMPLED)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampled_tokens_equal_the_reference(
    eta: float, lookup: bool, adaptive: bool, seed: int
) -> None:
    """Seeded sampled RAPID: given each round's source and draft length (the planner's
    choice, read from the events), every drafted, accepted and emitted token is the
    reference's, drawn from the same random stream."""
    temperature = 0.8
    cfg = DecodeConfig(
        mode="rapid" if eta else "sd", eta=eta, gamma=5, adaptive_gamma=adaptive,
        temperature=temperature, seed=seed, max_new_tokens=40,
    )  # fmt: skip
    tokens, steps = run_engine(cfg, DRAFTER, _lookup_text(eta) if lookup else None)
    generator = torch.Generator().manual_seed(seed)
    answer: list[int] = []
    for s in steps:
        k = len(s.drafted_ids)
        given = list(s.drafted_ids) if s.source == "lookup" else []
        emitted, accepted = sampled_round(
            TARGET, DRAFTER, answer, k, given, eta, cfg.alpha, temperature, EOS, generator
        )
        if 0 in emitted:  # the answer ends at EOS, inside the draft or not
            emitted = emitted[: emitted.index(0) + 1]
        assert list(s.drafted_ids[: s.accepted]) == emitted[: s.accepted]
        assert min(accepted, len(emitted)) == s.accepted, (s.round, accepted, s.accepted)
        answer += emitted
    assert tokens == answer[: len(tokens)] and len(tokens) == min(len(answer), 40)
    if not adaptive:
        assert any(s.source == "model" and len(s.drafted_ids) > 1 for s in steps)


def _chain(eta: float, temperature: float, first: int, second: int) -> float:
    """P(y1 = first, y2 = second) under the p_hat chain."""

    def dist(answer: tuple[int, ...]) -> list[float]:
        q = softmax([x / temperature for x in DRAFTER(answer).tolist()])
        return p_hat(TARGET(answer).tolist(), q, eta, 0.1, temperature, EOS)

    return dist(())[first] * dist((first,))[second]


@pytest.mark.parametrize("eta", [0.0, 5.0])
def test_emitted_tokens_follow_p_hat_with_multi_token_drafts(eta: float) -> None:
    """Over many seeds, the first two tokens (emitted by rounds of up to 4 drafts) follow
    the p_hat chain (not p's, for eta > 0): total variation within sampling noise."""
    temperature, n = 1.0, 3000
    counts: Counter[tuple[int, int]] = Counter()
    multi = 0
    for seed in range(n):
        cfg = DecodeConfig(
            mode="rapid" if eta else "sd", eta=eta, gamma=4, adaptive_gamma=False,
            temperature=temperature, seed=seed, max_new_tokens=5,
        )  # fmt: skip
        tokens, steps = run_engine(cfg, DRAFTER, None)
        multi += len(steps[0].drafted_ids) > 1
        if len(tokens) >= 2:
            counts[(tokens[0], tokens[1])] += 1
        else:  # EOS first
            counts[(tokens[0], -1)] += 1
    assert multi == n
    expect = {(a, b): _chain(eta, temperature, a, b) for a in range(1, V) for b in range(V)}
    expect[(0, -1)] = sum(_chain(eta, temperature, 0, b) for b in range(V))  # EOS first
    tv = 0.5 * sum(abs(counts[key] / n - p) for key, p in expect.items())
    # Noise at 3,000 draws measured ~0.045; the other eta's chain is ~0.41 away.
    assert tv < 0.08, tv
