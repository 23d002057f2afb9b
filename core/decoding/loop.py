"""The RAPID decoding loop (docs/architecture.md, steps 1-8): propose, verify, accept, crop.

One function serves every mode: with no proposer each round drafts nothing and the
target emits one token (the autoregressive baseline, `target` and `rag` modes); with
eta = 0 it is lossless speculative decoding (`sd`); with eta > 0 every emitted token
follows the retrieval-augmented target distribution p_hat (`rapid`), whose q is the
drafter model's at every position, whoever proposed the token.

Invariant at the start of a round: the target's KV cache holds every committed token
but the last one, `last`, which the round's verify forward reads first. Proposers
(proposers.py, lookup.py) keep their own state through `commit`; the rule is in
rejection.py; timing and planning are in planner.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from core.config import DecodeConfig
from core.decoding.lm import Sequence
from core.decoding.lookup import LookupDrafter
from core.decoding.planner import Pacer
from core.decoding.proposers import NO_PROPOSAL, ModelDrafter, Proposal
from core.decoding.rejection import Rules, Verdict, verify
from core.events import Calibrated, DraftStep


@dataclass
class LoopResult:
    """Totals of one decoding run (filled in as the loop goes)."""

    tokens: list[int]
    stop_reason: str = "max_tokens"
    rounds: int = 0
    drafted: int = 0
    accepted: int = 0
    decode_s: float = 0.0
    baseline_step_s: float = 0.0
    # Verify forward of n tokens / one-token step, as learned in this run (n -> ratio);
    # pass it back as `cost_prior` so the next run starts from it.
    verify_costs: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Proposers:
    """Who may draft: the lookup proposer first (free), then the drafter model."""

    lookup: LookupDrafter | None
    drafter: ModelDrafter | None
    vocab: int

    def propose(self, limit: int, pace: Pacer, rules: Rules, gen: torch.Generator) -> Proposal:
        if limit <= 0:
            return NO_PROPOSAL
        if self.lookup is not None:
            proposal = self.lookup.propose(pace.length("lookup", limit), self.vocab)
            if proposal.tokens:
                return proposal
        if self.drafter is not None and pace.drafter_open():
            n = pace.length("model", limit)
            return self.drafter.propose(n, rules.temperature, gen, pace.min_confidence)
        return NO_PROPOSAL

    def q_aug(self, proposal: Proposal, rules: Rules) -> Tensor | None:
        """The drafter model's q at the drafted positions, for p_hat (None at eta 0)."""
        if rules.eta == 0 or self.drafter is None:
            return None
        if proposal.source == "model":
            return proposal.q
        return self.drafter.score(proposal.tokens, rules.temperature)[: len(proposal.tokens)]

    def bonus_q(self, rules: Rules) -> Callable[[], Tensor | None]:
        drafter = self.drafter
        return drafter.next_q if drafter is not None and rules.eta > 0 else lambda: None

    def commit(self, emitted: list[int], accepted: int) -> None:
        for p in (self.lookup, self.drafter):
            if p is not None:
                p.commit(emitted, accepted)


