"""Settings: round trip through a real INI file, corrupt values falling back to their
defaults, the engine configs they make, and the dialog (pytest-qt)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from app.gui.settings import (
    SAME_LABEL,
    Settings,
    SettingsDialog,
    bundled_label,
    looks_like_path,
)
from core.config import DecodeConfig, IndexConfig, ModelConfig

pytestmark = pytest.mark.gui

EDITED = Settings(
    target="HuggingFaceTB/SmolLM2-360M-Instruct", drafter="smollm2-135m", device="cpu",
    precision="int8", mode="sd", eta=12.5, gamma=9, temperature=0.7, max_new_tokens=1000,
    budget=2048, chunk_tokens=768, show_rejected=False,
)  # fmt: skip


def _store(path: Path) -> QSettings:
    return QSettings(str(path), QSettings.Format.IniFormat)


def test_round_trip_through_ini_file(tmp_path: Path) -> None:
    EDITED.save(_store(tmp_path / "s.ini"))
    assert "SmolLM2-360M" in (tmp_path / "s.ini").read_text()
    assert Settings.load(_store(tmp_path / "s.ini")) == EDITED


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert Settings.load(_store(tmp_path / "none.ini")) == Settings()


def test_corrupt_values_fall_back_to_defaults(tmp_path: Path) -> None:
    path = tmp_path / "bad.ini"
    path.write_text(
        "[models]\ntarget=\ndrafter=my-drafter\ndevice=tpu\nprecision=int3\n"
        "[decoding]\nmode=turbo\neta=nan\ngamma=true\ntemperature=-1\nmax_new_tokens=lots\n"
        "[retrieval]\nbudget=1e9\nchunk_tokens=1024\n"
        "[view]\nshow_rejected=maybe\n"
        "[\x00garbage\nno equals sign here\n"
    )
    loaded = Settings.load(_store(path))
    assert loaded == replace(Settings(), drafter="my-drafter", chunk_tokens=1024)


def test_wrong_types_from_a_native_store(tmp_path: Path) -> None:
    store = _store(tmp_path / "typed.ini")
    store.setValue("decoding/gamma", 7.0)
    store.setValue("decoding/eta", 3)
    store.setValue("decoding/max_new_tokens", 2.5)
    store.setValue("view/show_rejected", 1)
    store.setValue("models/target", ["a", "b"])
    loaded = Settings.load(store)
    assert (loaded.gamma, loaded.eta, loaded.max_new_tokens) == (7, 3.0, 256)
    assert loaded.show_rejected is True and loaded.target == "qwen-1.5b"


def test_settings_of_version_0_1_are_upgraded(tmp_path: Path) -> None:
    """RapidQA 0.1 saved "default" for its bundled SmolLM2-135M: its untouched defaults
    become today's default pair; a SmolLM2 drafter stays SmolLM2."""
    path = tmp_path / "old.ini"
    path.write_text("[models]\ntarget=default\ndrafter=same\n")
    loaded = Settings.load(_store(path))
    assert (loaded.target, loaded.drafter) == ("qwen-1.5b", "qwen-0.5b") == (
        Settings().target, Settings().drafter
    )  # fmt: skip
    path.write_text("[models]\ntarget=HuggingFaceTB/SmolLM2-360M-Instruct\ndrafter=default\n")
    loaded = Settings.load(_store(path))
    assert (loaded.target, loaded.drafter) == (
        "HuggingFaceTB/SmolLM2-360M-Instruct", "smollm2-135m"
    )  # fmt: skip


def test_engine_configs() -> None:
    assert EDITED.model_config() == ModelConfig(
        target="HuggingFaceTB/SmolLM2-360M-Instruct",
        drafter="smollm2-135m",
        device="cpu",
        precision="int8",
    )
    assert EDITED.decode_config() == DecodeConfig(
        mode="sd", gamma=9, eta=12.5, temperature=0.7, max_new_tokens=1000, budget=2048
    )
    assert Settings().decode_config().budget is None
    assert Settings().decode_config() == DecodeConfig()
    # the app reads PDFs in a child process, so that PyMuPDF cannot stall the window
    assert EDITED.index_config(Path("/lib")) == IndexConfig(
        chunk_tokens=768, library=Path("/lib"), read_in_child=True
    )
    tiny = replace(Settings(), chunk_tokens=48).index_config()
    assert 0 <= tiny.chunk_overlap < tiny.chunk_tokens


def test_what_changed() -> None:
    base = Settings()
    assert not base.models_changed(replace(base, mode="sd", chunk_tokens=1024))
    assert base.models_changed(replace(base, device="cuda"))
    assert base.models_changed(replace(base, precision="float32"))
    assert base.models_changed(replace(base, drafter="smollm2-135m"))
    assert base.chunking_changed(replace(base, chunk_tokens=1024))
    assert not base.chunking_changed(replace(base, gamma=3))


