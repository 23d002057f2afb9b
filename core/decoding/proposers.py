"""Proposers: who drafts a round, behind one seam (docs/architecture.md, steps 1-2).

Like transformers' `CandidateGenerator` and vLLM's proposer: `propose` returns the
draft tokens with the distributions they were drawn from, and `commit` tells the
proposer what the round emitted so that it keeps its own state (the n-gram context,
or the drafter model's KV cache) in step with the answer. The lookup proposer is in
lookup.py; the drafter model is here, with the two extra services RAPID needs of it
(paper Eq. 6 uses the drafter model's q at every verified position):

- `score(tokens)`: its q at each position of a draft it did not propose (lookup);
- `next_q()`: its q after the last draft, for the bonus position.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from core.decoding.lm import Sequence, sequence_device
from core.decoding.qlinear import Weight
from core.decoding.sampling import logits_to_probs, sample
from core.events import DraftSource


@dataclass(frozen=True)
class Proposal:
    """A round's draft: k tokens and the [k, V] distributions they were drawn from."""

    tokens: list[int]
    q: Tensor | None  # None when k = 0
    source: DraftSource


NO_PROPOSAL = Proposal([], None, "none")


class Proposer(Protocol):
    def commit(self, emitted: list[int], accepted: int) -> None: ...


class ModelDrafter:
    """The drafter LM on its own (retrieval) context, with its own KV cache.

    State between rounds: the KV cache holds committed tokens; `pending` holds the
    committed tokens it has not read yet (at least the last one), fed with its next
    forward. Within a round it reads `pending` and then drafts; `commit` crops what
    the target rejected. `head_ids`, when given, restricts its LM head to those token
    ids (a cheaper step; its q is zero elsewhere).
    """

    def __init__(self, seq: Sequence, lm_head: Weight, vocab: int, head_ids: Tensor | None) -> None:
        self.seq = seq
        self.vocab = vocab
        self.device = sequence_device(seq)
        self.head_ids = None if head_ids is None else head_ids.to(self.device)
        self.head = lm_head if head_ids is None else lm_head.rows(head_ids)
        self.pending: list[int] = []
        self._start: int | None = None  # committed tokens at the round's start, if it ran
        self._drafts: list[int] = []
        self._next_q: Tensor | None = None  # q after the last token read, when known
        self._temperature = 0.0

    def _probs(self, logits: Tensor) -> Tensor:
        probs = logits_to_probs(logits, self._temperature)  # [n, m] over the head's rows
        if self.head_ids is None:
            return probs
        full = torch.zeros(probs.shape[0], self.vocab, dtype=probs.dtype, device=probs.device)
        full[:, self.head_ids] = probs
        return full

    def _read(self, ids: list[int], rows: str = "last") -> Tensor:
        return self.seq.forward(torch.tensor(ids, device=self.device), rows, self.head)  # type: ignore[arg-type]

    def _begin(self, temperature: float) -> list[int]:
        assert self.pending, "the drafter needs the last committed token"
        self._start = self.seq.length + len(self.pending)
        self._temperature = temperature
        fed, self.pending = self.pending, []
        return fed

    def propose(
        self, limit: int, temperature: float, generator: torch.Generator, min_confidence: float
    ) -> Proposal:
        """Draft up to `limit` tokens, stopping early (after at least one) when the top
        of q falls below `min_confidence`. Then it has read every draft but the last;
        after an early stop it has read the last too, and knows the next q."""
        q = self._probs(self._read(self._begin(temperature)))[0]
        drafts: list[int] = []
        qs: list[Tensor] = []
        self._next_q = None
        while True:
            if drafts and float(q.max()) < min_confidence:
                self._next_q = q  # computed after reading d_k: the bonus position's q
                break
            d = int(q.argmax()) if temperature <= 0 else sample(q, generator)
            drafts.append(d)
            qs.append(q)
            if len(drafts) >= limit:
                break
            q = self._probs(self._read([d]))[0]
        self._drafts = drafts
        return Proposal(drafts, torch.stack(qs), "model")

    def score(self, tokens: list[int], temperature: float) -> Tensor:
        """q at each position of a draft proposed elsewhere, and after it: [k + 1, V]."""
        fed = self._begin(temperature)
        qs = self._probs(self._read(fed + tokens, "all")[len(fed) - 1 :])
        self._drafts = list(tokens)
        self._next_q = qs[-1]
        return qs

    def next_q(self) -> Tensor:
        """q after the round's last draft (reads it if it has not yet: once)."""
        if self._next_q is None:
            assert self._start is not None and self._drafts
            self._next_q = self._probs(self._read(self._drafts[-1:]))[0]
        return self._next_q

    def commit(self, emitted: list[int], accepted: int) -> None:
        """Keep the accepted drafts it has read, queue the rest of `emitted`."""
        self._next_q = None
        if self._start is None:  # it did not run this round
            self.pending.extend(emitted)
            return
        keep = min(self.seq.length, self._start + accepted)
        if self.seq.length > keep:
            self.seq.crop(keep)
        self.pending.extend(emitted[keep - self._start :])
        self._start = None


def trimmed_head_ids(context_ids: Seq[int], vocab: int, common: int = 8192) -> Tensor:
    """Token ids the drafter's head keeps: its context's tokens plus the `common` lowest
    ids (byte-level BPE vocabularies put frequent tokens first)."""
    keep = torch.zeros(vocab, dtype=torch.bool)
    keep[: min(common, vocab)] = True
    if context_ids:
        keep[torch.tensor(list(context_ids), dtype=torch.long)] = True
    return keep.nonzero()[:, 0]
