"""Where the answer came from, as the answer view draws it: each sentence's marks
("[1][3]", or a muted "[?]" when no retrieved passage supports it) and the runs the
target wrote beyond the passages (a dotted orange underline).

`plan` turns a finished answer's `SentenceCitation`s and `BeyondRun`s (character
spans in the stripped answer) into a `Decor`: positions in the emitted text of the
view's tokens (leading blanks included, rejected drafts left out), where marks go and
which stretches are runs. The view cuts its tokens at those positions while it writes
them, so a mark can sit inside a token (".\\n" ends a sentence before the newline).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from PySide6.QtGui import QColor, QFont, QTextCharFormat

from app.gui.answers.tokens import AnswerToken
from app.gui.history import AddedCitation
from app.gui.theme import ACCENT, BEYOND_COLOR
from core.events import BeyondRun, ChunkRef, SentenceCitation

MUTED = "#8A8F98"
SNIPPET = 160  # characters of a cited line quoted in a mark's tooltip
UNSUPPORTED_TIP = (
    "Unsupported: no retrieved passage supports this sentence. The target wrote it from "
    "the whole document or from what it knows; check it."
)
FOUND_TIP = "Found in the document afterwards (not among the passages the drafter read).\n"
BEYOND_TIP = (
    "Read beyond the passages: the target wrote this against the drafter ({n} "
    "corrections); the retrieved passages were not enough.\nClick to see where the "
    "target looked in the document."
)


@dataclass(frozen=True)
class Mark:
    """One mark after a sentence: its text, link (`href`, "" for none), tooltip, and
    whether a copy keeps it (the numbered ones, as plain "[n]")."""

    text: str
    href: str
    tooltip: str
    copied: bool = True
    supported: bool = True


@dataclass
class Decor:
    """Marks and runs at positions of the emitted text (Python characters)."""

    marks: dict[int, list[Mark]] = field(default_factory=dict)
    runs: list[tuple[int, int, int]] = field(default_factory=list)  # start, end, index

    def __bool__(self) -> bool:
        return bool(self.marks or self.runs)

    def cuts(self, start: int, end: int) -> list[int]:
        """Where a token covering [start, end) is cut: its mark positions (after the
        character before them) and run edges inside it, ascending, `end` last."""
        points = {p for p in self.marks if start < p <= end}
        points |= {p for a, b, _ in self.runs for p in (a, b) if start < p < end}
        return sorted(points | {end})

    def run_at(self, pos: int) -> int:
        """The index of the run holding character `pos`, else -1."""
        i = bisect.bisect_right(self.runs, (pos, 1 << 62, 0)) - 1
        if i >= 0 and self.runs[i][0] <= pos < self.runs[i][1]:
            return self.runs[i][2]
        return -1


def spot_tooltip(number: int, spot: ChunkRef) -> str:
    """A numbered mark's tooltip: the cited lines and where they are."""
    text = " ".join(spot.text.split())
    text = text[:SNIPPET] + ("…" if len(text) > SNIPPET else "")
    where = f"{spot.title} — {spot.page_text}" if spot.page_text else spot.title
    found = FOUND_TIP if spot.origin == "document" else ""
    return f"[{number}] {where}\n“{text}”\n{found}Click to show these lines in the PDF"


def plan(
    tokens: Sequence[AnswerToken],
    citations: Sequence[SentenceCitation],
    beyond: Sequence[BeyondRun],
    chunks: Sequence[ChunkRef],
    added: Sequence[AddedCitation] = (),
) -> Decor:
    """Where the marks and runs of a finished answer go in the view's tokens."""
    emitted = "".join(t.text for t in tokens if t.kind != "rejected")
    lead = len(emitted) - len(emitted.lstrip())
    size = len(emitted)
    decor = Decor()
    for i, c in enumerate(citations):
        marks = [
            Mark(f"[{p + 1}]", f"cite:{i}:{j}", spot_tooltip(p + 1, _spot(c, j, chunks)))
            for j, p in enumerate(c.passages)
            if 0 <= p < len(chunks)
        ]
        for k, a in enumerate(added):
            if a.sentence == i:
                n = len(chunks) + k + 1
                tip = spot_tooltip(n, a.ref).replace(
                    "\nClick", "\nAdded from the target's evidence (outside the retrieved "
                    "passages).\nClick",
                )  # fmt: skip
                marks.append(Mark(f"[{n}]", f"added:{k}", tip))
        if not marks:
            marks = [Mark("[?]", "", UNSUPPORTED_TIP, copied=False, supported=False)]
        decor.marks.setdefault(min(c.end + lead, size), []).extend(marks)
    for k, r in enumerate(beyond):
        start, end = min(r.start + lead, size), min(r.end + lead, size)
        if end > start:
            decor.runs.append((start, end, k))
    decor.runs.sort()
    return decor


def _spot(c: SentenceCitation, j: int, chunks: Sequence[ChunkRef]) -> ChunkRef:
    """The narrowed lines of passage `j` of a sentence (the whole passage without)."""
    return c.spots[j] if j < len(c.spots) else chunks[c.passages[j]]


def spot_for(
    href: str,
    citations: Sequence[SentenceCitation],
    chunks: Sequence[ChunkRef],
    added: Sequence[AddedCitation],
) -> tuple[int, ChunkRef] | None:
    """The mark number and the spot a mark's link (`cite:i:j` or `added:k`) shows."""
    scheme, _, rest = href.partition(":")
    parts = rest.split(":")
    if not all(p.isdigit() for p in parts):
        return None
    if scheme == "cite" and len(parts) == 2:
        i, j = int(parts[0]), int(parts[1])
        if i < len(citations) and j < len(citations[i].passages):
            p = citations[i].passages[j]
            if p < len(chunks):
                return p + 1, _spot(citations[i], j, chunks)
    elif scheme == "added" and len(parts) == 1 and int(parts[0]) < len(added):
        k = int(parts[0])
        return len(chunks) + k + 1, added[k].ref
    return None


def mark_format(mark: Mark) -> QTextCharFormat:
    """A superscript mark: accent and linked when numbered, muted when unsupported."""
    fmt = QTextCharFormat()
    fmt.setVerticalAlignment(QTextCharFormat.VerticalAlignment.AlignSuperScript)
    fmt.setForeground(QColor(ACCENT if mark.supported else MUTED))
    fmt.setFontWeight(QFont.Weight.DemiBold if mark.supported else QFont.Weight.Normal)
    if mark.href:
        fmt.setAnchor(True)
        fmt.setAnchorHref(mark.href)
    return fmt


def beyond_format(base: QTextCharFormat, index: int) -> QTextCharFormat:
    """`base` (a token's format) with the run's dotted orange underline and link."""
    fmt = QTextCharFormat(base)
    fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.DotLine)
    fmt.setUnderlineColor(QColor(BEYOND_COLOR))
    fmt.setAnchor(True)
    fmt.setAnchorHref(f"beyond:{index}")
    return fmt


@dataclass(frozen=True)
class EvidenceNote:
    """What the view says after the evidence for a run came back outside the
    retrieved passages: the run's text, where the evidence is, and the mark number
    it was cited as (0 until "Cite it")."""

    run_text: str
    where: str
    cited_as: int = 0
