"""Draft sources: n-gram lookup in the retrieved text and the document, and the drafter LM.

The seam follows transformers' `CandidateGenerator`: `propose` returns candidate ids
with their draft distributions q, `commit` tells the source what was emitted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence as Seq

import torch
from torch import Tensor

from core.decoding.lm import Sequence, sequence_device
from core.decoding.qlinear import Weight
from core.decoding.sampling import logits_to_probs, sample

REPEAT_GRAM = 4


class LookupDrafter:
    """Proposes the continuation of the longest recent n-gram match (prompt lookup).

    Sources, in order of preference: the question (answers restate it), the retrieved
    passages (the drafter's context) and the whole document; with `search_answer`, the
    answer so far as well. Leave that off when eta > 0: a one-hot draft gets up to +eta
    logits, and drafts copied from the answer's own past turn that boost into repetition
    loops. A lookup draft was not sampled from a distribution, so its q is one-hot
    (docs/architecture.md, step 2).
    """

    def __init__(
        self,
        sources: Seq[Seq[int]],
        max_ngram: int = 3,
        min_ngram: int = 2,
        search_answer: bool = False,
    ) -> None:
        self.max_ngram, self.min_ngram = max_ngram, min_ngram
        self.search_answer = search_answer
        self.texts: list[list[int]] = [list(s) for s in sources] + [[]]  # [-1]: the answer
        # Without answer search (eta > 0), drafts must not repeat the answer's own
        # 4-grams: the eta boost would turn a repeated header or footer into a loop.
        self._answer_grams: set[tuple[int, ...]] = set()
        # index[n][gram] -> list of (text, end position) where the n-gram ends
        self.index: list[dict[tuple[int, ...], list[tuple[int, int]]]] = [
            defaultdict(list) for _ in range(max_ngram + 1)
        ]
        for t, toks in enumerate(self.texts):
            self._index_range(t, toks, 0)

    def _index_range(self, t: int, toks: list[int], start: int) -> None:
        for n in range(self.min_ngram, self.max_ngram + 1):
            for end in range(max(start, n), len(toks) + 1):
                self.index[n][tuple(toks[end - n : end])].append((t, end))

    def extend_answer(self, tokens: Seq[int]) -> None:
        """Append emitted tokens to the answer (searched only with `search_answer`)."""
        t = len(self.texts) - 1
        answer = self.texts[t]
        start = len(answer)
        answer.extend(tokens)
        for end in range(max(start + 1, REPEAT_GRAM), len(answer) + 1):
            self._answer_grams.add(tuple(answer[end - REPEAT_GRAM : end]))
        if self.search_answer:
            self._index_range(t, answer, start + 1)  # only n-grams ending in the new tokens

    def _fresh(self, context: Seq[int], cont: list[int]) -> list[int]:
        """`cont` cut before its first token that would repeat one of the answer's 4-grams."""
        if self.search_answer or not self._answer_grams:
            return cont
        tail = list(context[-(REPEAT_GRAM - 1) :])
        for i, tok in enumerate(cont):
            tail = [*tail, tok][-REPEAT_GRAM:]
            if len(tail) == REPEAT_GRAM and tuple(tail) in self._answer_grams:
                return cont[:i]
        return cont

    def propose(self, context: Seq[int], limit: int) -> list[int]:
        """Up to `limit` tokens continuing the longest n-gram that ends `context`."""
        for n in range(self.max_ngram, self.min_ngram - 1, -1):
            if len(context) < n:
                continue
            hits = self.index[n].get(tuple(context[-n:]))
            if not hits:
                continue
            # Sources in the given order; earlier occurrences first.
            for t, end in sorted(hits):
                cont = self._fresh(context, self.texts[t][end : end + limit])
                if cont:
                    return cont
        return []


class ModelDrafter:
    """The drafter LM on its own (retrieval) context, with its own KV cache.

    Tokens the loop commits while this drafter is idle (lookup rounds) are kept as
    `pending` and fed in one forward the next time it drafts. `head_ids`, when given,
    restricts its LM head to those token ids (a cheaper step; its q is zero elsewhere).
    """

    def __init__(self, seq: Sequence, lm_head: Weight, vocab: int, head_ids: Tensor | None) -> None:
        self.seq = seq
        self.vocab = vocab
        self.device = sequence_device(seq)
        self.head_ids = None if head_ids is None else head_ids.to(self.device)
        self.head = lm_head if head_ids is None else lm_head.rows(head_ids)
        self.pending: list[int] = []

    def _probs(self, logits: Tensor, temperature: float) -> Tensor:
        probs = logits_to_probs(logits, temperature)  # [m] over the head's rows
        if self.head_ids is None:
            return probs
        full = torch.zeros(self.vocab, dtype=probs.dtype, device=probs.device)
        full[self.head_ids] = probs
        return full

    def _consume(self, ids: list[int]) -> Tensor:
        logits = self.seq.forward(torch.tensor(ids, device=self.device), "last", self.head)
        return logits[0]

    def propose(
        self,
        limit: int,
        temperature: float,
        generator: torch.Generator | None,
        min_confidence: float,
    ) -> tuple[list[int], list[Tensor]]:
        """Draft up to `limit` tokens; stop early when the drafter's top q < min_confidence.

        After this call the drafter has consumed everything but the last drafted token.
        """
        assert self.pending, "the drafter needs the last committed token"
        logits = self._consume(self.pending)
        self.pending = []
        drafts: list[int] = []
        qs: list[Tensor] = []
        while True:
            q = self._probs(logits, temperature)
            d = int(q.argmax()) if temperature <= 0 else sample(q, generator)
            if drafts and float(q.max()) < min_confidence:
                break
            drafts.append(d)
            qs.append(q)
            if len(drafts) >= limit:
                break
            logits = self._consume([d])
        return drafts, qs

    def bonus_q(self, last_draft: int, temperature: float) -> Tensor:
        """Consume the last drafted token (all were accepted) and return q_{k+1}."""
        return self._probs(self._consume([last_draft]), temperature)

    def rollback(self, committed_len: int, pending: list[int]) -> None:
        """Crop to `committed_len` tokens and queue `pending` for the next forward."""
        if self.seq.length > committed_len:
            self.seq.crop(committed_len)
        self.pending.extend(pending)


def trimmed_head_ids(context_ids: Seq[int], vocab: int, common: int = 8192) -> Tensor:
    """Token ids the drafter's head keeps: its context's tokens plus the `common` lowest
    ids (byte-level BPE vocabularies put frequent tokens first)."""
    keep = torch.zeros(vocab, dtype=torch.bool)
    keep[: min(common, vocab)] = True
    if context_ids:
        keep[torch.tensor(list(context_ids), dtype=torch.long)] = True
    return keep.nonzero()[:, 0]
