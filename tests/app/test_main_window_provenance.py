"""The main window with the scripted engine and the real sample PDF: a citation mark
shows exactly its lines, a run beyond the passages shows where the target looked
(a job that can be cancelled; a heat overlay and its legend; "Cite it"), a
preliminary answer streams then gives way, and the exports and the history keep it all."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QTextCursor
from PySide6.QtWidgets import QLabel

from app.gui.history import AddedCitation, HistoryStore
from app.gui.main_window import MainWindow
from app.gui.pdf.view import PdfView
from app.gui.stall import StallMeter
from tests.app.conftest import wait_idle
from tests.app.fake_engine import OUTSIDE_RECTS, FakeEngine, Script

pytestmark = pytest.mark.gui

MARKS = ["[1]", "[1]", "[2]", "[?]"]  # 12 rounds: three sentences, the last unsupported
RUN_TEXT = "d5.0 t5 d6.0 d6.1 d6.2 t6"  # rounds 5-6, written beyond the passages
RUN_SHOWN = " d5.0 d5.1 d5.2 t5 d6.0 d6.1 d6.2 t6"  # with its rejected drafts (shown)


def _answer(qtbot: Any, win: MainWindow, question: str = "When is the lamp lit?") -> None:
    wait_idle(qtbot, win)
    win.answer_ctl.ask_question(question)
    wait_idle(qtbot, win)
    qtbot.waitUntil(lambda: win.pdf.page_count == 10, timeout=10_000)


def _click(qtbot: Any, win: MainWindow, position: int) -> None:
    """A real click on the answer's character at document `position`."""
    browser = win.answer.browser
    cursor = QTextCursor(browser.document())
    cursor.setPosition(position)
    browser.setTextCursor(cursor)
    browser.ensureCursorVisible()
    rect = browser.cursorRect(cursor)
    qtbot.mouseClick(browser.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(rect.x() + 3, rect.center().y()))  # fmt: skip


def _click_text(qtbot: Any, win: MainWindow, text: str) -> None:
    found = win.answer.browser.document().find(text)
    assert not found.isNull(), text
    _click(qtbot, win, found.selectionStart() + 2)


def _pixel(view: PdfView, page: int, x: float, y: float, dx: float = 0.0) -> QColor:
    """The colour drawn at point (x, y) of `page` (moved `dx` canvas pixels)."""
    point = (view.canvas.to_canvas(page, x, y) + QPointF(dx, 0)).toPoint()
    return view.canvas.grab().toImage().pixelColor(point)


def _settle(qtbot: Any, view: PdfView, page: int) -> None:
    qtbot.waitUntil(lambda: not view.canvas.flashing, timeout=10_000)
    qtbot.waitUntil(lambda: view.page_image(page) is not None, timeout=10_000)


def test_a_citation_mark_shows_exactly_its_lines(
    qtbot: Any, window: tuple[MainWindow, FakeEngine]
) -> None:
    win, _engine = window
    _answer(qtbot, win)
    assert win.answer.marks() == MARKS
    assert win.pdf.document_path is not None
    assert win.pdf.document_path.name == "harrow-point-handbook.pdf"
    _click(qtbot, win, win.answer.mark_range(2)[0])  # the second sentence's [2]
    qtbot.waitUntil(lambda: win.pdf.overlay.spot is not None, timeout=5_000)
    spot = win.pdf.overlay.spot
    assert spot is not None and spot.label == "[2]"
    assert spot.rects == ((2, 50.0, 66.0, 380.0, 80.0),)  # passage [2]'s second line only
    assert win.pdf.current_page == 2
    _settle(qtbot, win.pdf, 2)
    line1 = _pixel(win.pdf, 2, 60.0, 57.0)  # the passage's first line (blank margin)
    cited = _pixel(win.pdf, 2, 60.0, 73.0)  # the cited line: passage + spot tint
    assert line1.red() > 240 and line1.blue() < line1.green() - 20  # highlighter yellow
    assert cited.red() < line1.red() - 40 and cited.blue() > 60
    edge = _pixel(win.pdf, 2, 50.0, 73.0, dx=-2.0)  # the spot's accent outline
    assert edge.blue() > edge.red() + 40
    paper = _pixel(win.pdf, 2, 50.0, 57.0, dx=-2.0)  # left of line 1: no outline
    assert (paper.red(), paper.green(), paper.blue()) == (255, 255, 255)
    _click(qtbot, win, win.answer.mark_range(0)[0])  # the first sentence's [1]: page 1
    qtbot.waitUntil(lambda: win.pdf.current_page == 1, timeout=5_000)
    assert win.pdf.overlay.spot is not None
    assert win.pdf.overlay.spot.rects == ((1, 50.0, 66.0, 380.0, 80.0),)


