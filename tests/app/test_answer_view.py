"""The answer view with scripted decoding rounds: the token model, formats, tooltips,
rejected drafts shown and hidden, copies without them, sources and long streams."""

from __future__ import annotations

import random
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QPoint, Qt, QUrl
from PySide6.QtGui import QColor, QGuiApplication, QHelpEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QApplication, QToolTip

from app.gui.answers.view import AnswerToken, AnswerView, tokens_of
from app.gui.theme import TOKEN_STYLES
from core.events import ChunkRef, DraftStep, Finished

pytestmark = pytest.mark.gui


def _step(
    n: int,
    drafted: tuple[str, ...],
    accepted: int,
    token: str | None,
    kind: str = "correction",
    source: str = "lookup",
) -> DraftStep:
    k = len(drafted)
    return DraftStep(
        round=n, drafted_ids=tuple(range(k)), drafted_texts=drafted, accepted=accepted,
        token_id=None if token is None else 99, token_text=token or "", token_kind=kind,  # type: ignore[arg-type]
        source=source, p_target=tuple(0.88 - 0.1 * i for i in range(k)),  # type: ignore[arg-type]
        p_draft=(0.91,) * k, p_hat=(0.93,) * k, token_p_target=0.62, token_p_hat=0.70,
        draft_s=0.01, verify_s=0.04, context_tokens=1000 + n,
    )  # fmt: skip


CHUNKS = (
    ChunkRef("d1", "R Intro", (12,), 0.81, "passage one", 40),
    ChunkRef("d2", "Data Import", (3, 4), 0.64, "passage two", 50, labels=("iii", "iv")),
)


def _finished(reason: str = "eos", chunks: tuple[ChunkRef, ...] = CHUNKS) -> Finished:
    return Finished(
        answer="R is a language for statistics.", mode="rapid", stop_reason=reason,  # type: ignore[arg-type]
        new_tokens=8, rounds=3, drafted=7, accepted=5, target_prefill_s=0.5,
        drafter_prefill_s=0.1, decode_s=0.2, end_to_end_s=1.0, baseline_step_s=0.05,
        chunks=chunks,
    )  # fmt: skip


STEPS = [
    _step(1, (" R", " is", " an"), 2, " a"),  # accepted, accepted, rejected, correction
    _step(2, (" language", " for"), 2, " statistics", "bonus", source="model"),
    _step(3, (".", " It", " was"), 1, None),  # ended inside the accepted draft
]
ANSWER = " R is a language for statistics."


@pytest.fixture
def view(qtbot: Any) -> AnswerView:
    widget = AnswerView()
    qtbot.addWidget(widget)
    widget.begin("What is R?")
    return widget


def _answer_part(view: AnswerView) -> str:
    """The document's plain text from the first token on (heading and footer cut)."""
    start = view.token_position(0)
    assert start is not None
    return view.browser.toPlainText()[start:].split("\nSources")[0]


def test_tokens_of_a_round_in_order() -> None:
    kinds = [(t.text, t.kind) for t in tokens_of(STEPS[0])]
    assert kinds == [(" R", "accepted"), (" is", "accepted"), (" an", "rejected"),
                     (" a", "correction")]  # fmt: skip
    assert [t.kind for t in tokens_of(STEPS[2])] == ["accepted", "rejected", "rejected"]


def test_counts_and_answer_text(view: AnswerView) -> None:
    view.add_steps(STEPS)
    assert view.counts() == {"accepted": 5, "correction": 1, "bonus": 1, "target": 0,
                             "rejected": 3}  # fmt: skip
    assert view.answer_text() == ANSWER
    assert _answer_part(view) == ANSWER
    assert view.browser.toPlainText().startswith("What is R?\n")


def test_target_mode_tokens(view: AnswerView) -> None:
    view.add_steps([_step(n, (), 0, f" w{n}", "target", "none") for n in range(1, 5)])
    assert view.counts()["target"] == 4
    assert view.answer_text() == " w1 w2 w3 w4"
    pos = view.token_position(2)
    assert pos is not None
    assert view.tooltip_at(pos) == "Round 3 · target step\np_target 0.62 · p_hat 0.70"


def test_toggle_rejected_changes_document_not_answer(view: AnswerView, qtbot: Any) -> None:
    view.add_steps(STEPS)
    with qtbot.waitSignal(view.show_rejected_changed) as blocker:
        view.rejected_box.setChecked(True)
    assert blocker.args == [True]
    assert view.show_rejected()
    assert _answer_part(view) == " R is an a language for statistics. It was"
    assert view.answer_text() == ANSWER
    view.set_show_rejected(False)
    assert not view.rejected_box.isChecked()
    assert _answer_part(view) == ANSWER


def test_streaming_with_rejected_shown_matches_a_rebuild(view: AnswerView) -> None:
    view.set_show_rejected(True)
    for step in STEPS:
        view.add_steps([step])
    streamed = view.browser.toPlainText()
    view.set_show_rejected(False)
    view.set_show_rejected(True)
    assert view.browser.toPlainText() == streamed


