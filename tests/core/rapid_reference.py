"""TEST HELPER: hand-built language models and a step-by-step reference of RAPID.

`HashLM` is a `Sequence` whose logits at each position are a fixed random function of
the answer so far (seeded from a hash of it), so a target and a drafter built from the
same base agree often but not always, with no model weights at all. The reference
functions compute RAPID one token at a time from the formulas of docs/architecture.md
(paper Eq. 6, speculative sampling's accept / residual rule), in float64 and plain
Python, without the engine's batching, caches or proposers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from types import SimpleNamespace

import torch
from torch import Tensor

Logits = Callable[[tuple[int, ...]], Tensor]


def hashed_logits(vocab: int, seed: int, scale: float) -> Logits:
    """A fixed random [vocab] logit vector per answer prefix (cached)."""
    cache: dict[tuple[int, ...], Tensor] = {}

    def logits(answer: tuple[int, ...]) -> Tensor:
        if answer not in cache:
            digest = hashlib.sha256(repr((seed, answer)).encode()).digest()
            g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
            cache[answer] = torch.randn(vocab, generator=g, dtype=torch.float64) * scale
        return cache[answer]

    return logits


def mixed(a: Logits, b: Logits, weight: float) -> Logits:
    """a + weight * b: a drafter that mostly agrees with the target `a`."""
    return lambda answer: a(answer) + weight * b(answer)


class HashLM:
    """A `Sequence` over hand-built logits: `prompt` is the context, whatever follows
    it is the answer that `logits` is a function of. It starts holding prompt[:-1]
    (the loop feeds the last prompt token first, as after a prefill)."""

    def __init__(self, logits: Logits, prompt: Sequence[int]) -> None:
        self.logits = logits
        self.prompt_len = len(prompt)
        self.tokens = list(prompt[:-1])
        self.length = len(self.tokens)
        self.w = SimpleNamespace(device=torch.device("cpu"))  # for sequence_device
        self.forwards = 0

    def forward(self, ids: Tensor, logits: str = "all", head: object = None) -> Tensor:
        del head
        self.forwards += 1
        start = len(self.tokens)
        self.tokens.extend(int(t) for t in ids.tolist())
        self.length = len(self.tokens)
        rows = [
            self.logits(tuple(self.tokens[self.prompt_len : end]))
            for end in range(start + 1, self.length + 1)
        ]
        out = torch.stack(rows).float()
        if logits == "none":
            return out[:0, :0]
        return out[-1:] if logits == "last" else out

    def crop(self, length: int) -> None:
        assert 0 <= length <= self.length
        del self.tokens[length:]
        self.length = length

    def reserve(self, capacity: int) -> None:
        del capacity

    def snapshot(self) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def restore(self, k: Tensor, v: Tensor) -> None:
        raise NotImplementedError


def softmax(z: Sequence[float]) -> list[float]:
    top = max(z)
    e = [math.exp(x - top) for x in z]
    s = sum(e)
    return [x / s for x in e]


def p_hat(
    z_target: Sequence[float], q: Sequence[float] | None, eta: float, alpha: float,
    temperature: float, eos: frozenset[int],
) -> list[float]:  # fmt: skip
    """Paper Eq. 6 at one position: softmax(z/T + eta * m * (q - p)), m = [q >= alpha max q];
    eta is 0 where the target's own first choice ends the answer."""
    t = temperature if temperature > 0 else 1.0
    z = [x / t for x in z_target]
    p = softmax(z)
    if q is None or eta == 0 or max(range(len(p)), key=p.__getitem__) in eos:
        return p
    top = max(q)
    return softmax([z[i] + eta * (q[i] - p[i]) * (q[i] >= alpha * top) for i in range(len(z))])


def argmax(p: Sequence[float]) -> int:
    return max(range(len(p)), key=p.__getitem__)


def greedy_rapid(
    target: Logits, drafter: Logits | None, n: int, eta: float, alpha: float,
    eos: frozenset[int],
) -> list[int]:  # fmt: skip
    """Greedy RAPID token by token: y_t = argmax p_hat(y_<t), q the drafter model's."""
    answer: list[int] = []
    while len(answer) < n:
        key = tuple(answer)
        q = None if drafter is None else softmax(drafter(key).tolist())
        y = argmax(p_hat(target(key).tolist(), q, eta, alpha, 1.0, eos))
        answer.append(y)
        if y in eos:
            break
    return answer


def sampled_round(
    target: Logits, drafter: Logits | None, answer: list[int], k: int, lookup: Sequence[int],
    eta: float, alpha: float, temperature: float, eos: frozenset[int],
    generator: torch.Generator,
) -> tuple[list[int], int]:  # fmt: skip
    """One round of sampled RAPID with the engine's order of random draws: k drafts from
    the drafter model (none when `lookup` gives them), k uniforms, then the correction
    or the bonus token. Returns (emitted tokens, accepted count)."""

    def q_at(prefix: list[int]) -> list[float] | None:
        if drafter is None:
            return None
        return softmax([x / temperature for x in drafter(tuple(prefix)).tolist()])

    def draw(p: Sequence[float]) -> int:
        probs = torch.tensor(p, dtype=torch.float32)
        return int(torch.multinomial(probs, 1, generator=generator).item())

    drafts, proposals = list(lookup), []
    for i in range(k):
        if lookup:
            one_hot = [0.0] * len(target(()))
            one_hot[drafts[i]] = 1.0
            proposals.append(one_hot)
        else:
            q = q_at(answer + drafts)
            assert q is not None
            drafts.append(draw(q))
            proposals.append(q)
    uniforms = torch.rand(k, generator=generator).tolist() if k else []
    for i in range(k + 1):
        prefix = answer + drafts[:i]
        ph = p_hat(target(tuple(prefix)).tolist(), q_at(prefix), eta, alpha, temperature, eos)
        if i == k:
            return [*drafts, draw(ph)], k
        d, qp = drafts[i], proposals[i]
        if not (qp[d] > 0 and uniforms[i] <= min(1.0, ph[d] / qp[d])):
            rest = [max(a - b, 0.0) for a, b in zip(ph, qp, strict=True)]
            total = sum(rest)
            return [*drafts[:i], draw([r / total for r in rest] if total > 0 else ph)], i
    raise AssertionError("unreachable")
