"""The parts of the answer view's document around the answer itself: the preliminary
answer in its place before the first round, and after the answer the evidence note
("Cite it"), the numbered sources, the preliminary answer's section and the stop note.

The preliminary answer: while the target reads a long document, the drafter answers
from the retrieved passages alone; its text streams in muted italics under a label
that says so (with the target's read progress), and the RAPID answer replaces it at
its first round. Afterwards a collapsed section below the answer keeps it to compare.

Functions here write at a `QTextCursor` of the view's document; the view owns where.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PySide6.QtGui import (
    QColor,
    QFont,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
)

from app.gui.answers.citations import EvidenceNote
from app.gui.theme import ACCENT, BEYOND_COLOR
from core.events import ChunkRef

State = Literal["", "streaming", "done", "cancelled", "replaced"]
LABEL = (
    "Preliminary answer — drafter on the retrieved passages only; the target is reading "
    "the whole document"
)
CANCELLED = (
    "Preliminary answer — drafter on the retrieved passages only (cancelled before the "
    "target finished reading the document)"
)
SECTION = "Preliminary answer (passages only)"
SECTION_TIP = (
    "What the drafter answered from the retrieved passages alone while the target read "
    "the whole document"
)
MUTED = "#5F6670"
WARNING = "#8A4B00"
_TEXT = "#6B7280"
STOP_NOTES = {
    "max_tokens": "Stopped at the token limit — raise Max tokens in Settings for longer answers",
    "cancelled": "Cancelled — the answer is incomplete",
}


@dataclass
class Preliminary:
    """The preliminary answer of the answer on screen: its text, where it stands and
    whether its section below the answer is open."""

    text: str = ""
    state: State = ""
    open: bool = False

    @property
    def in_place(self) -> bool:
        """Shown where the answer will stream (no RAPID token yet)."""
        return self.state in ("streaming", "done", "cancelled")

    def add(self, text: str) -> None:
        """Streamed text (dropped once cancelled)."""
        if self.state != "cancelled":
            self.text += text
            self.state = "streaming"

    def complete(self, answer: str) -> None:
        self.text = answer or self.text
        self.state = "done"

    def cancel(self) -> bool:
        """Cancelled before the first round; returns whether one was shown."""
        if not self.in_place:
            return False
        self.state = "cancelled"
        return True

    def give_way(self) -> None:
        """The RAPID answer's first round arrived."""
        if self.in_place:
            self.state = "replaced"

    def settle(self, text: str, answered: bool) -> None:
        """The answer finished (`answered`: with tokens); `text` is `Finished.preliminary`."""
        self.text = text or self.text
        if self.in_place:
            self.state = "replaced" if answered else "cancelled"
        elif self.text:
            self.state = "replaced"


def fmt(
    color: str, *, bold: bool = False, italic: bool = False, larger: bool = False
) -> QTextCharFormat:
    """A character format of the answer view's document."""
    out = QTextCharFormat()
    out.setForeground(QColor(color))
    if bold:
        out.setFontWeight(QFont.Weight.DemiBold)
    out.setFontItalic(italic)
    if larger:
        out.setProperty(QTextFormat.Property.FontSizeAdjustment, 1)
    return out


def _link(href: str, tooltip: str, *, bold: bool = False) -> QTextCharFormat:
    out = fmt(ACCENT, bold=bold)
    out.setAnchor(True)
    out.setAnchorHref(href)
    out.setToolTip(tooltip)
    return out


def _block(cursor: QTextCursor, top: float = 0, left: float = 0, bottom: float = 0) -> None:
    block = QTextBlockFormat()
    block.setTopMargin(top)
    block.setLeftMargin(left)
    block.setBottomMargin(bottom)
    cursor.insertBlock(block, QTextCharFormat())