def _format_at(view: AnswerView, position: int) -> QTextCharFormat:
    cursor = QTextCursor(view.browser.document())
    cursor.setPosition(position + 1)  # charFormat() is the format of the char before
    return cursor.charFormat()


@pytest.mark.parametrize(("index", "kind"), [(0, "accepted"), (2, "rejected"),
                                             (3, "correction"), (6, "bonus")])  # fmt: skip
def test_char_formats_follow_the_theme(view: AnswerView, index: int, kind: str) -> None:
    view.set_show_rejected(True)
    view.add_steps(STEPS)
    assert view.model()[index].kind == kind
    pos = view.token_position(index)
    assert pos is not None
    fmt, style = _format_at(view, pos), TOKEN_STYLES[kind]
    assert fmt.foreground().color().name() == QColor(style.foreground).name()
    assert fmt.underlineStyle() == style.underline
    assert fmt.fontStrikeOut() == style.strike


def test_hidden_rejected_tokens_have_no_position(view: AnswerView) -> None:
    view.add_steps(STEPS)
    assert view.token_position(2) is None
    pos = view.token_position(3)
    assert pos is not None and view.token_at(pos) == view.model()[3]


def test_tooltips(view: AnswerView) -> None:
    view.set_show_rejected(True)
    view.add_steps(STEPS)
    first = view.token_position(0)
    assert first is not None
    assert view.tooltip_at(first + 1) == (
        "Round 1 · accepted draft (n-gram lookup)\np_draft 0.91 · p_target 0.88 · p_hat 0.93"
    )
    rejected = view.token_position(2)
    assert rejected is not None
    assert view.tooltip_at(rejected).startswith("Round 1 · rejected draft")  # type: ignore[union-attr]
    own = view.token_position(3)
    assert own is not None
    assert view.tooltip_at(own) == "Round 1 · target correction\np_target 0.62 · p_hat 0.70"
    bonus = view.token_position(6)
    assert bonus is not None
    assert view.tooltip_at(bonus).startswith("Round 2 · bonus token")  # type: ignore[union-attr]
    assert "drafter model" in view.tooltip_at(bonus - 1)  # type: ignore[operator]
    assert view.tooltip_at(0) is None  # the question heading


def _select(view: AnswerView, start: int, end: int) -> str:
    cursor = QTextCursor(view.browser.document())
    cursor.setPosition(start)
    cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    view.browser.setTextCursor(cursor)
    return view.browser.createMimeDataFromSelection().text()


def test_copying_a_selection_leaves_out_rejected(view: AnswerView) -> None:
    view.set_show_rejected(True)
    view.add_steps(STEPS)
    start = view.token_position(0)
    assert start is not None
    end = start + len(" R is an a language")
    assert view.browser.toPlainText()[start:end] == " R is an a language"
    assert _select(view, start, end) == " R is a language"
    # a selection that begins inside a rejected draft
    rejected = view.token_position(2)
    assert rejected is not None
    assert _select(view, rejected + 1, end) == " a language"
    assert _select(view, 0, 4) == "What"


def test_ctrl_c_copies_without_rejected(view: AnswerView, qtbot: Any) -> None:
    view.set_show_rejected(True)
    view.add_steps(STEPS)
    view.browser.selectAll()
    view.browser.copy()
    copied = QGuiApplication.clipboard().text()
    assert ANSWER in copied and " an a" not in copied


def test_copy_answer_has_sources(view: AnswerView) -> None:
    view.add_steps(STEPS)
    view.finish(_finished())
    view.copy_answer()
    assert QGuiApplication.clipboard().text() == (
        "R is a language for statistics.\n\nSources:\n[1] R Intro — p. 12\n"
        "[2] Data Import — pp. iii-iv"
    )


def test_status_goes_when_the_first_token_arrives(view: AnswerView) -> None:
    view.show_notice("Only the first 40 pages were read", "warning")
    view.show_status("Reading the document… 40%")
    assert "Reading the document… 40%" in view.browser.toPlainText()
    view.show_status("Reading the document… 80%")
    text = view.browser.toPlainText()
    assert "40%" not in text and "80%" in text
    view.add_steps(STEPS[:1])
    text = view.browser.toPlainText()
    assert "Reading" not in text
    assert text == "What is R?\n⚠ Only the first 40 pages were read\n R is a"
    view.show_status("ignored now")
    assert "ignored" not in view.browser.toPlainText()


def test_notice_after_tokens_keeps_positions(view: AnswerView) -> None:
    view.add_steps(STEPS[:1])
    view.show_notice("Document truncated", "warning")
    view.add_steps(STEPS[1:])
    assert _answer_part(view) == ANSWER
    pos = view.token_position(3)
    assert pos is not None and view.token_at(pos) == view.model()[3]


