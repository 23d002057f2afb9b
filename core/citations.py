"""Where each part of an answer came from: sentence citations and "read beyond the
passages" runs (docs/architecture.md, "Citations and evidence").

Pure functions over the decoding rounds (`DraftStep`s) and the retrieved passages; no
models. A sentence cites the passages its accepted draft spans occur in (the drafter
proposed them from those passages: copied by lookup or drafted by the model), else the
passage that matches it best in words, else nothing (unsupported). A run of rounds in
which the target rejected the drafter's proposals is where the passages were not
enough: the target wrote from the whole document.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from core.events import BeyondRun, ChunkRef, DraftStep, SentenceCitation

# A sentence ends at . ! ? (then a space and a capital, digit or quote) or a line break
# (in an answer; in a document's text, where lines wrap, at a blank line); not after a
# short abbreviation ("e.g.", "p. 12", "Fig. 3").
_STOP_AT = r"(?<=[.!?])([\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])"
_END = re.compile(_STOP_AT + r"|\n+")
_END_PARAGRAPH = re.compile(_STOP_AT + r"|\n\s*\n")
_ABBREV = {"e.g", "i.e", "p", "pp", "fig", "no", "vs", "etc", "cf", "mr", "mrs", "dr",
           "st", "sec", "ch", "vol", "eq", "approx", "al", "jan", "feb", "mar", "apr",
           "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}  # fmt: skip
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")
_STOP = frozenset(
    "a an the of and or in on at to for from by with as is are was were be been being it its"
    " this that these those which who whom what when where how why there their they them he"
    " she his her we our you your i not no yes do does did has have had can could will would"
    " shall should may might must than then so such also into onto about over under after"
    " before between during per via if but only both each all any some more most other".split()
)
MIN_DRAFT_SPAN = 3  # accepted draft tokens in a row that can locate their passage
MIN_DRAFT_WORDS = 3  # words of such a span found whole in a passage
MIN_DRAFT_CHARS = 12
MIN_MATCH = 0.5  # share of a sentence's content words a passage must hold to be cited


@dataclass(frozen=True)
class EmittedToken:
    """One emitted token: its text (in the answer's context), how it came about
    ("draft" = an accepted draft token, else the round's `TokenKind`), its round."""

    text: str
    how: str
    round: int


def answer_tokens(steps: Sequence[DraftStep]) -> list[EmittedToken]:
    """The emitted tokens of an answer's rounds, in order."""
    out: list[EmittedToken] = []
    for s in steps:
        out.extend(EmittedToken(t, "draft", s.round) for t in s.drafted_texts[: s.accepted])
        if s.token_id is not None:
            out.append(EmittedToken(s.token_text, s.token_kind, s.round))
    return out


def token_offsets(tokens: Sequence[EmittedToken]) -> list[tuple[int, int]]:
    """Each token's character span in the stripped answer (`"".join(texts).strip()`),
    clamped to it (leading and trailing whitespace tokens get empty spans)."""
    raw = "".join(t.text for t in tokens)
    lead = len(raw) - len(raw.lstrip())
    size = len(raw.strip())
    spans, pos = [], -lead
    for t in tokens:
        s, e = pos, pos + len(t.text)
        spans.append((min(max(s, 0), size), min(max(e, 0), size)))
        pos = e
    return spans


def split_sentences(text: str, lines: bool = True) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text` (surrounding whitespace excluded);
    `lines`: a line break ends a sentence (an answer's list items), else only a blank
    line does (a document's wrapped lines)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in (_END if lines else _END_PARAGRAPH).finditer(text):
        if m.group(1) is not None:
            words = text[start : m.start()].rsplit(None, 1)
            last = words[-1].lower().rstrip(".!?\"')]") if words else ""
            if last in _ABBREV or (len(last) == 1 and last.isalpha()):
                continue
        spans.append((start, m.start() + len(m.group(1) or "")))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out


def _words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def _content(words: Sequence[str]) -> set[str]:
    return {w for w in words if w not in _STOP and (len(w) > 1 or w.isdigit())}


def _squash(text: str) -> str:
    """Lower case, one space between words: for exact matching of draft spans."""
    return " ".join(_words(text))


Narrow = Callable[[ChunkRef, int, int], ChunkRef]


def narrow_text(chunk: ChunkRef, start: int, end: int) -> ChunkRef:
    """`chunk` cut to chunk.text[start:end] (same rects: no page geometry at hand)."""
    return ChunkRef(
        chunk.doc_id, chunk.title, chunk.pages, chunk.score, chunk.text[start:end],
        chunk.tokens, chunk.start_char + start, chunk.start_char + end, chunk.rects,
        chunk.labels,
    )  # fmt: skip


def _best_sentence(chunk: ChunkRef, words: set[str], phrase: str) -> tuple[int, int]:
    """The span of `chunk.text` to highlight: its sentence holding `phrase` (an exact
    draft span), else its sentence sharing the most content words with `words`."""
    best, best_score = (0, len(chunk.text)), -1.0
    for s, e in split_sentences(chunk.text, lines=False):
        part = chunk.text[s:e]
        if phrase and phrase in _squash(part):
            return s, e
        score = len(words & _content(_words(part))) - 1e-4 * (e - s)
        if score > best_score:
            best, best_score = (s, e), score
    return best


def cite(
    answer: str,
    tokens: Sequence[EmittedToken],
    chunks: Sequence[ChunkRef],
    narrow: Narrow = narrow_text,
) -> tuple[SentenceCitation, ...]:
    """The citations of each sentence of `answer` (`tokens` are its emitted tokens,
    `chunks` the passages the drafter read, numbered from 0)."""
    spans = token_offsets(tokens)
    texts = [f" {_squash(c.text)} " for c in chunks]
    contents = [_content(_words(c.text)) for c in chunks]
    out = []
    for s, e in split_sentences(answer):
        inside = [i for i, (ts, te) in enumerate(spans) if ts < e and te > s and te > ts]
        drafted = [i for i in inside if tokens[i].how == "draft"]
        share = len(drafted) / len(inside) if inside else 0.0
        # 1. accepted draft spans found verbatim in a passage
        cited: dict[int, str] = {}
        for run in _runs(drafted):
            text = answer[max(s, spans[run[0]][0]) : min(e, spans[run[-1]][1])]
            if len(run) >= MIN_DRAFT_SPAN:
                for phrase, where in _found_spans(_words(text), texts):
                    for j in where:
                        cited.setdefault(j, phrase)
        # 2. else the passage holding most of the sentence's content words
        words = _content(_words(answer[s:e]))
        if not cited and words:
            scores = [len(words & c) / len(words) for c in contents]
            j = max(range(len(chunks)), key=lambda k: scores[k], default=-1)
            if j >= 0 and scores[j] >= MIN_MATCH:
                cited[j] = ""
        order = sorted(cited)
        spots = tuple(narrow(chunks[j], *_best_sentence(chunks[j], words, cited[j]))
                      for j in order)  # fmt: skip
        out.append(SentenceCitation(s, e, tuple(order), spots, share))
    return tuple(out)


Search = Callable[[str], Sequence[ChunkRef]]


def cite_document(
    answer: str,
    citations: Sequence[SentenceCitation],
    chunks: Sequence[ChunkRef],
    search: Search,
    narrow: Narrow = narrow_text,
) -> tuple[tuple[SentenceCitation, ...], tuple[ChunkRef, ...]]:
    """Cite the unsupported sentences from the rest of the document: the target read
    all of it, so a sentence no retrieved passage supports may come from elsewhere.
    `search(sentence)` returns candidate passages; the one holding the largest share
    (>= `MIN_MATCH`) of the sentence's content words is cited, appended to `chunks`
    with origin "document". Returns the new citations and the passages to append."""
    extra: list[ChunkRef] = []
    out = []
    for c in citations:
        words = _content(_words(answer[c.start : c.end]))
        if c.supported or not words:
            out.append(c)
            continue
        found = [h for h in search(answer[c.start : c.end]) if h.text]
        scores = [len(words & _content(_words(h.text))) / len(words) for h in found]
        best = max(range(len(found)), key=lambda k: scores[k], default=-1)
        if best < 0 or scores[best] < MIN_MATCH:
            out.append(c)
            continue
        hit = replace(found[best], origin="document")
        same = [
            i
            for i, x in enumerate(extra)
            if (x.doc_id, x.start_char) == (hit.doc_id, hit.start_char)
        ]
        if same:
            index = len(chunks) + same[0]
        else:
            index = len(chunks) + len(extra)
            extra.append(hit)
        spot = replace(narrow(hit, *_best_sentence(hit, words, "")), origin="document")
        out.append(replace(c, passages=(index,), spots=(spot,)))
    return tuple(out), tuple(extra)


def _found_spans(words: Sequence[str], texts: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Greedy left to right: the longest spans of `words` (at least `MIN_DRAFT_WORDS`)
    that occur whole in some of `texts` (padded, squashed), with where they occur."""
    out: list[tuple[str, list[int]]] = []
    i = 0
    while i < len(words):
        best_j, where = i, []
        j = i + MIN_DRAFT_WORDS
        while j <= len(words):
            phrase = f" {' '.join(words[i:j])} "
            found = [k for k, t in enumerate(texts) if phrase in t]
            if not found:
                break
            best_j, where = j, found
            j += 1
        if where and len(" ".join(words[i:best_j])) >= MIN_DRAFT_CHARS:
            out.append((" ".join(words[i:best_j]), where))
            i = best_j
        else:
            i += 1
    return out


def _runs(indices: Sequence[int]) -> list[list[int]]:
    """Consecutive runs of sorted integers."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def beyond_runs(
    steps: Sequence[DraftStep], low: float = 0.5, min_corrections: int = 2
) -> tuple[BeyondRun, ...]:
    """Runs of consecutive rounds in which the target corrected the drafter and kept
    less than `low` of its draft; a run needs `min_corrections` corrections (a single
    rejected word is noise). Rounds with no draft neither break nor extend a run."""
    tokens = answer_tokens(steps)
    spans = token_offsets(tokens)
    answer = "".join(t.text for t in tokens).strip()
    runs: list[BeyondRun] = []
    first = count = 0
    pos = 0  # emitted tokens before the current round
    current: tuple[int, int] | None = None  # token range of the open run

    def close() -> None:
        if current is not None and count >= min_corrections:
            a, b = current
            start, end = spans[a][0], spans[b - 1][1]
            while start < end and answer[start].isspace():
                start += 1
            while 0 < start < end and answer[start - 1].isalnum() and answer[start].isalnum():
                start -= 1  # whole words: "Har|row" marks "Harrow"
            while 0 < end < len(answer) and answer[end - 1].isalnum() and answer[end].isalnum():
                end += 1
            runs.append(BeyondRun(a, b, start, end, count))

    for s in steps:
        n = len(s.emitted_ids)
        against = s.token_kind == "correction" and s.accepted < low * len(s.drafted_ids)
        if against:
            first = pos if current is None else current[0]
            count = count + 1 if current is not None else 1
            current = (first, pos + n)
        elif s.drafted_ids:
            close()
            current, count = None, 0
        pos += n
    close()
    return tuple(r for r in runs if r.end > r.start)
