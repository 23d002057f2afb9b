"""The main window driven by a scripted engine on the real worker thread: library
flow, a streamed answer in the widgets, compare, history, errors, password, quit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings

from app.gui.launch import build
from app.gui.main_window import MainWindow
from tests.app.conftest import wait_idle as _wait_idle
from tests.app.fake_engine import FakeEngine, Script

pytestmark = pytest.mark.gui


def test_first_start_adds_the_sample_and_fills_in_a_question(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], store: QSettings
) -> None:
    win, engine = window
    _wait_idle(qtbot, win)
    assert [d.title for d in engine.docs.values()] == ["harrow-point-handbook"]
    assert win.library.selected_ids() == list(engine.docs)
    assert win.ask.question() == "When was the Harrow Point light first exhibited?"
    assert store.value("first_start_done", False, type=bool)
    assert "Target: fake-target" in win.model_label.text()


@pytest.mark.parametrize("script", [Script(load_delay_s=0.3)])
def test_model_load_progress_is_shown(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], script: Script
) -> None:
    """A first use's conversion takes a minute: the status bar says which model, which
    stage and how far; the progress bar fills, and goes once the models are there."""
    win, _ = window
    qtbot.waitUntil(lambda: "reading the tokenizer" in win.statusBar().currentMessage())
    assert "fake-target: reading the tokenizer (first use only)" in win.statusBar().currentMessage()
    assert win.loading.isVisible() and win.loading.maximum() == 1000
    assert win.loading.value() in (500, 1000)
    assert win.model_label.text() == "Loading fake-target…"
    _wait_idle(qtbot, win)
    assert not win.loading.isVisible() and "Target: fake-target" in win.model_label.text()


def test_an_answer_streams_into_the_views_and_is_kept(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], script: Script
) -> None:
    win, engine = window
    _wait_idle(qtbot, win)
    win.ask.set_question("When is the lamp lit?")
    win.ask.ask_button.click()
    _wait_idle(qtbot, win)
    counts = win.answer.counts()
    # 12 rounds: 3 drafted each, 1 accepted (3 every third round), one target token each
    assert counts["accepted"] == 8 * 1 + 4 * 3 and counts["rejected"] == 8 * 2
    assert counts["correction"] == 12
    assert win.stats.values()["rounds"] == "12"
    assert win.ask.ask_button.isVisible() and not win.ask.cancel_button.isVisible()
    (record,) = win.history.records
    assert record.question == "When is the lamp lit?" and record.finished.rounds == 12
    assert win.history_list.records() == [record]
    assert script.asked[-1][1] == tuple(engine.docs)  # the selected sample
    # the retrieved passages of the shown document are highlighted
    assert [p.label for p in win.pdf.canvas.passages] == ["[1]", "[2]"]


def test_compare_with_target_only_shows_the_measured_speedup(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], script: Script
) -> None:
    win, _engine = window
    _wait_idle(qtbot, win)
    win.answer_ctl.ask_question("When is the lamp lit?")
    _wait_idle(qtbot, win)
    assert win.compare_action.isEnabled()
    win.compare_action.trigger()
    _wait_idle(qtbot, win)
    assert script.asked[-1][2].mode == "target"
    text = win.stats.comparison_text()
    # rapid: 32 tokens in 12 rounds; target: 12 tokens in 12 rounds of 1.5x the time
    assert "4.00×" in text and "60.6 → 242.4 tok/s" in text and "differ" in text
    assert win.history.records[-1].comparison is not None
    assert win.answer.counts()["correction"] == 12  # the baseline did not overwrite it


def test_cancel_stops_the_answer_and_ask_again_works(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], script: Script
) -> None:
    win, _engine = window
    _wait_idle(qtbot, win)
    script.rounds, script.round_delay_s = 100_000, 0.002
    win.answer_ctl.ask_question("A long one")
    qtbot.waitUntil(lambda: win.answer.counts().get("correction", 0) > 5, timeout=10_000)
    win.answer_ctl.cancel_answer()
    _wait_idle(qtbot, win)
    assert "Cancelled" in win.answer.browser.toPlainText()
    assert win.history.records == []  # a cancelled answer is not kept
    script.rounds, script.round_delay_s = 4, 0.0
    win.answer_ctl.ask_question("A short one")
    _wait_idle(qtbot, win)
    assert win.answer.counts()["correction"] == 4 and len(win.history.records) == 1


def test_an_engine_error_is_shown_once_with_what_to_do(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], script: Script
) -> None:
    win, _engine = window
    _wait_idle(qtbot, win)
    script.fail_ask = "The question is empty. Type a question, then press Enter."
    win.answer_ctl.ask_question("?")
    _wait_idle(qtbot, win)
    assert win.banner.message == script.fail_ask and win.banner.level == "error"
    assert script.fail_ask not in win.answer.browser.toPlainText()  # shown once, not twice
    assert win.ask.ask_button.isVisible()


def test_adding_pdfs_shows_progress_then_the_document(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], script: Script, make_pdf: Any
) -> None:
    win, engine = window
    _wait_idle(qtbot, win)
    script.page_delay_s = 0.05
    pdf = make_pdf(["one", "two"], name="manual.pdf")
    win.library_ctl.add_documents([pdf])
    qtbot.waitUntil(lambda: _progress(win) > 0, timeout=10_000)
    _wait_idle(qtbot, win)
    titles = {d.title for d in engine.docs.values()}
    assert titles == {"harrow-point-handbook", "manual"}
    assert win.pdf.document_path == pdf


def test_cancelling_an_add_drops_its_row(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], script: Script, make_pdf: Any
) -> None:
    win, engine = window
    _wait_idle(qtbot, win)
    script.page_delay_s = 0.2
    pdf = make_pdf(["one", "two", "three", "four", "five"], name="long.pdf")
    win.library_ctl.add_documents([pdf])
    qtbot.waitUntil(lambda: _progress(win) > 0, timeout=10_000)
    (key,) = win.library_ctl.adding()
    win.library_ctl.cancel_add(key)
    _wait_idle(qtbot, win)
    assert win.library.pending_row(key) is None and win.library_ctl.adding() == []
    assert "long" not in {d.title for d in engine.docs.values()}
    assert win.statusBar().currentMessage() == "Cancelled."


def test_a_password_protected_pdf_asks_for_the_password(
    qtbot: Any,
    window: tuple[MainWindow, FakeEngine],
    script: Script,
    make_pdf: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    win, engine = window
    _wait_idle(qtbot, win)
    script.password = "s3cret"
    answers = iter([("wrong", True), ("s3cret", True)])
    prompts: list[str] = []

    def fake_get_text(_parent: Any, _title: str, label: str, *_a: Any) -> tuple[str, bool]:
        prompts.append(label)
        return next(answers)

    monkeypatch.setattr("app.gui.library.controller.QInputDialog.getText", fake_get_text)
    pdf = make_pdf(["secret"], name="locked.pdf")
    win.library_ctl.add_documents([pdf])
    qtbot.waitUntil(lambda: "locked" in {d.title for d in engine.docs.values()}, timeout=10_000)
    assert len(prompts) == 2 and "not right" in prompts[1]


def test_export_writes_markdown_and_json(
    qtbot: Any, window: tuple[MainWindow, FakeEngine], tmp_path: Path
) -> None:
    win, _engine = window
    _wait_idle(qtbot, win)
    win.answer_ctl.ask_question("When is the lamp lit?")
    _wait_idle(qtbot, win)
    record = win.history.records[-1]
    assert win.answer_ctl.write_export(record, tmp_path / "a.md", "md")
    assert win.answer_ctl.write_export(record, tmp_path / "a.json", "json")
    assert (tmp_path / "a.md").read_text(encoding="utf-8").startswith("# When is the lamp lit?")
    data = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))
    assert data["citations"][0]["where"] == "p. 1" and data["statistics"]["rounds"] == 12
    assert not win.answer_ctl.write_export(record, tmp_path / "missing-folder" / "a.md", "md")
    assert "Could not write" in win.banner.message


def test_quit_while_answering_cancels_and_returns_quickly(
    qtbot: Any, tmp_path: Path, store: QSettings
) -> None:
    engine = FakeEngine(Script(rounds=1_000_000, round_delay_s=0.001))
    win, worker = build(store, library=tmp_path / "lib", make_engine=lambda _s: lambda: engine)
    qtbot.addWidget(win)
    win.show()
    _wait_idle(qtbot, win)
    win.answer_ctl.ask_question("forever")
    qtbot.waitUntil(lambda: win.answer.counts().get("correction", 0) > 3, timeout=10_000)
    win.close()
    assert win.stopped_cleanly and engine.closed
    assert not worker.busy


def _progress(win: MainWindow) -> int:
    """The progress bar value of the add in flight (0 when there is none)."""
    keys = win.library_ctl.adding()
    row = win.library.pending_row(keys[0]) if keys else None
    return 0 if row is None else row.bar.value()