@pytest.mark.parametrize(("reason", "note"), [
    ("eos", None),
    ("max_tokens", "Stopped at the token limit — raise Max tokens in Settings for longer answers"),
    ("cancelled", "Cancelled — the answer is incomplete"),
])  # fmt: skip
def test_finish_shows_sources_and_stop_note(
    view: AnswerView, reason: str, note: str | None
) -> None:
    view.add_steps(STEPS)
    view.finish(_finished(reason))
    lines = view.browser.toPlainText().split("\n")
    at = lines.index("Sources")
    assert lines[at + 1 : at + 3] == ["[1] R Intro — p. 12", "[2] Data Import — pp. iii-iv"]
    assert lines[at + 3 :] == ([] if note is None else [note])
    assert view.answer_text() == ANSWER


def test_source_link_click_emits_the_chunk(view: AnswerView, qtbot: Any) -> None:
    view.add_steps(STEPS)
    view.finish(_finished())
    view.resize(500, 400)
    view.show()
    qtbot.waitExposed(view)
    browser = view.browser
    found = browser.document().find("Data Import")
    assert not found.isNull()
    middle = QTextCursor(browser.document())
    middle.setPosition(found.selectionStart() + 3)
    point = browser.cursorRect(middle).center()
    with qtbot.waitSignal(view.source_clicked) as blocker:
        qtbot.mouseClick(browser.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert blocker.args == [1, CHUNKS[1]]
    with qtbot.waitSignal(view.source_clicked) as blocker:
        browser.anchorClicked.emit(QUrl("source:0"))
    assert blocker.args == [0, CHUNKS[0]]


def test_set_sources_and_restore(view: AnswerView) -> None:
    view.set_show_rejected(True)
    view.add_steps(STEPS)
    view.finish(_finished("max_tokens"))
    saved, shown = view.tokens(), view.browser.toPlainText()
    other = AnswerView()
    other.set_show_rejected(True)
    other.restore("What is R?", saved, _finished("max_tokens"))
    assert other.browser.toPlainText() == shown
    assert other.model() == view.model()
    assert all(isinstance(t, AnswerToken) for t in other.model())
    other.set_sources(CHUNKS[:1])
    assert "Data Import" not in other.browser.toPlainText()
    assert other.sources() == CHUNKS[:1]
    other.deleteLater()


def test_begin_clears(view: AnswerView) -> None:
    view.add_steps(STEPS)
    view.finish(_finished())
    view.begin("Next?")
    assert view.browser.toPlainText() == "Next?\n"
    assert view.counts() == dict.fromkeys(view.counts(), 0)
    assert view.sources() == ()


def test_legend_entries_carry_the_tips(view: AnswerView) -> None:
    entries = view.legend.entries
    assert set(entries) == set(TOKEN_STYLES)
    for kind, entry in entries.items():
        assert TOKEN_STYLES[kind].tip in entry.toolTip()
        assert entry.sizeHint().width() > 10


def test_two_thousand_rounds_stream_in(view: AnswerView) -> None:
    rng = random.Random(7)
    words = [" alpha", " beta", "\n", " 😀", " δ", "-", " gamma", ","]
    steps, expected, shown = [], [], []
    for n in range(1, 2001):
        drafted = tuple(rng.choice(words) for _ in range(rng.randint(0, 4)))
        accepted = rng.randint(0, len(drafted))
        kind = "bonus" if accepted == len(drafted) else "correction"
        token = rng.choice(words)
        steps.append(_step(n, drafted, accepted, token, kind))
        expected += [*drafted[:accepted], token]
        shown += [*drafted, token]
    for i in range(0, len(steps), 37):  # batches, like the worker's
        view.add_steps(steps[i : i + 37])
    assert view.answer_text() == "".join(expected)
    assert _answer_part(view) == "".join(expected)
    assert view.counts()["correction"] + view.counts()["bonus"] == 2000
    last = view.token_position(len(view.model()) - 1)
    assert last is not None and view.token_at(last) == view.model()[-1]
    view.set_show_rejected(True)
    assert _answer_part(view) == "".join(shown)
    assert view.answer_text() == "".join(expected)


def test_hover_shows_the_token_tooltip(view: AnswerView, qtbot: Any) -> None:
    view.add_steps(STEPS)
    view.resize(500, 300)
    view.show()
    qtbot.waitExposed(view)
    browser = view.browser
    own = view.token_position(3)
    assert own is not None
    cursor = QTextCursor(browser.document())
    cursor.setPosition(own + 2)  # after " a", the correction token
    rect = browser.cursorRect(cursor)
    point = QPoint(rect.x() - 2, rect.center().y())  # over the character before the cursor
    event = QHelpEvent(QEvent.Type.ToolTip, point, browser.viewport().mapToGlobal(point))
    QApplication.sendEvent(browser.viewport(), event)
    qtbot.waitUntil(lambda: QToolTip.isVisible())
    assert QToolTip.text() == "Round 1 · target correction\np_target 0.62 · p_hat 0.70"