@pytest.mark.parametrize("script", [Script(evidence_steps=4, evidence_delay_s=0.15)])
def test_a_beyond_run_shows_where_the_target_looked(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], script: Script, tmp_path: Path
) -> None:
    win, _engine = window
    _answer(qtbot, win)
    record = win.history.records[-1]
    fin = record.finished
    start, end = win.answer.run_range(0) or (0, 0)
    assert win.answer.browser.toPlainText()[start:end] == RUN_SHOWN
    meter = StallMeter(5)
    meter.start()
    _click(qtbot, win, start + 3)
    qtbot.waitUntil(lambda: "reading the document" in win.ask.progress_label.text(), timeout=5_000)
    assert win.ask.cancel_button.isVisible() and win.cancel_action.isEnabled()
    wait_idle(qtbot, win)
    meter.stop()
    assert meter.max_stall_ms < 300  # the evidence ran on the engine's thread
    question, docs, ids, run, passages = script.evidence_asked[-1]
    assert (question, docs, ids) == ("When is the lamp lit?", record.doc_ids, fin.answer_ids)
    assert run == fin.beyond[0] and passages == fin.chunks
    heat = win.pdf.overlay.heat
    assert [(h.level, h.retrieved, h.label) for h in heat] == [(1.0, False, "50%"),
                                                               (0.5, True, "25%")]  # fmt: skip
    assert heat[0].rects == OUTSIDE_RECTS and heat[1].rects == ((1, 50.0, 66.0, 380.0, 80.0),)
    assert win.pdf.overlay.heat_shown and win.pdf.overlay.legend.isVisible()
    summary = win.pdf.overlay.legend.summary.text()
    assert summary.startswith("Strongest: p. 3, 50% of the attention, outside the retrieved")
    assert win.pdf.current_page == 3  # the view went to the strongest spot
    _settle(qtbot, win.pdf, 3)
    hot, paper = _pixel(win.pdf, 3, 70.0, 307.0), _pixel(win.pdf, 3, 70.0, 400.0)
    assert (paper.red(), paper.green(), paper.blue()) == (255, 255, 255)
    assert hot.red() > 180 and hot.blue() < 90 and hot.green() < 160
    text = win.answer.browser.toPlainText()
    assert (f"⚑ The target's evidence for “{RUN_TEXT}” is on p. 3, outside the retrieved "
            "passages. Cite it") in text  # fmt: skip
    _click_text(qtbot, win, "Cite it")
    assert win.answer.marks() == ["[1]", "[1]", "[2]", "[3]", "[?]"]
    assert "Cited as [3]." in win.answer.browser.toPlainText()
    kept = win.history.records[-1]
    assert kept.added == (AddedCitation(1, kept.added[0].ref, 0.5),)  # sentence 2 of 3
    assert kept.added[0].ref.rects == OUTSIDE_RECTS and kept.added[0].ref.pages == (3,)
    assert HistoryStore(win.history.path).records[-1].added == kept.added  # on disk
    assert win.answer_ctl.write_export(kept, tmp_path / "a.json", "json")
    data = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))
    assert data["sentences"][1]["marks"] == [1, 2, 3]
    assert data["citations"][2]["added"] is True and data["citations"][2]["where"] == "p. 3"
    assert data["beyond_passages"][0]["text"] == " " + RUN_TEXT
    win.pdf.overlay.legend.close_button.click()  # the legend's ✕ clears the overlay
    assert win.pdf.overlay.heat == () and not win.pdf.overlay.heat_shown


