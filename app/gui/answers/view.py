"""The streaming answer: tokens coloured by how they came about, where each sentence
came from, sources, copy.

The view keeps a model (one `AnswerToken` per drafted or target token) and appends
to the document incrementally (app/gui/answers/body.py knows where everything is);
toggling "Show rejected drafts", a finished answer with provenance (its sentence
marks and "beyond the passages" runs, placed by app/gui/answers/citations.py) and
loading a past answer rebuild it. Before the first round a preliminary answer may
stream where the answer will be; the parts around the answer are written by
app/gui/answers/sections.py.

A copy leaves out rejected drafts and the "[?]" of unsupported sentences and keeps
the numbered marks as plain "[1]".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import (
    QGuiApplication,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from app.gui.answers import sections
from app.gui.answers.body import AnswerBrowser, Body
from app.gui.answers.citations import BEYOND_TIP, EvidenceNote, plan, spot_for
from app.gui.answers.sections import MUTED, WARNING, Preliminary, fmt
from app.gui.answers.tokens import KINDS, AnswerToken, Legend, tokens_of, u16len
from app.gui.history import AddedCitation
from app.gui.theme import TOKEN_STYLES
from core.events import BeyondRun, ChunkRef, DraftStep, Finished, SentenceCitation

__all__ = ["AnswerBrowser", "AnswerToken", "AnswerView", "tokens_of"]


class AnswerView(QWidget):
    """The question, the streaming answer, its sources; a legend and copy controls.

    Signals: `source_clicked(index, chunk)` with the 0-based index into the sources,
    `citation_clicked(label, spot)` for a sentence's mark ("[2]" and the lines it
    cites), `beyond_clicked(run)` for a run written beyond the passages,
    `cite_evidence_requested()` ("Cite it"), `show_rejected_changed(shown)`.
    """

    source_clicked = Signal(int, object)
    citation_clicked = Signal(str, object)
    beyond_clicked = Signal(object)
    cite_evidence_requested = Signal()
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
        self.copy_button.setToolTip(
            "Copy the answer with its citation marks and sources (without rejected drafts)"
        )
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
        self._citations: tuple[SentenceCitation, ...] = ()
        self._beyond: tuple[BeyondRun, ...] = ()
        self._added: tuple[AddedCitation, ...] = ()
        self._prelim = Preliminary()
        self._note: EvidenceNote | None = None
        self._formats = {kind: style.char_format() for kind, style in TOKEN_STYLES.items()}
        self._header_end = self._status_len = 0  # document positions
        self._body = Body()
        self._render()

    # -- public API ------------------------------------------------------------

    def begin(self, question: str) -> None:
        """Start a new answer: clear everything and show `question` as the heading."""
        self.restore(question, ())

    def show_status(self, text: str) -> None:
        """A muted line before the first token (under a preliminary answer's label
        while one is shown); ignored once tokens arrive."""
        if self._tokens:
            return
        self._status = text
        self._write_status()

    def add_preliminary(self, text: str) -> None:
        """Append streamed text of the preliminary answer (before the first round)."""
        if not self._tokens:
            self._prelim.add(text)
            self._write_status()

    def preliminary_done(self, answer: str) -> None:
        """The preliminary answer is complete (the target still reads)."""
        if not self._tokens:
            self._prelim.complete(answer)
            self._write_status()

    def cancel_preliminary(self) -> bool:
        """Cancelled before the first round: a preliminary answer stays, so labelled.
        Returns whether there was one."""
        if self._tokens or not self._prelim.cancel():
            return False
        self._status = ""
        self._write_status()
        return True

    def preliminary_text(self) -> str:
        """The preliminary answer of the answer on screen ("" without one)."""
        return self._prelim.text.strip()

    def show_notice(self, text: str, level: str = "info") -> None:
        """A line above the answer (e.g. the document was truncated)."""
        self._notices.append((text, level))
        self._insert_notice(text, level)

    def add_steps(self, steps: Sequence[DraftStep]) -> None:
        """Append the tokens of decoding rounds (incrementally, at the answer's end);
        the first replaces a status line or a preliminary answer."""
        new = [token for step in steps for token in tokens_of(step)]
        if not new:
            return
        if self._status_len:
            self._select(self._header_end, self._body_start).removeSelectedText()
            self._status, self._status_len = "", 0
        self._prelim.give_way()
        bar = self.browser.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        first = len(self._tokens)
        self._tokens.extend(new)
        cursor = QTextCursor(self.browser.document())
        cursor.setPosition(self._body_end)
        indices = range(first, len(self._tokens))
        self._body.append(cursor, self._tokens, indices, self._formats, self._show_rejected)
        if at_bottom:
            bar.setValue(bar.maximum())

    def finish(self, f: Finished) -> None:
        """The answer is complete: its sentence marks and runs beyond the passages,
        its sources, its preliminary answer and why it stopped, if not at EOS."""
        self._chunks = f.chunks
        self._stop_reason = f.stop_reason
        self._prelim.settle(f.preliminary, bool(self._tokens))
        self._status = ""
        self._set_provenance(f.citations, f.beyond, ())
        if self._tokens and (self._citations or self._beyond):
            self._rerender()
            return
        self._write_status()
        self._write_footer()

    def set_sources(self, chunks: Sequence[ChunkRef]) -> None:
        self._chunks = tuple(chunks)
        self._write_footer()

    def set_added(self, added: Sequence[AddedCitation]) -> None:
        """Citations added from the target's evidence (each a new numbered mark)."""
        self._added = tuple(added)
        self._rerender()

    def set_evidence_note(self, note: EvidenceNote | None) -> None:
        """Say where the target's evidence is (outside the passages), or nothing."""
        self._note = note
        self._write_footer()

    def restore(
        self,
        question: str,
        tokens: Sequence[AnswerToken | Mapping[str, Any]],
        finished: Finished | None = None,
        added: Sequence[AddedCitation] = (),
    ) -> None:
        """Show a past answer again: `tokens` as `tokens()` gave them (dicts from the
        history are fine), with its marks, runs and preliminary answer."""
        self._question, self._notices, self._status, self._note = question, [], "", None
        self._tokens = [t if isinstance(t, AnswerToken) else AnswerToken(**t) for t in tokens]
        f = finished
        self._chunks, self._stop_reason = (f.chunks, f.stop_reason) if f else ((), None)
        self._set_provenance(f.citations if f else (), f.beyond if f else (), added)
        text = f.preliminary if f else ""
        self._prelim = Preliminary(text, "replaced" if text else "")
        self._render()

    def tokens(self) -> list[dict[str, Any]]:
        """The model as JSON-ready dicts (what `restore` takes back)."""
        return [asdict(token) for token in self._tokens]

    def model(self) -> list[AnswerToken]:
        return list(self._tokens)

    def sources(self) -> tuple[ChunkRef, ...]:
        return self._chunks

    def marks(self) -> list[str]:
        """The marks shown after the sentences, in order ("[1]", "[?]" ...)."""
        return [mark.text for _a, _b, mark in self._body.marks]

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
        self._rerender()
        self.show_rejected_changed.emit(shown)

    def copy_answer(self) -> None:
        """Put the answer (with its numbered marks, without rejected drafts) and its
        sources on the clipboard."""
        kept = self._kept_ranges(self._body_start, self._body_end)
        text = "".join(self.browser.text_between(a, b) for a, b in kept).strip()
        sources = self._source_list()
        if sources:
            lines = [f"[{i}] {sections.source_line(c)}" for i, c in enumerate(sources, 1)]
            text += "\n\nSources:\n" + "\n".join(lines)
        QGuiApplication.clipboard().setText(text)

    def token_at(self, position: int) -> AnswerToken | None:
        """The shown token whose text holds the character at document `position`
        (None on a mark)."""
        index = self._body.token_at(position - self._body_start)
        return None if index is None else self._tokens[index]

    def tooltip_at(self, position: int) -> str | None:
        rel = position - self._body_start
        mark = self._body.mark_at(rel)
        if mark is not None:
            return mark.tooltip
        token = self.token_at(position)
        if token is None:
            return None
        run = self._body.run_at(rel)
        if run >= 0:
            return BEYOND_TIP.format(n=self._beyond[run].corrections) + "\n\n" + token.tooltip
        return token.tooltip

    def token_position(self, index: int) -> int | None:
        """Document position where model token `index` starts (None when hidden)."""
        rel = self._body.position(index)
        return None if rel is None else self._body_start + rel

    def mark_range(self, n: int) -> tuple[int, int]:
        """Document range of the `n`-th mark shown."""
        a, b, _mark = self._body.marks[n]
        return self._body_start + a, self._body_start + b

    def run_range(self, index: int) -> tuple[int, int] | None:
        """Document range underlined for beyond run `index` (marks inside included)."""
        stretches = [(a, b) for a, b, k in self._body.runs if k == index]
        if not stretches:
            return None
        return self._body_start + stretches[0][0], self._body_start + stretches[-1][1]

    # -- document --------------------------------------------------------------

    @property
    def _body_start(self) -> int:
        return self._header_end + self._status_len

    @property
    def _body_end(self) -> int:
        return self._body_start + self._body.length

    def _select(self, start: int, end: int) -> QTextCursor:
        cursor = QTextCursor(self.browser.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        return cursor

    def _set_provenance(
        self,
        citations: Sequence[SentenceCitation],
        beyond: Sequence[BeyondRun],
        added: Sequence[AddedCitation],
    ) -> None:
        self._citations, self._beyond, self._added = tuple(citations), tuple(beyond), tuple(added)

    def _rerender(self) -> None:
        """`_render`, keeping the scroll position as a share of the document."""
        bar = self.browser.verticalScrollBar()
        fraction = bar.value() / bar.maximum() if bar.maximum() else 1.0
        self._render()
        bar.setValue(round(fraction * bar.maximum()))

    def _render(self) -> None:
        """Rebuild the whole document from the model."""
        self.browser.clear()
        self._header_end = self._status_len = 0
        self._body.clear()
        cursor = QTextCursor(self.browser.document())
        if self._question:
            cursor.insertText(self._question, fmt("#1F1F1F", bold=True, larger=True))
            block = QTextBlockFormat()
            block.setBottomMargin(8)
            cursor.setBlockFormat(block)
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
            self._header_end = cursor.position()
        for text, level in self._notices:
            self._insert_notice(text, level)
        self._write_status()
        decor = plan(self._tokens, self._citations, self._beyond, self._chunks, self._added)
        cursor = QTextCursor(self.browser.document())
        cursor.setPosition(self._body_start)
        self._body.append(cursor, self._tokens, range(len(self._tokens)), self._formats,
                          self._show_rejected, decor)  # fmt: skip
        self._write_footer()

    def _write_status(self) -> None:
        """The region before the first token: a preliminary answer, or a status line."""
        if self._tokens and not self._status_len:
            return
        cursor = self._select(self._header_end, self._header_end + self._status_len)
        cursor.removeSelectedText()
        if self._prelim.in_place and not self._tokens:
            sections.write_in_place(cursor, self._prelim, self._status)
        elif self._status and not self._tokens:
            cursor.insertText(self._status, fmt(MUTED))
        self._status_len = cursor.position() - self._header_end

    def _insert_notice(self, text: str, level: str) -> None:
        warn = level in ("warning", "error")
        line = ("⚠ " if warn else "ⓘ ") + text + "\n"
        color = WARNING if warn else MUTED
        cursor = QTextCursor(self.browser.document())
        cursor.setPosition(self._header_end)
        cursor.insertText(line, fmt(color))
        self._header_end += u16len(line)

    def _write_footer(self) -> None:
        """Replace everything after the body: what the runs beyond the passages are,
        the evidence note, the sources (added citations after them), the preliminary
        answer's section, the stop note."""
        cursor = self._select(self._body_end, self.browser.document().characterCount() - 1)
        cursor.removeSelectedText()
        if self._beyond and self._tokens:
            sections.write_runs_hint(cursor, len(self._beyond))
        if self._note is not None and self._tokens:
            sections.write_note(cursor, self._note)
        sections.write_sources(cursor, self._source_list(), len(self._chunks))
        if self._prelim.text and self._tokens and not self._prelim.in_place:
            sections.write_section(cursor, self._prelim)
        sections.write_stop_note(cursor, self._stop_reason)

    def _source_list(self) -> list[ChunkRef]:
        """The numbered sources: the retrieved passages, then the added citations."""
        return [*self._chunks, *(a.ref for a in self._added)]

    def _kept_ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        """[start, end) less rejected drafts (when shown) and uncopied marks ("[?]")."""
        body = self._body
        return body.kept_ranges(self._body_start, start, end, self._tokens, self._show_rejected)

    def _on_anchor(self, url: QUrl) -> None:
        href = url.toString()
        scheme, _, number = href.partition(":")
        sources = self._source_list()
        if scheme == "source" and number.isdigit() and int(number) < len(sources):
            self.source_clicked.emit(int(number), sources[int(number)])
        elif scheme in ("cite", "added"):
            found = spot_for(href, self._citations, self._chunks, self._added)
            if found is not None:
                self.citation_clicked.emit(f"[{found[0]}]", found[1])
        elif scheme == "beyond" and number.isdigit() and int(number) < len(self._beyond):
            self.beyond_clicked.emit(self._beyond[int(number)])
        elif href == "cite-evidence":
            self.cite_evidence_requested.emit()
        elif href == "preliminary":
            self._prelim.open = not self._prelim.open
            self._write_footer()
