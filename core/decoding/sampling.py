"""Distributions of RAPID (docs/architecture.md, steps 4-6), as small functions on tensors.

Names: `p_target` = softmax(z / T) of the target, `p_draft` = the drafter's q,
`p_hat` = the retrieval-augmented target distribution of paper Eq. 6. All tensors
are [rows, V] float32 unless noted.

Greedy decoding (T = 0) evaluates every formula at T = 1 and takes the argmax instead
of sampling: with T -> 0, z / T would swamp the eta term and greedy RAPID would
collapse to plain speculative decoding.
"""

from __future__ import annotations

import torch
from torch import Tensor


def effective_temperature(temperature: float) -> float:
    """The temperature the formulas use: greedy (0) is evaluated at 1."""
    return temperature if temperature > 0 else 1.0


def logits_to_probs(logits: Tensor, temperature: float) -> Tensor:
    """p = softmax(z / T) in float32 (T = 0 means greedy, evaluated at T = 1)."""
    return torch.softmax(logits.float() / effective_temperature(temperature), dim=-1)


def tail_mask(p_draft: Tensor, alpha: float) -> Tensor:
    """m_i = [q_i >= alpha * max(q_i)].

    Masked on the drafter's q, as the official RAPID code does (the paper's Eq. 9
    writes the mask on p_hat; masking on q keeps the boost on tokens the drafter
    actually considers plausible and needs no fixed point).
    """
    return p_draft >= alpha * p_draft.amax(dim=-1, keepdim=True)


def rapid_target_probs(
    logits: Tensor,
    p_draft: Tensor | None,
    temperature: float,
    eta: float,
    alpha: float,
    stop_ids: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Returns (p_target, p_hat) with p_hat = softmax(z/T + eta * m * (q - p)) (Eq. 6).

    `p_draft` None (no drafter opinion at this position) or eta = 0 gives p_hat = p.
    `stop_ids` (end-of-answer tokens): at a position where the target's own top
    choice is one of them, eta is 0 there, so the retrieval boost never talks the
    target out of ending its answer (without this, drafts that continue the retrieved
    text win over EOS and answers run on). p_hat is still a distribution per position.
    """
    t = effective_temperature(temperature)
    z = logits.float() / t
    p_target = torch.softmax(z, dim=-1)
    if eta == 0.0 or p_draft is None:
        return p_target, p_target
    m = tail_mask(p_draft, alpha)
    strength = torch.full((z.shape[0], 1), eta, device=z.device)
    if stop_ids is not None and stop_ids.numel():
        ending = torch.isin(p_target.argmax(dim=-1), stop_ids.to(z.device))
        strength[ending] = 0.0
    p_hat = torch.softmax(z + strength * m * (p_draft - p_target), dim=-1)
    return p_target, p_hat


def residual(p_hat: Tensor, p_draft: Tensor) -> Tensor:
    """norm(max(p_hat - q, 0)): where to draw the correction after a rejection.

    This is the standard speculative-sampling residual with p_hat in the role of the
    target, which makes the emitted token follow p_hat exactly. The paper's
    `max(p - p_hat, p - q, 0)` is not used: for eta > 0 it mixes in p, so the
    accepted-or-corrected token would follow neither p nor p_hat.
    With a one-hot draft q = e_d this is p_hat with d zeroed, renormalised.
    If the residual has no mass (p_hat <= q everywhere, which implies p_hat == q),
    rejection had probability 0; fall back to p_hat.
    """
    r = torch.clamp(p_hat - p_draft, min=0.0)
    total = r.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, r / total.clamp_min(1e-30), p_hat)


def sample(probs: Tensor, generator: torch.Generator | None) -> int:
    """One token id from a [V] distribution.

    Drawn on the CPU with the loop's CPU generator whatever device `probs` is on: a
    CUDA tensor cannot take a CPU generator, and one stream of random numbers makes a
    seeded answer the same on every device.
    """
    return int(torch.multinomial(probs.float().cpu(), 1, generator=generator).item())


def one_hot(token: int, vocab: int, device: torch.device | None = None) -> Tensor:
    """q = one-hot(d): the distribution of a draft that was not sampled (lookup)."""
    q = torch.zeros(vocab, dtype=torch.float32, device=device)
    q[token] = 1.0
    return q
