"""The whole window on the real engine: a tiny real model (built from a config, saved
as a model folder), a real PDF, the real library and worker thread. Add, index, ask,
cancel, ask again, as a user would by clicking."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings

pytestmark = pytest.mark.gui


def test_add_ask_cancel_ask_again_with_a_real_model(
    qtbot: Any, tmp_path: Path, make_pdf: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("core.api")
    from app.gui.launch import build
    from app.gui.settings import Settings
    from tests.tiny_models import tiny_llama

    monkeypatch.setenv("RAPIDQA_CACHE", str(tmp_path / "cache"))
    loaded = tiny_llama(seed=0)
    loaded.model.save_pretrained(tmp_path / "tiny")
    loaded.tokenizer.save_pretrained(tmp_path / "tiny")
    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    tiny = Settings(target=str(tmp_path / "tiny"), drafter="same", mode="sd", max_new_tokens=400)
    tiny.save(store)
    store.setValue("first_start_done", True)  # this test adds its own PDF
    pdf = make_pdf(["The keeper lit the lamp at dusk every day. " * 30] * 3, name="lamp.pdf")

    win, worker = build(store, library=tmp_path / "lib")
    qtbot.addWidget(win)
    win.show()

    def idle() -> bool:
        return not worker.busy and not win.jobs.in_flight

    qtbot.waitUntil(idle, timeout=120_000)
    win.library_ctl.add_documents([pdf])
    qtbot.waitUntil(lambda: idle() and bool(win.library.documents()), timeout=120_000)
    (info,) = win.library.documents()
    assert info.title == "lamp" and info.pages == 3
    assert win.library.selected_ids() == [info.doc_id]
    assert win.pdf.document_path == pdf
    qtbot.waitUntil(lambda: win.pdf.page_image(1) is not None, timeout=30_000)

    # A long answer, cancelled once tokens stream.
    win.ask.set_question("When is the lamp lit?")
    win.ask.ask_button.click()
    qtbot.waitUntil(lambda: sum(win.answer.counts().values()) >= 3, timeout=120_000)
    win.answer_ctl.cancel_answer()
    qtbot.waitUntil(idle, timeout=60_000)
    assert "Cancelled" in win.answer.browser.toPlainText()
    assert win.history.records == []

    # Ask again, short: it finishes, streams the same tokens the engine counted.
    win.apply_settings(replace(win.settings, max_new_tokens=8))
    win.ask.ask_button.click()
    qtbot.waitUntil(lambda: idle() and bool(win.history.records), timeout=120_000)
    (record,) = win.history.records
    shown = win.answer.counts()
    assert record.finished.stop_reason in ("eos", "max_tokens")
    assert shown["accepted"] + shown["correction"] + shown["bonus"] + shown["target"] == (
        record.finished.new_tokens
    )
    assert win.answer.answer_text().strip() == record.finished.answer.strip()
    assert win.stats.values()["rounds"] == str(record.finished.rounds)
    assert win.banner.message == ""
    win.close()
    assert win.stopped_cleanly
