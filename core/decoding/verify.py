"""Verification of one round's draft against the target's logits (architecture.md, steps 4-7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from core.decoding.sampling import rapid_target_probs, residual, sample


@dataclass(frozen=True)
class Verdict:
    """Outcome of a round: `accepted` draft tokens, then the target's `token`."""

    accepted: int
    token: int
    kind: Literal["correction", "bonus"]
    p_target: tuple[float, ...]  # p(d_i), i < number of drafted tokens examined
    p_draft: tuple[float, ...]  # q(d_i)
    p_hat: tuple[float, ...]  # p_hat(d_i)
    token_p_target: float
    token_p_hat: float


def verify(
    drafts: list[int],
    p_draft: Tensor | None,
    logits: Tensor,
    p_draft_bonus: Tensor | None,
    *,
    temperature: float,
    eta: float,
    alpha: float,
    generator: torch.Generator | None,
    stop_ids: Tensor | None = None,
) -> Verdict:
    """Accept a prefix of `drafts`, then draw the correction or the bonus token.

    drafts: k token ids. p_draft: [k, V] drafter distributions q_i (one-hot rows for
    lookup drafts). logits: [k + 1, V] target logits at [last, d_1 .. d_k].
    p_draft_bonus: [V] q_{k+1} for the bonus position, or None (then p_hat = p there).
    """
    k = len(drafts)
    greedy = temperature <= 0
    p_t: list[float] = []
    p_d: list[float] = []
    p_h: list[float] = []
    if k:
        assert p_draft is not None and p_draft.shape[0] == k
        # p_target, p_hat: [k, V] for all drafted positions at once.
        p_target, p_hat = rapid_target_probs(logits[:k], p_draft, temperature, eta, alpha, stop_ids)
        idx = torch.tensor(drafts, device=logits.device)[:, None]
        pt_d = p_target.gather(1, idx)[:, 0].tolist()
        ph_d = p_hat.gather(1, idx)[:, 0].tolist()
        q_d = p_draft.gather(1, idx)[:, 0].tolist()
        best = p_hat.argmax(dim=-1).tolist() if greedy else []
        uniforms = torch.rand(k, generator=generator, device="cpu").tolist() if not greedy else []
        for i, d in enumerate(drafts):
            p_t.append(pt_d[i])
            p_d.append(q_d[i])
            p_h.append(ph_d[i])
            if greedy:
                ok = d == best[i]
            else:
                # Accept d_i with probability min(1, p_hat(d_i) / q(d_i)).
                ok = q_d[i] > 0 and uniforms[i] <= min(1.0, ph_d[i] / q_d[i])
            if not ok:
                # First rejection: draw from norm(max(p_hat - q, 0)) (greedy: argmax p_hat,
                # which is != d_i, so the correction never repeats the rejected token).
                if greedy:
                    token = best[i]
                else:
                    token = sample(residual(p_hat[i], p_draft[i]), generator)
                return Verdict(
                    i, token, "correction", tuple(p_t), tuple(p_d), tuple(p_h),
                    float(p_target[i, token]), float(p_hat[i, token]),
                )  # fmt: skip
    # All k accepted: the bonus token comes from p_hat_{k+1}.
    q_bonus = None if p_draft_bonus is None else p_draft_bonus[None]
    p_target_b, p_hat_b = rapid_target_probs(
        logits[k : k + 1], q_bonus, temperature, eta, alpha, stop_ids
    )
    token = int(p_hat_b[0].argmax()) if greedy else sample(p_hat_b[0], generator)
    return Verdict(
        k, token, "bonus", tuple(p_t), tuple(p_d), tuple(p_h),
        float(p_target_b[0, token]), float(p_hat_b[0, token]),
    )  # fmt: skip
