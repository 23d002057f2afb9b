"""The streaming answer: tokens coloured by how they came about, sources, copy.

The view keeps a model (one `AnswerToken` per drafted or target token) and appends
to the document incrementally; only toggling "Show rejected drafts" or loading a past
answer rebuilds it. Document positions of shown tokens are kept as sorted start
offsets (in UTF-16 units, as Qt counts) so that a hover or a copy finds its tokens by
bisection.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from PySide6.QtCore import QEvent, QMimeData, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QGuiApplication,
    QHelpEvent,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QPushButton,
    QTextBrowser,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from app.gui.answers.tokens import KINDS, AnswerToken, Legend, tokens_of, u16len
from app.gui.theme import ACCENT, TOKEN_STYLES
from core.events import ChunkRef, DraftStep, Finished

_MUTED = "#5F6670"
_WARNING = "#8A4B00"
_STOP_NOTES = {
    "max_tokens": "Stopped at the token limit — raise Max tokens in Settings for longer answers",
    "cancelled": "Cancelled — the answer is incomplete",
}


def _fmt(color: str, *, bold: bool = False, larger: bool = False) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(color))
    if bold:
        fmt.setFontWeight(QFont.Weight.DemiBold)
    if larger:
        fmt.setProperty(QTextFormat.Property.FontSizeAdjustment, 1)
    return fmt


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


class AnswerView(QWidget):
    """The question, the streaming answer, its sources; a legend and copy controls.

    Signals: `source_clicked(index, chunk)` with the 0-based index into the sources,
    `show_rejected_changed(shown)`.
    """

    source_clicked = Signal(int, object)
    show_rejected_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.browser = AnswerBrowser(self.tooltip_at, self._kept_ranges, self)
        self.browser.anchorClicked.connect(self._on_anchor)
        self.legend = Legend(self)
        self.rejected_box = QCheckBox("Show rejected drafts", self)
        self.rejected_box.setToolTip("Also show drafted tokens the target rejected (struck out)")
        self.rejected_box.toggled.connect(self.set_show_rejected)
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setToolTip("Copy the answer and its sources (without rejected drafts)")
        self.copy_button.clicked.connect(self.copy_answer)
        bottom = QHBoxLayout()
        bottom.addWidget(self.legend)
        bottom.addStretch(1)
        bottom.addWidget(self.rejected_box)
        bottom.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.browser, 1)
        layout.addLayout(bottom)
        self._show_rejected = False
        self._question = ""
        self._notices: list[tuple[str, str]] = []
        self._status = ""
        self._chunks: tuple[ChunkRef, ...] = ()
        self._stop_reason: str | None = None
        self._tokens: list[AnswerToken] = []
        self._formats = {kind: style.char_format() for kind, style in TOKEN_STYLES.items()}
        self._header_end = self._status_len = self._body_len = 0  # document positions
        self._shown: list[int] = []  # model indices of the shown tokens
        self._starts: list[int] = []  # their start offsets from the body's start
        self._render()

    # -- public API ------------------------------------------------------------

    def begin(self, question: str) -> None:
        """Start a new answer: clear everything and show `question` as the heading."""
        self._question = question
        self._notices, self._status, self._chunks, self._stop_reason = [], "", (), None
        self._tokens = []
        self._render()

    def show_status(self, text: str) -> None:
        """A muted line before the first token; ignored once tokens arrive."""
        if self._tokens:
            return
        self._status = text
        cursor = self._select(self._header_end, self._header_end + self._status_len)
        cursor.insertText(text, _fmt(_MUTED))
        self._status_len = u16len(text)

    def show_notice(self, text: str, level: str = "info") -> None:
        """A line above the answer (e.g. the document was truncated)."""
        self._notices.append((text, level))
        self._insert_notice(text, level)

    def add_steps(self, steps: Sequence[DraftStep]) -> None:
        """Append the tokens of decoding rounds (incrementally, at the answer's end)."""
        new = [token for step in steps for token in tokens_of(step)]
        if not new:
            return
        if self._status_len:
            self._select(self._header_end, self._body_start).removeSelectedText()
            self._status, self._status_len = "", 0
        bar = self.browser.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        first = len(self._tokens)
        self._tokens.extend(new)
        self._append_shown(range(first, len(self._tokens)))
        if at_bottom:
            bar.setValue(bar.maximum())

    def finish(self, f: Finished) -> None:
        """The answer is complete: show its sources and why it stopped, if not at EOS."""
        self._chunks = f.chunks
        self._stop_reason = f.stop_reason
        self.show_status("")
        self._write_footer()

    def set_sources(self, chunks: Sequence[ChunkRef]) -> None:
        self._chunks = tuple(chunks)
        self._write_footer()

    def restore(
        self,
        question: str,
        tokens: Sequence[AnswerToken | Mapping[str, Any]],
        finished: Finished | None = None,
    ) -> None:
        """Show a past answer again: `tokens` as `tokens()` gave them (dicts from the
        history are fine)."""
        self._question = question
        self._notices, self._status = [], ""
        self._chunks = finished.chunks if finished else ()
        self._stop_reason = finished.stop_reason if finished else None
        self._tokens = [t if isinstance(t, AnswerToken) else AnswerToken(**t) for t in tokens]
        self._render()

    def tokens(self) -> list[dict[str, Any]]:
        """The model as JSON-ready dicts (what `restore` takes back)."""
        return [asdict(token) for token in self._tokens]

    def model(self) -> list[AnswerToken]:
        return list(self._tokens)

    def sources(self) -> tuple[ChunkRef, ...]:
        return self._chunks

    def counts(self) -> dict[str, int]:
        """Tokens per kind (all five kinds, zeros included)."""
        out: dict[str, int] = dict.fromkeys(KINDS, 0)
        for token in self._tokens:
            out[token.kind] += 1
        return out

    def answer_text(self) -> str:
        """The answer as generated: every token except rejected drafts."""
        return "".join(t.text for t in self._tokens if t.kind != "rejected")

    def show_rejected(self) -> bool:
        return self._show_rejected

    def set_show_rejected(self, shown: bool) -> None:
        """Show or hide rejected drafts (rebuilds the document once)."""
        if shown == self._show_rejected:
            return
        self._show_rejected = shown
        self.rejected_box.setChecked(shown)
        bar = self.browser.verticalScrollBar()
        fraction = bar.value() / bar.maximum() if bar.maximum() else 1.0
        self._render()
        bar.setValue(round(fraction * bar.maximum()))
        self.show_rejected_changed.emit(shown)

    def copy_answer(self) -> None:
        """Put the answer (without rejected drafts) and its sources on the clipboard."""
        text = self.answer_text().strip()
        if self._chunks:
            lines = [f"[{i}] {_source_line(c)}" for i, c in enumerate(self._chunks, 1)]
            text += "\n\nSources:\n" + "\n".join(lines)
        QGuiApplication.clipboard().setText(text)

    def token_at(self, position: int) -> AnswerToken | None:
        """The shown token whose text holds the character at document `position`."""
        rel = position - self._body_start
        if not self._shown or rel < 0 or rel >= self._body_len:
            return None
        return self._tokens[self._shown[bisect_right(self._starts, rel) - 1]]

    def tooltip_at(self, position: int) -> str | None:
        token = self.token_at(position)
        return token.tooltip if token else None

    def token_position(self, index: int) -> int | None:
        """Document position where model token `index` starts (None when hidden)."""
        i = bisect_right(self._shown, index) - 1
        if i < 0 or self._shown[i] != index:
            return None
        return self._body_start + self._starts[i]

    # -- document --------------------------------------------------------------

    @property
    def _body_start(self) -> int:
        return self._header_end + self._status_len

    def _select(self, start: int, end: int) -> QTextCursor:
        cursor = QTextCursor(self.browser.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        return cursor

    def _render(self) -> None:
        """Rebuild the whole document from the model."""
        self.browser.clear()
        self._header_end = self._status_len = self._body_len = 0
        self._shown, self._starts = [], []
        cursor = QTextCursor(self.browser.document())
        if self._question:
            cursor.insertText(self._question, _fmt("#1F1F1F", bold=True, larger=True))
            block = QTextBlockFormat()
            block.setBottomMargin(8)
            cursor.setBlockFormat(block)
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
            self._header_end = cursor.position()
        for text, level in self._notices:
            self._insert_notice(text, level)
        if self._status and not self._tokens:
            self.show_status(self._status)
        self._append_shown(range(len(self._tokens)))
        self._write_footer()

    def _insert_notice(self, text: str, level: str) -> None:
        warn = level in ("warning", "error")
        line = ("⚠ " if warn else "ⓘ ") + text + "\n"
        color = _WARNING if warn else _MUTED
        cursor = QTextCursor(self.browser.document())
        cursor.setPosition(self._header_end)
        cursor.insertText(line, _fmt(color))
        self._header_end += u16len(line)

    def _append_shown(self, indices: Iterable[int]) -> None:
        """Insert model tokens at the body's end, merging runs of one kind."""
        cursor = QTextCursor(self.browser.document())
        cursor.setPosition(self._body_start + self._body_len)
        cursor.beginEditBlock()
        run: list[str] = []
        run_kind = ""
        for i in indices:
            token = self._tokens[i]
            if token.kind == "rejected" and not self._show_rejected:
                continue
            if token.kind != run_kind and run:
                cursor.insertText("".join(run), self._formats[run_kind])
                run = []
            run_kind = token.kind
            run.append(token.text)
            self._shown.append(i)
            self._starts.append(self._body_len)
            self._body_len += u16len(token.text)
        if run:
            cursor.insertText("".join(run), self._formats[run_kind])
        cursor.endEditBlock()

    def _write_footer(self) -> None:
        """Replace everything after the body with the sources and the stop note."""
        cursor = self._select(self._body_start + self._body_len, self.browser.document()
                              .characterCount() - 1)  # fmt: skip
        cursor.removeSelectedText()
        if self._chunks:
            block = QTextBlockFormat()
            block.setTopMargin(12)
            cursor.insertBlock(block, QTextCharFormat())
            cursor.insertText("Sources", _fmt("#3A3F47", bold=True))
            for i, chunk in enumerate(self._chunks):
                cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
                cursor.insertText(f"[{i + 1}] ", _fmt("#1F1F1F"))
                link = _fmt(ACCENT)
                link.setAnchor(True)
                link.setAnchorHref(f"source:{i}")
                link.setFontUnderline(True)
                link.setToolTip(f"Show this passage in the PDF ({chunk.score:.2f} match)")
                cursor.insertText(_source_line(chunk), link)
        note = _STOP_NOTES.get(self._stop_reason or "")
        if note:
            block = QTextBlockFormat()
            block.setTopMargin(8)
            cursor.insertBlock(block, QTextCharFormat())
            cursor.insertText(note, _fmt(_MUTED))

    def _kept_ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        """[start, end) less the characters of rejected drafts, as (start, end) ranges."""
        ranges: list[tuple[int, int]] = []
        here, base = start, self._body_start
        if self._show_rejected and self._shown:
            i = max(0, bisect_right(self._starts, start - base) - 1)
            while i < len(self._shown) and base + self._starts[i] < end:
                token = self._tokens[self._shown[i]]
                if token.kind == "rejected":
                    a = base + self._starts[i]
                    if a > here:
                        ranges.append((here, min(a, end)))
                    here = max(here, a + u16len(token.text))
                i += 1
        if here < end:
            ranges.append((here, end))
        return ranges

    def _on_anchor(self, url: QUrl) -> None:
        scheme, _, number = url.toString().partition(":")
        if scheme == "source" and number.isdigit() and int(number) < len(self._chunks):
            self.source_clicked.emit(int(number), self._chunks[int(number)])


def _source_line(chunk: ChunkRef) -> str:
    pages = chunk.page_text
    return f"{chunk.title} — {pages}" if pages else chunk.title
