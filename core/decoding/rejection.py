"""The rejection rule of one round (docs/architecture.md, steps 4-7), as pure functions.

A round verifies k drafted tokens d_1..d_k against the target's logits at
[last, d_1 .. d_k]. Two distributions per position come from the proposers:

- `q_prop`: what each draft was drawn from (the drafter model's q, or one-hot for a
  lookup draft). The accept test and the residual use it: this is what makes the
  output follow the target distribution exactly (speculative sampling).
- `q_aug`: the drafter model's q at each position, for the retrieval-augmented target
  p_hat = softmax(z/T + eta * m * (q_aug - p)) (paper Eq. 6). None with eta = 0 or
  without a drafter model (then p_hat = p). RAPID transfers the drafter *model's*
  distribution, whatever proposed the token.

So every emitted token follows p_hat (greedy: is its argmax), for any proposer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from core.decoding.sampling import rapid_target_probs, residual, sample


@dataclass(frozen=True)
class Rules:
    """The settings the rule depends on."""

    temperature: float
    eta: float
    alpha: float
    stop_ids: Tensor  # end-of-answer ids: eta is 0 where the target itself would stop

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass(frozen=True)
class Verdict:
    """Outcome of a round: `accepted` draft tokens, then the target's `token`."""

    accepted: int
    token: int
    kind: Literal["correction", "bonus"]
    p_target: tuple[float, ...]  # p(d_i), i < number of drafted tokens examined
    p_draft: tuple[float, ...]  # q_prop(d_i)
    p_hat: tuple[float, ...]  # p_hat(d_i)
    token_p_target: float
    token_p_hat: float


def target_probs(logits: Tensor, q_aug: Tensor | None, rules: Rules) -> tuple[Tensor, Tensor]:
    """(p, p_hat) at each row of `logits`; `q_aug` rows align with them."""
    return rapid_target_probs(
        logits, q_aug, rules.temperature, rules.eta, rules.alpha, rules.stop_ids
    )


def accepted_prefix(
    drafts: list[int], p_hat: Tensor, q_prop: Tensor, rules: Rules, uniforms: list[float]
) -> int:
    """How many drafts pass: greedy, d_i == argmax p_hat_i; sampled, u_i <=
    min(1, p_hat_i(d_i) / q_prop_i(d_i)). Stops at the first failure."""
    if rules.greedy:
        best = p_hat.argmax(dim=-1).tolist()
        for i, d in enumerate(drafts):
            if d != best[i]:
                return i
        return len(drafts)
    idx = torch.tensor(drafts, device=p_hat.device)[:, None]
    ph = p_hat.gather(1, idx)[:, 0].tolist()
    qp = q_prop.gather(1, idx)[:, 0].tolist()
    for i in range(len(drafts)):
        if not (qp[i] > 0 and uniforms[i] <= min(1.0, ph[i] / qp[i])):
            return i
    return len(drafts)


def correction(p_hat: Tensor, q_prop: Tensor, rules: Rules, generator: torch.Generator) -> int:
    """The token after a rejection: argmax p_hat (greedy, never the rejected draft),
    else drawn from norm(max(p_hat - q_prop, 0))."""
    if rules.greedy:
        return int(p_hat.argmax())
    return sample(residual(p_hat, q_prop), generator)


def pick(p_hat: Tensor, rules: Rules, generator: torch.Generator) -> int:
    """The bonus token after k accepted drafts (or the only token of an empty draft)."""
    return int(p_hat.argmax()) if rules.greedy else sample(p_hat, generator)


def verify(
    drafts: list[int],
    q_prop: Tensor | None,
    q_aug: Tensor | None,
    logits: Tensor,
    bonus_q: Callable[[], Tensor | None],
    rules: Rules,
    generator: torch.Generator,
) -> Verdict:
    """Accept a prefix of `drafts`, then draw the correction or the bonus token.

    logits: [k + 1, V] at [last, d_1 .. d_k]. q_prop: [k, V]. q_aug: [k, V] or None.
    `bonus_q()` gives q_aug at position k + 1; it is called only when every draft
    passed (for a model draft it may cost a drafter forward).
    """
    k = len(drafts)
    stats: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]] = ((), (), ())
    if k:
        assert q_prop is not None and q_prop.shape[0] == k
        p_target, p_hat = target_probs(logits[:k], q_aug, rules)
        uniforms = [] if rules.greedy else torch.rand(k, generator=generator).tolist()
        n = accepted_prefix(drafts, p_hat, q_prop, rules, uniforms)
        seen = min(n + 1, k)  # the drafts examined: accepted ones and the rejected one
        idx = torch.tensor(drafts[:seen], device=logits.device)[:, None]
        stats = (
            tuple(p_target[:seen].gather(1, idx)[:, 0].tolist()),
            tuple(q_prop[:seen].to(logits.device).gather(1, idx)[:, 0].tolist()),
            tuple(p_hat[:seen].gather(1, idx)[:, 0].tolist()),
        )
        if n < k:
            token = correction(p_hat[n], q_prop[n].to(p_hat.device), rules, generator)
            return Verdict(
                n, token, "correction", *stats,
                float(p_target[n, token]), float(p_hat[n, token]),
            )  # fmt: skip
    q = bonus_q() if rules.eta > 0 else None
    p_target_b, p_hat_b = target_probs(logits[k : k + 1], None if q is None else q[None], rules)
    token = pick(p_hat_b[0], rules, generator)
    return Verdict(k, token, "bonus", *stats, float(p_target_b[0, token]), float(p_hat_b[0, token]))