@pytest.mark.parametrize("script", [Script(evidence_steps=200, evidence_delay_s=0.02)])
def test_cancelling_the_evidence_leaves_no_overlay(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], script: Script
) -> None:
    win, _engine = window
    _answer(qtbot, win)
    script.evidence_steps = 2
    win.answer_ctl.show_evidence(win.history.records[-1].finished.beyond[0])
    wait_idle(qtbot, win)
    assert win.pdf.overlay.heat_shown  # an earlier overlay ...
    script.evidence_steps = 200
    _click(qtbot, win, (win.answer.run_range(0) or (0, 0))[0] + 3)
    assert not win.pdf.overlay.heat_shown  # ... goes when the next search starts
    qtbot.waitUntil(lambda: "reading the document" in win.ask.progress_label.text(), timeout=5_000)
    qtbot.keyClick(win, Qt.Key.Key_Escape)  # Esc cancels, as for an answer
    wait_idle(qtbot, win)
    assert win.pdf.overlay.heat == () and not win.pdf.overlay.heat_shown
    assert "The target's evidence" not in win.answer.browser.toPlainText()
    assert win.statusBar().currentMessage() in ("Cancelled: no evidence shown.", "Cancelled.")
    assert win.ask.ask_button.isVisible() and not win.ask.progress.isVisible()
    assert win.answer.marks() == MARKS  # the answer is untouched


def test_a_preliminary_answer_streams_then_gives_way(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], script: Script
) -> None:
    win, _engine = window
    wait_idle(qtbot, win)
    gate = threading.Event()
    script.preliminary, script.hold_read = "The lamp is lit at dusk.", gate
    win.answer_ctl.ask_question("When is the lamp lit?")

    def shown() -> str:
        return win.answer.browser.toPlainText()

    qtbot.waitUntil(lambda: "Reading the document: 1,024 of 1,024" in shown(), timeout=10_000)
    text = shown()
    assert "Preliminary answer — drafter on the retrieved passages only; the target is " \
        "reading the whole document" in text  # fmt: skip
    assert "The lamp is lit at dusk." in text and win.answer.counts()["accepted"] == 0
    gate.set()
    wait_idle(qtbot, win)
    text = shown()
    assert "drafter on the retrieved passages only" not in text
    assert win.answer.marks() == MARKS and "t12." in text
    assert "▸ Preliminary answer (passages only)" in text and "lit at dusk" not in text
    _click_text(qtbot, win, "Preliminary answer (passages only)")
    assert "▾ Preliminary answer (passages only)\nThe lamp is lit at dusk." in shown()
    record = win.history.records[-1]
    assert record.finished.preliminary == "The lamp is lit at dusk."
    script.preliminary, script.hold_read = "", None
    win.answer_ctl.ask_question("Another question")
    wait_idle(qtbot, win)
    assert "Preliminary" not in shown()
    win.answer_ctl.show_record(record)  # from the history: marks and preliminary back
    assert win.answer.marks() == MARKS and "▸ Preliminary answer (passages only)" in shown()


def test_cancel_while_the_target_reads_keeps_a_consistent_window(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], script: Script
) -> None:
    win, _engine = window
    wait_idle(qtbot, win)
    gate = threading.Event()
    script.preliminary, script.hold_read = "Probably at dusk.", gate
    win.answer_ctl.ask_question("When is the lamp lit?")
    qtbot.waitUntil(lambda: "at dusk." in win.answer.browser.toPlainText(), timeout=10_000)
    win.answer_ctl.cancel_answer()
    wait_idle(qtbot, win)
    text = win.answer.browser.toPlainText()
    assert "Cancelled while the target was reading the document" in text
    assert "(cancelled before the target finished reading the document)" in text
    assert "Probably at dusk." in text and "Reading the document" not in text
    assert win.history.records == [] and win.ask.ask_button.isVisible()
    assert not win.ask.progress.isVisible() and not win.answer_ctl.answering
    gate.set()
    win.answer_ctl.ask_question("When is the lamp lit?")
    wait_idle(qtbot, win)
    assert win.answer.marks() == MARKS and len(win.history.records) == 1
    assert "cancelled before" not in win.answer.browser.toPlainText()


