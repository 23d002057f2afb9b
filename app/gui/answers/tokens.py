"""The answer's tokens as a model (one `AnswerToken` per drafted or target token,
with its round and probabilities) and the legend that names their kinds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from PySide6.QtCore import QSize
from PySide6.QtGui import QPainter, QPaintEvent, QTextCursor, QTextDocument
from PySide6.QtWidgets import QHBoxLayout, QSizePolicy, QWidget

from app.gui.theme import TOKEN_STYLES, TokenStyle
from core.events import DraftStep

Kind = Literal["accepted", "rejected", "target", "correction", "bonus"]
KINDS: tuple[Kind, ...] = ("accepted", "correction", "bonus", "target", "rejected")
_SOURCES = {"lookup": "n-gram lookup", "model": "drafter model"}
_OWN = {"target": "target step", "correction": "target correction", "bonus": "bonus token"}


@dataclass(frozen=True)
class AnswerToken:
    """One token of the answer as shown: its text, how it came about, its numbers."""

    text: str
    kind: Kind
    round: int
    source: str  # "none", "lookup" or "model"
    p_draft: float | None  # None for the target's own token
    p_target: float | None
    p_hat: float | None

    @property
    def tooltip(self) -> str:
        if self.kind in ("accepted", "rejected"):
            where = _SOURCES.get(self.source, self.source)
            head = f"Round {self.round} · {self.kind} draft ({where})"
            return f"{head}\np_draft {_p(self.p_draft)} · p_target {_p(self.p_target)}" + (
                f" · p_hat {_p(self.p_hat)}"
            )
        head = f"Round {self.round} · {_OWN[self.kind]}"
        return f"{head}\np_target {_p(self.p_target)} · p_hat {_p(self.p_hat)}"


def tokens_of(step: DraftStep) -> list[AnswerToken]:
    """The tokens of one round: accepted drafts, rejected drafts, the target's token."""
    out = []
    for i, text in enumerate(step.drafted_texts):
        kind: Kind = "accepted" if i < step.accepted else "rejected"
        out.append(AnswerToken(text, kind, step.round, step.source, _at(step.p_draft, i),
                               _at(step.p_target, i), _at(step.p_hat, i)))  # fmt: skip
    if step.token_id is not None:
        out.append(AnswerToken(step.token_text, step.token_kind, step.round, step.source,
                               None, step.token_p_target, step.token_p_hat))  # fmt: skip
    return out


def _at(values: tuple[float, ...], i: int) -> float | None:
    return values[i] if i < len(values) else None


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def u16len(text: str) -> int:
    """Length in UTF-16 code units: what a QTextDocument position counts."""
    return len(text.encode("utf-16-le")) // 2


class LegendEntry(QWidget):
    """A token kind's name, drawn with the kind's own format (colour and cue)."""

    def __init__(self, style: TokenStyle, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.style_key = style.key
        self._doc = QTextDocument(self)
        self._doc.setDocumentMargin(2)
        QTextCursor(self._doc).insertText(style.label, style.char_format())
        self.setToolTip(f"{style.label}: {style.tip}")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def sizeHint(self) -> QSize:
        self._doc.setDefaultFont(self.font())
        return self._doc.size().toSize()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        self._doc.setDefaultFont(self.font())
        self._doc.drawContents(painter)
        painter.end()


class Legend(QWidget):
    """A row of legend entries, one per token kind."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(10)
        self.entries = {kind: LegendEntry(TOKEN_STYLES[kind], self) for kind in KINDS}
        for entry in self.entries.values():
            row.addWidget(entry)
