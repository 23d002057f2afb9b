"""The answer view's provenance: sentence marks (numbered, clickable, "[?]" for an
unsupported sentence), runs written beyond the passages (dotted orange, clickable),
copies with plain marks, a preliminary answer streamed then replaced, added citations
and the evidence note."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QColor, QGuiApplication, QHelpEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QApplication, QToolTip

from app.gui.answers.citations import EvidenceNote
from app.gui.answers.view import AnswerView
from app.gui.history import AddedCitation
from app.gui.theme import ACCENT, BEYOND_COLOR
from core.events import BeyondRun, ChunkRef, DraftStep, Finished, SentenceCitation

pytestmark = pytest.mark.gui


def _step(n: int, drafted: tuple[str, ...], accepted: int, token: str, kind: str) -> DraftStep:
    k = len(drafted)
    return DraftStep(
        round=n, drafted_ids=tuple(range(k)), drafted_texts=drafted, accepted=accepted,
        token_id=99, token_text=token, token_kind=kind, source="lookup",  # type: ignore[arg-type]
        p_target=(0.9,) * k, p_draft=(0.8,) * k, p_hat=(0.95,) * k, token_p_target=0.6,
        token_p_hat=0.7, draft_s=0.01, verify_s=0.04, context_tokens=1000 + n,
    )  # fmt: skip


STEPS = [
    _step(1, (" The", " light"), 2, " was", "bonus"),
    _step(2, (" first", " lit"), 1, " shown", "correction"),
    _step(3, (" in", " 1871"), 2, ".\n", "bonus"),  # the sentence ends inside this token
    _step(4, (" It", " has"), 0, "It", "correction"),
    _step(5, (" flashes", " twice"), 2, ".", "bonus"),
    _step(6, (" Keepers",), 0, " Nobody", "correction"),
    _step(7, (), 0, " knows", "target"),
    _step(8, (), 0, ".", "target"),
    _step(9, ("",), 1, "", "bonus"),  # empty tokens after the last mark (as Qwen's end)
]
ANSWER = "The light was first shown in 1871.\nIt flashes twice. Nobody knows."
S1, S2 = ANSWER.index("It flashes"), ANSWER.index("Nobody")
RECTS = ((2, 50.0, 50.0, 400.0, 64.0), (2, 50.0, 66.0, 380.0, 80.0))
CHUNKS = (
    ChunkRef("d1", "Handbook", (2,), 0.8, "The light was first shown in 1871.", 20, rects=RECTS),
    ChunkRef("d1", "Handbook", (5,), 0.7, "It flashes twice every 15 s.", 20, labels=("v",)),
)
SPOT0 = ChunkRef("d1", "Handbook", (2,), 0.8, "first shown in 1871", 8, rects=RECTS[1:])
SPOT1 = ChunkRef("d1", "Handbook", (5,), 0.7, "flashes twice", 5, labels=("v",))
CITATIONS = (
    SentenceCitation(0, ANSWER.index("\n"), (0,), (SPOT0,), 0.8),
    SentenceCitation(S1, S2 - 1, (0, 1), (SPOT0, SPOT1), 0.5),
    SentenceCitation(S2, len(ANSWER), (), (), 0.0),
)
RUN = BeyondRun(13, 16, S2, S2 + len("Nobody knows"), 2)
BODY = " The light was first shown in 1871.[1]\nIt flashes twice.[1][2] Nobody knows.[?]"


def _finished(**kw: Any) -> Finished:
    fields: dict[str, Any] = dict(
        answer=ANSWER, mode="rapid", stop_reason="eos", new_tokens=16, rounds=8, drafted=11,
        accepted=7, target_prefill_s=0.5, drafter_prefill_s=0.1, decode_s=0.2,
        end_to_end_s=1.0, baseline_step_s=0.05, chunks=CHUNKS, citations=CITATIONS,
        beyond=(RUN,), answer_ids=tuple(range(16)),
    )  # fmt: skip
    fields.update(kw)
    return Finished(**fields)


@pytest.fixture
def view(qtbot: Any) -> AnswerView:
    widget = AnswerView()
    qtbot.addWidget(widget)
    widget.begin("When was the light first shown?")
    widget.resize(700, 400)
    return widget


def _body(view: AnswerView) -> str:
    start = view.token_position(0)
    assert start is not None
    return view.browser.toPlainText()[start:].split("\nSources")[0].split("\nDotted orange")[0]


def _format_at(view: AnswerView, position: int) -> QTextCharFormat:
    cursor = QTextCursor(view.browser.document())
    cursor.setPosition(position + 1)  # the format of the character before the cursor
    return cursor.charFormat()


def _click(qtbot: Any, view: AnswerView, position: int) -> None:
    view.show()
    qtbot.waitExposed(view)
    cursor = QTextCursor(view.browser.document())
    cursor.setPosition(position)
    rect = view.browser.cursorRect(cursor)
    point = QPoint(rect.x() + 3, rect.center().y())
    qtbot.mouseClick(view.browser.viewport(), Qt.MouseButton.LeftButton, pos=point)


def test_marks_follow_their_sentences(view: AnswerView) -> None:
    view.add_steps(STEPS)
    assert view.marks() == []  # none while streaming
    view.finish(_finished())
    assert view.marks() == ["[1]", "[1]", "[2]", "[?]"]
    assert _body(view) == BODY  # the first mark sits inside ".\n", before the newline
    assert view.answer_text().strip() == ANSWER  # the model is the answer, marks aside
    numbered = _format_at(view, view.mark_range(2)[0])
    assert numbered.verticalAlignment() == QTextCharFormat.VerticalAlignment.AlignSuperScript
    assert numbered.foreground().color() == QColor(ACCENT)
    assert numbered.isAnchor() and numbered.anchorHref() == "cite:1:1"
    unsupported = _format_at(view, view.mark_range(3)[0])
    assert not unsupported.isAnchor()
    assert unsupported.foreground().color() != QColor(ACCENT)


def test_token_positions_and_tooltips_survive_the_marks(view: AnswerView) -> None:
    view.add_steps(STEPS)
    view.finish(_finished())
    it = view.token_position(11)  # "It", after the first mark and the newline
    assert it is not None and view.browser.toPlainText()[it : it + 2] == "It"
    assert view.token_at(it) == view.model()[11]
    mark = view.mark_range(0)[0]
    assert view.token_at(mark) is None
    assert view.tooltip_at(mark) == (
        "[1] Handbook — p. 2\n“first shown in 1871”\nClick to show these lines in the PDF"
    )
    tip = view.tooltip_at(view.mark_range(3)[0])
    assert tip is not None and tip.startswith("Unsupported: no retrieved passage supports")


def test_copies_keep_numbered_marks_and_drop_the_question_mark(view: AnswerView) -> None:
    view.set_show_rejected(True)
    view.add_steps(STEPS)
    view.finish(_finished())
    assert "first lit shown" in _body(view)  # rejected drafts are shown ...
    view.browser.selectAll()
    copied = view.browser.createMimeDataFromSelection().text()
    want = "The light was first shown in 1871.[1]\nIt flashes twice.[1][2] Nobody knows."
    assert want in copied and " lit" not in copied and "[?]" not in copied
    view.copy_answer()
    text = QGuiApplication.clipboard().text()
    assert text == want + "\n\nSources:\n[1] Handbook — p. 2\n[2] Handbook — p. v"


def test_clicking_a_mark_emits_its_spot(view: AnswerView, qtbot: Any) -> None:
    view.add_steps(STEPS)
    view.finish(_finished())
    with qtbot.waitSignal(view.citation_clicked) as clicked:
        _click(qtbot, view, view.mark_range(2)[0])
    assert clicked.args == ["[2]", SPOT1]
    with qtbot.assertNotEmitted(view.citation_clicked, wait=50):
        _click(qtbot, view, view.mark_range(3)[0])  # "[?]" is no link


def test_a_run_beyond_the_passages_is_underlined_and_clickable(
    view: AnswerView, qtbot: Any
) -> None:
    view.add_steps(STEPS)
    view.finish(_finished())
    hint = "Dotted orange: a run the target wrote against the drafter (the retrieved passages"
    assert hint + " were not enough). Click it to see where" in view.browser.toPlainText()
    start, end = view.run_range(0) or (0, 0)
    assert view.browser.toPlainText()[start:end] == "Nobody knows"
    fmt = _format_at(view, start + 2)
    assert fmt.underlineStyle() == QTextCharFormat.UnderlineStyle.DotLine
    assert fmt.underlineColor() == QColor(BEYOND_COLOR)
    assert fmt.anchorHref() == "beyond:0"
    assert _format_at(view, start - 3).underlineStyle() != QTextCharFormat.UnderlineStyle.DotLine
    tip = view.tooltip_at(start + 2) or ""
    assert tip.startswith("Read beyond the passages: the target wrote this against the drafter")
    assert tip.endswith("Round 6 · target correction\np_target 0.60 · p_hat 0.70")
    with qtbot.waitSignal(view.beyond_clicked) as clicked:
        _click(qtbot, view, start + 3)
    assert clicked.args == [RUN]


def test_hover_on_a_mark_shows_its_tooltip(view: AnswerView, qtbot: Any) -> None:
    view.add_steps(STEPS)
    view.finish(_finished())
    view.show()
    qtbot.waitExposed(view)
    cursor = QTextCursor(view.browser.document())
    cursor.setPosition(view.mark_range(1)[0] + 1)
    rect = view.browser.cursorRect(cursor)
    point = QPoint(rect.x() + 1, rect.center().y())
    event = QHelpEvent(QEvent.Type.ToolTip, point, view.browser.viewport().mapToGlobal(point))
    QApplication.sendEvent(view.browser.viewport(), event)
    qtbot.waitUntil(lambda: QToolTip.isVisible())
    assert QToolTip.text().startswith("[1] Handbook — p. 2")


def test_restore_shows_marks_and_toggle_keeps_them(view: AnswerView) -> None:
    view.add_steps(STEPS)
    view.finish(_finished())
    shown = view.browser.toPlainText()
    other = AnswerView()
    other.restore("When was the light first shown?", view.tokens(), _finished())
    assert other.browser.toPlainText() == shown
    other.set_show_rejected(True)
    other.set_show_rejected(False)
    assert other.browser.toPlainText() == shown and other.marks() == view.marks()
    other.deleteLater()


def test_preliminary_streams_then_the_answer_replaces_it(view: AnswerView, qtbot: Any) -> None:
    for word in ("The light", " dates from", " 1871."):
        view.add_preliminary(word)
    text = view.browser.toPlainText()
    assert "Preliminary answer — drafter on the retrieved passages only; the target is " \
        "reading the whole document" in text  # fmt: skip
    assert "The light dates from 1871." in text
    view.preliminary_done("The light dates from 1871.")
    view.show_status("Reading the document: 512 of 1,024 tokens · 1 s · Esc cancels")
    assert "Reading the document: 512 of 1,024 tokens" in view.browser.toPlainText()
    view.add_steps(STEPS[:2])
    text = view.browser.toPlainText()
    assert "Preliminary" not in text and "dates from" not in text
    assert text.startswith("When was the light first shown?\n The light was first shown")
    view.add_steps(STEPS[2:])
    view.finish(_finished(preliminary="The light dates from 1871."))
    assert view.browser.toPlainText().endswith("▸ Preliminary answer (passages only)")
    view.show()
    qtbot.waitExposed(view)
    found = view.browser.document().find("Preliminary answer (passages only)")
    _click(qtbot, view, found.selectionStart() + 4)
    assert view.browser.toPlainText().endswith(
        "▾ Preliminary answer (passages only)\nThe light dates from 1871."
    )
    assert view.preliminary_text() == "The light dates from 1871."


def test_cancelled_during_the_read_keeps_the_preliminary(view: AnswerView) -> None:
    view.add_preliminary("Probably 1871.")
    view.show_status("Reading the document: 100 of 9,000 tokens")
    assert view.cancel_preliminary()
    text = view.browser.toPlainText()
    assert "(cancelled before the target finished reading the document)" in text
    assert "Probably 1871." in text and "100 of 9,000" not in text
    view.begin("Next?")
    assert view.browser.toPlainText() == "Next?\n" and view.preliminary_text() == ""
    assert not view.cancel_preliminary()


def test_added_citation_and_the_evidence_note(view: AnswerView, qtbot: Any) -> None:
    view.add_steps(STEPS)
    view.finish(_finished())
    note = EvidenceNote("Nobody knows", "p. 3")
    view.set_evidence_note(note)
    text = view.browser.toPlainText()
    assert "⚑ The target's evidence for “Nobody knows” is on p. 3, outside the retrieved " \
        "passages. Cite it" in text  # fmt: skip
    found = view.browser.document().find("Cite it")
    with qtbot.waitSignal(view.cite_evidence_requested):
        _click(qtbot, view, found.selectionStart() + 2)
    spot = ChunkRef("d1", "Handbook", (3,), 0.0, "the keeper's journal", 9, labels=("3",))
    view.set_added([AddedCitation(2, spot, 0.5)])
    view.set_evidence_note(EvidenceNote("Nobody knows", "p. 3", cited_as=3))
    assert view.marks() == ["[1]", "[1]", "[2]", "[3]"]  # "[?]" gave way to the new mark
    text = view.browser.toPlainText()
    assert "Nobody knows.[3]" in text and "Cited as [3]." in text
    assert "[3] Handbook — p. 3  (added: the target's evidence)" in text
    with qtbot.waitSignal(view.citation_clicked) as clicked:
        _click(qtbot, view, view.mark_range(3)[0])
    assert clicked.args == ["[3]", spot]