def test_exports_carry_the_citations(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], tmp_path: Path
) -> None:
    win, _engine = window
    _answer(qtbot, win)
    record = win.history.records[-1]
    assert win.answer_ctl.write_export(record, tmp_path / "a.md", "md")
    assert win.answer_ctl.write_export(record, tmp_path / "a.json", "json")
    data = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))
    assert [s["marks"] for s in data["sentences"]] == [[1], [1, 2], []]
    assert [s["supported"] for s in data["sentences"]] == [True, True, False]
    assert data["unsupported_sentences"] == 1
    assert [p["where"] for p in data["sentences"][1]["spots"]] == ["p. 1", "p. 2"]
    assert data["answer_with_marks"].startswith("d1.0 t1 d2.0 t2 d3.0 d3.1 d3.2 t3 d4.0 t4.[1] ")
    md = (tmp_path / "a.md").read_text(encoding="utf-8")
    assert (
        "3. “d9.0 d9.1 d9.2 t9 d10.0 t10 d11.0 t11 d12.0 d12.1 d12.2 t12.” — **unsupported**" in md
    )
    assert "2. “d5.0 t5 d6.0 d6.1 d6.2 t6 d7.0 t7 d8.0 t8.” — [1] harrow-point-handbook, p. 1; " \
        "[2] harrow-point-handbook, p. 2" in md  # fmt: skip
    assert f"- “ {RUN_TEXT}” (sentence 2, 2 corrections)" in md


@pytest.mark.parametrize("script", [Script(document_citation=True)])
def test_a_citation_found_in_the_document_is_told_apart(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], script: Script
) -> None:
    win, _engine = window
    _answer(qtbot, win)
    assert win.answer.marks() == ["[1]", "[1]", "[2]", "[3]"]  # no "[?]" left
    text = win.answer.browser.toPlainText()
    assert "[3] harrow-point-handbook — p. 4  (found in the document, not retrieved)" in text
    tip = win.answer.tooltip_at(win.answer.mark_range(3)[0]) or ""
    assert "Found in the document afterwards (not among the passages the drafter read)" in tip
    fin = win.history.records[-1].finished
    win.answer_ctl.show_evidence(fin.beyond[0])
    wait_idle(qtbot, win)
    passages = script.evidence_asked[-1][4]
    assert passages == fin.chunks[:2] and len(fin.chunks) == 3  # only what the drafter read


def test_a_long_progress_line_does_not_squeeze_the_pdf_view(
    qtbot: Any, window: tuple[MainWindow, FakeEngine]
) -> None:
    """The evidence job's progress names the run: however long, the line is cut, not
    widening the answers' column (a narrower PDF view re-fits its zoom and loses the
    spot it was centred on)."""
    win, _engine = window
    wait_idle(qtbot, win)
    width = win.pdf.width()
    text = "Evidence for “" + "a long run of words " * 20 + "”: reading the document"
    win.ask.show_progress(text, 0.5)
    qtbot.wait(50)
    assert win.pdf.width() == width and win.ask.progress_label.toolTip() == text
    assert win.ask.minimumSizeHint().width() < 400


def test_a_progress_line_too_long_is_cut_with_an_ellipsis(
    qtbot: Any, window: tuple[MainWindow, FakeEngine]
) -> None:
    win, _engine = window
    wait_idle(qtbot, win)
    label = win.ask.progress_label
    text = "Reading the document: 1,708 of 6,762 tokens · 44 s · about 131 s left · " * 4
    win.ask.show_progress(text, 0.2)
    qtbot.wait(20)
    assert label.text() == text and label.toolTip() == text
    shown = QLabel.text(label)
    assert shown.endswith("…") and len(shown) < len(text)
    assert label.fontMetrics().horizontalAdvance(shown) <= label.width()
