"""The lookup proposer: n-gram matches in the question, the retrieved text and the document.

Prompt lookup decoding: the continuation of the longest n-gram that ends the answer so
far, found in the sources, is the draft. It costs no model forward, and its q is
one-hot (docs/architecture.md, step 2).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence as Seq

import torch

from core.decoding.proposers import Proposal
from core.decoding.sampling import one_hot

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
        tail: Seq[int] = (),
    ) -> None:
        self.max_ngram, self.min_ngram = max_ngram, min_ngram
        self.context = list(tail)[-8:]  # the last committed tokens (prompt, then answer)
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

    def propose(self, limit: int, vocab: int) -> Proposal:
        """Up to `limit` tokens continuing the longest n-gram that ends the answer so far."""
        drafts = self.match(self.context, limit)
        q = torch.stack([one_hot(d, vocab) for d in drafts]) if drafts else None
        return Proposal(drafts, q, "lookup")

    def commit(self, emitted: list[int], accepted: int) -> None:
        """The round emitted `emitted`: extend the context and the answer."""
        del accepted
        self.context = (self.context + emitted)[-8:]
        self.extend_answer(emitted)

    def match(self, context: Seq[int], limit: int) -> list[int]:
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
