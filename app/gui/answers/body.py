"""The answer's text in the answer view: the read-only browser (tooltips, copies) and
`Body`, which writes the tokens into the document and knows where each shown token,
mark and beyond-run stretch is.

Offsets are from the body's start in UTF-16 units (what a `QTextDocument` position
counts), kept sorted so that a hover or a copy finds its token by bisection.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence

from PySide6.QtCore import QEvent, QMimeData
from PySide6.QtGui import QHelpEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QTextBrowser, QToolTip, QWidget

from app.gui.answers.citations import Decor, Mark, beyond_format, mark_format
from app.gui.answers.tokens import AnswerToken, u16len


class AnswerBrowser(QTextBrowser):
    """Read-only answer text: per-token tooltips, copies that leave out rejected drafts."""

    def __init__(
        self,
        tooltip_at: Callable[[int], str | None],
        kept_ranges: Callable[[int, int], list[tuple[int, int]]],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._tooltip_at = tooltip_at
        self._kept_ranges = kept_ranges
        self.setOpenLinks(False)
        self.document().setUndoRedoEnabled(False)

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            cursor = self.cursorForPosition(event.pos())
            pos = cursor.position()
            if event.pos().x() < self.cursorRect(cursor).x() and pos > 0:
                pos -= 1  # the mouse is over the character before the cursor
            text = self._tooltip_at(pos)
            if text:
                QToolTip.showText(event.globalPos(), text, self.viewport())
                return True
            QToolTip.hideText()
        return super().viewportEvent(event)

    def text_between(self, start: int, end: int) -> str:
        cursor = QTextCursor(self.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        return cursor.selectedText().replace("\u2029", "\n").replace("\u2028", "\n")

    def createMimeDataFromSelection(self) -> QMimeData:
        cursor = self.textCursor()
        ranges = self._kept_ranges(cursor.selectionStart(), cursor.selectionEnd())
        mime = QMimeData()
        mime.setText("".join(self.text_between(a, b) for a, b in ranges))
        return mime


class Body:
    """Where the answer's tokens, marks and beyond-run stretches are in the document."""

    def __init__(self) -> None:
        self.length = 0
        self.shown: list[int] = []  # model indices of the shown tokens
        self.starts: list[int] = []  # their start offsets
        self.marks: list[tuple[int, int, Mark]] = []  # start, end, the mark
        self.runs: list[tuple[int, int, int]] = []  # start, end, index of the beyond run

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def append(
        self,
        cursor: QTextCursor,
        tokens: Sequence[AnswerToken],
        indices: Iterable[int],
        formats: Mapping[str, QTextCharFormat],
        show_rejected: bool,
        decor: Decor | None = None,
    ) -> None:
        """Insert `tokens[i]` for `indices` at `cursor` (the body's end), merging
        pieces of one format; with a `decor`, cut them where marks go and where
        beyond-runs start and end."""
        cursor.beginEditBlock()
        pieces: list[str] = []
        key = ("", -1)  # (token kind, beyond run index or -1) of the pieces
        cache: dict[tuple[str, int], QTextCharFormat] = {}

        def flush() -> None:
            if pieces:
                fmt = cache.get(key)
                if fmt is None:
                    base = formats[key[0]]
                    fmt = cache[key] = beyond_format(base, key[1]) if key[1] >= 0 else base
                cursor.insertText("".join(pieces), fmt)
                pieces.clear()

        def add(text: str, kind: str, run: int) -> None:
            nonlocal key
            if (kind, run) != key:
                flush()
                key = (kind, run)
            end = self.length + u16len(text)
            if run >= 0:
                last = self.runs[-1] if self.runs else None
                if last is not None and last[2] == run and last[1] == self.length:
                    self.runs[-1] = (last[0], end, run)
                else:
                    self.runs.append((self.length, end, run))
            pieces.append(text)
            self.length = end

        raw = 0  # position in the emitted text (rejected drafts left out)
        for i in indices:
            token = tokens[i]
            rejected = token.kind == "rejected"
            if rejected and not show_rejected:
                continue
            self.shown.append(i)
            self.starts.append(self.length)
            if rejected or not decor:
                inside = decor.run_at(raw) if decor and rejected else -1
                if inside >= 0 and decor is not None and decor.run_at(raw - 1) != inside:
                    inside = -1  # at a run's start: not inside it
                add(token.text, token.kind, inside)
                raw += 0 if rejected else len(token.text)
                continue
            done = 0
            for cut in decor.cuts(raw, raw + len(token.text)):
                if cut - raw > done:
                    add(token.text[done : cut - raw], token.kind, decor.run_at(raw + done))
                    done = cut - raw
                for mark in decor.marks.get(cut, ()) if cut > raw else ():  # not twice
                    flush()
                    end = self.length + u16len(mark.text)
                    cursor.insertText(mark.text, mark_format(mark))
                    self.marks.append((self.length, end, mark))
                    self.length = end
            raw += len(token.text)
        flush()
        cursor.endEditBlock()

    def token_at(self, rel: int) -> int | None:
        """The model index of the shown token holding offset `rel` (None on a mark)."""
        if not self.shown or rel < 0 or rel >= self.length or self.mark_at(rel):
            return None
        return self.shown[bisect_right(self.starts, rel) - 1]

    def position(self, index: int) -> int | None:
        """The offset where model token `index` starts (None when hidden)."""
        i = bisect_right(self.shown, index) - 1
        if i < 0 or self.shown[i] != index:
            return None
        return self.starts[i]

    def mark_at(self, rel: int) -> Mark | None:
        i = bisect_right(self.marks, (rel, 1 << 62)) - 1
        if i >= 0 and self.marks[i][0] <= rel < self.marks[i][1]:
            return self.marks[i][2]
        return None

    def run_at(self, rel: int) -> int:
        """The index of the beyond run underlined at `rel`, else -1."""
        i = bisect_right(self.runs, (rel, 1 << 62, 0)) - 1
        if i >= 0 and self.runs[i][0] <= rel < self.runs[i][1]:
            return self.runs[i][2]
        return -1

    def kept_ranges(
        self,
        base: int,
        start: int,
        end: int,
        tokens: Sequence[AnswerToken],
        show_rejected: bool,
    ) -> list[tuple[int, int]]:
        """Document range [start, end) (the body starts at `base`) less what a copy
        leaves out: rejected drafts (when shown) and the marks not copied ("[?]")."""
        a0, b0 = start - base, end - base
        holes = [(a, b) for a, b, mark in self.marks if not mark.copied and b > a0 and a < b0]
        if show_rejected and self.shown:
            i = max(0, bisect_right(self.starts, a0) - 1)
            while i < len(self.shown) and self.starts[i] < b0:
                token = tokens[self.shown[i]]
                if token.kind == "rejected":
                    holes.append((self.starts[i], self.starts[i] + u16len(token.text)))
                i += 1
        ranges: list[tuple[int, int]] = []
        here = start
        for a, b in sorted(holes):
            if base + a > here:
                ranges.append((here, min(base + a, end)))
            here = max(here, base + b)
        if here < end:
            ranges.append((here, end))
        return ranges