def decode(
    target: Sequence,
    last: int,
    cfg: DecodeConfig,
    *,
    vocab: int,
    eos_ids: frozenset[int],
    detok: Detokenizer,
    drafter: ModelDrafter | None = None,
    lookup: LookupDrafter | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    result: LoopResult | None = None,
    cost_prior: dict[int, float] | None = None,
) -> Iterator[DraftStep | Calibrated]:
    """Run rounds until EOS, `cfg.max_new_tokens` or `cancelled()`; totals go to `result`."""
    res = result if result is not None else LoopResult(tokens=[])
    stop_ids = torch.tensor(sorted(eos_ids), dtype=torch.long)
    rules = Rules(cfg.temperature, cfg.effective_eta, cfg.alpha, stop_ids)
    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
    proposers = Proposers(lookup, drafter, vocab)
    pace = Pacer(target, cfg, drafter is not None and rules.eta > 0, cost_prior)
    yield from pace.calibrate(last)
    res.baseline_step_s = pace.baseline_s
    while len(res.tokens) < cfg.max_new_tokens:
        if cancelled():
            res.stop_reason = "cancelled"
            break
        yield from pace.calibrate(last, first=False)
        res.baseline_step_s = pace.baseline_s
        t0 = time.perf_counter()
        remaining = cfg.max_new_tokens - len(res.tokens)
        proposal = proposers.propose(remaining - 1, pace, rules, generator)  # 1-2. draft
        q_aug = proposers.q_aug(proposal, rules)
        t1 = time.perf_counter()
        base = target.length  # 3. verify: one forward over [last, d_1 .. d_k]
        logits = target.forward(torch.tensor([last, *proposal.tokens], device=pace.device))
        pace.sync()
        forward_s = time.perf_counter() - t1
        v = verify(  # 4-7. accept a prefix, then the correction or the bonus token
            proposal.tokens, proposal.q, q_aug, logits, proposers.bonus_q(rules), rules, generator
        )
        target.crop(base + 1 + v.accepted)  # 8. keep [last, d_1 .. d_accepted]
        emitted, stop = _truncate([*proposal.tokens[: v.accepted], v.token], eos_ids, remaining)
        if stop is None:
            proposers.commit(emitted, v.accepted)
        pace.sync()
        res.decode_s += time.perf_counter() - t0
        yield _record(res, detok, proposal, v, emitted, t1 - t0, time.perf_counter() - t1,
                      target.length + 1)  # fmt: skip
        last = emitted[-1]
        if stop is not None:
            res.stop_reason = stop
            break
        pace.observe(proposal.source, len(proposal.tokens), v.accepted, forward_s)
        res.verify_costs = pace.verify_costs()


class Detokenizer:
    """Texts of tokens in context (byte-level BPE pieces only make sense in sequence)."""

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self.ids: list[int] = []
        self.text = ""

    def preview(self, extra: list[int]) -> list[str]:
        """Texts of `extra` tokens as if appended after the committed ones."""
        out, prev = [], self.text
        for j in range(1, len(extra) + 1):
            cur = self._decode(self.ids + extra[:j])
            out.append(cur[len(prev) :] if cur.startswith(prev) else cur[-1:])
            prev = cur
        return out

    def commit(self, ids: list[int]) -> None:
        self.ids.extend(ids)
        self.text = self._decode(self.ids)


def _record(
    res: LoopResult, detok: Detokenizer, proposal: Proposal, v: Verdict, emitted: list[int],
    draft_s: float, verify_s: float, context_tokens: int,
) -> DraftStep:  # fmt: skip
    """Add the round to the totals and describe it (texts in the answer's context)."""
    drafts = proposal.tokens
    n_acc = min(v.accepted, len(emitted))
    token_id = emitted[-1] if len(emitted) > n_acc else None
    texts = detok.preview(drafts[:n_acc] + ([] if token_id is None else [token_id]))
    rejected_texts = detok.preview(drafts)[n_acc:] if n_acc < len(drafts) else []
    detok.commit(emitted)
    res.rounds += 1
    res.drafted += len(drafts)
    res.accepted += n_acc
    res.tokens.extend(emitted)
    return DraftStep(
        round=res.rounds,
        drafted_ids=tuple(drafts),
        drafted_texts=tuple(texts[:n_acc] + rejected_texts),
        accepted=n_acc,
        token_id=token_id,
        token_text=texts[n_acc] if token_id is not None else "",
        token_kind="target" if proposal.source == "none" else v.kind,
        source=proposal.source,
        p_target=v.p_target,
        p_draft=v.p_draft,
        p_hat=v.p_hat,
        token_p_target=v.token_p_target,
        token_p_hat=v.token_p_hat,
        draft_s=draft_s,
        verify_s=verify_s,
        context_tokens=context_tokens,
    )


def _truncate(
    emitted: list[int], eos_ids: frozenset[int], remaining: int
) -> tuple[list[int], str | None]:
    """Cut at the first EOS (kept) or at the token budget; say why the run stops."""
    for i, t in enumerate(emitted):
        if t in eos_ids:
            return emitted[: i + 1], "eos"
    if len(emitted) >= remaining:
        return emitted[:remaining], "max_tokens"
    return emitted, None