def test_path_or_hub_id() -> None:
    assert not looks_like_path("default")
    assert not looks_like_path("HuggingFaceTB/SmolLM2-360M-Instruct")
    for text in ("/models/x", "~/m", "./m", "m.GGUF", "a/b/c", r"C:\models", "C:/m"):
        assert looks_like_path(text), text


@pytest.fixture
def dialog(qtbot) -> SettingsDialog:  # type: ignore[no-untyped-def]
    widget = SettingsDialog(EDITED)
    qtbot.addWidget(widget)
    return widget


def test_dialog_reflects_settings(dialog: SettingsDialog) -> None:
    assert dialog.settings() == EDITED
    assert dialog.target.combo.currentText() == "HuggingFaceTB/SmolLM2-360M-Instruct"
    assert dialog.drafter.combo.currentText() == bundled_label("smollm2-135m", "drafter")
    assert dialog.device.currentText() == "CPU"
    assert dialog.precision.currentText() == "8-bit weights (int8)"
    assert dialog.mode.currentData() == "sd"
    assert not dialog.eta.isEnabled() and dialog.gamma.isEnabled()
    assert dialog.budget.value() == 2048 and dialog.chunk_tokens.value() == 768
    assert dialog.ok_button.isEnabled()


def test_dialog_edits_and_defaults(dialog: SettingsDialog) -> None:
    dialog.mode.setCurrentIndex(dialog.mode.findData("rapid"))
    assert dialog.eta.isEnabled()
    assert "retrieved passages" in dialog.mode_note.text()
    dialog.eta.setValue(7.5)
    dialog.gamma.setValue(40)  # clamped to the range
    dialog.budget.setValue(0)
    assert dialog.budget.text() == "Automatic"
    dialog.chunk_tokens.setValue(1024)
    assert "re-indexed" in dialog.chunk_note.text()
    dialog.drafter.combo.setCurrentIndex(dialog.drafter.combo.findText(SAME_LABEL))
    got = dialog.settings()
    assert (got.mode, got.eta, got.gamma, got.budget, got.chunk_tokens, got.drafter) == (
        "rapid", 7.5, 16, 0, 1024, "same"
    )  # fmt: skip
    dialog.mode.setCurrentIndex(dialog.mode.findData("target"))
    assert not dialog.gamma.isEnabled() and not dialog.budget.isEnabled()

    dialog.buttons.button(dialog.buttons.StandardButton.RestoreDefaults).click()
    assert dialog.settings() == Settings()
    assert dialog.target.combo.currentText() == bundled_label("qwen-1.5b")
    assert dialog.drafter.combo.currentText() == bundled_label("qwen-0.5b", "drafter")


def test_missing_path_disables_ok(dialog: SettingsDialog, tmp_path: Path) -> None:
    dialog.target.combo.setEditText(str(tmp_path / "nowhere" / "model.gguf"))
    assert not dialog.ok_button.isEnabled()
    assert dialog.target.error.isVisibleTo(dialog)
    assert "Nothing at this path" in dialog.target.error.text()
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    dialog.target.pick_gguf = lambda: str(gguf)
    dialog.target.gguf_button.click()
    assert dialog.target.value() == str(gguf)
    assert dialog.ok_button.isEnabled() and not dialog.target.error.isVisibleTo(dialog)
    dialog.drafter.combo.setEditText("")
    assert not dialog.ok_button.isEnabled()
    dialog.drafter.pick_folder = lambda: str(tmp_path)
    dialog.drafter.folder_button.click()
    assert dialog.settings().drafter == str(tmp_path) and dialog.ok_button.isEnabled()
    dialog.drafter.pick_folder = lambda: ""  # cancelled: nothing changes
    dialog.drafter.folder_button.click()
    assert dialog.settings().drafter == str(tmp_path)


def test_summary_round_trip_and_fallback() -> None:
    assert Settings.from_summary(EDITED.summary(), Settings()) == EDITED
    old = {"mode": "sd", "gamma": "99", "eta": "bad", "unknown": 1}  # an older, odd record
    assert Settings.from_summary(old, EDITED) == replace(EDITED, mode="sd")


def test_drafter_follows_the_target_until_chosen(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The default drafter shares the default target's vocabulary only: another target
    turns an automatic drafter into self-speculation, and back; a chosen one stays."""
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    dialog.target.set_value("HuggingFaceTB/SmolLM2-360M-Instruct")
    assert dialog.settings().drafter == "same"
    dialog.target.set_value("qwen-1.5b")
    assert dialog.settings().drafter == "qwen-0.5b"
    dialog.drafter.set_value("smollm2-135m")
    dialog.target.set_value("HuggingFaceTB/SmolLM2-360M-Instruct")
    assert dialog.settings().drafter == "smollm2-135m"