def write_in_place(cursor: QTextCursor, prelim: Preliminary, status: str) -> None:
    """The label, the read progress (`status`) and the streamed text, each a block."""
    label = CANCELLED if prelim.state == "cancelled" else LABEL
    cursor.insertText(label, fmt(MUTED, bold=True))
    if status and prelim.state != "cancelled":
        _block(cursor)
        cursor.insertText(status, fmt(MUTED))
    _block(cursor, top=4, bottom=8)
    cursor.insertText(prelim.text.strip() or "…", fmt(_TEXT, italic=True))
    _block(cursor)


def write_section(cursor: QTextCursor, prelim: Preliminary) -> None:
    """The collapsible section after the answer: a link that opens or closes it."""
    _block(cursor, top=12)
    cursor.insertText(("▾ " if prelim.open else "▸ ") + SECTION, _link("preliminary", SECTION_TIP))
    if prelim.open:
        _block(cursor, top=2, left=14)
        cursor.insertText(prelim.text.strip(), fmt(_TEXT, italic=True))


def write_runs_hint(cursor: QTextCursor, runs: int) -> None:
    """What the dotted orange underline means (the answer has `runs` such runs)."""
    _block(cursor, top=10)
    sample = fmt(MUTED)
    sample.setUnderlineStyle(QTextCharFormat.UnderlineStyle.DotLine)
    sample.setUnderlineColor(QColor(BEYOND_COLOR))
    cursor.insertText("Dotted orange", sample)
    which, it = ("a run", "it") if runs == 1 else (f"{runs} runs", "one")
    cursor.insertText(
        f": {which} the target wrote against the drafter (the retrieved passages were not "
        f"enough). Click {it} to see where in the document the target looked.",
        fmt(MUTED),
    )


def write_note(cursor: QTextCursor, note: EvidenceNote) -> None:
    """The target's evidence lies outside the retrieved passages: say where, offer
    "Cite it" (or say it was cited)."""
    _block(cursor, top=10)
    run = " ".join(note.run_text.split())
    run = run if len(run) <= 80 else run[:79] + "…"
    cursor.insertText(
        f"⚑ The target's evidence for “{run}” is on {note.where}, outside the retrieved passages. ",
        fmt(WARNING),
    )
    if note.cited_as:
        cursor.insertText(f"Cited as [{note.cited_as}].", fmt(MUTED))
        return
    link = _link("cite-evidence", "Add this place as a citation of its sentence", bold=True)
    link.setFontUnderline(True)
    cursor.insertText("Cite it", link)


def write_sources(cursor: QTextCursor, sources: Sequence[ChunkRef], retrieved: int) -> None:
    """The numbered sources: the first `retrieved` are `Finished.chunks` (the retrieved
    passages, then any the engine found in the document for an unsupported sentence),
    the rest citations added from the target's evidence."""
    if not sources:
        return
    _block(cursor, top=12)
    cursor.insertText("Sources", fmt("#3A3F47", bold=True))
    for i, chunk in enumerate(sources):
        _block(cursor)
        cursor.insertText(f"[{i + 1}] ", fmt("#1F1F1F"))
        added, found = i >= retrieved, chunk.origin == "document"
        tip = ("Show these lines in the PDF (the target's evidence)" if added
               else "Show this passage in the PDF (found in the document to cite a "
               "sentence no retrieved passage supports)" if found
               else f"Show this passage in the PDF ({chunk.score:.2f} match)")  # fmt: skip
        link = _link(f"source:{i}", tip)
        link.setFontUnderline(True)
        cursor.insertText(source_line(chunk), link)
        if added:
            cursor.insertText("  (added: the target's evidence)", fmt(MUTED))
        elif found:
            cursor.insertText("  (found in the document, not retrieved)", fmt(MUTED))


def write_stop_note(cursor: QTextCursor, stop_reason: str | None) -> None:
    """Why the answer stopped, unless at its end (EOS)."""
    note = STOP_NOTES.get(stop_reason or "")
    if note:
        _block(cursor, top=8)
        cursor.insertText(note, fmt(MUTED))


def source_line(chunk: ChunkRef) -> str:
    pages = chunk.page_text
    return f"{chunk.title} — {pages}" if pages else chunk.title
